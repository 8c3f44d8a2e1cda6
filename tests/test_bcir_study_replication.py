"""Chapter 06's heatmap-study claims (``bcir.localization.ipr_more_localized``,
``bcir.hard_cases.regression_better``), live and recorded: one per-run reduction
(``analysis.study_values``), one judge per claim, the derived records ``heatmap_study_mse`` /
``heatmap_study_ipr`` of ``poselab replicate 06``, and their recorded verdicts. Each judge must
be able to come out reproduced, not reproduced or inconclusive (a side that has not learnt or
not converged, too few seeds, an effect the other way), and a corrupt record is refused by name."""
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from poselab.chapters.bcir import analysis as B
from poselab.chapters.bcir import replication as R
from poselab.experiments import compare, resolve_run_data
from poselab.experiments.presets import get_preset
from poselab.experiments.runner import _jsonable
from poselab.experiments import replicate as rep

LOCAL, HARD = "bcir.localization.ipr_more_localized", "bcir.hard_cases.regression_better"


# ----------------------------------------------------------------------------- constructed rows
def _curve(final_ap: float, tail_gain: float = 0.0) -> dict:
    """A validation curve ending at ``final_ap`` that gained ``tail_gain`` (share of the final AP)
    over the last fifth of 5000 steps."""
    start = final_ap * (1 - tail_gain)
    return {"steps": [1000.0, 2000.0, 3000.0, 4000.0, 5000.0],
            "values": [final_ap * 0.3, final_ap * 0.6, final_ap * 0.8, start, final_ap]}


def _row(recipe, seed, a2, occluded, *, ap=0.6, tail_gain=0.01, n_occluded=120, preset="full", persons=400):
    return {"recipe": recipe, "seed": seed, "preset": preset, "data": "synth", "set": "generated val",
            "persons": persons, "input_size": [128, 96], "heatmap_size": [64, 48],
            "A2_easy_medium": a2, "n_easy_medium": 3000, "occluded_error": occluded, "visible_error": 3.0,
            "n_occluded": n_occluded, "n_visible": 3000, "AP": ap, "curve": _curve(ap, tail_gain)}


def _rows(ipr_a2, mse_a2, ipr_occ, mse_occ, ipr_kw=None, mse_kw=None, seeds=None):
    seeds = list(range(len(ipr_a2))) if seeds is None else seeds
    return {"ipr": [_row("ipr", s, a, o, **(ipr_kw or {})) for s, a, o in zip(seeds, ipr_a2, ipr_occ)],
            "mse": [_row("mse", s, a, o, **(mse_kw or {})) for s, a, o in zip(seeds, mse_a2, mse_occ)]}


IPR_A2, MSE_A2 = [0.62, 0.64, 0.63], [0.47, 0.49, 0.48]   # the paper's direction (+0.15)
IPR_OCC, MSE_OCC = [4.9, 5.0, 5.1], [5.9, 6.0, 6.1]        # IPR 1 crop px better on occluded joints


def test_judges_reproduce_the_papers_direction():
    rows = _rows(IPR_A2, MSE_A2, IPR_OCC, MSE_OCC)
    local, hard = B.localization_verdict(rows), B.hard_cases_verdict(rows)
    assert local.verdict == "reproduced", local.reason
    assert hard.verdict == "reproduced", hard.reason
    assert local.summary["paper_effect"] == pytest.approx(0.16) and local.summary["advantage"] == pytest.approx(0.15)
    assert [c["ok"] for c in local.summary["readiness"]] == [True] * 4  # learnt and converged, both sides
    assert local.evidence["seeds"] == [0, 1, 2] and local.evidence["preset"] == "full"
    # extra recipes in the table (the live cell also studies bcir) are ignored
    assert B.localization_verdict({**rows, "bcir": [_row("bcir", 0, 0.1, 9.0)]}).verdict == "reproduced"


def test_judges_say_not_reproduced_for_an_effect_the_other_way():
    rows = _rows(MSE_A2, IPR_A2, MSE_OCC, IPR_OCC)  # swapped: detection more localized, IPR worse on occlusion
    assert B.localization_verdict(rows).verdict == "not reproduced"
    assert B.hard_cases_verdict(rows).verdict == "not reproduced"


@pytest.mark.parametrize("side", ["ipr", "mse"])
def test_a_side_that_has_not_learnt_is_inconclusive_never_not_reproduced(side):
    weak = {"ap": 0.13}
    rows = _rows(MSE_A2, IPR_A2, MSE_OCC, IPR_OCC, **{f"{side}_kw": weak})  # the other way, but one side never learnt
    for judge in (B.localization_verdict, B.hard_cases_verdict):
        v = judge(rows)
        assert v.verdict == "inconclusive" and f"{side} has not learnt (AP 0.13 < floor 0.3)" in v.reason, v.reason


