"""What chapter 02 adds to the replay beyond its default run (RSPose, Keles et al., 2025):
Table 1's *training* effect of dot vs Gaussian targets (under MSE and under Spatial RS), the
paper's remark that Instance-Sort hurts SimCC-ResNet-50 (Table 6), and Table 7's Spatial Sort
δ / coefficient grid.

None of these recipes is trained by the chapter's default run (it is over its budget already):
the replication (``poselab replicate 02``) trains ``simcc_rs_is`` and ``spatial_rs_dot``
beside the chapter's recipes (``mse_dot`` is recorded by chapter 04's, and read from there); the chapter trains them live only when asked
(``train_extra``), and the Table 7 grid only when asked (``train_grid``). Otherwise the chapter
reads whatever the run cache already holds (:func:`cached_table`, never trains) and says what is
missing. The verdicts are pure functions of a comparison table, so the live run and the recorded
replication are judged by the same rule (:func:`poselab.experiments.recorded_verdict`).
"""
from __future__ import annotations

import math
import numbers
from typing import Iterable, Mapping, Sequence

import numpy as np

from poselab import claims
from poselab.experiments import ComparisonTable, compare_recipes, recorded_verdict
from poselab.experiments.runner import cached_result
from poselab.experiments.verdicts import DEFAULT_CONVERGE_TOLERANCE, paired_table, table_evidence, validation_curves

__all__ = ["PAPER_TABLE1_MSE", "PAPER_SIMCC_INSTANCE_SORT", "PAPER_TABLE7", "STANDARD_RECIPES",
           "paired_by_seed", "judged_comparison", "simcc_instance_sort_verdict", "dot_mse_verdict",
           "dot_ranking_verdict", "dot_gaps", "live_or_untrained", "cached_table", "merged_table",
           "table7_grid", "EXTRA_CLAIMS", "extra_judges", "extra_value", "extra_rows",
           "extra_recorded"]

#: RSPose Table 1, ViTPose (ViT-B), MSE: AP with the dot target and with Gaussian label smoothing
PAPER_TABLE1_MSE = {"dot": 67.7, "gaussian": 75.8}
#: RSPose Table 6, SimCC-ResNet-50: AP of Spatial RS and of Spatial RS + Instance-Sort
PAPER_SIMCC_INSTANCE_SORT = {"simcc_rs": 73.6, "simcc_rs_is": 73.2}
#: RSPose Table 7, ViTPose-B: AP of Spatial Rank (δ 0.4, 1.0) + Spatial Sort (δ_sort, λ₁)
PAPER_TABLE7 = {(1.0, 0.5): 76.2, (1.0, 1.0): 76.2, (1.0, 2.0): 76.2,
                (1.5, 0.5): 76.2, (1.5, 1.0): 76.1, (1.5, 2.0): 76.4}
#: recipes that must reach the AP floor to have learnt; any other recipe (ranking losses, dot
#: targets, SimCC) has learnt when it beats the image-blind guess by 10 % (when one is given)
STANDARD_RECIPES = ("mse",)


def paired_by_seed(table, a: str, b: str) -> bool:
    """True when both recipes' runs come in the same seed order, one run per seed: the i-th
    values of the two sides are then one seed's pair (same initialisation and data stream)."""
    if table is None:
        return False
    seeds = [[r.seed for r in table.results if r.recipe == x] for x in (a, b)]
    return bool(seeds[0]) and seeds[0] == seeds[1] and len(set(seeds[0])) == len(seeds[0])


