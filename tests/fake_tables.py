"""A stand-in for a :func:`poselab.experiments.compare` table, holding only what the verdict
functions read (per-seed metric values, geometry, preset, validation curves), so a verdict can be
tested on constructed numbers — the counter-cases the audits name."""
from __future__ import annotations


class FakeRun:
    def __init__(self, recipe, seed, ap, preset="default", curve=None):
        self.recipe, self.seed, self.preset, self.data = recipe, seed, preset, "synth"
        self.metrics = {"generated val": {"AP": ap}}
        self.config = {"geometry": {"input_size": [128, 96], "heatmap_size": [64, 48]}}
        if curve is not None:
            self.history = {"val": [{"step": float(s), "AP": v} for s, v in curve],
                            "step_times": [0.1] * int(curve[-1][0])}


class FakeTable:
    """``FakeTable({recipe: [AP per seed]}, curve=lambda recipe, ap: [(step, AP), ...] or None)``."""

    def __init__(self, aps: dict, preset: str = "default", curve=None):
        self.results = [FakeRun(r, s, v, preset, curve(r, v) if curve else None)
                        for r, vals in aps.items() for s, v in enumerate(vals)]
        self.recipes = list(aps)

    def values(self, recipe, metric, set_name="generated val"):
        return [r.metrics[set_name][metric] for r in self.results if r.recipe == recipe]
