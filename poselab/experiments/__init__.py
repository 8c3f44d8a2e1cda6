"""poselab.experiments — the one way every chapter trains, caches and compares.

- :mod:`.registry`: :class:`Recipe` (frozen: head, codec, loss + hyper-parameters, score rule,
  model, backbone, optimiser) and the registries it names; :data:`RECIPES`.
- :mod:`.presets`: ``fast`` (CI), ``default`` (a student's run, ≤ 60 s of training per run on
  2 CPU cores), ``full`` (the calibrated scale).
- :mod:`.runner`: :func:`run_recipe` (train, evaluate exactly with pycocotools, cache) and
  :func:`compare` (recipes × seeds → one table).
- :mod:`.cache`: the disk cache, keyed by everything that changes a result.
- :mod:`.verdicts`: :func:`compare_recipes` — a claim's empirical verdict from a table (the
  rule of :mod:`poselab.claims`: t interval, minimum effect, baseline AP floor, evidence).
- :mod:`.arena`: every recipe on identical data and budget (the capstone).
- the paper chapters' recipes live in ``poselab/chapters/<chapter>/recipes.py``; this package
  never imports them: its last line fires :func:`poselab._hooks.experiments_loaded`, on which
  :mod:`poselab` (the package façade, imported before any submodule) imports every chapter's
  recipes, so ``RECIPES`` / ``get_recipe`` see them in every process (workers too).

    from poselab.experiments import compare
    table = compare(["mse", "emd"], seeds=(0, 1, 2), preset="default")
"""
from .._hooks import experiments_loaded
from .registry import (CODECS, LOSSES, MODELS, RECIPES, SCORES, Geometry, Recipe, get_recipe,
                       register_codec, register_loss, register_model, register_recipe,
                       register_score)
from .presets import PRESETS, Preset, chapter_preset, get_preset
from .runner import (GENERATED_VAL, REAL_SAMPLE, ComparisonTable, RunResult, compare,
                     resolve_run_data, run_recipe)
from .verdicts import compare_recipes, table_evidence
from .replicate import recorded_table, recorded_verdict  # the module stays poselab.experiments.replicate
from . import builtin  # noqa: F401  (registers mse, emd and the shared parts)

__all__ = ["Recipe", "RECIPES", "Geometry", "register_recipe", "register_codec", "register_loss",
           "register_score", "register_model", "get_recipe", "CODECS", "LOSSES", "SCORES",
           "MODELS", "Preset", "PRESETS", "get_preset", "chapter_preset", "run_recipe", "compare", "RunResult",
           "ComparisonTable", "resolve_run_data", "GENERATED_VAL", "REAL_SAMPLE", "compare_recipes",
           "table_evidence", "recorded_table", "recorded_verdict"]

experiments_loaded()  # the chapters' recipes register now (poselab._hooks; this package imports no chapter)
