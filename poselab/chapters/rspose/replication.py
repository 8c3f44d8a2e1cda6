"""Chapter 02's recorded replication beyond the base runs' metrics: claims measured *on* the
trained models, recorded per seed as derived records and judged with the rule of the live run.

- ``rspose.scaling.minmax_keeps_ap`` (App. C): per seed, the ``spatial_rs_is`` model's AP with raw
  and with per-keypoint min-max scaled confidences (:func:`minmax_record`, the derived step
  :data:`MINMAX_DERIVED`), judged by :func:`poselab.chapters.rspose.analysis.minmax_verdict`
  paired by seed (:func:`minmax_from_records`, :func:`recorded_minmax_verdict`).

``poselab replicate 02 --preset full --seeds 0 1 2 3 4`` trains (or finds) the base runs, then
computes each derived record on the cached model and writes
``results/replications/02_rspose/<name>__<preset>__seed<N>.json``
(:func:`poselab.experiments.replicate.derive`).

``rspose.gradients.mse_negatives_dominate`` has no derived step: the live cell scores the share
of MSE's gradient on the negatives *along* training (probes every few steps during the run), and
a recorded run keeps only its final weights, so the same per-run value cannot be computed from it.
"""
from __future__ import annotations

import math

from poselab import claims
from poselab.chapters.rspose.analysis import MINMAX_MARGIN, MINMAX_RECIPE, minmax_scaling_aps, minmax_verdict
from poselab.experiments import GENERATED_VAL, resolve_run_data
from poselab.experiments.presets import Preset
from poselab.experiments.replicate import DerivedStep, recorded_derived_verdict

__all__ = ["MINMAX_DERIVED", "MINMAX_SCORE_PERSONS", "minmax_record", "minmax_from_records",
           "recorded_minmax_verdict", "derived_steps", "gradient_share_recorded"]

#: the derived record of App. C's claim: ``minmax_spatial_rs_is__<preset>__seed<N>.json``
MINMAX_DERIVED = f"minmax_{MINMAX_RECIPE}"
#: training crops for the min-max statistics: the chapter's ``score_persons`` (its fast mode: 64)
MINMAX_SCORE_PERSONS = {"fast": 64}
_DEFAULT_SCORE_PERSONS = 256
_CHAPTER = "02_rspose"


def minmax_record(run, preset=None) -> dict:
    """The derived record of one seed's ``spatial_rs_is`` run: :func:`minmax_scaling_aps` on the
    run's first evaluation set (generated val for synth data) with the run's own preset and data,
    plus what the judge checks the records against (set, data, geometry, crops)."""
    run_preset = Preset(**run.config["preset"])   # the run's own budget (also for unnamed presets)
    data = run.data if isinstance(run.data, str) else "synth"
    train_json, sets = resolve_run_data(data, run_preset)
    set_name = GENERATED_VAL if GENERATED_VAL in sets else next(iter(sets))
    persons = MINMAX_SCORE_PERSONS.get(getattr(preset, "name", preset) or run_preset.name, _DEFAULT_SCORE_PERSONS)
    aps = minmax_scaling_aps(run, train_json, sets[set_name], score_persons=persons, set_name=set_name)
    g = run.geometry()
    return {"recipe": run.recipe, "seed": int(run.seed), "raw": aps["raw"], "min-max": aps["min-max"],
            "set": set_name, "data": data, "score_persons": persons,
            "input_size": [int(v) for v in g.input_size], "heatmap_size": [int(v) for v in g.heatmap_size]}


_SHARED = ("recipe", "set", "data", "score_persons", "input_size", "heatmap_size")


