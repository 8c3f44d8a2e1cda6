"""Chapter 06's derived replication records: the heatmap study of §7.3–7.5 on each recorded
detection (``mse``) and integral-regression (``ipr``) model, and the two claims that read it judged
on those records with the rule of the chapter's live run.

``bcir.localization.ipr_more_localized`` and ``bcir.hard_cases.regression_better`` compare the
trained models' heatmaps and per-joint errors, which a run record's metrics do not hold. So
``poselab replicate 06`` records, per seed and after the base runs, one derived record per
compared recipe (:data:`DERIVED_NAMES`): :func:`heatmap_study_record` runs
:func:`~poselab.chapters.bcir.analysis.localization_study` on the seed's model (from the run
cache) and keeps :func:`~poselab.chapters.bcir.analysis.study_values` — the same reduction the
chapter's live cell applies — in
``results/replications/06_bcir/heatmap_study_<recipe>__<preset>__seed<N>.json``.

:func:`recorded_verdicts` pairs the two recipes' records by seed and applies
:func:`~poselab.chapters.bcir.analysis.localization_verdict` and
:func:`~poselab.chapters.bcir.analysis.hard_cases_verdict`, the live cell's judges.
"""
from __future__ import annotations

from typing import Any

from poselab.chapters.bcir import analysis as bcir
from poselab.experiments.presets import get_preset
from poselab.experiments.replicate import DerivedStep, recorded_derived_group_verdict
from poselab.experiments.runner import resolve_run_data

__all__ = ["DERIVED_NAMES", "CLAIMS", "STUDY_PERSONS", "study_persons", "heatmap_study_record", "derived_steps",
           "values_from_records", "recorded_verdicts"]

#: recipe → the name of its derived record (one derived step per compared recipe)
DERIVED_NAMES = {name: f"heatmap_study_{name}" for name in bcir.STUDY_RECIPES}
#: the claims judged on the heatmap studies, each with its one rule (live and recorded)
CLAIMS = {"bcir.localization.ipr_more_localized": bcir.localization_verdict,
          "bcir.hard_cases.regression_better": bcir.hard_cases_verdict}
#: generated-val persons studied per run: the chapter's ``study_persons`` (400; 60 in fast mode)
STUDY_PERSONS = {"fast": 60, "other": 400}


def study_persons(preset) -> int:
    """Persons of the evaluation set a run's heatmap study covers under ``preset`` (name or
    Preset): the chapter's default ``study_persons``, its fast-mode value under ``fast``."""
    name = getattr(preset, "name", preset)
    return STUDY_PERSONS["fast"] if name == "fast" else STUDY_PERSONS["other"]


def heatmap_study_record(run, preset) -> dict[str, Any]:
    """The derived record of one seed's ``mse`` or ``ipr`` run: its
    :func:`~poselab.chapters.bcir.analysis.localization_study` on the first evaluation set
    (β = 10, the chapter's windows, :func:`study_persons` persons), reduced by
    :func:`~poselab.chapters.bcir.analysis.study_values`. JSON-able (NaN is written as null)."""
    preset = get_preset(preset) if isinstance(preset, str) else preset
    set_name, ann = next(iter(resolve_run_data(run.data, preset)[1].items()))
    study = bcir.localization_study(run.model(), ann, preset.input_size, run.codec(), beta=10.0,
                                    max_persons=study_persons(preset))
    return bcir.study_values(run, study, set_name=set_name)


def derived_steps() -> list[DerivedStep]:
    """What the chapter registers with ``poselab replicate`` (``Chapter.replication_derived``):
    one heatmap study per compared recipe and seed."""
    return [DerivedStep(DERIVED_NAMES[name], name, heatmap_study_record) for name in bcir.STUDY_RECIPES]


def values_from_records(groups: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """``{recipe: [study_values row per seed]}`` for the judges from ``{derived name: [records]}``
    (:func:`poselab.experiments.replicate.recorded_derived_group_verdict`). A record whose values
    are not a heatmap study of its step's recipe and seed raises ValueError naming it; a step
    without records gives no rows (the judge then says which recipe is missing)."""
    out: dict[str, list[dict]] = {}
    for recipe, name in DERIVED_NAMES.items():
        rows = []
        for rec in groups.get(name, []):
            values = rec.get("values") if isinstance(rec, dict) else None
            where = f"derived record {name} seed {rec.get('seed') if isinstance(rec, dict) else '?'}"
            missing = [k for k in bcir.STUDY_FIELDS if not isinstance(values, dict) or k not in values]
            if missing:
                raise ValueError(f"{where} is not a heatmap study (lacks {missing}); delete it to compute it again")
            if values["recipe"] != recipe or int(values["seed"]) != int(rec["seed"]):
                raise ValueError(f"{where} holds the study of {values['recipe']} seed {values['seed']}; delete it "
                                 "to compute it again")
            rows.append(values)
        out[recipe] = rows
    return out


def recorded_verdicts(preset: str = "full", root=None) -> dict[str, dict]:
    """``{claim id: recorded verdict}`` of the two heatmap-study claims on the chapter's derived
    records at ``preset``, judged by the live rule (:data:`CLAIMS`); "no recorded replication
    yet" with the command where there are none, "cannot answer yet" while a recipe's records are
    missing."""
    names = [DERIVED_NAMES[name] for name in bcir.STUDY_RECIPES]

    def judge(rule):
        return lambda groups: rule(values_from_records(groups))
    return {claim: recorded_derived_group_verdict("06_bcir", names, judge(rule), preset=preset, root=root)
            for claim, rule in CLAIMS.items()}
