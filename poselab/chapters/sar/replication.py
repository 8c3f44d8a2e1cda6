"""Chapter 05's recorded replication of the claims computed *on* trained models: the out-of-crop
errors (§3.3, Fig. 3) and the multi-person detections (§4.3), recorded per recipe and seed, and
judged with the rule of the chapter's live run.

``poselab replicate 05 --preset full --seeds 0 1 2 3 4`` trains the chapter's recipes and then,
per seed, the derived steps of :func:`derived_steps` (records
``results/replications/05_sar/<step>__<preset>__seed<N>.json``, with commit, source digest,
threads, wall and CPU time; :func:`poselab.experiments.replicate.derive`):

- ``out_of_crop_sar_aux`` and ``out_of_crop_mse``: each seed's cached headline SAR / heatmap model
  scored on the cut crops of its own evaluation set
  (:func:`poselab.chapters.sar.out_of_crop.out_of_crop_record`);
- ``multi_person_sar`` and ``multi_person_heatmap``: the bottom-up toy of each kind trained from
  scratch with the seed at the preset's budget and scored over every threshold
  (:func:`poselab.chapters.sar.multi_person.bottom_up_record`). These models are not recipes, so
  the base run (the headline SAR's / the heatmap's) only gives the seed and the order of work.

:func:`recorded_verdicts` judges them with the live rules
(:func:`~poselab.chapters.sar.out_of_crop.out_of_crop_judge`,
:func:`~poselab.chapters.sar.multi_person.detection_verdict`), paired by seed, beside the
chapter's other recorded verdicts (:func:`poselab.chapters.sar.analysis.recorded_verdicts`).
"""
from __future__ import annotations

from poselab.chapters.sar import analysis as sar_analysis
from poselab.chapters.sar import multi_person
from poselab.chapters.sar import out_of_crop
from poselab.chapters.sar.recipes import HEADLINE_SAR
from poselab.experiments.replicate import DerivedStep, recorded_derived_group_verdict

__all__ = ["STEM", "OUT_OF_CROP_STEPS", "MULTI_PERSON_STEPS", "MULTI_PERSON_BASES", "derived_steps",
           "recorded_out_of_crop", "recorded_multi_person", "recorded_verdicts"]

STEM = "05_sar"
#: compared recipe → its out-of-crop step (ours, the headline SAR, first; the heatmap second)
OUT_OF_CROP_STEPS = {HEADLINE_SAR: f"out_of_crop_{HEADLINE_SAR}", "mse": "out_of_crop_mse"}
#: bottom-up kind → its multi-person step
MULTI_PERSON_STEPS = {"sar": "multi_person_sar", "heatmap": "multi_person_heatmap"}
#: bottom-up kind → the recipe whose run (its seed) the step is attached to
MULTI_PERSON_BASES = {"sar": HEADLINE_SAR, "heatmap": "mse"}


def derived_steps() -> list:
    """What chapter 05 registers with ``poselab replicate`` (``Chapter.replication_derived``)."""
    steps = [DerivedStep(name, recipe, out_of_crop.out_of_crop_record) for recipe, name in OUT_OF_CROP_STEPS.items()]
    steps += [DerivedStep(name, MULTI_PERSON_BASES[kind], multi_person.multi_person_record(kind))
              for kind, name in MULTI_PERSON_STEPS.items()]
    return steps


def recorded_out_of_crop(floor: float | None = 0.05, min_effect: float = 1.0, min_joints: int = 30,
                         preset: str = "full", root=None) -> dict:
    """``sar.out_of_crop.error`` on the recorded replication: the headline SAR against the heatmap
    (``mse``), :func:`~poselab.chapters.sar.out_of_crop.out_of_crop_from_records` with the live
    run's floor and minimum effect (px)."""
    names = {name: recipe for recipe, name in OUT_OF_CROP_STEPS.items()}
    ours, theirs = OUT_OF_CROP_STEPS

    def judge(groups):
        return out_of_crop.out_of_crop_from_records({names[n]: recs for n, recs in groups.items()}, ours, theirs,
                                                    floor=floor, min_effect=min_effect, min_joints=min_joints)
    return recorded_derived_group_verdict(STEM, list(names), judge, preset=preset, root=root)


def recorded_multi_person(precision: float = 0.5, min_effect: float = 0.02, floor: float | None = 0.1,
                          preset: str = "full", root=None) -> dict:
    """``sar.multi_person.recall`` on the recorded replication:
    :func:`~poselab.chapters.sar.multi_person.detection_from_records` with the live run's
    precision, minimum effect and best-F1 floor."""
    kinds = {name: kind for kind, name in MULTI_PERSON_STEPS.items()}

    def judge(groups):
        return multi_person.detection_from_records({kinds[n]: recs for n, recs in groups.items()},
                                                   precision=precision, min_effect=min_effect, floor=floor)
    return recorded_derived_group_verdict(STEM, list(kinds), judge, preset=preset, root=root)


def recorded_verdicts(floor: float | None = 0.05, min_share: float = 0.5, min_effect: float = 0.02,
                      min_px: float = 1.0, precision: float = 0.5, multi_min_effect: float = 0.02,
                      f1_floor: float | None = 0.1, preset: str = "full", root=None) -> dict:
    """Every empirical claim of the chapter judged on the recorded replication: the recipe
    comparisons (:func:`poselab.chapters.sar.analysis.recorded_verdicts`, on the run records) and
    the two claims computed on the models (:func:`recorded_out_of_crop`,
    :func:`recorded_multi_person`, on the derived records). ``floor``: the AP floor;
    ``min_share``, ``min_effect``: the recipe comparisons'; ``min_px``: the out-of-crop minimum
    effect; ``precision``, ``multi_min_effect``, ``f1_floor``: the multi-person rule's."""
    out = dict(sar_analysis.recorded_verdicts(floor=floor, min_share=min_share, min_effect=min_effect,
                                              preset=preset, root=root))
    out["sar.out_of_crop.error"] = recorded_out_of_crop(floor=floor, min_effect=min_px, preset=preset, root=root)
    out["sar.multi_person.recall"] = recorded_multi_person(precision=precision, min_effect=multi_min_effect,
                                                           floor=f1_floor, preset=preset, root=root)
    return out