def minmax_from_records(records, *, margin: float = MINMAX_MARGIN) -> claims.Verdict:
    """:func:`~poselab.chapters.rspose.analysis.minmax_verdict` on the derived records (one per
    seed, as :func:`poselab.experiments.replicate.recorded_derived` returns them), paired by seed
    as the live cell pairs them. Records that are not :func:`minmax_record` records, hold another
    seed's values, or were scored on other data, sets, recipes or crop counts raise ValueError
    naming them (the recorded verdict then says it cannot answer yet)."""
    records = list(records)
    if not records:
        raise ValueError(f"no {MINMAX_DERIVED} records")
    need = {"raw", "min-max", "seed", *_SHARED}
    bad = [r.get("seed", i) if isinstance(r, dict) else i for i, r in enumerate(records)
           if not (isinstance(r, dict) and {"seed", "preset", "values"} <= set(r) and isinstance(r["values"], dict)
                   and need <= set(r["values"]))]
    if bad:
        raise ValueError(f"records of seed(s) {bad} are not {MINMAX_DERIVED} records (need seed, preset and values "
                         f"with {', '.join(sorted(need))}: replication.minmax_record)")
    mixed = [int(r["seed"]) for r in records if int(r["values"]["seed"]) != int(r["seed"])]
    if mixed:
        raise ValueError(f"records of seed(s) {mixed} hold another seed's values")
    first = records[0]
    odd = [int(r["seed"]) for r in records if r["preset"] != first["preset"]
           or any(r["values"][k] != first["values"][k] for k in _SHARED)]
    if odd:
        raise ValueError(f"seed(s) {odd} were scored differently from seed {first['seed']} (other preset, recipe, "
                         f"set, data, crops or geometry): {MINMAX_DERIVED} records are paired only when alike")
    if first["values"]["recipe"] != MINMAX_RECIPE:
        raise ValueError(f"{MINMAX_DERIVED} records hold recipe {first['values']['recipe']!r}, the claim is about "
                         f"{MINMAX_RECIPE!r}")
    v = first["values"]
    return minmax_verdict([r["values"]["raw"] for r in records], [r["values"]["min-max"] for r in records],
                          seeds=[int(r["seed"]) for r in records], margin=margin, preset=first["preset"],
                          data=f"{v['data']} ({v['set']}), min-max from {v['score_persons']} training crops",
                          input_size=v["input_size"], heatmap_size=v["heatmap_size"])


def recorded_minmax_verdict(*, margin: float = MINMAX_MARGIN, preset: str = "full", root=None) -> dict:
    """``rspose.scaling.minmax_keeps_ap`` judged on the recorded replication
    (:func:`minmax_from_records` on ``results/replications/02_rspose/minmax_spatial_rs_is__<preset>__seed*.json``),
    in the shape of :func:`poselab.experiments.replicate.recorded_verdict`: "no recorded
    replication yet" with the command when there are none, "cannot answer yet" with the reason
    when the records cannot be paired."""
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"margin must be a finite AP difference > 0, got {margin!r}")
    return recorded_derived_verdict(_CHAPTER, MINMAX_DERIVED, lambda recs: minmax_from_records(recs, margin=margin),
                                    preset=preset, root=root)


def derived_steps() -> list:
    """What chapter 02 registers with ``poselab replicate`` (``Chapter.replication_derived``)."""
    return [DerivedStep(MINMAX_DERIVED, MINMAX_RECIPE, minmax_record)]


def gradient_share_recorded(preset: str = "full") -> dict:
    """The recorded-verdict entry of ``rspose.gradients.mse_negatives_dominate``: none, and why (in
    the shape of :func:`poselab.experiments.replicate.recorded_verdict`). The live cell averages
    MSE's negatives' share of Σ|g| over probes taken *during* each MSE run; a recorded run keeps its
    final weights and metrics, not its trajectory, so the replication cannot give the same per-run
    value (it would have to retrain each MSE run with the probe attached)."""
    return {"recorded": False, "verdict": "—", "preset": preset,
            "reason": "not judged on the recorded replication: the claim is scored along training (probes during "
                      "each MSE run), and a recorded run keeps only its final weights"}
