"""Chapter 05's derived replication records (``poselab replicate 05``): the out-of-crop errors and
the multi-person detections computed on each seed's models, recorded, resumed, refused when
corrupt, and judged with the live rules (reproduced / not reproduced / inconclusive on constructed
records; a side that has not learnt, too few seeds or a missing recipe never reads "not
reproduced")."""
import json

import numpy as np
import pytest

from poselab.chapters.sar import multi_person as M
from poselab.chapters.sar import out_of_crop as ooc
from poselab.chapters.sar import replication as R
from poselab.chapters.sar.recipes import HEADLINE_SAR
from poselab.experiments import replicate as rep
from poselab.experiments.presets import get_preset

OOC_SAR, OOC_MSE = R.OUT_OF_CROP_STEPS[HEADLINE_SAR], R.OUT_OF_CROP_STEPS["mse"]
MP_SAR, MP_HM = R.MULTI_PERSON_STEPS["sar"], R.MULTI_PERSON_STEPS["heatmap"]


def test_chapter_05_registers_one_step_per_compared_recipe():
    steps = {s.name: s.recipe for s in rep.chapter_derived("05")}
    assert steps == {OOC_SAR: HEADLINE_SAR, OOC_MSE: "mse", MP_SAR: HEADLINE_SAR, MP_HM: "mse"}
    assert M.budget_for("full")["steps"] > M.budget_for("default")["steps"] > M.budget_for("fast")["steps"]
    with pytest.raises(ValueError, match="no multi-person budget"):
        M.budget_for("huge")
    with pytest.raises(ValueError, match="kind"):
        M.multi_person_record("simcc")


# ----------------------------------------------------------------------------- a fast replication, for real

def test_fast_replication_records_the_derived_steps_resumes_and_refuses_a_corrupt_record(cache, monkeypatch):
    out = cache / "replications"
    written = rep.replicate("05", preset="fast", seeds=[0], root=out, worktree=False, recipes=[HEADLINE_SAR, "mse"])
    names = sorted(p.name for p in written)
    assert names == sorted([f"{HEADLINE_SAR}__fast__seed0.json", "mse__fast__seed0.json",
                            *(f"{n}__fast__seed0.json" for n in (OOC_SAR, OOC_MSE, MP_SAR, MP_HM))])
    folder = out / "05_sar"
    recs = {n: json.loads((folder / f"{n}__fast__seed0.json").read_text()) for n in (OOC_SAR, OOC_MSE, MP_SAR, MP_HM)}
    for rec in recs.values():
        assert rec["kind"] == rep.DERIVED_KIND and rec["seed"] == 0 and rec["preset"] == "fast"
        for key in ("commit", "source_digest", "threads", "wall_seconds", "cpu_seconds", "command"):
            assert key in rec
        run = json.loads((folder / f"{rec['base']['recipe']}__fast__seed0.json").read_text())["run"]
        assert rec["base"]["forward_precision"] == (run["config"].get("autocast") or "float32")  # pairs by it
        assert rep.derived_precision(rec, folder) == rec["base"]["forward_precision"]
    # out of crop: both models scored on the same cut crops of their own val set, at the fast geometry
    a, b = recs[OOC_SAR]["values"], recs[OOC_MSE]["values"]
    assert a["recipe"] == HEADLINE_SAR and b["recipe"] == "mse" and recs[OOC_MSE]["base"]["recipe"] == "mse"
    assert a["crops"]["fingerprint"] == b["crops"]["fingerprint"]
    assert a["crops"]["n_crops"] == ooc.DEFAULT_PERSONS * len(ooc.CUTS)
    assert a["crops"]["input_size"] == list(get_preset("fast").input_size)
    assert a["errors"]["n_outside"] > 0 and a["errors"]["epe_outside"] > 0
    assert a["AP"] == recs[OOC_SAR]["base"]["metrics"]["generated val"]["AP"]
    # the live path gives the same numbers from the same cached run
    from poselab.experiments import ComparisonTable, compare
    run = compare(["mse"], seeds=[0], preset="fast", jobs=1).results[0]
    assert run.cached  # the model the step read
    live = ooc.table_errors(ComparisonTable([run]), ["mse"], ooc.run_crops(run))["mse"][0]
    assert live == pytest.approx(b["errors"])
    # multi-person: every threshold, the fast budget, one record per kind
    mp = recs[MP_SAR]["values"]
    assert mp["kind"] == "sar" and recs[MP_HM]["values"]["kind"] == "heatmap"
    assert mp["budget"] == M.BUDGETS["fast"] and len(mp["evaluation"]["recall"]) == len(M.THRESHOLDS)
    assert len(mp["loss_by_fifth"]) == 5 and all(np.isfinite(mp["loss_by_fifth"]))
    # judged: a fast run is a smoke test, never a finding, but it is judged
    got = R.recorded_verdicts(preset="fast", root=out)
    for claim in ("sar.out_of_crop.error", "sar.multi_person.recall"):
        assert got[claim]["recorded"] is True and got[claim]["verdict"] == "inconclusive", got[claim]
        assert got[claim]["seeds"] == [0]
    assert R.recorded_verdicts(preset="full", root=out)["sar.out_of_crop.error"]["reason"].startswith(
        "no recorded full-preset replication yet")

    # resumed: nothing is computed again
    def boom(*args, **kwargs):
        raise AssertionError("computed again")
    monkeypatch.setattr(ooc, "run_out_of_crop_errors", boom)
    monkeypatch.setattr(M, "train_and_evaluate", boom)
    assert rep.replicate("05", preset="fast", seeds=[0], root=out, worktree=False, recipes=[HEADLINE_SAR, "mse"]) == []

    # a corrupt record is refused by name, never trusted nor silently recomputed
    path = folder / f"{OOC_MSE}__fast__seed0.json"
    path.write_text('{"kind": "poselab-replication-derived", "values": ')
    with pytest.raises(ValueError, match=f"{OOC_MSE}__fast__seed0.json.*delete it"):
        rep.replicate("05", preset="fast", seeds=[0], root=out, worktree=False, recipes=[HEADLINE_SAR, "mse"])
    shown = R.recorded_out_of_crop(preset="fast", root=out)
    assert shown["recorded"] is False and f"{OOC_MSE}__fast__seed0.json" in shown["reason"]


