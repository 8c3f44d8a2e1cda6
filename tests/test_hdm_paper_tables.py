"""Tests for poselab.chapters.hdm.paper_tables: every row of HDM Tables 2–3's map names a recipe
that exists and a claim the chapter records, or says why it does not fit."""
import dataclasses

import pytest

import poselab.experiments  # noqa: F401  (registers every chapter's recipes)
from poselab.chapters.hdm import CHAPTER
from poselab.chapters.hdm import paper_tables as P
from poselab.experiments.registry import get_recipe


def _problems(comparisons):
    out = []
    for c in comparisons:
        for name in c.recipes:
            try:
                get_recipe(name)
            except (KeyError, ValueError):
                out.append(f"{c.rows}: no recipe {name!r}")
        if c.claim is not None and c.claim not in CHAPTER.expected_claims:
            out.append(f"{c.rows}: claim {c.claim!r} is not one of chapter 04's")
        if c.fits and not (c.recipes and c.claim and c.where):
            out.append(f"{c.rows}: fits but names no recipes, claim or place")
        if not c.fits and not c.reason.strip():
            out.append(f"{c.rows}: does not fit and gives no reason")
        if not (c.recipes or c.claim or c.reason.strip()):
            out.append(f"{c.rows}: names nothing")
    return out


def test_every_row_names_an_existing_recipe_and_claim_or_a_reason():
    assert _problems(P.TABLES_2_3) == []
    assert {c.table.split(" (")[0] for c in P.TABLES_2_3} == {"Table 2", "Table 3"}
    assert any(c.fits for c in P.TABLES_2_3)


@pytest.mark.parametrize("change", [
    {"recipes": ("hrnet_w48_emd",)},           # a recipe the lab does not have
    {"claim": "hdm.training.table2_hrnet"},   # a claim the chapter never records
    {"fits": False, "reason": ""},            # not fitting, no reason
    {"fits": True, "claim": None},            # fitting, nothing judges it
])
def test_the_check_catches_a_broken_row(change):
    broken = dataclasses.replace(P.TABLES_2_3[0], **change)
    assert _problems([broken]) != []


def test_rendered_rows_and_sentence_follow_the_structure():
    rows = P.paper_table_rows()
    assert len(rows) == len(P.TABLES_2_3)
    assert [r["fits our scale"] for r in rows] == ["yes" if c.fits else "no" for c in P.TABLES_2_3]
    sentence = P.paper_tables_sentence()
    n_fit = sum(c.fits for c in P.TABLES_2_3)
    assert f"{len(P.TABLES_2_3)} groups" in sentence and f"{n_fit} fits" in sentence
    assert "hdm.training.emd_vs_mse" in sentence
