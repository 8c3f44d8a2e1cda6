"""Derived records of a replication (``poselab replicate 03``: RCNet's fits on each recorded
``mse`` model) and chapter 03's recorded verdicts: the step records provenance, resumes without
fitting anything, refuses a corrupt record by name, and the recorded verdict is the live rule
applied to the records (a record set that says "not reproduced" shows it)."""
import json
from types import SimpleNamespace

import pytest
import torch

from poselab.chapters.rcnet import recipes as rc
from poselab.chapters.rcnet import replication as R
from poselab.experiments import replicate as rep


def test_chapter_03_registers_its_derived_step_through_the_registry():
    steps = rep.chapter_derived("03")
    assert [(s.name, s.recipe) for s in steps] == [("rcnet_fit", "mse")]
    assert rep.chapter_derived("07") == ()   # the capstone reads the other chapters' records, derives none
    with pytest.raises(ValueError, match="letters"):
        rep.DerivedStep("bad name", "mse", lambda run, preset: {})
    with pytest.raises(TypeError, match="callable"):
        rep.DerivedStep("ok", "mse", None)
    with pytest.raises(TypeError, match="DerivedStep"):
        rep.register_chapter_derived("97_dummy", [])
    with pytest.raises(ValueError, match="share a name"):
        step = rep.DerivedStep("x", "mse", lambda run, preset: {})
        rep.register_chapter_derived("97_dummy", [step, step])
    # the core never imports a chapter
    import ast
    import inspect
    tree = ast.parse(inspect.getsource(rep))
    mods = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)] + \
           [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not any("chapters" in m for m in mods)


def test_rcnet_fits_recorded_resumed_and_corrupt_records_refused(cache, monkeypatch):
    out = cache / "replications"
    written = rep.replicate("03", preset="fast", seeds=[0], root=out, worktree=False)
    assert [p.name for p in written] == ["mse__fast__seed0.json", "rcnet_fit__fast__seed0.json"]
    path = out / "03_rcnet" / "rcnet_fit__fast__seed0.json"
    rec = json.loads(path.read_text())
    for key in ("kind", "name", "seed", "preset", "base", "commit", "source_digest", "threads", "device",
                "machine", "wall_seconds", "cpu_seconds", "command", "values"):
        assert key in rec, key
    assert rec["kind"] == rep.DERIVED_KIND and rec["seed"] == 0 and rec["preset"] == "fast"
    assert rec["threads"] == torch.get_num_threads() and rec["base"]["recipe"] == "mse" and rec["cpu_seconds"] > 0
    v = rec["values"]
    assert set(v["variants"]) == {"laplacian", "controls", "rivals", "margins", "scorenet"}
    for m in ("AP", "ranking_accuracy", "ranking_accuracy_all", "pearson", "ause_oks"):
        assert m in v["variants"]["laplacian"]["before"] and m in v["variants"]["laplacian"]["after"]
    assert list(v["variants"]["rivals"]) == ["ranknet"] and v["tuned"]["ranknet"]["param"] == "sigma"
    # the base run record is what the base table reads; the derived one never enters it
    assert [r["recipe"] for r in rep.recorded_runs("03", root=out)] == ["mse"]

    # resumed: a second call trains and fits nothing
    def boom(*a, **k):
        raise AssertionError("fitted again")
    monkeypatch.setattr(rc, "fit_rcnet", boom)
    monkeypatch.setattr(rc, "tune_rival", boom)
    assert rep.replicate("03", preset="fast", seeds=[0], root=out, worktree=False) == []
    assert rep.derive("03", preset="fast", seeds=[0], root=out) == []

    # recorded verdicts of the fast records: judged (inconclusive: a smoke test), with provenance
    got = R.recorded_verdicts("fast", root=out)
    assert set(got) == set(R.EMPIRICAL_CLAIMS)
    assert got["rcnet.posthoc.map_gain"]["recorded"] is True
    assert got["rcnet.posthoc.map_gain"]["verdict"] == "inconclusive" and got["rcnet.posthoc.map_gain"]["seeds"] == [0]
    assert R.recorded_verdicts("full", root=out)["rcnet.posthoc.map_gain"]["reason"].startswith(
        "no recorded full-preset replication yet")

    # a corrupt record is refused by name, never trusted nor silently recomputed
    path.write_text('{"kind": "poselab-replication-derived", "values": ')
    with pytest.raises(ValueError, match="rcnet_fit__fast__seed0.json.*delete it"):
        rep.replicate("03", preset="fast", seeds=[0], root=out, worktree=False)
    shown = R.recorded_verdicts("fast", root=out)["rcnet.posthoc.map_gain"]
    assert shown["recorded"] is False and "rcnet_fit__fast__seed0.json" in shown["reason"]
    path.write_text(json.dumps({**rec, "seed": 3}))  # a record of another seed under this name
    with pytest.raises(ValueError, match="not a derived record"):
        rep.derive("03", preset="fast", seeds=[0], root=out)


# ----------------------------------------------------------------------------- constructed records

def _metrics(ap, ra, pearson=0.4, ause=0.02):
    return {"AP": ap, "AP50": ap, "AP75": ap, "AR": 0.6, "ranking_accuracy": ra,
            "ranking_accuracy_all": ra - 0.05, "pearson": pearson, "ause_oks": ause}


def _variants(seed, gain, control=0.01):
    """One seed's fits: original AP 0.50 (+ seed noise), RCNet changes it by ``gain``; the
    L1 control loses to it by ``control`` AP, the rivals and ablations by 0.01 (margin 0 by 0.05)."""
    noise = 0.002 * ((seed * 7) % 5 - 2)
    base = 0.50 + noise
    lap = {"before": _metrics(base, 0.60), "after": _metrics(base + gain + noise / 4, 0.60 + 20 * gain + 5 * noise,
                                                             0.4 + 5 * gain, 0.02 - gain / 2)}
    other = lambda d: {"before": _metrics(base, 0.60),  # noqa: E731
                       "after": _metrics(base + gain - d + noise / 3, 0.62)}
    return {"laplacian": lap, "controls": {"l1": other(control)}, "rivals": {"ranknet": other(0.01)},
            "margins": {"0": other(0.05), "0.5": lap}, "scorenet": other(0.01)}


def _write_records(folder, gains, preset="full", control=0.01, threads=None):
    folder.mkdir(parents=True, exist_ok=True)
    threads = [1] * len(gains) if threads is None else threads
    for seed, gain in enumerate(gains):
        rec = {"kind": rep.DERIVED_KIND, "name": R.DERIVED_NAME, "chapter": "03_rcnet", "seed": seed,
               "threads": threads[seed],
               "preset": preset, "base": {"recipe": "mse", "data": "synth"}, "commit": "abc", "source_digest": "x",
               "values": {"variants": _variants(seed, gain, control), "set": R.EVAL_SET,
                          "geometry": {"input_size": [128, 96], "heatmap_size": [64, 48]}}}
        (folder / f"{R.DERIVED_NAME}__{preset}__seed{seed}.json").write_text(json.dumps(rec))


def _live(gains, preset="full"):
    """The same values as live fits and runs, for claim_verdict."""
    def fit(sets):
        return SimpleNamespace(sets={R.EVAL_SET: sets})
    per = [_variants(s, g) for s, g in enumerate(gains)]
    variants = {"laplacian": [fit(p["laplacian"]) for p in per], "scorenet": [fit(p["scorenet"]) for p in per],
                **{part: {n: [fit(p[part][n]) for p in per] for n in per[0][part]}
                   for part in ("controls", "rivals", "margins")}}
    runs = [SimpleNamespace(seed=s, preset=preset, data="synth",
                            geometry=lambda: SimpleNamespace(input_size=(128, 96), heatmap_size=(64, 48)))
            for s in range(len(gains))]
    return variants, runs


@pytest.mark.parametrize("gain,expected", [(0.01, "reproduced"), (-0.01, "not reproduced")])
def test_recorded_verdict_is_the_live_rule_and_can_say_not_reproduced(tmp_path, gain, expected):
    gains = [gain] * 5
    _write_records(tmp_path / "03_rcnet", gains)
    recorded = R.recorded_verdicts("full", root=tmp_path)
    variants, runs = _live(gains)
    for claim in R.EMPIRICAL_CLAIMS:
        live = R.claim_verdict(claim, variants, runs)
        assert recorded[claim]["recorded"] is True, (claim, recorded[claim])
        assert (recorded[claim]["verdict"], recorded[claim]["reason"]) == (live.verdict, live.reason), claim
        assert recorded[claim]["seeds"] == [0, 1, 2, 3, 4] and recorded[claim]["current"] is False
    # the headline claim goes the records' way: a loss of AP over five seeds is "not reproduced"
    assert recorded["rcnet.posthoc.map_gain"]["verdict"] == expected
    assert recorded["rcnet.posthoc.ranking_accuracy_gain"]["verdict"] == expected


def test_recorded_verdicts_without_records_and_with_a_missing_part(tmp_path):
    got = R.recorded_verdicts("full", root=tmp_path)
    assert all(v["recorded"] is False and "no recorded full-preset replication yet" in v["reason"]
               and "poselab replicate 03_rcnet" in v["reason"] for v in got.values())
    _write_records(tmp_path / "03_rcnet", [0.01] * 3)
    path = tmp_path / "03_rcnet" / "rcnet_fit__full__seed1.json"
    rec = json.loads(path.read_text())
    del rec["values"]["variants"]["scorenet"]
    path.write_text(json.dumps(rec))
    got = R.recorded_verdicts("full", root=tmp_path)
    assert got["rcnet.ablation.attention_vs_mlp"]["recorded"] is False
    assert "cannot answer yet" in got["rcnet.ablation.attention_vs_mlp"]["reason"]


def test_recorded_verdicts_refuse_to_pool_fits_of_different_thread_counts(tmp_path):
    # five seeds that would say "reproduced", but seed 3 was fitted with 2 threads
    _write_records(tmp_path / "03_rcnet", [0.01] * 5, threads=[1, 1, 1, 2, 1])
    got = R.recorded_verdicts("full", root=tmp_path)
    for claim in R.EMPIRICAL_CLAIMS:
        assert got[claim]["verdict"] == "inconclusive", claim
        assert "different torch thread counts" in got[claim]["reason"] and "seed 3: 2" in got[claim]["reason"]
    # a record of several without its count cannot be checked: refused too
    _write_records(tmp_path / "03_rcnet", [0.01] * 5, threads=[1, None, 1, 1, 1])
    got = R.recorded_verdicts("full", root=tmp_path)
    assert got["rcnet.posthoc.map_gain"]["verdict"] == "inconclusive"
    assert "seed 1: not recorded" in got["rcnet.posthoc.map_gain"]["reason"]
    # one count throughout (two threads everywhere is fine too): judged as usual
    _write_records(tmp_path / "03_rcnet", [0.01] * 5, threads=[2] * 5)
    assert R.recorded_verdicts("full", root=tmp_path)["rcnet.posthoc.map_gain"]["verdict"] == "reproduced"
    assert R.thread_mismatch([{"seed": 0}]) is None  # a single seed pools nothing


def test_claim_verdict_names_an_unknown_claim():
    with pytest.raises(KeyError, match="not an empirical claim"):
        R.claim_verdict("rcnet.toy.fp_first_ap", {}, [])


def test_recorded_control_that_matches_the_rank_loss_is_not_a_win(tmp_path):
    # the L1 regression gains as much as the rank loss on every seed: the control claim fails
    _write_records(tmp_path / "03_rcnet", [0.01] * 5, control=-0.01)
    got = R.recorded_verdicts("full", root=tmp_path)
    assert got["rcnet.posthoc.map_gain"]["verdict"] == "reproduced"
    assert got["rcnet.control.rank_vs_regression"]["verdict"] == "not reproduced"


def test_side_by_side_workers_record_base_runs_then_derived_records(cache):
    """--jobs 2 in place: two base workers, then two derived workers (which read the base runs
    from the run cache); every record is one-thread, and the plan lists the derived records."""
    out = cache / "replications"
    written = rep.replicate("03", preset="fast", seeds=[0, 1], jobs=2, root=out, worktree=False)
    assert sorted(p.name for p in written) == ["mse__fast__seed0.json", "mse__fast__seed1.json",
                                               "rcnet_fit__fast__seed0.json", "rcnet_fit__fast__seed1.json"]
    recs = [json.loads(p.read_text()) for p in written]
    assert all(r["threads"] == 1 for r in recs)
    rows = rep.plan("03", preset="fast", seeds=[0, 1, 2], root=out)
    derived = [(r["recipe"], r["seed"], r["recorded"]) for r in rows if r.get("derived")]
    assert derived == [("rcnet_fit", 0, True), ("rcnet_fit", 1, True), ("rcnet_fit", 2, False)]
    assert all(r["expected_seconds"] > 0 for r in rows if r.get("derived"))


@pytest.mark.parametrize("module", ["poselab.chapters.rcnet.replication", "poselab.chapters.sar.recipes"])
def test_chapter_modules_import_first_in_a_fresh_process(module):
    """A chapter module that imports the engine, imported before anything else: the engine's load
    hook must not re-enter it half-loaded (rcnet.replication failed this way when its derived
    steps were resolved at registration instead of on first use)."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-800:]
