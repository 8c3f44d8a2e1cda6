"""poselab — a teaching lab that replays five papers on human pose estimation losses.

Core library, layer-first (each imports only the ones above it, never a chapter): skeleton, data,
codecs, models, losses, metrics, train, experiments (the engine: recipes, presets, cache, runner,
records). Above it: claims, scorecard, index, labs, the CLI, viz (generic renderers) and
``poselab.chapters`` — one package per chapter (its recipes, analyses, figures and widgets),
each registering itself in :mod:`poselab.chapters.registry`.

This façade imports :mod:`poselab.chapters` (cheap: each chapter's registration, no torch) and
asks :mod:`poselab._hooks` to import every chapter's recipes as soon as :mod:`poselab.experiments`
is loaded, so every chapter's recipes are registered wherever the engine runs — a notebook, the
CLI, or a spawned training worker (``python -m poselab.experiments.worker`` imports this package
first) — while ``import poselab`` alone stays light.
"""
from . import _hooks, chapters
from ._version import __version__

_hooks.after_experiments(chapters.load_recipes)

__all__ = ["__version__", "chapters"]
