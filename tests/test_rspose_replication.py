"""Chapter 02's derived replication records (``poselab replicate 02``): App. C's min-max scaling
measured on each seed's trained ``spatial_rs_is`` model, and ``rspose.scaling.minmax_keeps_ap``
judged on those records with the live cell's rule (paired by seed). Constructed records come
out reproduced / not reproduced / inconclusive; records that cannot be paired say so."""
import json

import pytest
import torch

from poselab.chapters.rspose import analysis as A
from poselab.chapters.rspose import replication as R
from poselab.experiments import replicate as rep


def test_chapter_02_registers_the_minmax_step():
    steps = rep.chapter_derived("02")
    assert [(s.name, s.recipe) for s in steps] == [("minmax_spatial_rs_is", "spatial_rs_is")]
    assert R.MINMAX_DERIVED == "minmax_spatial_rs_is" and A.MINMAX_RECIPE == "spatial_rs_is"


def test_minmax_record_on_a_fast_run_is_the_live_value_and_is_judged(cache, monkeypatch):
    from poselab.experiments import GENERATED_VAL, resolve_run_data
    from poselab.experiments.presets import get_preset
    from poselab.experiments.runner import cached_result
    out = cache / "replications"
    written = rep.replicate("02", preset="fast", seeds=[0], root=out, worktree=False, recipes=["spatial_rs_is"])
    assert [p.name for p in written] == ["spatial_rs_is__fast__seed0.json", "minmax_spatial_rs_is__fast__seed0.json"]
    path = out / "02_rspose" / "minmax_spatial_rs_is__fast__seed0.json"
    rec = json.loads(path.read_text())
    assert rec["kind"] == rep.DERIVED_KIND and rec["base"]["recipe"] == "spatial_rs_is" and rec["threads"] == torch.get_num_threads()
    v = rec["values"]
    assert v["recipe"] == "spatial_rs_is" and v["seed"] == 0 and v["score_persons"] == 64
    assert v["set"] == GENERATED_VAL and v["data"] == "synth" and 0 <= v["raw"] <= 1 and 0 <= v["min-max"] <= 1
    # the raw AP re-scores the run's own predictions: it is the AP the run was evaluated with
    assert abs(v["raw"] - rec["base"]["metrics"][GENERATED_VAL]["AP"]) < 1e-9
    # the live cell's function on the same cached run gives the record's values
    p = get_preset("fast")
    run = cached_result("spatial_rs_is", data="synth", preset=p, seed=0)
    assert run is not None
    train_json, sets = resolve_run_data("synth", p)
    live = A.minmax_scaling_aps(run, train_json, sets[GENERATED_VAL], score_persons=64)
    assert live == {"raw": v["raw"], "min-max": v["min-max"]}
    # the recorded verdict is the live rule on the same numbers (fast, one seed: inconclusive)
    got = R.recorded_minmax_verdict(preset="fast", root=out)
    want = A.minmax_verdict([live["raw"]], [live["min-max"]], seeds=[0], preset="fast")
    assert got["recorded"] is True and got["seeds"] == [0]
    assert (got["verdict"], got["reason"]) == (want.verdict, want.reason) and got["verdict"] == "inconclusive"
    assert R.recorded_minmax_verdict(root=out)["reason"].startswith("no recorded full-preset replication yet")

    # resumed: nothing trained or scored again
    def boom(*a, **k):
        raise AssertionError("scored again")
    monkeypatch.setattr(R, "minmax_scaling_aps", boom)
    assert rep.replicate("02", preset="fast", seeds=[0], root=out, worktree=False, recipes=["spatial_rs_is"]) == []

    # a corrupt record is refused by name, never trusted nor silently recomputed
    path.write_text('{"kind": "poselab-replication-derived", "values": ')
    with pytest.raises(ValueError, match="minmax_spatial_rs_is__fast__seed0.json.*delete it"):
        rep.replicate("02", preset="fast", seeds=[0], root=out, worktree=False, recipes=["spatial_rs_is"])
    shown = R.recorded_minmax_verdict(preset="fast", root=out)
    assert shown["recorded"] is False and "minmax_spatial_rs_is__fast__seed0.json" in shown["reason"]


# ----------------------------------------------------------------------------- constructed records

def _records(raw, scaled, *, preset="full", seeds=None, changes=None):
    seeds = list(range(len(raw))) if seeds is None else seeds
    out = []
    for s, a, b in zip(seeds, raw, scaled):
        values = {"recipe": "spatial_rs_is", "seed": s, "raw": a, "min-max": b, "set": "generated val",
                  "data": "synth", "score_persons": 256, "input_size": [128, 96], "heatmap_size": [64, 48]}
        values.update((changes or {}).get(s, {}))
        out.append({"kind": rep.DERIVED_KIND, "name": R.MINMAX_DERIVED, "chapter": "02_rspose", "seed": s,
                    "preset": preset, "base": {"recipe": "spatial_rs_is", "data": "synth"}, "commit": "abc",
                    "source_digest": "x", "threads": 1, "values": values})
    return out


def _write(folder, records):
    folder.mkdir(parents=True, exist_ok=True)
    for r in records:
        (folder / f"{R.MINMAX_DERIVED}__{r['preset']}__seed{r['seed']}.json").write_text(json.dumps(r))


RAW = [0.706, 0.690, 0.721, 0.698, 0.712]          # the seeds differ by ~0.03


