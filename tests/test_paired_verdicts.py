"""compare_recipes(paired=True): runs paired by seed over the seeds both recipes trained, and the
chapter-06 rules that compare one model trained from the same seeds (IPR + regulariser vs IPR,
BCIR vs IPR, the β ablation, the σ sweep) paired."""
from __future__ import annotations

import pytest
import torch

from fake_tables import FakeTable
from poselab.chapters.bcir import analysis as B
from poselab.experiments.verdicts import compare_recipes, paired_table


def _curve(recipe, ap):
    return [(step, ap * frac) for step, frac in ((100, 0.6), (300, 0.9), (400, 0.99), (500, 1.0))]


# a shared seed effect (seed 1 easy, seed 2 hard) far larger than the recipes' gap of 0.02
SEED_EFFECT = (0.0, 0.08, -0.08, 0.05, -0.05)


def _shared(base, gap, seeds=5, jitter=(0.001, -0.002, 0.0015, -0.0005, 0.001)):
    return ([base + e for e in SEED_EFFECT[:seeds]],
            [base + gap + e + j for e, j in zip(SEED_EFFECT[:seeds], jitter)])


def test_pairing_by_seed_decides_what_welch_cannot():
    ipr, reg = _shared(0.50, 0.02)
    t = FakeTable({"ipr_reg": reg, "ipr": ipr}, curve=_curve)
    unpaired = compare_recipes(t, "ipr_reg", "ipr", metric="AP", min_effect=0.0105, paper_effect=0.021)
    paired = compare_recipes(t, "ipr_reg", "ipr", metric="AP", min_effect=0.0105, paper_effect=0.021, paired=True)
    assert unpaired.verdict == "inconclusive"          # the seed effect swamps a 0.02 gap
    assert paired.verdict == "reproduced", paired.reason
    assert B.regularizer_verdict(t).verdict == "reproduced"
    # the same gap the other way is "not reproduced" paired
    flipped = FakeTable({"ipr_reg": ipr, "ipr": reg}, curve=_curve)
    assert B.regularizer_verdict(flipped).verdict == "not reproduced"


def test_unequal_seeds_pair_over_the_common_ones_and_name_the_rest():
    ipr, reg = _shared(0.50, 0.02)
    t = FakeTable({"ipr_reg": reg[:3], "ipr": ipr}, curve=_curve)   # ipr_reg seeds 0-2, ipr 0-4
    sub, note = paired_table(t, "ipr_reg", "ipr")
    assert note == {"paired_seeds": [0, 1, 2], "unpaired": {"ipr": [3, 4]}}
    assert [(r.recipe, r.seed) for r in sub.results] == [("ipr_reg", 0), ("ipr_reg", 1), ("ipr_reg", 2),
                                                          ("ipr", 0), ("ipr", 1), ("ipr", 2)]
    v = B.regularizer_verdict(t)
    assert v.evidence["paired_seeds"] == [0, 1, 2] and v.evidence["unpaired"] == {"ipr": [3, 4]}
    assert v.summary["paired"] is True


def test_seed_order_is_aligned_not_taken_from_the_table_order():
    ipr, reg = _shared(0.50, 0.02)
    t = FakeTable({"ipr_reg": reg, "ipr": ipr}, curve=_curve)
    t.results = [r for r in t.results if r.recipe == "ipr_reg"][::-1] + [r for r in t.results if r.recipe == "ipr"]
    # reversed seeds on one side: pairing by position would pair seed 4 with seed 0
    assert B.regularizer_verdict(t).verdict == "reproduced"


def test_no_common_seed_and_repeated_seeds():
    t = FakeTable({"ipr_reg": [0.5, 0.5, 0.5], "ipr": [0.5, 0.5, 0.5]}, curve=_curve)
    for r in t.results:
        if r.recipe == "ipr":
            r.seed += 10
    v = B.regularizer_verdict(t)
    assert v.verdict == "inconclusive" and "no seed was trained by both" in v.reason
    t2 = FakeTable({"ipr_reg": [0.5, 0.52, 0.51], "ipr": [0.5, 0.5, 0.5]}, curve=_curve)
    t2.results[1].seed = 0
    with pytest.raises(ValueError, match="more than one run"):
        B.regularizer_verdict(t2)


def test_beta_and_bcir_vs_ipr_links_are_paired():
    ipr, bcir = _shared(0.50, 0.04)
    t = FakeTable({"bcir": bcir, "ipr": ipr}, curve=_curve)
    for r in t.results:
        r.metrics["generated val"]["EPE_crop"] = 6.0 - 10 * (r.metrics["generated val"]["AP"] - 0.5)
    v = B.bcir_vs_ipr_verdict(t)
    assert v.verdict == "reproduced", v.reason
    beta1, _ = _shared(0.50, 0.0)
    beta20 = [b - 0.012 + j for b, j in zip(bcir, (0.001, 0.0, -0.001, 0.002, -0.002))]
    tb = FakeTable({"bcir": bcir, "bcir_beta1": [b - 0.04 + 0.001 * i for i, b in enumerate(bcir)],
                    "bcir_beta20": beta20}, curve=_curve)
    assert B.beta_verdict(tb).verdict == "reproduced", B.beta_verdict(tb).reason


