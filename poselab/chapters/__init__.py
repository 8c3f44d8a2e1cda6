"""poselab.chapters: one package per chapter, holding its lab parts (recipes, analyses, figures,
widgets), each registering itself once in its ``__init__.py`` (:mod:`.registry`).

Importing this package imports every subpackage (found with ``pkgutil``), so a chapter added as a
new folder is registered without an edit in a shared file. A chapter's ``__init__`` is its
registration only (no torch, plotly or ipywidgets: ``import poselab`` and ``poselab list`` stay
light); its ``recipes.py`` is imported by :func:`load_recipes` once :mod:`poselab.experiments`
is loaded, and its figures and widgets when a notebook imports them. The core library never
imports this package; :mod:`poselab` (the package façade) hooks :func:`load_recipes` to the
engine's loading, so ``poselab.experiments.get_recipe("emd")`` finds every chapter's recipes in
any process, training workers included.
"""
from __future__ import annotations

import importlib
import pkgutil

from .registry import Chapter, chapters, claim_prefixes, get_chapter, load_recipes, register, unregister

__all__ = ["Chapter", "register", "unregister", "chapters", "get_chapter", "claim_prefixes",
           "discover", "load_recipes"]


def discover() -> list[str]:
    """Import every chapter subpackage of this folder (each registers itself); return their names."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.ispkg and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
            found.append(info.name)
    return found


discover()