@pytest.mark.parametrize("scaled,expected", [
    # one model scored two ways moves by < 0.001: unchanged within 0.005 (paired; unpaired it never could be)
    ([0.7055, 0.6904, 0.7206, 0.6983, 0.7116], "reproduced"),
    # min-max scaling costs every model ~0.012 AP: changed by more than the margin
    ([0.694, 0.679, 0.708, 0.686, 0.701], "not reproduced"),
    # changes of -0.010 .. +0.009: the interval straddles the margin
    ([0.696, 0.699, 0.711, 0.705, 0.709], "inconclusive"),
])
def test_recorded_verdict_is_the_live_rule_and_can_go_every_way(tmp_path, scaled, expected):
    _write(tmp_path / "02_rspose", _records(RAW, scaled))
    got = R.recorded_minmax_verdict(root=tmp_path)
    live = A.minmax_verdict(RAW, scaled, seeds=range(5), preset="full", input_size=(128, 96),
                            heatmap_size=(64, 48), data="synth (generated val), min-max from 256 training crops")
    assert got["recorded"] is True and got["seeds"] == [0, 1, 2, 3, 4] and got["current"] is False
    assert (got["verdict"], got["reason"]) == (live.verdict, live.reason) == (expected, live.reason)
    v = R.minmax_from_records(_records(RAW, scaled))
    assert v.evidence["per_seed"]["spatial_rs_is AP min-max"] == scaled and v.evidence["preset"] == "full"
    # the paired test is what decides: unpaired, the seeds' spread hides a 0.0005 change
    if expected == "reproduced":
        assert A.equivalence_verdict(scaled, RAW, margin=A.MINMAX_MARGIN).verdict == "inconclusive"


def test_recorded_verdict_is_inconclusive_with_too_few_seeds_or_the_fast_preset(tmp_path):
    near = [a - d for a, d in zip(RAW, (0.0003, 0.0001, 0.0005, 0.0002, 0.0004))]
    assert R.minmax_from_records(_records(RAW[:2], near[:2])).verdict == "inconclusive"
    assert R.minmax_from_records(_records(RAW, near, preset="fast")).verdict == "inconclusive"
    assert R.minmax_from_records(_records(RAW, near)).verdict == "reproduced"
    # a wider margin can turn a "not reproduced" into "reproduced": the margin is the judge's, not the records'
    shifted = [a - d for a, d in zip(RAW, (0.012, 0.011, 0.013, 0.0125, 0.0115))]
    assert R.minmax_from_records(_records(RAW, shifted)).verdict == "not reproduced"
    assert R.minmax_from_records(_records(RAW, shifted), margin=0.05).verdict == "reproduced"


@pytest.mark.parametrize("change,match", [
    ({3: {"data": "coco"}}, r"seed\(s\) \[3\] were scored differently"),
    ({1: {"score_persons": 64}}, r"seed\(s\) \[1\] were scored differently"),
    ({2: {"seed": 4}}, r"seed\(s\) \[2\] hold another seed's values"),
    ({0: {"raw": float("nan")}}, r"raw\[0\] must be an AP"),
    ({4: {"min-max": 1.7}}, r"scaled\[4\] must be an AP"),
])
def test_records_that_cannot_be_paired_are_refused_by_name(tmp_path, change, match):
    recs = _records(RAW, RAW, changes=change)
    with pytest.raises(ValueError, match=match):
        R.minmax_from_records(recs)
    _write(tmp_path / "02_rspose", recs)
    shown = R.recorded_minmax_verdict(root=tmp_path)
    assert shown["recorded"] is False and shown["verdict"] == "—"
    assert shown["reason"].startswith("the recorded runs cannot answer yet")


def test_records_missing_values_or_of_another_recipe_are_refused():
    recs = _records(RAW, RAW)
    del recs[1]["values"]["min-max"]
    with pytest.raises(ValueError, match=r"seed\(s\) \[1\] are not minmax_spatial_rs_is records"):
        R.minmax_from_records(recs)
    with pytest.raises(ValueError, match="holds? recipe 'mse'"):
        R.minmax_from_records(_records(RAW, RAW, changes={s: {"recipe": "mse"} for s in range(5)}))
    with pytest.raises(ValueError, match="no minmax_spatial_rs_is records"):
        R.minmax_from_records([])
    with pytest.raises(ValueError, match="margin"):
        R.recorded_minmax_verdict(margin=0)


def test_minmax_verdict_refuses_bad_input():
    with pytest.raises(ValueError, match="one length"):
        A.minmax_verdict([0.5, 0.5], [0.5], seeds=[0, 1])
    with pytest.raises(ValueError, match="distinct"):
        A.minmax_verdict([0.5, 0.5], [0.5, 0.5], seeds=[0, 0])
    with pytest.raises(ValueError, match="margin"):
        A.minmax_verdict([0.5], [0.5], seeds=[0], margin=-0.01)
    with pytest.raises(ValueError, match=r"raw\[1\]"):
        A.minmax_verdict([0.5, None], [0.5, 0.5], seeds=[0, 1])
    with pytest.raises(TypeError, match="list of AP values"):
        A.minmax_verdict("0.5", [0.5], seeds=[0])
    with pytest.raises(ValueError, match="score_persons"):
        A.minmax_scaling_aps(object(), "train.json", "val.json", score_persons=0)


def test_the_gradient_claim_says_why_it_has_no_recorded_verdict():
    from poselab import claims
    from poselab.experiments.replicate import recorded_verdict
    entry = R.gradient_share_recorded()
    # the shape a recorded verdict has, so the ledger and the scorecard show the reason
    assert set(recorded_verdict("02_rspose", lambda t: None, root="/nonexistent")) <= set(entry) | {"seeds"}
    assert entry["recorded"] is False and "along training" in entry["reason"]
    assert claims.recorded_text(entry).startswith("— (not judged on the recorded replication")
