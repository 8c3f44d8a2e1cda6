"""Chapter 04's recorded replication of the claims read off the trained models: the heatmap
compactness of each recorded ``mse`` and ``emd`` model, recorded per seed, and
``hdm.training.compactness`` judged on those records with the rule of the live run.

``poselab replicate 04 --preset full --seeds 0 1 2 3 4`` trains (or finds) each seed's runs and
records them; then, per seed, the derived steps ``compactness_mse`` and ``compactness_emd`` run
:func:`poselab.chapters.hdm.training.compactness_record` (the function the live chapter runs on
its own models) on that seed's model of the recipe, and the values land in
``results/replications/04_hdm/compactness_<recipe>__<preset>__seed<N>.json`` (with commit, source
digest, threads, wall and CPU time; :func:`poselab.experiments.replicate.derive`).
:func:`recorded_compactness` applies :func:`poselab.chapters.hdm.training.compactness_judge`
(the live rule, paired by seed) to them.

The chapter's other sub-pixel claim, ``hdm.ablation.subpixel_beats_naive``, is decided on the
loss's converged minimisers (a math claim, no trained model), so it has nothing to record here.
"""
from __future__ import annotations

from typing import Any

from poselab.chapters.hdm.training import COMPACTNESS_RECIPES, compactness_judge, compactness_record
from poselab.experiments.replicate import DerivedStep, recorded_derived_group_verdict

__all__ = ["COMPACTNESS_STEPS", "derived_steps", "rows_from_records", "recorded_compactness"]

#: derived step name → the recipe whose model it measures (one step per recipe the claim reads)
COMPACTNESS_STEPS = {f"compactness_{r}": r for r in COMPACTNESS_RECIPES}


def derived_steps() -> list:
    """What the chapter registers with ``poselab replicate`` (``Chapter.replication_derived``)."""
    return [DerivedStep(name, recipe, compactness_record) for name, recipe in COMPACTNESS_STEPS.items()]


def rows_from_records(records: dict[str, list[dict]]) -> dict[str, list[dict[str, Any]]]:
    """``{recipe: [per-run record]}`` of :func:`compactness_judge` from the derived records
    ``{step name: [record by seed]}``. A record whose values do not belong to its file (another
    seed, another recipe, no values) raises ValueError naming it; JSON's null (a NaN measure) is
    read back as NaN."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for name, recs in records.items():
        if name not in COMPACTNESS_STEPS:
            raise ValueError(f"{name!r} is not one of chapter 04's compactness steps {sorted(COMPACTNESS_STEPS)}")
        recipe = COMPACTNESS_STEPS[name]
        for rec in recs:
            values = rec.get("values") if isinstance(rec, dict) else None
            where = f"{name} record of seed {rec.get('seed') if isinstance(rec, dict) else '?'}"
            if not isinstance(values, dict) or "seed" not in values or "recipe" not in values:
                raise ValueError(f"the {where} holds no compactness values (recorded by another version?); "
                                 "delete it to compute it again")
            base = (rec.get("base") or {}).get("recipe", recipe)
            if int(values["seed"]) != int(rec["seed"]) or values["recipe"] != recipe or base != recipe:
                raise ValueError(f"the {where} holds {values['recipe']} seed {values['seed']} (base {base}): "
                                 "not its own run; delete it to compute it again")
            stats = values.get("stats")
            if isinstance(stats, dict):
                values = {**values, "stats": {k: float("nan") if v is None else v for k, v in stats.items()}}
            rows.setdefault(recipe, []).append(values)
    return rows


def recorded_compactness(preset: str = "full", root=None) -> dict:
    """``hdm.training.compactness`` judged on chapter 04's derived records at ``preset``
    (:func:`poselab.experiments.replicate.recorded_derived_group_verdict`), in the shape of
    :func:`poselab.experiments.replicate.recorded_verdict`: "no recorded replication yet" with
    the command where there are none, "cannot answer yet" where one recipe's records are missing."""
    return recorded_derived_group_verdict("04_hdm", list(COMPACTNESS_STEPS),
                                          lambda recs: compactness_judge(rows_from_records(recs)),
                                          preset=preset, root=root)