@pytest.mark.parametrize("side", ["ipr", "mse"])
def test_an_unconverged_side_is_inconclusive(side):
    rows = _rows(IPR_A2, MSE_A2, IPR_OCC, MSE_OCC, **{f"{side}_kw": {"tail_gain": 0.2}})
    for judge in (B.localization_verdict, B.hard_cases_verdict):
        v = judge(rows)
        assert v.verdict == "inconclusive" and f"{side} not converged" in v.reason, v.reason
    # a run that kept no validation curve cannot show it converged
    bare = _rows(IPR_A2, MSE_A2, IPR_OCC, MSE_OCC)
    for row in bare[side]:
        row["curve"] = {"steps": [], "values": []}
    v = B.localization_verdict(bare)
    assert v.verdict == "inconclusive" and f"{side}: convergence cannot be told" in v.reason, v.reason


def test_too_few_seeds_and_unmatched_seeds_are_inconclusive():
    two = _rows(IPR_A2[:2], MSE_A2[:2], IPR_OCC[:2], MSE_OCC[:2])
    assert B.localization_verdict(two).verdict == "inconclusive"
    assert "2 seed(s) per side" in B.localization_verdict(two).reason
    # ipr has seeds 0-2, mse only 0-1: compared on seeds 0 and 1, saying what was left out
    rows = _rows(IPR_A2, MSE_A2, IPR_OCC, MSE_OCC)
    rows["mse"] = rows["mse"][:2]
    v = B.hard_cases_verdict(rows)
    assert v.verdict == "inconclusive" and "ipr seed(s) 2 left out" in v.reason, v.reason
    assert v.evidence["seeds"] == [0, 1]


def test_fast_runs_and_too_few_occluded_joints_are_inconclusive():
    fast = _rows(IPR_A2, MSE_A2, IPR_OCC, MSE_OCC, ipr_kw={"preset": "fast"}, mse_kw={"preset": "fast"})
    assert B.localization_verdict(fast).reason.startswith("fast run")
    few = _rows(IPR_A2, MSE_A2, IPR_OCC, MSE_OCC, ipr_kw={"n_occluded": 12}, mse_kw={"n_occluded": 12})
    v = B.hard_cases_verdict(few)
    assert v.verdict == "inconclusive" and "12 occluded joints" in v.reason
    assert B.localization_verdict(few).verdict == "reproduced"  # the other claim does not need them


def test_a_missing_value_is_inconclusive_not_a_crash():
    rows = _rows(IPR_A2, MSE_A2, IPR_OCC, MSE_OCC)
    rows["ipr"][1]["A2_easy_medium"] = None  # a NaN written to JSON as null
    v = B.localization_verdict(rows)
    assert v.verdict == "inconclusive" and "non-finite" in v.reason


def test_judges_refuse_rows_they_cannot_compare():
    rows = _rows(IPR_A2, MSE_A2, IPR_OCC, MSE_OCC)
    with pytest.raises(KeyError, match="no heatmap study of 'mse'"):
        B.localization_verdict({"ipr": rows["ipr"]})
    with pytest.raises(ValueError, match="no seed recorded for both mse"):
        B.localization_verdict(_rows(IPR_A2, MSE_A2, IPR_OCC, MSE_OCC) | {"mse": [_row("mse", 7, 0.5, 6.0)]})
    with pytest.raises(ValueError, match="ipr has two heatmap-study rows of seed 0: a repeated seed"):
        B.localization_verdict(rows | {"ipr": rows["ipr"] + rows["ipr"][:1]})
    with pytest.raises(ValueError, match="lacks"):
        B.hard_cases_verdict(rows | {"ipr": [{k: v for k, v in r.items() if k != "occluded_error"} for r in rows["ipr"]]})
    with pytest.raises(ValueError, match="holds mse's, given as 'ipr'"):
        B.localization_verdict(rows | {"ipr": rows["mse"]})
    mixed = _rows(IPR_A2, MSE_A2, IPR_OCC, MSE_OCC, mse_kw={"persons": 60})
    with pytest.raises(ValueError, match="ipr seed 0, ipr seed 1, ipr seed 2 differ from mse seed 0 in persons"):
        B.localization_verdict(mixed)
    with pytest.raises(TypeError):
        B.localization_verdict([rows])


# ----------------------------------------------------------------------------- the per-run reduction
def _fake_run(recipe="ipr", seed=3, ap=0.5, val=((100, 0.2), (200, 0.5))):
    return SimpleNamespace(recipe=recipe, seed=seed, preset="default", data="synth",
                           metrics={"generated val": {"AP": ap}},
                           history={"val": [{"step": s, "AP": a} for s, a in val]},
                           geometry=lambda: SimpleNamespace(input_size=(128, 96), heatmap_size=(64, 48)))