def judged_comparison(table, ours: str, theirs: str, *, min_effect: float,
                      paper_effect: float | None = None, floor: float = 0.3,
                      blind: float | None = None, set_name: str = "generated val") -> claims.Verdict:
    """"``ours`` beats ``theirs`` on AP" by :func:`poselab.experiments.compare_recipes` (paired
    by seed over the seeds both trained: the compared recipes are one model, only the loss or the
    target differs; ``paper_effect`` in AP units for the power check), then
    both sides must be ready: each has learnt — a :data:`STANDARD_RECIPES` recipe (or any, with
    no ``blind``) by reaching ``floor``, another by beating ``blind`` by 10 % — and each has
    converged (validation AP gained < 5 % over the last fifth). Else "inconclusive", naming the
    side."""
    if not (isinstance(floor, numbers.Real) and math.isfinite(floor) and floor >= 0):
        raise ValueError(f"floor must be a finite AP >= 0, got {floor!r}")
    if blind is not None and not (isinstance(blind, numbers.Real) and math.isfinite(blind) and blind >= 0):
        raise ValueError(f"blind must be None or the image-blind guess's finite AP >= 0, got {blind!r}")
    missing = [r for r in (ours, theirs) if r not in table.recipes]
    if missing:  # a recorded replication without them says so in words (not the runner's KeyError repr)
        raise ValueError(f"no {' or '.join(missing)} runs in the table (it holds {', '.join(table.recipes) or 'none'})")
    v = compare_recipes(table, ours, theirs, metric="AP", min_effect=min_effect, paper_effect=paper_effect,
                        paired=True, floor=None, converge_tolerance=None,
                        set_name=set_name)
    pairs, _ = paired_table(table, ours, theirs)
    judged = table if pairs is None else pairs   # readiness read on the seeds the test compared
    checks = []
    for r in (ours, theirs):
        values = judged.values(r, "AP", set_name)
        if blind is None or r in STANDARD_RECIPES:
            checks.append(claims.has_learnt(r, values, floor=floor, metric="AP"))
        else:
            checks.append(claims.has_learnt(r, values, blind=blind, metric="AP"))
    checks += [claims.has_converged(r, validation_curves(judged, r, "AP"), tolerance=DEFAULT_CONVERGE_TOLERANCE,
                                    relative=True, metric="AP") for r in (ours, theirs)]
    return claims.require_ready(v, checks)


def _effect(paper: Mapping[str, float], better: str, worse: str) -> float:
    return round((paper[better] - paper[worse]) / 100.0, 6)


def simcc_instance_sort_verdict(table, *, floor: float = 0.3, blind: float | None = None,
                                set_name: str = "generated val") -> claims.Verdict:
    """``rspose.simcc.instance_sort_effect``: on SimCC, Instance-Sort *hurts* — ``simcc_rs``
    beats ``simcc_rs_is`` (RSPose Table 6, SimCC-ResNet-50: 73.6 vs 73.2 AP, "marginally
    negative"). Paper effect +0.004 AP, minimum half of it; paired by seed; both sides learnt
    (blind guess) and converged (:func:`judged_comparison`)."""
    effect = _effect(PAPER_SIMCC_INSTANCE_SORT, "simcc_rs", "simcc_rs_is")
    return judged_comparison(table, "simcc_rs", "simcc_rs_is", min_effect=effect / 2, paper_effect=effect,
                             floor=floor, blind=blind, set_name=set_name)


def dot_mse_verdict(table, *, floor: float = 0.3, blind: float | None = None,
                    set_name: str = "generated val") -> claims.Verdict:
    """``rspose.table1.gaussian_vs_dot_mse``: under MSE the Gaussian target (``mse``) beats the
    dot (``mse_dot``, chapter 04's recipe) — RSPose Table 1, ViTPose ViT-B: 75.8 vs 67.7 AP.
    Paper effect +0.081 AP, minimum half of it; paired by seed; ``mse`` must reach ``floor``, the
    dot model must beat the blind guess by 10 % (when given), both converged."""
    effect = _effect(PAPER_TABLE1_MSE, "gaussian", "dot")
    return judged_comparison(table, "mse", "mse_dot", min_effect=effect / 2, paper_effect=effect,
                             floor=floor, blind=blind, set_name=set_name)


def dot_ranking_verdict(table, *, min_effect: float = 0.01, floor: float = 0.3, blind: float | None = None,
                        set_name: str = "generated val") -> claims.Verdict:
    """``rspose.table1.gaussian_vs_dot_ranking``: under Spatial RS the Gaussian window as
    positives (``spatial_rs``) beats the dot (``spatial_rs_dot``: one positive, Spatial Sort
    vanishes). Table 1 reports only MSE and KL, so there is no paper effect to check power
    against (``min_effect`` is the chapter's); RSPose §5.4 (P2) argues ranking is balanced
    whatever N/P, which predicts a smaller gap than MSE's (:func:`dot_gaps` records both)."""
    return judged_comparison(table, "spatial_rs", "spatial_rs_dot", min_effect=min_effect, paper_effect=None,
                             floor=floor, blind=blind, set_name=set_name)