# ----------------------------------------------------------------------------- constructed records: out of crop

def _ooc_values(recipe, seed, epe_outside, ap, n_outside=200, fingerprint="abc"):
    return {"recipe": recipe, "seed": seed, "set": "generated val", "AP": ap,
            "errors": {"epe_inside": 3.0, "epe_outside": epe_outside, "n_inside": 1000, "n_outside": n_outside,
                       "share_placed_outside": 0.5, "outside_beyond_px": 5.0},
            "crops": {"n_persons": 60, "shift": 0.3, "n_crops": 300, "input_size": [128, 96], "fingerprint": fingerprint}}


def _write(folder, name, seed, values, preset="full"):
    folder.mkdir(parents=True, exist_ok=True)
    rec = {"kind": rep.DERIVED_KIND, "name": name, "chapter": "05_sar", "seed": seed, "preset": preset,
           "base": {"recipe": "x", "data": "synth"}, "commit": "abc", "source_digest": "x", "threads": 1,
           "values": values}
    (folder / f"{name}__{preset}__seed{seed}.json").write_text(json.dumps(rec))


def _ooc_records(tmp_path, sar, mse, sar_ap=None, mse_ap=None, **kw):
    folder = tmp_path / "05_sar"
    for recipe, name, epes, aps in ((HEADLINE_SAR, OOC_SAR, sar, sar_ap), ("mse", OOC_MSE, mse, mse_ap)):
        for seed, epe in enumerate(epes):
            if epe is not None:
                _write(folder, name, seed, _ooc_values(recipe, seed, epe, 0.5 if aps is None else aps[seed], **kw))
    return R.recorded_out_of_crop(root=tmp_path)


