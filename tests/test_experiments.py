"""poselab.experiments: registry rules, the cache (hits, misses, never stale), results, CLI."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from poselab import experiments as ex
from poselab.data import find_coco_sample

TINY = ex.Preset("tiny-test", input_size=(64, 48), epochs=5, max_steps=3, batch_size=8,
                 n_train=12, n_val=6)


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("POSELAB_CACHE_DIR", str(tmp_path / "cache"))
    # the package source is fixed for a test session (other edits would change the key)
    monkeypatch.setattr("poselab.experiments.runner.source_digest", lambda: "test-digest")
    monkeypatch.setattr("poselab.experiments.records.source_digest", lambda: "test-digest")
    torch.set_num_threads(1)


def test_register_recipe_refuses_a_taken_name():
    with pytest.raises(ValueError, match="already registered"):
        ex.register_recipe(ex.RECIPES["mse"])
    with pytest.raises(ValueError, match="already registered"):
        ex.register_loss("mse", lambda g: None)


def test_recipe_validation_names_the_field():
    with pytest.raises(ValueError, match="head"):
        ex.Recipe(name="x", head="nope", codec="gaussian", loss="mse")
    with pytest.raises(ValueError, match="lr"):
        ex.Recipe(name="x", head="heatmap", codec="gaussian", loss="mse", lr=float("nan"))
    with pytest.raises(ValueError, match="name"):
        ex.Recipe(name="a b", head="heatmap", codec="gaussian", loss="mse")
    with pytest.raises(TypeError, match="no field"):
        ex.RECIPES["mse"].replace(sigma=3)


def test_recipe_is_frozen_and_its_params_too():
    r = ex.RECIPES["mse"]
    with pytest.raises(Exception):
        r.lr = 1.0
    with pytest.raises(TypeError):
        r.codec_params["sigma"] = 5.0


def test_unknown_names_say_what_is_registered():
    with pytest.raises(KeyError, match="registered recipes"):
        ex.get_recipe("no-such-recipe")
    with pytest.raises(KeyError, match="preset"):
        ex.get_preset("warp-speed")
    bad = ex.RECIPES["mse"].replace(name="bad-loss", loss="not-a-loss")
    with pytest.raises(KeyError, match="not-a-loss"):
        ex.run_recipe(bad, preset=TINY)


def test_preset_checks_sizes():
    with pytest.raises(ValueError, match="multiples"):
        ex.Preset("x", input_size=(60, 48))
    assert ex.PRESETS["default"].replace(input_size=(128, 96)).heatmap_size[0] == 128 // ex.PRESETS["default"].heatmap_stride


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    import os
    old = os.environ.get("POSELAB_CACHE_DIR")
    os.environ["POSELAB_CACHE_DIR"] = str(tmp_path_factory.mktemp("shared-cache"))
    torch.set_num_threads(1)
    mp = pytest.MonkeyPatch()
    mp.setattr("poselab.experiments.runner.source_digest", lambda: "test-digest")
    try:
        yield ex.run_recipe("mse", preset=TINY, seed=0, device="cpu"), os.environ["POSELAB_CACHE_DIR"]
    finally:
        mp.undo()
        if old is None:
            os.environ.pop("POSELAB_CACHE_DIR", None)
        else:
            os.environ["POSELAB_CACHE_DIR"] = old


def test_run_result_holds_every_metric(first_run):
    res, _ = first_run
    assert not res.cached
    assert ex.GENERATED_VAL in res.metrics
    for key in ("AP", "AP50", "AP75", "AR", "EPE", "PCK@0.2", "spearman", "ranking_accuracy"):
        assert key in res.metrics[ex.GENERATED_VAL]
    assert 0.0 <= res.metrics[ex.GENERATED_VAL]["AP"] <= 1.0
    assert res.training_history().steps == 3
    assert res.train_seconds > 0 and res.seconds_per_step > 0
    assert math.isclose(res.train_seconds, sum(res.history["step_times"]) + sum(res.history["data_times"]))


def test_cache_hit_returns_the_same_result_without_training(first_run, monkeypatch):
    res, root = first_run
    monkeypatch.setenv("POSELAB_CACHE_DIR", root)
    calls = []
    monkeypatch.setattr("poselab.train.fit", lambda *a, **k: calls.append(1))
    again = ex.run_recipe("mse", preset=TINY, seed=0, device="cpu")
    assert again.cached and not calls
    np.testing.assert_equal(again.metrics, res.metrics)
    assert again.key == res.key


def test_changed_hyper_parameter_misses_the_cache(first_run, monkeypatch):
    res, root = first_run
    monkeypatch.setenv("POSELAB_CACHE_DIR", root)
    other = ex.RECIPES["mse"].replace(codec_params={"sigma": 3.0, "decoder": "quarter"})
    run = ex.run_recipe(other, preset=TINY, seed=0, device="cpu")
    assert not run.cached and run.key != res.key
    # and a changed seed or preset field too
    assert ex.run_recipe("mse", preset=TINY.replace(batch_size=4), seed=0, device="cpu").key != res.key


def test_changed_source_misses_the_cache(first_run, monkeypatch):
    res, root = first_run
    monkeypatch.setenv("POSELAB_CACHE_DIR", root)
    monkeypatch.setattr("poselab.experiments.runner.source_digest", lambda: "edited-code")
    run = ex.run_recipe("mse", preset=TINY, seed=0, device="cpu")
    assert not run.cached and run.key != res.key


def test_no_cache_retrains_and_is_deterministic(first_run, monkeypatch):
    res, root = first_run
    monkeypatch.setenv("POSELAB_CACHE_DIR", root)
    run = ex.run_recipe("mse", preset=TINY, seed=0, device="cpu", cache=False)
    assert not run.cached
    assert run.history["losses"] == res.history["losses"]
    np.testing.assert_equal(run.metrics, res.metrics)


def test_saved_weights_reproduce_the_predictions(first_run):
    res, _ = first_run
    model = res.model()
    pred = res.predictions(ex.GENERATED_VAL)
    from poselab.train import Evaluator
    ev = Evaluator(res.config["data"] and ex.resolve_run_data("synth", TINY)[1][ex.GENERATED_VAL],
                   head="heatmap", codec=res.codec(), input_size=TINY.input_size, device="cpu")
    again = ev(model)
    np.testing.assert_allclose(again["predictions"]["coords"], pred["coords"], atol=1e-5)
    with pytest.raises(KeyError, match="sets"):
        res.predictions("no such set")


def test_comparison_table(first_run, monkeypatch):
    res, root = first_run
    monkeypatch.setenv("POSELAB_CACHE_DIR", root)
    table = ex.compare(["mse"], seeds=[0], preset=TINY, device="cpu", progress=False)
    assert table.values("mse", "AP") == [res.metrics[ex.GENERATED_VAL]["AP"]]
    md = table.to_markdown()
    assert "| recipe |" in md and "mse" in md
    assert "<table" in table._repr_html_() and "overflow-x:auto" in table._repr_html_()
    with pytest.raises(KeyError):
        table.values("emd", "AP")
    fig = table.figure("AP")
    assert fig.layout.width <= 900


@pytest.mark.skipif(find_coco_sample() is None, reason="the real COCO sample is not beside the checkout")
def test_a_real_coco_folder_goes_through_the_same_path():
    folder = find_coco_sample()
    res = ex.run_recipe("mse", data=str(folder), preset=TINY.replace(max_steps=2), seed=0, device="cpu")
    assert "val" in res.metrics and ex.REAL_SAMPLE not in res.metrics  # the sample is the val set
    assert res.metrics["val"]["n_persons"] > 0
    assert res.config["data"]["generator_version"] is None


def test_cli_train_writes_result_json_and_lists_runs(tmp_path, capsys):
    from poselab.cli import main
    out = tmp_path / "out"
    assert main(["train", "mse", "--preset", "fast", "--seed", "0", "--out", str(out)]) == 0
    data = json.loads((out / "result.json").read_text())
    assert data["recipe"] == "mse" and data["train_seconds"] > 0
    assert ex.GENERATED_VAL in data["metrics"] and "AP" in data["metrics"][ex.GENERATED_VAL]
    capsys.readouterr()
    assert main(["results"]) == 0
    listed = capsys.readouterr().out
    assert "mse" in listed and "forward" in listed.splitlines()[0]
    assert (data["config"].get("autocast") or "float32") in listed  # the precision its seeds pair in
    assert main(["recipes"]) == 0
    assert "emd" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path, capsys):
    from poselab.cli import main
    assert main(["train", "no-such-recipe"]) == 2
    assert "registered recipes" in capsys.readouterr().err
    afile = tmp_path / "f.txt"
    afile.write_text("x")
    assert main(["train", "mse", "--preset", "fast", "--out", str(afile)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(["results", "verify", str(afile)]) == 2
    assert "not a readable JSON record" in capsys.readouterr().err


def test_record_and_verify(tmp_path, capsys):
    from poselab.cli import main
    from poselab.experiments.records import load_record, record_status
    rec = tmp_path / "rec.json"
    assert main(["train", "mse", "--preset", "fast", "--out", str(tmp_path / "o"), "--record", str(rec)]) == 0
    data = load_record(rec)
    assert data["runs"][0]["seed"] == 0 and data["commit"] and data["wall_seconds"] > 0
    assert record_status(data) == "current"
    capsys.readouterr()
    assert main(["results", "verify", str(rec)]) == 0
    assert "DIFFERS" not in capsys.readouterr().out
    # a tampered record fails verification
    data["runs"][0]["metrics"][ex.GENERATED_VAL]["EPE_crop"] += 0.5
    rec.write_text(json.dumps(data))
    assert main(["results", "verify", str(rec)]) == 1


def test_source_digest_covers_code_but_not_presentation(tmp_path, monkeypatch):
    from poselab.experiments import cache
    pkg = tmp_path / "pkg"
    (pkg / "losses").mkdir(parents=True)
    (pkg / "viz").mkdir()
    (pkg / "losses" / "l.py").write_text("A = 1\n")
    (pkg / "viz" / "v.py").write_text("B = 1\n")
    monkeypatch.setattr(cache, "_PACKAGE", pkg)
    d0 = cache.source_digest()
    (pkg / "viz" / "v.py").write_text("B = 2\n")
    assert cache.source_digest() == d0
    (pkg / "losses" / "l.py").write_text("A = 2\n")
    assert cache.source_digest() != d0
    # the replication's orchestration and records do not change what a run computes
    (pkg / "experiments").mkdir()
    (pkg / "experiments" / "replicate.py").write_text("R = 1\n")
    d1 = cache.source_digest()
    (pkg / "experiments" / "replicate.py").write_text("R = 2\n")
    assert cache.source_digest() == d1
    (pkg / "experiments" / "runner.py").write_text("X = 1\n")
    assert cache.source_digest() != d1


def test_data_stream_hash_is_shared_across_recipes_and_changes_with_the_seed(first_run, monkeypatch):
    res, root = first_run
    monkeypatch.setenv("POSELAB_CACHE_DIR", root)
    other = ex.run_recipe(ex.RECIPES["mse"].replace(name="mse-sigma3", codec_params={"sigma": 3.0}),
                          preset=TINY, seed=0, device="cpu")
    assert other.data_stream_sha256 == res.data_stream_sha256
    assert ex.run_recipe("mse", preset=TINY, seed=1, device="cpu").data_stream_sha256 != res.data_stream_sha256


def test_arena_checks_identical_inputs_and_budget(first_run, monkeypatch, capsys):
    from poselab.experiments.arena import run_arena
    res, root = first_run
    monkeypatch.setenv("POSELAB_CACHE_DIR", root)
    variant = ex.RECIPES["mse"].replace(name="mse-sigma3", codec_params={"sigma": 3.0})
    arena = run_arena(["mse", variant], preset=TINY, device="cpu", progress=False)
    assert arena.same_inputs and arena.same_budget
    assert arena.best() in ("mse", "mse-sigma3")
    assert "seconds_per_step" in arena.to_markdown()
    # a different seed for one recipe breaks the identical-inputs check
    other = ex.run_recipe("mse", preset=TINY, seed=1, device="cpu")
    from poselab.experiments.arena import Arena
    mixed = Arena(ex.ComparisonTable([arena.table.results[0], other]), TINY)
    mixed.table.results[1].seed = 0
    assert not mixed.same_inputs


def test_compare_recipes_verdicts_carry_evidence_and_respect_the_floor(first_run, monkeypatch):
    from poselab.experiments import compare_recipes
    res, root = first_run
    monkeypatch.setenv("POSELAB_CACHE_DIR", root)
    table = ex.compare(["mse"], seeds=[0], preset=TINY, device="cpu", progress=False)
    v = compare_recipes(table, "mse", "mse", metric="EPE_crop", min_effect=0.1)
    assert v.verdict == "inconclusive"  # one seed
    assert v.evidence["preset"] == "tiny-test" and v.evidence["seeds"] == [0]
    assert v.evidence["input_size"] == [64, 48] and "mse EPE_crop" in v.evidence["per_seed"]
    # three seeds of clearly different fake values: the floor decides
    fake = ex.ComparisonTable([res])
    fake.values = lambda recipe, metric, set_name=ex.GENERATED_VAL: (
        [0.1, 0.11, 0.12] if metric == "AP" else [1.0, 1.1, 1.2] if recipe == "a" else [3.0, 3.1, 3.2])
    fake.results = [res]
    weak = compare_recipes(fake, "a", "b", metric="EPE_crop", min_effect=0.1, floor=0.3)
    assert weak.verdict == "inconclusive" and "baseline too weak" in weak.reason
    strong = compare_recipes(fake, "a", "b", metric="EPE_crop", min_effect=0.1, floor=0.05,
                             converge_tolerance=None)
    assert strong.verdict == "reproduced"
    # no validation curve for a and b: convergence cannot be told, so no finding
    unknown = compare_recipes(fake, "a", "b", metric="EPE_crop", min_effect=0.1, floor=0.05)
    assert unknown.verdict == "inconclusive" and "convergence cannot be told" in unknown.reason


def _fake_run(res, recipe, seed, ap, curve):
    import dataclasses
    metrics = {ex.GENERATED_VAL: {**res.metrics[ex.GENERATED_VAL], "AP": ap}}
    history = {**res.history, "val": [{"step": s, "AP": v} for s, v in curve],
               "step_times": [0.1] * int(curve[-1][0])}
    return dataclasses.replace(res, recipe=recipe, seed=seed, metrics=metrics, history=history, preset="default")


def test_compare_recipes_needs_both_sides_learnt_and_converged(first_run):
    """HDM's emd vs mse at the default budget: EMD's AP was still rising (0.030 -> 0.118 -> 0.136)
    and 'not reproduced, the other way' was printed for a model that never converged."""
    from poselab.experiments import compare_recipes
    res, _ = first_run
    mse = [_fake_run(res, "mse", s, ap, [(250, ap - 0.19), (500, ap - 0.014), (625, ap)])
           for s, ap in enumerate((0.543, 0.528, 0.552))]
    emd = [_fake_run(res, "emd", s, ap, [(250, 0.03), (500, ap - 0.018), (625, ap)])
           for s, ap in enumerate((0.136, 0.130, 0.140))]
    table = ex.ComparisonTable(mse + emd)
    plain = compare_recipes(table, "emd", "mse", metric="AP", min_effect=0.01, converge_tolerance=None,
                            floor=None)
    assert plain.verdict == "not reproduced"  # what the chapter used to print
    judged = compare_recipes(table, "emd", "mse", metric="AP", min_effect=0.01)
    assert judged.verdict == "inconclusive"
    assert "emd has not learnt (AP 0.135 < floor 0.3)" in judged.reason
    assert "emd not converged at 625 steps" in judged.reason and "mse not converged" not in judged.reason
    assert judged.evidence["steps"] == {"emd": [625], "mse": [625]}
    # once emd has learnt and converged, the same rule can say "not reproduced"
    emd_done = [_fake_run(res, "emd", s, ap, [(250, 0.3), (500, ap - 0.004), (625, ap)])
                for s, ap in enumerate((0.436, 0.430, 0.440))]
    done = compare_recipes(ex.ComparisonTable(mse + emd_done), "emd", "mse", metric="AP", min_effect=0.01,
                           paper_effect=0.02)
    assert done.verdict == "not reproduced" and done.summary["paper_effect"] == 0.02


def test_per_item_data_path_trains_the_same_persons(first_run, monkeypatch):
    res, root = first_run
    monkeypatch.setenv("POSELAB_CACHE_DIR", root)
    slow = ex.run_recipe("mse", preset=TINY.replace(crop_cache=False), seed=0, device="cpu")
    assert slow.key != res.key and slow.training_history().steps == 3
    # same augmentation draws and batch order: the losses agree closely (pixels differ only by
    # the crop cache's second interpolation)
    np.testing.assert_allclose(slow.history["losses"], res.history["losses"], rtol=0.05)


def test_preset_precision_and_layout_reach_the_model(first_run, monkeypatch):
    from poselab.experiments.presets import resolve_autocast
    res, root = first_run
    monkeypatch.setenv("POSELAB_CACHE_DIR", root)
    run = ex.run_recipe("mse", preset=TINY.replace(autocast="bfloat16", channels_last=True), seed=0,
                        device="cpu")
    assert run.key != res.key and run.config["autocast"] == "bfloat16"
    assert run.model().autocast == "bfloat16" and res.model().autocast is None
    assert resolve_autocast(None, torch.device("cpu")) is None
    assert resolve_autocast("auto", torch.device("cpu")) in (None, "bfloat16")
    with pytest.raises(ValueError, match="autocast"):
        TINY.replace(autocast="int8")


def test_source_digest_follows_the_chapter_modules_recipes_import(tmp_path, monkeypatch):
    from poselab.experiments import cache
    pkg = tmp_path / "poselab"
    for folder in ("chapters/paper", "chapters/other", "experiments", "viz"):
        (pkg / folder).mkdir(parents=True)
    (pkg / "experiments" / "builtin.py").write_text("x = 0\n")
    (pkg / "chapters" / "paper" / "__init__.py").write_text("from . import recipes\n")
    (pkg / "chapters" / "paper" / "recipes.py").write_text(
        "def build():\n    from poselab.chapters.paper.used import f\n")
    (pkg / "chapters" / "paper" / "used.py").write_text("from .deeper import x\n")
    (pkg / "chapters" / "paper" / "deeper.py").write_text("x = 1\n")
    (pkg / "chapters" / "paper" / "figures.py").write_text("y = 1\n")
    (pkg / "chapters" / "other" / "analysis.py").write_text("z = 1\n")
    (pkg / "viz" / "poses.py").write_text("w = 1\n")
    monkeypatch.setattr(cache, "_PACKAGE", pkg)
    d0 = cache.source_digest()
    for unused in ("chapters/paper/figures.py", "chapters/other/analysis.py", "viz/poses.py",
                   "chapters/paper/__init__.py"):
        (pkg / unused).write_text("changed = 2\n")
        assert cache.source_digest() == d0, unused      # no recipe imports it
    for used in ("chapters/paper/deeper.py", "chapters/paper/used.py", "chapters/paper/recipes.py",
                 "experiments/builtin.py"):
        (pkg / used).write_text((pkg / used).read_text() + "# changed\n")
        assert cache.source_digest() != d0, used        # a recipe reaches it (or it is core)
        d0 = cache.source_digest()


def test_a_record_carries_the_commit_and_digest_its_runs_started_with(tmp_path):
    from poselab.experiments.records import load_record, write_record
    res = ex.run_recipe("mse", preset=TINY, seed=0, device="cpu")
    started = {"commit": "0" * 40, "dirty": False, "started": "2026-01-01T00:00:00+00:00"}
    res.config["source_digest"] = "digest-the-run-trained-with"
    rec = load_record(write_record(tmp_path / "r.json", [res], "poselab train mse", 1.0, started))
    assert rec["commit"] == "0" * 40 and rec["started"] == started["started"]
    assert rec["source_digest"] == "digest-the-run-trained-with"  # not the package's digest now


def test_cli_train_several_recipes_writes_one_record(tmp_path, capsys):
    from poselab.cli import main
    from poselab.experiments.records import load_record
    out, rec = tmp_path / "o", tmp_path / "both.json"
    assert main(["train", "mse", "emd", "mse", "--preset", "fast", "--jobs", "1",
                 "--out", str(out), "--record", str(rec)]) == 0
    data = json.loads((out / "result.json").read_text())
    assert data["recipes"] == ["mse", "emd"]                      # a repeated name trains once
    assert [(r["recipe"], r["seed"]) for r in data["runs"]] == [("mse", 0), ("emd", 0)]
    for name in ("mse", "emd"):
        run = json.loads((out / name / "seed0" / "result.json").read_text())
        assert run["recipe"] == name
        assert data["metrics"][name][ex.GENERATED_VAL]["AP"] == run["metrics"][ex.GENERATED_VAL]["AP"]
    assert data["metrics"]["mse"] != data["metrics"]["emd"]
    record = load_record(rec)
    assert [(r["recipe"], r["seed"]) for r in record["runs"]] == [("mse", 0), ("emd", 0)]
    capsys.readouterr()
    for bad in ("0", "-1"):
        assert main(["train", "mse", "--preset", "fast", "--jobs", bad, "--out", str(tmp_path / "b")]) == 2
        assert "--jobs" in capsys.readouterr().err
    # argparse: not an integer (main returns the usage exit code, it never raises SystemExit)
    assert main(["train", "mse", "--preset", "fast", "--jobs", "x", "--out", str(tmp_path / "b")]) == 2
    assert "--jobs" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_cli_train_means_skip_missing_metrics(tmp_path, monkeypatch):
    # Spearman is None for a run whose instance scores are all equal: the mean over seeds is
    # None, not a TypeError
    from poselab.cli import main
    from poselab.experiments import runner
    real = runner.run_recipe

    def no_spearman(*a, **kw):
        res = real(*a, **kw)
        if res.seed == 1:
            res.metrics[ex.GENERATED_VAL]["spearman"] = None
        return res
    monkeypatch.setattr(runner, "run_recipe", no_spearman)
    out = tmp_path / "o"
    assert main(["train", "mse", "--preset", "fast", "--seed", "0", "1", "1", "--jobs", "1", "--out", str(out)]) == 0
    data = json.loads((out / "result.json").read_text())
    assert data["seeds"] == [0, 1] and len(data["runs"]) == 2
    assert data["metrics"][ex.GENERATED_VAL]["spearman"] is None
    assert isinstance(data["metrics"][ex.GENERATED_VAL]["AP"], float)


def test_the_cache_never_serves_a_damaged_or_foreign_entry(tmp_path):
    """A cache entry holding another seed's result, a truncated weights.pt, or "metrics": null
    was served as a hit (or crashed run_recipe). Each is now set aside with a warning and the
    run trains again."""
    import shutil
    res0 = ex.run_recipe("mse", preset=TINY, seed=0, device="cpu")
    res1 = ex.run_recipe("mse", preset=TINY, seed=1, device="cpu")
    assert ex.run_recipe("mse", preset=TINY, seed=0, device="cpu").cached  # a whole entry is a hit
    folder0 = res0.folder
    # another seed's entry copied over this one
    shutil.rmtree(folder0)
    shutil.copytree(res1.folder, folder0)
    with pytest.warns(RuntimeWarning, match="damaged"):
        again = ex.run_recipe("mse", preset=TINY, seed=0, device="cpu")
    assert not again.cached and again.seed == 0
    assert any(p.name.startswith(folder0.name + ".damaged-") for p in folder0.parent.iterdir())
    # a truncated weights file
    w = folder0 / "weights.pt"
    w.write_bytes(w.read_bytes()[:100])
    with pytest.warns(RuntimeWarning, match="checksum"):
        assert not ex.run_recipe("mse", preset=TINY, seed=0, device="cpu").cached
    # metrics null (checksums rewritten to match: the content itself is checked)
    import hashlib
    rj = folder0 / "result.json"
    d = json.loads(rj.read_text())
    d["metrics"] = None
    rj.write_text(json.dumps(d))
    sums = json.loads((folder0 / "checksums.json").read_text())
    sums["result.json"] = hashlib.sha256(rj.read_bytes()).hexdigest()
    (folder0 / "checksums.json").write_text(json.dumps(sums))
    with pytest.warns(RuntimeWarning, match="damaged"):
        fresh = ex.run_recipe("mse", preset=TINY, seed=0, device="cpu")
    assert not fresh.cached and fresh.metrics


def test_a_misspelled_metric_or_set_names_the_choices(first_run):
    from poselab.experiments import compare_recipes
    res, _ = first_run
    table = ex.ComparisonTable([res])
    with pytest.raises(KeyError, match="no metric 'ap'.*AP"):
        compare_recipes(table, "mse", "mse", metric="ap", min_effect=0.01)
    with pytest.raises(KeyError, match="no evaluation set 'val'.*generated val"):
        table.values("mse", "AP", "val")


def test_record_never_overwrites_a_file_that_is_not_a_record(tmp_path, capsys):
    from poselab import cli
    from poselab.experiments.records import check_record_path
    notes = tmp_path / "person_keypoints_val.json"
    notes.write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(ValueError, match="refusing to overwrite"):
        check_record_path(notes)
    assert check_record_path(notes, force=True) == notes
    assert cli.main(["train", "mse", "--preset", "fast", "--record", str(notes)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert json.loads(notes.read_text()) == {"images": [], "annotations": []}


def test_summary_names_the_seeds_a_nan_value_leaves_out():
    """A seed whose metric is NaN (or missing) was averaged away: "seeds 3" above a mean of 2."""
    from poselab.experiments.runner import ComparisonTable, RunResult

    def run(recipe: str, seed: int, ap: float) -> RunResult:
        return RunResult(recipe=recipe, preset="full", seed=seed, data="synth",
                         metrics={"generated val": {"AP": ap, **dict.fromkeys(others, 0.5)}}, history={},
                         seconds_per_step=0.1, train_seconds=1.0, peak_memory_mb=1.0, weights_path="",
                         data_stream_sha256="", key="k", device="cpu", created="", cached=True)

    others = ("AP50", "AP75", "AR", "EPE_crop", "PCK@0.2", "spearman", "ranking_accuracy")
    table = ComparisonTable([run("mse", 0, 0.70), run("mse", 1, 0.72), run("mse", 2, float("nan")),
                             run("ipr", 0, 0.40), run("ipr", 1, 0.42), run("ipr", 2, 0.44)])
    rows = {r["recipe"]: r for r in table.summary(metrics=("AP",))}
    assert rows["mse"]["AP"][2] == 2 and rows["mse"]["AP"][0] == pytest.approx(0.71)
    assert len(rows["ipr"]["AP"]) == 2                      # every seed finite: (mean, std) as before
    assert "0.710 ± 0.014 (2 seeds finite)" in table.to_markdown()
    assert "(2 seeds finite)" in table._repr_html_() and "0.420 ± 0.020 |" in table.to_markdown()


def test_tables_render_when_no_run_reports_a_default_metric():
    """``to_markdown()`` / the HTML table raised KeyError for a table whose runs lack one of the
    default columns (a custom evaluation without AP50 or spearman); the column is now empty."""
    from poselab.experiments.runner import ComparisonTable, RunResult

    runs = [RunResult(recipe="mse", preset="full", seed=s, data="synth", metrics={"generated val": {"AP": 0.7 + s / 100}},
                      history={}, seconds_per_step=0.1, train_seconds=1.0, peak_memory_mb=1.0, weights_path="",
                      data_stream_sha256="", key="k", device="cpu", created="", cached=True) for s in range(2)]
    table = ComparisonTable(runs)
    assert "| mse | 2 | 0.705 ± 0.007 | — |" in table.to_markdown()
    assert "0.705 ± 0.007" in table._repr_html_()
    with pytest.raises(KeyError, match="no metric 'AP50'"):      # asking for the values still says so
        table.values("mse", "AP50")