def dot_gaps(table, set_name: str = "generated val") -> dict:
    """Per-seed AP gaps Gaussian − dot under MSE (``mse − mse_dot``) and under ranking
    (``spatial_rs − spatial_rs_dot``), over the seeds both recipes trained, in seed order (a
    framing whose recipes are missing or share no seed is left out)."""
    out = {}
    for framing, (gauss, dot) in (("mse", ("mse", "mse_dot")), ("ranking", ("spatial_rs", "spatial_rs_dot"))):
        if table is None or gauss not in table.recipes or dot not in table.recipes:
            continue
        pairs, _ = paired_table(table, gauss, dot)
        if pairs is None:
            continue
        out[framing] = [float(a - b) for a, b in zip(pairs.values(gauss, "AP", set_name), pairs.values(dot, "AP", set_name))]
    return out


def live_or_untrained(table, judge, needed: Sequence[str], how: str, set_name: str = "generated val") -> claims.Verdict:
    """``judge(table)`` when ``table`` holds every recipe in ``needed``; else "inconclusive: not
    testable here", naming the recipes the live run lacks and ``how`` to train them, with the
    evidence of the ``needed`` recipes it does hold (their preset, seeds and per-seed AP)."""
    have = set(table.recipes) if table is not None else set()
    missing = [r for r in needed if r not in have]
    if missing:
        present = [r for r in needed if r in have]
        ev = table_evidence(table, present, "AP", set_name) if table is not None and table.results else {}
        return claims.not_testable(f"the live run has no {', '.join(missing)} runs ({how})",
                                   summary={"missing": missing}, evidence=ev)
    return judge(table)


def cached_table(recipes: Iterable[str], seeds: Iterable[int], *, data="synth", preset="default",
                 device="auto") -> tuple[ComparisonTable | None, list[tuple[str, int]]]:
    """The runs of ``recipes`` × ``seeds`` that the run cache already holds, as a
    :class:`~poselab.experiments.ComparisonTable` (None when none is cached), and the
    ``(recipe, seed)`` pairs it lacks. Never trains."""
    found, missing = [], []
    for name in recipes:
        for seed in seeds:
            run = cached_result(name, data=data, preset=preset, seed=seed, device=device)
            (found.append(run) if run is not None else missing.append((name, int(seed))))
    return (ComparisonTable(found) if found else None), missing


def merged_table(*tables) -> ComparisonTable | None:
    """One table of the runs of every given table (None skipped); a (recipe, seed) pair that two
    tables hold is kept once, from the first."""
    runs, seen = [], set()
    for t in tables:
        for r in (t.results if t is not None else ()):
            if (r.recipe, r.seed) not in seen:
                seen.add((r.recipe, r.seed))
                runs.append(r)
    return ComparisonTable(runs) if runs else None


def table7_grid(table, cells: Mapping[tuple[float, float], str], set_name: str = "generated val") -> list[dict]:
    """Table 7's Spatial Sort grid from whatever runs ``table`` holds: one row per cell
    ``{sort_delta, sort_weight, recipe, AP, seeds, paper_AP}`` — ``AP`` the mean over the runs of
    that recipe (None with ``seeds`` 0 when the table has none), ``paper_AP`` Table 7's (in AP
    units). ``cells``: ``(δ_sort, λ₁) -> recipe`` (:data:`poselab.chapters.rspose.recipes.TABLE7_CELLS`)."""
    if not cells:
        raise ValueError("table7_grid needs at least one (sort_delta, sort_weight) -> recipe cell")
    rows = []
    for (delta, weight), recipe in cells.items():
        have = table is not None and recipe in table.recipes
        values = [v for v in (table.values(recipe, "AP", set_name) if have else []) if math.isfinite(v)]
        paper = PAPER_TABLE7.get((float(delta), float(weight)))
        rows.append({"sort_delta": float(delta), "sort_weight": float(weight), "recipe": recipe,
                     "AP": float(np.mean(values)) if values else None, "seeds": len(values),
                     "paper_AP": None if paper is None else paper / 100.0})
    return rows