def test_a_seed_whose_two_runs_differ_in_forward_precision_is_no_pair():
    """`autocast="auto"` gives bfloat16 on a CPU with native bfloat16 and float32 elsewhere, so a
    replication continued on another machine can hold one seed's two runs in different
    precisions: such a pair differs in more than the recipe. It is left out and named."""
    ipr, reg = _shared(0.50, 0.02)
    t = FakeTable({"ipr_reg": reg, "ipr": ipr}, curve=_curve)
    for r in t.results:
        r.config = {**r.config, "autocast": "bfloat16"}
    for r in t.results:
        if r.recipe == "ipr_reg" and r.seed in (3, 4):
            r.config = {**r.config, "autocast": None}          # trained later, on a float32 machine
    sub, note = paired_table(t, "ipr_reg", "ipr")
    assert note == {"paired_seeds": [0, 1, 2], "unpaired": {},
                    "precision_mismatch": {3: {"ipr_reg": "float32", "ipr": "bfloat16"},
                                           4: {"ipr_reg": "float32", "ipr": "bfloat16"}}}
    assert sorted({r.seed for r in sub.results}) == [0, 1, 2]
    v = B.regularizer_verdict(t)
    assert v.evidence["precision_mismatch"] and v.summary["seeds"] == 3
    for r in t.results:
        if r.recipe == "ipr_reg":
            r.config = {**r.config, "autocast": None}
    none = B.regularizer_verdict(t)
    assert none.verdict == "inconclusive" and "different forward precisions" in none.reason, none.reason


def test_the_plan_names_the_records_precisions_and_this_machines(tmp_path):
    """Chapter 06's records hold ipr_prior seed 0 trained with a bfloat16 forward and seed 1 in
    float32 (another machine): the plan says so, whatever this machine trains in. (A copy of
    those two records: the checkout's folder grows as the replication goes on.)"""
    import shutil
    from types import SimpleNamespace

    from poselab.cli.training import _precision_line
    from poselab.experiments import replicate as rep
    folder = tmp_path / "06_bcir"
    folder.mkdir()
    for seed in (0, 1):
        name = rep.record_file(folder, "ipr_prior", "full", seed).name
        shutil.copy(rep.replication_folder("06") / name, folder / name)
    held = rep.recorded_precisions("06", recipes=["ipr_prior"], root=tmp_path)
    assert held == {"bfloat16": [("ipr_prior", 0)], "float32": [("ipr_prior", 1)]}
    line = _precision_line(SimpleNamespace(preset="full", device="cpu", chapter="06", out=tmp_path,
                                           recipes=["ipr_prior"]))
    assert "recorded runs by forward precision: bfloat16 1, float32 1" in line and "train new seeds" in line, line
    from poselab.experiments.presets import get_preset, resolve_autocast
    here = resolve_autocast(get_preset("full").autocast, torch.device("cpu")) or "float32"
    # where to go on: the seeds this machine's precision already has, or past every recorded one
    assert line.endswith("seeds with float32 runs only: 1 (fill them in for the other recipes), new seeds from 2"
                         if here == "float32" else
                         "seeds with bfloat16 runs only: 0 (fill them in for the other recipes), new seeds from 2"), line


@pytest.mark.parametrize("config, want", [({"autocast": "bfloat16"}, "bfloat16"), ({"autocast": None}, "float32"),
                                          ({}, "float32"), (None, "float32"), ("bfloat16", "float32"),
                                          ({"autocast": 3}, "float32"), ({"autocast": "float16"}, "float16")])
def test_config_precision_reads_a_records_autocast_and_nothing_else(config, want):
    from poselab.experiments.verdicts import config_precision
    assert config_precision(config) == want


def test_records_by_seed_lays_out_each_runs_value_and_precision(tmp_path):
    """The table a student reads before training more seeds: one row per recipe, one column per
    seed, each cell the run's AP and forward precision (copies of chapter 06's records)."""
    import json
    import shutil

    from poselab.experiments import replicate as rep
    folder = tmp_path / "06_bcir"
    folder.mkdir()
    for recipe, seed in (("ipr", 0), ("ipr_prior", 0), ("ipr_prior", 1)):
        name = rep.record_file(folder, recipe, "full", seed).name
        shutil.copy(rep.replication_folder("06") / name, folder / name)
    rows = rep.records_by_seed("06", root=tmp_path, recipes=["ipr", "ipr_prior", "mse_sigma1"])
    assert list(rows) == ["ipr", "ipr_prior", "mse_sigma1"]
    assert rows["ipr"] == {"seed 0": "0.477 bf16", "seed 1": ""}
    assert rows["ipr_prior"] == {"seed 0": "0.631 bf16", "seed 1": "0.631 fp32"}
    assert rows["mse_sigma1"] == {"seed 0": "", "seed 1": ""}
    path = rep.record_file(folder, "ipr", "full", 0)
    rec = json.loads(path.read_text())
    del rec["metrics"]["generated val"]["AP"]
    path.write_text(json.dumps(rec))
    assert rep.records_by_seed("06", root=tmp_path, recipes="ipr")["ipr"]["seed 0"] == "— bf16"
    every = rep.records_by_seed("06", root=tmp_path)  # default rows: the chapter's replication recipes
    assert {"mse", "ipr", "bcir", "bcir_beta20"} <= set(every) and every["bcir"] == {"seed 0": "", "seed 1": ""}
    with pytest.raises(TypeError, match="metric"):
        rep.records_by_seed("06", root=tmp_path, metric=None)
    for bad in (5, [None], [""]):
        with pytest.raises(TypeError, match="recipe names"):
            rep.records_by_seed("06", root=tmp_path, recipes=bad)