def test_study_values_reduces_a_study_by_split_and_visibility():
    study = {"A": np.array([[0.1, 0.2, 0.5], [0.2, 0.4, 0.7], [0.0, 0.1, 0.9], [0.3, 0.3, 0.3]]),
             "s": np.array([0, 1, 2]), "label": np.array(["easy", "medium", "hard", "easy"], dtype=object),
             "v": np.array([2, 1, 1, 2]), "error": np.array([1.0, 3.0, 5.0, 2.0]), "n_persons": 2}
    got = B.study_values(_fake_run(), study)
    assert got["A2_easy_medium"] == pytest.approx((0.5 + 0.7 + 0.3) / 3)  # the hard person's 0.9 left out
    assert got["n_easy_medium"] == 3
    assert got["occluded_error"] == pytest.approx(4.0) and got["visible_error"] == pytest.approx(1.5)
    assert (got["n_occluded"], got["n_visible"], got["persons"]) == (2, 2, 2)
    assert got["AP"] == 0.5 and got["curve"] == {"steps": [100.0, 200.0], "values": [0.2, 0.5]}
    assert (got["recipe"], got["seed"], got["set"]) == ("ipr", 3, "generated val")
    assert set(got) == set(B.STUDY_FIELDS)
    json.dumps(got)  # JSON-able as it stands
    # no easy/medium joint: NaN (written as null), not a crash
    only_hard = {**study, "label": np.array(["hard"] * 4, dtype=object)}
    assert math.isnan(B.study_values(_fake_run(), only_hard)["A2_easy_medium"])
    with pytest.raises(ValueError, match="s = 2"):
        B.study_values(_fake_run(), {**study, "A": study["A"][:, :2], "s": np.array([0, 1])})
    with pytest.raises(ValueError, match="no AP on 'val'"):
        B.study_values(_fake_run(), study, set_name="val")
    with pytest.raises(ValueError, match="localization_study"):
        B.study_values(_fake_run(), {"A": study["A"]})


# ----------------------------------------------------------------------------- recorded
def _write_records(root, rows, preset="full"):
    folder = root / "06_bcir"
    folder.mkdir(parents=True, exist_ok=True)
    for recipe, per_seed in rows.items():
        for row in per_seed:
            name = R.DERIVED_NAMES[recipe]
            rec = {"kind": rep.DERIVED_KIND, "name": name, "chapter": "06_bcir", "seed": row["seed"],
                   "preset": preset, "commit": "abc", "source_digest": "x", "threads": 1, "values": row}
            (folder / f"{name}__{preset}__seed{row['seed']}.json").write_text(json.dumps(rec))
    return folder


@pytest.mark.parametrize("order, expected", [("paper", "reproduced"), ("swapped", "not reproduced"),
                                             ("weak ipr", "inconclusive")])
def test_recorded_verdicts_are_the_live_rule_on_the_records(tmp_path, order, expected):
    rows = (_rows(IPR_A2, MSE_A2, IPR_OCC, MSE_OCC) if order == "paper" else
            _rows(MSE_A2, IPR_A2, MSE_OCC, IPR_OCC) if order == "swapped" else
            _rows(MSE_A2, IPR_A2, MSE_OCC, IPR_OCC, ipr_kw={"ap": 0.13}))
    _write_records(tmp_path, rows)
    got = R.recorded_verdicts("full", root=tmp_path)
    assert set(got) == {LOCAL, HARD}
    for claim, judge in ((LOCAL, B.localization_verdict), (HARD, B.hard_cases_verdict)):
        live = judge(rows)
        assert got[claim]["recorded"] is True and got[claim]["verdict"] == live.verdict == expected
        assert got[claim]["reason"] == live.reason
        assert got[claim]["seeds"] == [0, 1, 2] and got[claim]["runs"] == 6 and got[claim]["preset"] == "full"


def test_recorded_verdicts_without_records_or_with_one_recipe_missing(tmp_path):
    got = R.recorded_verdicts("full", root=tmp_path)
    assert got[LOCAL]["recorded"] is False and got[LOCAL]["reason"].startswith("no recorded full-preset replication yet")
    _write_records(tmp_path, {"ipr": _rows(IPR_A2, MSE_A2, IPR_OCC, MSE_OCC)["ipr"]})
    got = R.recorded_verdicts("full", root=tmp_path)
    assert got[HARD]["recorded"] is False
    assert "cannot answer yet" in got[HARD]["reason"] and "no heatmap study of 'mse'" in got[HARD]["reason"]


