"""poselab — a teaching lab that replays five papers on human pose estimation losses.

Core library, layer-first (each imports only the ones above it, never a chapter): skeleton, data,
codecs, models, losses, metrics, train, experiments (the engine: recipes, presets, cache, runner,
records). Above it: claims, scorecard, index, labs, the CLI, viz (generic renderers) and
``poselab.chapters`` — one package per chapter (its recipes, analyses, figures and widgets),
each registering itself in :mod:`poselab.chapters.registry`.

This façade imports :mod:`poselab.chapters` (cheap: each chapter's metadata and recipes), so every
chapter's recipes are registered wherever ``poselab`` is imported — a notebook, the CLI, or a
spawned training worker (``python -m poselab.experiments.worker`` imports this package first).
"""
from ._version import __version__
from . import chapters  # noqa: F401,E402  (registers every chapter and its recipes)

__all__ = ["__version__", "chapters"]
