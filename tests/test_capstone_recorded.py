"""The capstone's arena claims judged on every chapter's recorded replication (pooled records)."""
import copy
import json
from pathlib import Path

import pytest
from fake_tables import FakeTable

from poselab.chapters.capstone import arena as A
from poselab.experiments import replicate as rep

SET = "generated val"
#: a real record's run (its config: geometry, preset, recipe) as the template of constructed ones
_TEMPLATE = json.loads((Path(__file__).resolve().parent.parent / "results" / "replications" / "04_hdm"
                        / "mse__full__seed0.json").read_text())["run"]


def _record(recipe, seed, ap, spearman=0.7, digest="x", when="2026-12-06T00:00:00+00:00"):
    steps = [100.0 * i for i in range(1, 11)]
    val = [{"step": s, "AP": ap * min(1.0, 0.5 + 0.1 * i)} for i, s in enumerate(steps)]  # flat after half
    metrics = {SET: {"AP": ap, "EPE_crop": 3.0, "spearman": spearman}}
    run = copy.deepcopy(_TEMPLATE)
    run.update(recipe=recipe, seed=seed, metrics=metrics, key=f"{recipe}{seed}", created=when,
               history={**run["history"], "val": val})
    run["config"]["source_digest"] = digest
    return {"kind": rep.RECORD_KIND, "recipe": recipe, "seed": seed, "preset": "full", "metrics": metrics,
            "validation_curve": val, "source_digest": digest, "recorded": when, "commit": "c", "run": run}


def _write(root, chapter, recs):
    folder = root / chapter
    folder.mkdir(parents=True, exist_ok=True)
    for r in recs:
        (folder / f"{r['recipe']}__full__seed{r['seed']}.json").write_text(json.dumps(r))


def test_pooled_records_take_one_run_per_recipe_and_seed(tmp_path):
    _write(tmp_path, "03_rcnet", [_record("mse", 0, 0.70, when="2026-12-06T01:00:00+00:00")])
    _write(tmp_path, "06_bcir", [_record("mse", 0, 0.71, when="2026-12-06T02:00:00+00:00"),
                                 _record("ipr", 0, 0.40)])
    _write(tmp_path, "07_capstone", [_record("emd", 0, 0.9)])
    pooled = rep.recorded_pooled(root=tmp_path, exclude=("07_capstone",))
    assert [(r["recipe"], r["seed"]) for r in pooled] == [("ipr", 0), ("mse", 0)]
    assert next(r for r in pooled if r["recipe"] == "mse")["chapter"] == "06_bcir"   # the newest


def test_recorded_best_recipe_needs_every_arena_recipe_then_decides_both_ways(tmp_path):
    _write(tmp_path, "04_hdm", [_record("mse", s, 0.70 + 0.002 * s) for s in range(5)]
           + [_record("emd", s, 0.50 + 0.002 * s) for s in range(5)])
    out = A.recorded_arena_verdicts(["mse", "emd", "ipr"], root=tmp_path)
    best = out["arena.best_recipe"]
    assert best["recorded"] is False and "ipr (0)" in best["reason"]        # not all recorded: no answer
    out = A.recorded_arena_verdicts(["mse", "emd"], root=tmp_path)
    assert out["arena.best_recipe"]["verdict"] == "reproduced" and out["arena.best_recipe"]["seeds"] == [0, 1, 2, 3, 4]
    # a runner-up within noise of the best: the minimum effect (0.01 AP) is not shown
    _write(tmp_path, "06_bcir", [_record("bcir", s, 0.70 + 0.002 * ((s * 3) % 5)) for s in range(5)])
    close = A.recorded_arena_verdicts(["mse", "emd", "bcir"], root=tmp_path)["arena.best_recipe"]
    assert close["recorded"] is True and close["verdict"] != "reproduced"


def test_recorded_rcnet_gain_reads_chapter_03_fits_paired(tmp_path):
    _write(tmp_path, "04_hdm", [_record("mse", s, 0.70) for s in range(3)])
    out = A.recorded_arena_verdicts(["mse"], root=tmp_path)["arena.rcnet_gain_over_best"]
    assert out["recorded"] is False and "RCNet fit" in out["reason"]
    folder = tmp_path / "03_rcnet"
    folder.mkdir()
    for s, (b, a) in enumerate([(0.60, 0.611), (0.70, 0.709), (0.65, 0.662)]):  # +0.009..0.012, paired
        rec = {"kind": rep.DERIVED_KIND, "name": "rcnet_fit", "seed": s, "preset": "full",
               "values": {"variants": {"laplacian": {"before": {"AP": b}, "after": {"AP": a}}}}}
        (folder / f"rcnet_fit__full__seed{s}.json").write_text(json.dumps(rec))
    out = A.recorded_arena_verdicts(["mse"], root=tmp_path)["arena.rcnet_gain_over_best"]
    assert out["verdict"] == "reproduced"           # unpaired, the 0.05 AP spread between seeds would hide it


def test_live_rules_on_one_seed_and_without_a_ranking_recipe(tmp_path):
    _write(tmp_path, "04_hdm", [_record("mse", 0, 0.7), _record("emd", 0, 0.5)])
    table = rep.recorded_table("04_hdm", root=tmp_path)
    verdict, best, runner = A.best_recipe_verdict(table)
    assert (best, runner) == ("mse", "emd") and verdict.verdict == "inconclusive"
    with pytest.raises(ValueError, match="fewer than 3"):
        A.best_recipe_verdict(table, min_seeds=3)
    assert A.ranking_spearman_verdict(table).reason.startswith("not testable")


