"""Every chapter's recorded verdicts, computed now from the committed replication records.

A chapter's notebook judges each empirical claim twice: on the run the student just made, and
on the recorded replication at the deciding scale (``results/replications/<chapter>/``, made by
``poselab replicate``). The second verdict depends only on the committed records and the rule,
so it need not wait for a chapter to be run again: :func:`recorded_verdicts` applies each
chapter's rule, with the chapter's default parameters (its notebook's parameters cell; a test
keeps the two equal), to the records as they are now. The capstone's scorecard shows these
beside a recorded ledger's live verdicts (:func:`poselab.scorecard.with_current_recorded`), so a
replication committed after the ledger was made is shown at once.

Each function returns ``{claim id: recorded verdict}`` in the shape of
:func:`poselab.experiments.replicate.recorded_verdict` (``recorded``, ``verdict``, ``reason``,
``preset``, ``seeds``, ...); a claim whose records are missing reads "no recorded replication
yet" with the command that makes them.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from poselab.chapters.bcir import analysis as bcir_analysis, replication as bcir_replication
from poselab.chapters.capstone import arena as capstone_arena
from poselab.chapters.engine import analysis as engine_analysis
from poselab.chapters.hdm import replication as hdm_replication, training as hdm_training
from poselab.chapters.rcnet import replication as rcnet_replication
from poselab.chapters.registry import get_chapter
from poselab.chapters.rspose import ablations as rspose_ablations, analysis as rspose_analysis
from poselab.chapters.rspose import replication as rspose_replication
from poselab.chapters.sar import replication as sar_replication
from poselab.experiments import GENERATED_VAL, RECIPES, chapter_preset, recorded_verdict, resolve_run_data

__all__ = ["CHAPTER_DEFAULTS", "CHAPTERS", "recorded_verdicts"]

#: the parameters each chapter's notebook passes to its recorded rules (its defaults)
CHAPTER_DEFAULTS: dict[str, dict[str, Any]] = {
    "02_rspose": {"ap_floor": 0.3, "min_effect_ap": 0.01, "min_effect_spearman": 0.02, "step_margin": 1.3,
                  "minmax_margin": 0.005, "epochs": 3, "n_val": 150},
    "05_sar": {"ap_floor": 0.05, "min_effect_ap": 0.02, "ooc_min_px": 1.0, "multi_precision": 0.5},
}


def _engine(preset: str) -> dict[str, dict]:
    return {"engine.training.loss_decreases": engine_analysis.recorded_blind_verdict(preset=preset)}


def _rspose(preset: str) -> dict[str, dict]:
    d = CHAPTER_DEFAULTS["02_rspose"]
    floor = d["ap_floor"]
    # the image-blind guess on the evaluation set of the chapter's default run, as its notebook uses
    _, eval_sets = resolve_run_data("synth", chapter_preset("default", epochs=d["epochs"], n_val=d["n_val"]))
    blind = rspose_analysis.blind_ap(eval_sets[GENERATED_VAL])
    out = {
        "rspose.training.ablation": recorded_verdict(
            "02_rspose", lambda t: rspose_analysis.ablation_chain_verdict(t, floor=floor, blind=blind), preset=preset),
        "rspose.training.spearman": recorded_verdict(
            "02_rspose", lambda t: rspose_analysis.spearman_verdict(t, min_effect=d["min_effect_spearman"], floor=floor),
            preset=preset),
        "rspose.simcc.kl_vs_rs": recorded_verdict(
            "02_rspose", lambda t: rspose_analysis.simcc_verdict(t, floor=floor), preset=preset),
        "rspose.cost.step_time": recorded_verdict(
            "02_rspose", lambda t: rspose_analysis.step_cost(t, "spatial_rs_is", "mse", margin=d["step_margin"]),
            preset=preset),
        "rspose.scaling.minmax_keeps_ap": rspose_replication.recorded_minmax_verdict(margin=d["minmax_margin"], preset=preset),
        "rspose.gradients.mse_negatives_dominate": rspose_replication.gradient_share_recorded(preset=preset)}
    judges = rspose_ablations.extra_judges(floor=floor, blind=blind, min_effect=d["min_effect_ap"])
    out.update(rspose_ablations.extra_recorded(judges, preset=preset))
    return out


def _rcnet(preset: str) -> dict[str, dict]:
    return dict(rcnet_replication.recorded_verdicts(preset=preset))


def _hdm(preset: str) -> dict[str, dict]:
    return {"hdm.training.compactness": hdm_replication.recorded_compactness(preset=preset),
            "hdm.training.emd_vs_mse": hdm_training.recorded_emd_vs_mse(preset=preset),
            "hdm.training.consistent_improvement": hdm_training.recorded_consistency(preset=preset),
            "hdm.training.gaussian_beats_dot": hdm_training.recorded_gaussian_beats_dot(preset=preset)}


def _sar(preset: str) -> dict[str, dict]:
    d = CHAPTER_DEFAULTS["05_sar"]
    return dict(sar_replication.recorded_verdicts(floor=d["ap_floor"], min_effect=d["min_effect_ap"],
                                                  min_px=d["ooc_min_px"], precision=d["multi_precision"], preset=preset))


def _bcir(preset: str) -> dict[str, dict]:
    rules = {"bcir.training.ipr_slower_than_detection": bcir_analysis.ipr_slower_verdict,
             "bcir.training.bcir_vs_ipr": bcir_analysis.bcir_vs_ipr_verdict,
             "bcir.regularizer.helps": bcir_analysis.regularizer_verdict,
             "bcir.beta.ablation": bcir_analysis.beta_verdict,
             "bcir.components.each_helps": bcir_analysis.components_verdict,
             "bcir.training.bcir_vs_detection": bcir_analysis.bcir_vs_detection_verdict,
             "bcir.shrinkage.detection_sigma_two_best": bcir_analysis.detection_sigma_verdict}
    out = {cid: recorded_verdict("06_bcir", rule, preset=preset) for cid, rule in rules.items()}
    out.update(bcir_replication.recorded_verdicts(preset=preset))   # the heatmap study's claims (derived records)
    return out


def _capstone(preset: str) -> dict[str, dict]:
    return dict(capstone_arena.recorded_arena_verdicts(list(RECIPES), preset=preset))


#: chapter file stem → the function giving its recorded verdicts (``fn(preset)``)
CHAPTERS: dict[str, Callable[[str], dict[str, dict]]] = {
    "01_train_in_a_minute": _engine, "02_rspose": _rspose, "03_rcnet": _rcnet, "04_hdm": _hdm,
    "05_sar": _sar, "06_bcir": _bcir, "07_capstone": _capstone}


def recorded_verdicts(chapters: Iterable[str] | None = None, *, preset: str = "full") -> dict[str, dict]:
    """``{claim id: recorded verdict}`` of every chapter in ``chapters`` (file stems such as
    ``"06_bcir"``; all by default), judged now on ``results/replications`` at ``preset`` by the
    rule and default parameters of each chapter's notebook. A chapter whose rules cannot be
    applied (an unreadable record) gives its claims' verdict "—" with the reason, never an
    exception: the scorecard must still render."""
    if isinstance(chapters, str):
        chapters = [chapters]
    names = list(CHAPTERS) if chapters is None else list(chapters)
    unknown = [c for c in names if c not in CHAPTERS]
    if unknown:
        raise ValueError(f"no recorded verdicts for chapter(s) {unknown}; choose from {', '.join(CHAPTERS)}")
    if not isinstance(preset, str) or not preset:
        raise ValueError(f"preset must be a preset name such as 'full', got {preset!r}")
    out: dict[str, dict] = {}
    for name in names:
        try:
            out.update(CHAPTERS[name](preset))
        except (OSError, ValueError, KeyError) as exc:
            failed = {"recorded": False, "verdict": "—", "preset": preset,
                      "reason": f"the records of {name} could not be judged ({type(exc).__name__}: "
                                f"{str(exc)[:160]})"}
            out.update({cid: dict(failed) for cid in sorted(get_chapter(name).expected_claims)})
    return out