def test_recorded_out_of_crop_reproduced_and_not_reproduced(tmp_path):
    got = _ooc_records(tmp_path / "a", [6.0, 6.3, 5.8, 6.1, 6.2], [9.1, 9.4, 9.0, 9.3, 9.2])
    assert got["recorded"] is True and got["verdict"] == "reproduced", got
    assert got["seeds"] == [0, 1, 2, 3, 4] and got["runs"] == 10
    other_way = _ooc_records(tmp_path / "b", [9.1, 9.4, 9.0, 9.3, 9.2], [6.0, 6.3, 5.8, 6.1, 6.2])
    assert other_way["verdict"] == "not reproduced", other_way


def test_recorded_out_of_crop_is_the_live_rule_paired_by_seed(tmp_path):
    """The same numbers as live errors and APs give the same verdict; the pairing is by seed."""
    sar, mse = [6.0, 7.5, 5.0], [6.9, 8.3, 6.1]  # paired: +0.8..1.1 px; unpaired the spread hides it
    recorded = _ooc_records(tmp_path, sar, mse)
    errors = {HEADLINE_SAR: [_ooc_values(HEADLINE_SAR, s, v, 0.5)["errors"] for s, v in enumerate(sar)],
              "mse": [_ooc_values("mse", s, v, 0.5)["errors"] for s, v in enumerate(mse)]}
    live = ooc.out_of_crop_judge(errors, {HEADLINE_SAR: [0.5] * 3, "mse": [0.5] * 3}, HEADLINE_SAR, "mse",
                                 get_preset("full"), "synth", [0, 1, 2], floor=0.05, min_effect=0.5)
    again = R.recorded_out_of_crop(min_effect=0.5, root=tmp_path)
    assert again["verdict"] == live.verdict == "reproduced" and again["reason"] == live.reason
    assert live.summary["paired"] is True
    # the default minimum effect (1 px) is above this advantage: not reproduced is ruled in or out honestly
    assert recorded["verdict"] in ("inconclusive", "not reproduced")


def test_recorded_out_of_crop_inconclusive_when_a_side_has_not_learnt(tmp_path):
    """The heatmap's AP below the floor: the comparison alone would say "reproduced" (or, the other
    way, "not reproduced"), the verdict says inconclusive and names the side."""
    got = _ooc_records(tmp_path / "a", [6.0, 6.3, 5.8], [9.1, 9.4, 9.0], mse_ap=[0.01, 0.02, 0.015])
    assert got["verdict"] == "inconclusive" and "mse has not learnt" in got["reason"], got
    worse = _ooc_records(tmp_path / "b", [9.1, 9.4, 9.0], [6.0, 6.3, 5.8], sar_ap=[0.01, 0.02, 0.015])
    assert worse["verdict"] == "inconclusive" and f"{HEADLINE_SAR} has not learnt" in worse["reason"], worse


def test_recorded_out_of_crop_cannot_decide_with_too_few_seeds_or_joints(tmp_path):
    two = _ooc_records(tmp_path / "a", [6.0, 6.3], [9.1, 9.4])
    assert two["verdict"] == "inconclusive" and "fewer than 3" in two["reason"], two
    # a seed recorded for one side only is left out of the pairs, and said so
    lone = _ooc_records(tmp_path / "b", [6.0, 6.3, 5.8, 6.1], [9.1, 9.4, 9.0, None])
    assert lone["verdict"] == "reproduced" and "seeds [3] recorded for one side only" in lone["reason"], lone
    few = _ooc_records(tmp_path / "c", [6.0, 6.3, 5.8], [9.1, 9.4, 9.0], n_outside=5)
    assert few["verdict"] == "inconclusive" and "too few" in few["reason"]


def test_recorded_out_of_crop_cannot_answer_yet_without_both_recipes(tmp_path):
    only_sar = _ooc_records(tmp_path / "a", [6.0, 6.3, 5.8], [])
    assert only_sar["recorded"] is False and "cannot answer yet" in only_sar["reason"]
    assert "no recorded out-of-crop errors of 'mse' yet" in only_sar["reason"]
    apart = _ooc_records(tmp_path / "b", [6.0, 6.3, None], [None, None, 9.0])
    assert apart["recorded"] is False and "no seed recorded for both" in apart["reason"]
    assert R.recorded_out_of_crop(root=tmp_path / "none")["reason"].startswith("no recorded full-preset replication")