def test_a_corrupt_record_is_refused_by_name(tmp_path):
    folder = _write_records(tmp_path, _rows(IPR_A2, MSE_A2, IPR_OCC, MSE_OCC))
    bad = folder / "heatmap_study_ipr__full__seed1.json"
    good = bad.read_text()
    bad.write_text('{"kind": "poselab-replication-derived", "values": ')  # cut off mid-write
    got = R.recorded_verdicts("full", root=tmp_path)
    assert got[LOCAL]["recorded"] is False and "heatmap_study_ipr__full__seed1.json" in got[LOCAL]["reason"]
    assert "not a readable derived record" in got[LOCAL]["reason"]
    # readable but not a heatmap study: named, never judged
    rec = json.loads(good)
    rec["values"].pop("A2_easy_medium")
    bad.write_text(json.dumps(rec))
    with pytest.raises(ValueError, match=r"heatmap_study_ipr seed 1 is not a heatmap study \(lacks \['A2_easy_medium'\]\)"):
        R.values_from_records({n: rep.recorded_derived("06", n, root=tmp_path) for n in R.DERIVED_NAMES.values()})
    assert "heatmap_study_ipr seed 1 is not a heatmap study" in R.recorded_verdicts("full", root=tmp_path)[LOCAL]["reason"]
    # another seed's (or recipe's) study under this name
    rec = json.loads(good)
    rec["values"]["seed"] = 2
    bad.write_text(json.dumps(rec))
    with pytest.raises(ValueError, match="holds the study of ipr seed 2"):
        R.values_from_records({n: rep.recorded_derived("06", n, root=tmp_path) for n in R.DERIVED_NAMES.values()})


def test_group_verdict_checks_its_names(tmp_path):
    with pytest.raises(ValueError, match="distinct"):
        rep.recorded_derived_group_verdict("06", ["a", "a"], lambda g: None, root=tmp_path)


# ----------------------------------------------------------------------------- derived steps on fast runs
def test_chapter_06_registers_one_heatmap_study_per_compared_recipe():
    steps = rep.chapter_derived("06")
    assert [(s.name, s.recipe) for s in steps] == [("heatmap_study_mse", "mse"), ("heatmap_study_ipr", "ipr")]
    assert R.study_persons("fast") == 60 and R.study_persons("full") == 400


def test_heatmap_studies_recorded_on_fast_runs_equal_the_live_reduction(cache, monkeypatch):
    out = cache / "replications"
    written = rep.replicate("06", preset="fast", seeds=[0], worktree=False, root=out, recipes=["mse", "ipr"])
    assert [p.name for p in written] == ["mse__fast__seed0.json", "ipr__fast__seed0.json",
                                         "heatmap_study_mse__fast__seed0.json", "heatmap_study_ipr__fast__seed0.json"]
    recs = {n: json.loads((out / "06_bcir" / f"heatmap_study_{n}__fast__seed0.json").read_text()) for n in ("mse", "ipr")}
    for name, rec in recs.items():
        assert rec["kind"] == rep.DERIVED_KIND and rec["base"]["recipe"] == name and rec["threads"] == torch.get_num_threads()
        assert set(rec["values"]) == set(B.STUDY_FIELDS) and rec["values"]["persons"] == 60
        assert rec["values"]["n_occluded"] > 0 and 0 < rec["values"]["A2_easy_medium"] <= 1
    # the live cell's path on the same cached runs gives the same numbers
    table = compare(["mse", "ipr"], seeds=[0], preset="fast", jobs=1, progress=False)
    ann = next(iter(resolve_run_data("synth", get_preset("fast"))[1].values()))
    for name in ("mse", "ipr"):
        run = table.result(name, 0)
        study = B.localization_study(run.model(), ann, run.geometry().input_size, run.codec(), beta=10.0,
                                     max_persons=60)
        live = json.loads(json.dumps(_jsonable(B.study_values(run, study))))
        assert live == recs[name]["values"]
    # judged on the records: a fast run is never a finding, with provenance
    got = R.recorded_verdicts("fast", root=out)
    assert got[LOCAL]["recorded"] is True and got[LOCAL]["verdict"] == "inconclusive"
    assert got[LOCAL]["reason"].startswith("fast run") and got[LOCAL]["seeds"] == [0] and got[LOCAL]["current"]
    # resumed: nothing studied again
    monkeypatch.setattr(B, "localization_study", lambda *a, **k: pytest.fail("studied again"))
    assert rep.replicate("06", preset="fast", seeds=[0], worktree=False, root=out, recipes=["mse", "ipr"]) == []
    # a corrupt record stops the replication by name rather than being trusted or recomputed
    (out / "06_bcir" / "heatmap_study_mse__fast__seed0.json").write_text("{")
    with pytest.raises(ValueError, match="heatmap_study_mse__fast__seed0.json"):
        rep.derive("06", preset="fast", seeds=[0], root=out)