def test_recorded_spearman_compares_the_ranking_recipe_the_live_arena_races(tmp_path):
    _write(tmp_path, "02_rspose", [_record("mse", s, 0.70, spearman=0.50 + 0.01 * s) for s in range(3)]
           + [_record("spatial_rank", s, 0.70, spearman=0.70 + 0.01 * s) for s in range(3)])
    # the arena races spatial_rs_is, which has no record: spatial_rank's records must not stand in
    out = A.recorded_arena_verdicts(["mse", "spatial_rs_is", "spatial_rank"], root=tmp_path)
    assert out["arena.ranking_losses_raise_spearman"]["recorded"] is False
    out = A.recorded_arena_verdicts(["mse", "spatial_rank"], root=tmp_path)
    assert out["arena.ranking_losses_raise_spearman"]["verdict"] == "reproduced"
    assert out["arena.ranking_losses_raise_spearman"]["runs"] == 6


def test_a_chapter_borrows_runs_another_chapter_recorded_and_does_not_train_them(tmp_path):
    """Same recipe, preset, seed and data -> one run: chapter 02 reads chapter 04's `mse` records
    instead of training them again; chapters 03 and 06, whose derived steps need the `mse` model in
    the run cache, borrow nothing; a record of other data is never borrowed."""
    _write(tmp_path, "04_hdm", [_record("mse", s, 0.74) for s in range(3)])
    coco = _record("mse", 3, 0.10)
    coco["data"] = "data/coco"
    _write(tmp_path, "05_sar", [coco])
    lent = rep.borrowed_runs("02", root=tmp_path)
    assert [(r["recipe"], r["seed"], r["chapter"]) for r in lent] == [("mse", s, "04_hdm") for s in range(3)]
    assert rep.borrowed_runs("03", root=tmp_path) == []
    assert rep.borrowed_runs("06", root=tmp_path) == []
    rows = {(r["recipe"], r["seed"]): r["recorded"] for r in rep.plan("02", seeds=[0, 3], root=tmp_path)}
    assert rows[("mse", 0)] is True and rows[("mse", 3)] is False and rows[("spatial_rank", 0)] is False
    table = rep.recorded_table("02", root=tmp_path)
    assert table.recipes == ["mse"] and len(table.values("mse", "AP")) == 3
    _write(tmp_path, "02_rspose", [_record("mse", 0, 0.70)])   # the chapter's own record wins
    assert [r["seed"] for r in rep.borrowed_runs("02", root=tmp_path)] == [1, 2]


# ----------------------------------------------------------------------------- hostile inputs (QA)
def _fake(aps):
    return FakeTable(aps, preset="full", curve=lambda r, ap: [(2500, ap * 0.6), (4000, ap * 0.998), (5000, ap)])


def test_best_recipe_verdict_refuses_a_string_and_a_lone_recipe():
    table = _fake({"mse": [0.70, 0.72, 0.71], "emd": [0.60, 0.61, 0.62]})
    with pytest.raises(TypeError, match="list of recipe names"):   # "mse" was read as 'm', 's', 'e'
        A.best_recipe_verdict(table, "mse")
    with pytest.raises(ValueError, match="min_seeds"):
        A.best_recipe_verdict(table, min_seeds=float("nan"))
    lone, _, _ = A.best_recipe_verdict(_fake({"mse": [0.70, 0.72, 0.71]}))
    assert lone.verdict == "inconclusive" and "only one arena recipe" in lone.reason  # was mse against itself
    assert A.best_recipe_verdict(table)[1:] == ("mse", "emd")


def test_rcnet_gain_verdict_needs_one_value_per_distinct_seed():
    with pytest.raises(ValueError, match="one entry per seed"):     # seeds [0] for three pairs was accepted
        A.rcnet_gain_verdict([0.1, 0.2, 0.3], [0.2, 0.3, 0.4], [0], preset="full")
    with pytest.raises(ValueError, match="once"):                   # one seed thrice was 'three seeds'
        A.rcnet_gain_verdict([0.1, 0.2, 0.3], [0.2, 0.3, 0.4], [0, 0, 0], preset="full")
    assert A.rcnet_gain_verdict([0.10, 0.20, 0.30], [0.20, 0.31, 0.39], [0, 1, 2], preset="full").verdict == "reproduced"


def test_recorded_arena_verdicts_refuse_a_string_of_recipes(tmp_path):
    with pytest.raises(TypeError, match="list of recipe names"):
        A.recorded_arena_verdicts("mse", root=tmp_path)


def test_a_recorded_reason_shows_a_key_errors_message_without_quotes(tmp_path):
    def judge(table):
        raise KeyError("no recipe 'emd' in this table; recipes: ['mse']")
    _write(tmp_path, "04_hdm", [_record("mse", 0, 0.7)])
    out = rep.recorded_verdict("04_hdm", judge, root=tmp_path)
    assert out["recorded"] is False
    assert "(no recipe 'emd' in this table" in out["reason"] and '"no recipe' not in out["reason"]