def test_out_of_crop_records_from_other_crops_or_corrupt_are_refused(tmp_path):
    folder = tmp_path / "05_sar"
    for seed in range(3):
        _write(folder, OOC_SAR, seed, _ooc_values(HEADLINE_SAR, seed, 6.0, 0.5))
        _write(folder, OOC_MSE, seed, _ooc_values("mse", seed, 9.0, 0.5, fingerprint="abc" if seed else "zzz"))
    got = R.recorded_out_of_crop(root=tmp_path)
    assert got["recorded"] is False
    assert f"mse seed 0 differs from {HEADLINE_SAR} seed 0 in the crops they were scored on" in got["reason"], got
    recs = {HEADLINE_SAR: rep.recorded_derived("05", OOC_SAR, root=tmp_path),
            "mse": rep.recorded_derived("05", OOC_MSE, root=tmp_path)}
    broken = {**recs, "mse": [{**r, "values": {k: v for k, v in r["values"].items() if k != "errors"}}
                              for r in recs["mse"]]}
    with pytest.raises(ValueError, match="the mse record of seed 0 is not an out-of-crop record"):
        ooc.out_of_crop_from_records(broken, HEADLINE_SAR, "mse")
    swapped = {**recs, "mse": [{**r, "values": {**r["values"], "recipe": HEADLINE_SAR}} for r in recs["mse"]]}
    with pytest.raises(ValueError, match="holds sar_aux"):
        ooc.out_of_crop_from_records(swapped, HEADLINE_SAR, "mse")
    (folder / f"{OOC_MSE}__full__seed1.json").write_text("not json")
    shown = R.recorded_out_of_crop(root=tmp_path)
    assert shown["recorded"] is False and f"{OOC_MSE}__full__seed1.json" in shown["reason"]



def test_out_of_crop_records_refuse_a_repeated_seed(tmp_path):
    """A recipe holding a seed twice is refused: the later record used to replace the earlier one
    silently (here a worse seed 1 would have hidden the better one)."""
    _ooc_records(tmp_path, [6.0, 6.3, 5.8], [9.1, 9.4, 9.0])
    recs = {HEADLINE_SAR: rep.recorded_derived("05", OOC_SAR, root=tmp_path),
            "mse": rep.recorded_derived("05", OOC_MSE, root=tmp_path)}
    assert ooc.out_of_crop_from_records(recs, HEADLINE_SAR, "mse").verdict == "reproduced"
    again = recs[HEADLINE_SAR][1]
    twice = {**recs, HEADLINE_SAR: [*recs[HEADLINE_SAR], {**again, "values": {**again["values"], "AP": 0.0}}]}
    with pytest.raises(ValueError, match=f"{HEADLINE_SAR} has two records of seed 1: a repeated seed is not another"):
        ooc.out_of_crop_from_records(twice, HEADLINE_SAR, "mse")


# ----------------------------------------------------------------------------- constructed records: multi-person

def _mp_values(kind, seed, shift, budget=None):
    """An evaluation whose recall at every threshold is the base curve + ``shift``; precision fixed."""
    t = np.asarray(M.THRESHOLDS)
    recall = np.clip(0.8 - 0.7 * t + shift + 0.004 * ((seed * 7) % 3 - 1), 0, 1)
    precision = np.clip(0.3 + 0.6 * t, 0, 1)
    return {"kind": kind, "seed": seed, "budget": budget or dict(M.BUDGETS["full"]), "thresholds": list(t),
            "match_px": M.MATCH_PX, "input_size": [64, 80], "heatmap_size": [16, 20],
            "evaluation": {"thresholds": list(t), "recall": recall.tolist(), "precision": precision.tolist()}}


def _mp_records(tmp_path, sar, heatmap, **kw):
    folder = tmp_path / "05_sar"
    for kind, name, shifts in (("sar", MP_SAR, sar), ("heatmap", MP_HM, heatmap)):
        for seed, shift in enumerate(shifts):
            _write(folder, name, seed, _mp_values(kind, seed, shift, **kw))
    return R.recorded_multi_person(root=tmp_path)


