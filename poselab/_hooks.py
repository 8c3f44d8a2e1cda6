"""One hook between the core and what sits above it, so the core never imports a chapter.

:mod:`poselab.experiments` calls :func:`experiments_loaded` as the last line of its
``__init__``; the package façade (:mod:`poselab`) registers, with :func:`after_experiments`,
the function that imports every chapter's recipes (:func:`poselab.chapters.load_recipes`). So any
process that imports the engine — a notebook, the CLI, a training worker — has every chapter's
recipes registered, while ``import poselab`` (``poselab list``, ``poselab --help``) stays light.
"""
from __future__ import annotations

from typing import Callable

__all__ = ["after_experiments", "experiments_loaded"]

_AFTER_EXPERIMENTS: list[Callable[[], object]] = []
_fired = False


def after_experiments(fn: Callable[[], object]) -> None:
    """Call ``fn()`` once :mod:`poselab.experiments` is loaded (now, if it already is)."""
    if not callable(fn):
        raise TypeError(f"after_experiments takes a callable, got {type(fn).__name__}")
    _AFTER_EXPERIMENTS.append(fn)
    if _fired:
        fn()


def experiments_loaded() -> None:
    """Run the registered callbacks (called by :mod:`poselab.experiments` when it is loaded)."""
    global _fired
    _fired = True
    for fn in list(_AFTER_EXPERIMENTS):
        fn()