#: the claims judged beyond the default run: claim id -> the recipes it compares (ours, theirs:
#: the paper's better side first), the paper's statement, and a note
EXTRA_CLAIMS = {
    "rspose.simcc.instance_sort_effect": {
        "recipes": ("simcc_rs", "simcc_rs_is"),
        "paper": "RSPose Table 6 / §6.2: Instance-Sort is marginally negative on SimCC-ResNet-50 "
                 "(Spatial RS 73.6 -> + Instance-Sort 73.2 AP)",
        "note": "reproduced = simcc_rs beats simcc_rs_is (Instance-Sort hurts); Instance-Sort δ 0.5 / 0.1 "
                "(Table E.8's SimCC-HRNet-W48 row: the ResNet-50 row gives none)"},
    "rspose.table1.gaussian_vs_dot_mse": {
        "recipes": ("mse", "mse_dot"),
        "paper": "RSPose Table 1 (ViTPose ViT-B, MSE): Gaussian label smoothing 75.8 vs dot annotation 67.7 AP",
        "note": "mse_dot is chapter 04's recipe; mse must reach the AP floor, mse_dot beat the image-blind guess",
        # chapter 04's replication trains the same two recipes at the same preset and data, so
        # chapter 02's does not train them again: its records are read (and labelled so)
        "also_recorded_by": "04_hdm"},
    "rspose.table1.gaussian_vs_dot_ranking": {
        "recipes": ("spatial_rs", "spatial_rs_dot"),
        "paper": "RSPose Table 1 under ranking: the Gaussian window vs one positive pixel with the Spatial RS loss "
                 "(Table 1 reports MSE and KL only; §5.4 P2: ranking is balanced whatever N/P)",
        "note": "no paper effect (no ranking row in Table 1); the value gives the per-seed Gaussian - dot AP gap "
                "under MSE and under ranking"},
}


def extra_judges(*, floor: float = 0.3, blind: float | None = None, min_effect: float = 0.01,
                 set_name: str = "generated val") -> dict:
    """``claim id -> judge(table) -> Verdict`` for :data:`EXTRA_CLAIMS`, with the chapter's
    floor, blind-guess AP and minimum effect (the ranking framing's; the others derive theirs from
    the paper's effect) — one rule for the live run and the recorded replication."""
    return {"rspose.simcc.instance_sort_effect":
                lambda t: simcc_instance_sort_verdict(t, floor=floor, blind=blind, set_name=set_name),
            "rspose.table1.gaussian_vs_dot_mse":
                lambda t: dot_mse_verdict(t, floor=floor, blind=blind, set_name=set_name),
            "rspose.table1.gaussian_vs_dot_ranking":
                lambda t: dot_ranking_verdict(t, min_effect=min_effect, floor=floor, blind=blind, set_name=set_name)}


def extra_value(table, claim_id: str, set_name: str = "generated val") -> dict:
    """The value recorded for one of :data:`EXTRA_CLAIMS`: each compared recipe's per-seed AP
    (``"not trained"`` where the table has none) and, for the Table 1 claims, :func:`dot_gaps`."""
    if claim_id not in EXTRA_CLAIMS:
        raise ValueError(f"claim_id must be one of {sorted(EXTRA_CLAIMS)}, got {claim_id!r}")
    have = set(table.recipes) if table is not None else set()
    out = {r: table.values(r, "AP", set_name) if r in have else "not trained" for r in EXTRA_CLAIMS[claim_id]["recipes"]}
    if claim_id.startswith("rspose.table1."):
        out["Gaussian - dot AP per seed"] = dot_gaps(table, set_name)
    return out


def extra_rows(live: Mapping[str, claims.Verdict], recorded: Mapping[str, Mapping]) -> list[dict]:
    """Table rows ``{claim, live verdict, live reason, recorded verdict, recorded reason}``."""
    return [{"claim": c, "verdict (live)": v.verdict, "reason (live)": v.reason,
             "verdict (recorded)": (recorded.get(c) or {}).get("verdict", "—"),
             "reason (recorded)": (recorded.get(c) or {}).get("reason", "")} for c, v in live.items()]


def extra_recorded(judges: Mapping, *, preset: str = "full", recorded=recorded_verdict) -> dict:
    """``claim id -> recorded verdict`` of :data:`EXTRA_CLAIMS` on chapter 02's recorded
    replication (``recorded(chapter, judge, preset=...)``, by default
    :func:`poselab.experiments.recorded_verdict`). A claim whose recipes another chapter's
    replication also trains (``also_recorded_by``: Table 1's MSE framing, chapter 04's ``mse`` and
    ``mse_dot``) is judged on that chapter's records while chapter 02's cannot answer, with
    ``source`` naming them and the reason saying so."""
    out = {}
    for claim_id, judge in judges.items():
        rec = dict(recorded("02_rspose", judge, preset=preset))
        other = EXTRA_CLAIMS.get(claim_id, {}).get("also_recorded_by")
        if not rec.get("recorded") and other:
            alt = dict(recorded(other, judge, preset=preset))
            if alt.get("recorded"):
                rec = {**alt, "source": other,
                       "reason": f"chapter {other}'s records of the same recipes: {alt.get('reason', '')}"}
        out[claim_id] = rec
    return out
