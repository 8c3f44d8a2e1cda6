"""Every chapter executes through papermill in fast mode; its math claims hold and the claim ids
the issues promise are in its ledger. The real COCO sample is used when it sits beside the
checkout (../shared/coco_sample), as on every developer machine and in CI."""
import json
import os
import sys
from pathlib import Path

import pytest

from poselab import cli

sys.path.insert(0, str(Path(__file__).resolve().parent / "binder_env"))
import closure  # noqa: E402  (tests/binder_env: run kernels with only what Binder installs)

# claim ids that chapters promise (issue contracts); a chapter missing here still runs
EXPECTED_CLAIMS = {
    "00_basics": {"basics.oks.matches_pycocotools", "basics.ap.ground_truth_scores_one",
                  "basics.synth.deterministic"},
    "01_train_in_a_minute": {"engine.codecs.roundtrip_max_error_px", "engine.training.loss_decreases",
                             "engine.training.deterministic"},
    "02_rspose": {"rspose.imbalance.dot_2d_ratio", "rspose.imbalance.gaussian_2d_ratio",
                  "rspose.imbalance.simcc_dot_ratio_x", "rspose.imbalance.simcc_dot_ratio_y",
                  "rspose.gradients.rank_balanced", "rspose.gradients.mse_negatives_dominate",
                  "rspose.loss.matches_reference_loop", "rspose.theorem1.covariance_identity_error",
                  "rspose.scaling.minmax_keeps_ap", "rspose.training.ablation",
                  "rspose.training.spearman", "rspose.simcc.kl_vs_rs",
                  "rspose.plateau.rank_blind_inside_window"},
    "03_rcnet": {"rcnet.toy.correct_order_ap", "rcnet.toy.fp_first_ap", "rcnet.toy.ar_rank_invariant",
                 "rcnet.random.ranking_accuracy", "rcnet.prop2.expected_margin",
                 "rcnet.theorem1.upper_bound", "rcnet.loss.eq9_matches_simplified",
                 "rcnet.posthoc.map_gain", "rcnet.posthoc.ranking_accuracy_gain",
                 "rcnet.posthoc.mar_unchanged", "rcnet.rivals.table", "rcnet.ablation.margin",
                 "rcnet.ablation.attention_vs_mlp", "rcnet.calibration.pearson_ause",
                 "rcnet.loss.tied_gradient", "rcnet.control.rank_vs_regression"},
    "04_hdm": {"hdm.counterexample.lower_mse_wrong_peak", "hdm.theorem1.identity_max_abs_error",
               "hdm.theorem1.corrected_identity_max_abs_error", "hdm.training.level_descent",
               "hdm.demanders.reconstruction_max_error_px", "hdm.demanders.mass_sum_error",
               "hdm.emd.matches_reference", "hdm.emd.monotone_in_displacement",
               "hdm.sinkhorn.converged_by_cap", "hdm.ablation.subpixel_beats_naive",
               "hdm.ablation.iterations_1000_vs_500", "hdm.training.emd_vs_mse",
               "hdm.training.compactness", "hdm.loss.minimiser_bias"},
    "05_sar": {"sar.loss.matches_formula", "sar.objective.optimum_cases",
               "sar.normalization.softmax_depends_on_count", "sar.degenerate_to_regression",
               "sar.quantization.exact_target_floor", "sar.quantization.stride_robustness",
               "sar.normalization.shift_invariance",
               "sar.input_size.table", "sar.multi_person.recall", "sar.fg_fc_variant",
               "sar.training.auxiliary_heatmap", "sar.heatmap_offset"},
    "06_bcir": {"bcir.bias.eq37_max_error", "bcir.compensation.max_error_px", "bcir.bias.toward_centre",
                "bcir.epe.argmax_not_better", "bcir.shrinkage.sigma_star_above_true",
                "bcir.gradient.eq23_matches_autograd", "bcir.gradient.gt_pixel_nonpositive",
                "bcir.training.ipr_slower_than_detection", "bcir.training.bcir_vs_ipr",
                "bcir.training.bcir_vs_detection",
                "bcir.localization.ipr_more_localized", "bcir.regularizer.helps", "bcir.beta.ablation",
                "bcir.hard_cases.regression_better", "bcir.shrinkage.detection_sigma_two_best"},
    "07_capstone": {"arena.same_inputs", "arena.cache_consistent", "arena.best_recipe",
                    "arena.ranking_losses_raise_spearman", "arena.rcnet_gain_over_best"},
}
CHAPTERS = [p.stem for p in cli.list_chapters()]
# time budgets (60 s per chapter's fast run) are measured by benchmarks/chapters.py
# (poselab bench --only chapters), never asserted here: a loaded machine must not fail the tests


@pytest.fixture(scope="session")
def shared_ledgers(tmp_path_factory):
    return tmp_path_factory.mktemp("ledgers")


def test_every_promised_chapter_exists():
    assert set(EXPECTED_CLAIMS) <= set(CHAPTERS)


@pytest.mark.chapters
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_runs_fast_with_math_claims_holding(chapter, tmp_path, shared_ledgers, monkeypatch):
    # the kernel (and any worker it starts) can import only what binder/requirements.txt installs
    binder = closure.binder_env(dict(os.environ))
    for key in ("PYTHONPATH", "POSELAB_BLOCKED_MODULES"):
        monkeypatch.setenv(key, binder[key])
    # the capstone (07, run last) reads every earlier chapter's ledger from the shared folder
    params = {"ledger_dir": str(shared_ledgers)} if chapter.startswith("07") else None
    code = cli.run([chapter], fast=True, out=tmp_path, parameters=params)
    (shared_ledgers / "claims").mkdir(exist_ok=True)
    for ledger in (tmp_path / "claims").glob("*.json"):
        (shared_ledgers / "claims" / ledger.name).write_text(ledger.read_text())
    timings = json.loads((tmp_path / "timings.json").read_text())
    ledger = json.loads((tmp_path / "claims.json").read_text())
    failed = [c["id"] for c in ledger if c["kind"] == "math" and not c["holds"]]
    assert code == 0, f"{chapter} failed (see output above); math claims failing: {failed}"
    assert not failed
    missing = EXPECTED_CLAIMS.get(chapter, set()) - {c["id"] for c in ledger}
    assert not missing, f"{chapter} did not record {sorted(missing)}"
    assert all(c["chapter"] == chapter for c in ledger)
    if chapter.startswith("07"):  # the scorecard lists every claim of the chapters run before it
        executed = (tmp_path / f"{chapter}.ipynb").read_text()
        earlier = {c["id"] for f in (shared_ledgers / "claims").glob("*.json")
                   for c in json.loads(f.read_text())}
        assert earlier and not [i for i in earlier if i not in executed]
    assert chapter in timings  # recorded; the 60 s budget is benchmarks/chapters.py's