def test_recorded_multi_person_both_ways_and_the_live_rule(tmp_path):
    got = _mp_records(tmp_path / "a", [0.1] * 5, [0.0] * 5)
    assert got["recorded"] is True and got["verdict"] == "reproduced", got
    worse = _mp_records(tmp_path / "b", [0.0] * 5, [0.1] * 5)
    assert worse["verdict"] == "not reproduced", worse
    # the live rule on the same evaluations says the same
    evals = {k: [{kk: np.asarray(vv) for kk, vv in _mp_values(k, s, d)["evaluation"].items()} for s in range(5)]
             for k, d in (("sar", 0.1), ("heatmap", 0.0))}
    live = M.detection_verdict(evals, 0.5, 0.02, preset="full")
    assert live.verdict == got["verdict"] and live.reason == got["reason"]


def test_recorded_multi_person_inconclusive_when_nothing_was_learnt_or_seeds_are_few(tmp_path):
    """Two detectors that find (almost) nothing: without the floor the heatmap's lead reads "not
    reproduced"; with it, inconclusive naming them."""
    dead = _mp_records(tmp_path / "a", [-0.75] * 4, [-0.7] * 4)
    assert dead["verdict"] == "inconclusive" and "has not learnt" in dead["reason"], dead
    recs = {"sar": rep.recorded_derived("05", MP_SAR, root=tmp_path / "a"),
            "heatmap": rep.recorded_derived("05", MP_HM, root=tmp_path / "a")}
    assert M.detection_from_records(recs, floor=None).verdict == "not reproduced"
    two = _mp_records(tmp_path / "b", [0.1] * 2, [0.0] * 2)
    assert two["verdict"] == "inconclusive" and "fewer than 3" in two["reason"], two
    none_yet = _mp_records(tmp_path / "c", [0.1] * 3, [])
    assert none_yet["recorded"] is False and "no recorded multi-person evaluation of 'heatmap' yet" in none_yet["reason"]


def test_multi_person_records_of_another_budget_or_corrupt_are_refused(tmp_path):
    folder = tmp_path / "05_sar"
    for seed in range(3):
        _write(folder, MP_SAR, seed, _mp_values("sar", seed, 0.1))
        _write(folder, MP_HM, seed, _mp_values("heatmap", seed, 0.0, budget=dict(M.BUDGETS["default"]) if seed == 2 else None))
    got = R.recorded_multi_person(root=tmp_path)
    assert got["recorded"] is False and "heatmap seed 2 differ" in got["reason"] and "budget" in got["reason"]
    recs = {"sar": rep.recorded_derived("05", MP_SAR, root=tmp_path), "heatmap": rep.recorded_derived("05", MP_HM, root=tmp_path)}
    broken = {**recs, "sar": [{**r, "values": {**r["values"], "evaluation": {"recall": [0.5]}}} for r in recs["sar"]]}
    with pytest.raises(ValueError, match="the sar record of seed 0 is not a multi-person record"):
        M.detection_from_records(broken)
    short = {"heatmap": recs["heatmap"][:2],
             "sar": [{**r, "values": {**r["values"], "evaluation": {**r["values"]["evaluation"], "recall": [0.5]}}}
                     for r in recs["sar"]]}
    with pytest.raises(ValueError, match="different lengths"):
        M.detection_from_records(short)



def test_multi_person_records_refuse_a_repeated_seed(tmp_path):
    """A kind holding a seed twice is refused, not the later record kept in the earlier's place."""
    assert _mp_records(tmp_path, [0.1] * 3, [0.0] * 3)["verdict"] == "reproduced"
    recs = {"sar": rep.recorded_derived("05", MP_SAR, root=tmp_path),
            "heatmap": rep.recorded_derived("05", MP_HM, root=tmp_path)}
    twice = {**recs, "heatmap": [*recs["heatmap"], recs["heatmap"][0]]}
    with pytest.raises(ValueError, match="heatmap has two records of seed 0: a repeated seed is not another"):
        M.detection_from_records(twice)


def test_group_verdict_needs_names():
    with pytest.raises(ValueError, match="names"):
        rep.recorded_derived_group_verdict("05", [], lambda groups: None)
