"""The chapter registry: the one list of chapters that ``poselab list``/``run``, the scorecard, the
paper → code index, ``poselab replicate``, the capstone and the chapter tests read.

A chapter registers itself once, in its package's ``__init__.py`` (metadata only: no torch, no
plotly, so ``import poselab`` and ``poselab list`` stay light)::

    from poselab.chapters.registry import Chapter, register, replicating

    CHAPTER = register(Chapter(
        number=8, name="mypaper", stem="08_mypaper", title="MyPaper — what it claims",
        paper="mypaper-short-title.md", tag="MyPaper", claim_prefixes=("mypaper",),
        recipes=("mse", "mypaper"), replication_recipes=replicating(("mse", "mypaper")),
        expected_claims={"mypaper.loss.matches_formula"}, package=__name__))

and its recipes in ``<package>/recipes.py``, which :func:`load_recipes` imports as soon as
:mod:`poselab.experiments` is loaded (the package façade hooks it up: :mod:`poselab._hooks`).
:mod:`poselab.chapters` imports every subpackage (``pkgutil``), so a new folder under
``poselab/chapters/`` is found without an edit anywhere else. Nothing in the core library
(skeleton, data, codecs, models, losses, metrics, train, experiments) imports this module: a
chapter's replication recipes reach :mod:`poselab.experiments.replicate` through
:func:`poselab.experiments.replicate.register_chapter_recipes`, which :func:`load_recipes` (and a
later :func:`register`) calls.
"""
from __future__ import annotations

import importlib
import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

__all__ = ["Chapter", "register", "unregister", "chapters", "get_chapter", "claim_prefixes",
           "replicating", "load_recipes", "recipes_module"]

_STEM = re.compile(r"^(\d{2})_([A-Za-z0-9_]+)$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Chapter:
    """One chapter of the lab.

    Attributes:
        number: its place in the course (``0`` … ``99``); the notebook stem starts with it.
        name: short name (``"hdm"``): the package folder, and a name ``poselab run`` accepts.
        stem: the notebook's file stem (``"04_hdm"``), ``NN_`` + letters, digits, ``_``.
        title: one line for tables (the scorecard's heading of the chapter's claims).
        paper: the paper's file in ``shared/papers/`` (``""`` for a chapter without a paper).
        tag: the paper's name as docstrings cite it (``"HDM"`` in ``(HDM Eq. 5)``), for the index.
        claim_prefixes: first dotted parts of the chapter's claim ids (default: ``(name,)``).
        recipes: names of the recipes the chapter trains (registered by its ``recipes`` module;
            ``tests/test_chapter_registry.py`` checks they are registered).
        expected_claims: claim ids the chapter promises (its fast run must record them).
        replication_recipes: ``fn(preset) -> list[Recipe]``: what ``poselab replicate`` trains for
            this chapter (None: the chapter has no empirical training claim to replicate).
        replication_derived: ``fn() -> list[DerivedStep]``: what ``poselab replicate`` records per
            seed on top of the chapter's base runs (:class:`poselab.experiments.replicate.DerivedStep`,
            e.g. RCNet's post-hoc fits); None: nothing. Called when the engine loads.
        runs_last: the chapter reads the other chapters' claim ledgers (the capstone), so
            ``poselab run`` and the chapter tests run it after every other chapter, whatever its
            number (a chapter added after the capstone needs no renumbering).
        notebook: the notebook's path; None means ``<labs folder>/<stem>.ipynb``.
        package: the module that registered it (set by :func:`register` callers; informational).
    """

    number: int
    name: str
    stem: str
    title: str
    paper: str = ""
    tag: str = ""
    claim_prefixes: tuple[str, ...] = ()
    recipes: tuple[str, ...] = ()
    expected_claims: frozenset[str] = field(default_factory=frozenset)
    replication_recipes: Callable | None = None
    replication_derived: Callable | None = None
    runs_last: bool = False
    notebook: Path | None = None
    package: str = ""

    def __post_init__(self):
        if not isinstance(self.number, int) or isinstance(self.number, bool) or not 0 <= self.number <= 99:
            raise ValueError(f"chapter number must be an int in 0..99, got {self.number!r}")
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(f"chapter name must be lower-case letters, digits and '_' (a package "
                             f"name), got {self.name!r}")
        m = _STEM.match(self.stem) if isinstance(self.stem, str) else None
        if not m or int(m.group(1)) != self.number:
            raise ValueError(f"chapter stem must be '{self.number:02d}_<name>' (the notebook's file "
                             f"stem, starting with the chapter number), got {self.stem!r}")
        if not isinstance(self.title, str) or not self.title.strip():
            raise ValueError(f"chapter {self.stem}: title must be a non-empty string")
        for attr in ("paper", "tag", "package"):
            if not isinstance(getattr(self, attr), str):
                raise TypeError(f"chapter {self.stem}: {attr} must be a string, got "
                                f"{type(getattr(self, attr)).__name__}")
        for attr in ("claim_prefixes", "recipes", "expected_claims"):
            value = getattr(self, attr)
            if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
                raise TypeError(f"chapter {self.stem}: {attr} must be a collection of non-empty "
                                f"strings, got {value!r}")
        object.__setattr__(self, "claim_prefixes", tuple(self.claim_prefixes) or (self.name,))
        object.__setattr__(self, "recipes", tuple(self.recipes))
        object.__setattr__(self, "expected_claims", frozenset(self.expected_claims))
        if not isinstance(self.runs_last, bool):
            raise TypeError(f"chapter {self.stem}: runs_last must be a bool, got {self.runs_last!r}")
        if self.replication_recipes is not None and not callable(self.replication_recipes):
            raise TypeError(f"chapter {self.stem}: replication_recipes must be callable(preset) or None")
        if self.replication_derived is not None and not callable(self.replication_derived):
            raise TypeError(f"chapter {self.stem}: replication_derived must be callable() or None")
        if self.notebook is not None:
            object.__setattr__(self, "notebook", Path(self.notebook))
        bad = [c for c in self.expected_claims if c.split(".", 1)[0] not in self.claim_prefixes]
        if bad:
            raise ValueError(f"chapter {self.stem}: expected claims {sorted(bad)} do not start with "
                             f"one of its claim prefixes {self.claim_prefixes}")

    @property
    def label(self) -> str:
        """``"<title> (chapter NN)"``: how the scorecard names the chapter's claims."""
        return f"{self.title} (chapter {self.number:02d})"

    def keys(self) -> tuple[str, ...]:
        """Every name that selects this chapter: ``"04"``, ``"4"``, ``"04_hdm"``, ``"hdm"`` and
        the stem without its number."""
        return (f"{self.number:02d}", str(self.number), self.stem, self.name,
                self.stem.split("_", 1)[1])


_CHAPTERS: dict[str, Chapter] = {}


def register(chapter: Chapter) -> Chapter:
    """Add ``chapter`` to the registry (and its replication recipes to ``poselab replicate``).
    A number, name, stem or claim prefix another chapter already has raises ``ValueError``;
    the same stem registered again by the same package (a module re-imported) replaces it."""
    if not isinstance(chapter, Chapter):
        raise TypeError(f"register takes a Chapter, got {type(chapter).__name__}")
    previous = _CHAPTERS.get(chapter.stem)
    for other in _CHAPTERS.values():
        if other is previous and previous.package == chapter.package:
            continue
        clash = ("number" if other.number == chapter.number else "name" if other.name == chapter.name
                 else "stem" if other.stem == chapter.stem else None)
        shared = set(other.claim_prefixes) & set(chapter.claim_prefixes)
        if clash or shared:
            what = f"{clash} {getattr(chapter, clash)!r}" if clash else f"claim prefix {sorted(shared)}"
            raise ValueError(f"chapter {chapter.stem}: {what} is already taken by chapter "
                             f"{other.stem}; pick another")
    _CHAPTERS[chapter.stem] = chapter
    if _loaded:  # registered after the engine loaded (a chapter from another package, a test)
        _load(chapter)
    return chapter


def unregister(chapter: Chapter | str) -> None:
    """Remove a chapter (by Chapter or any of its keys); for tests that register a dummy one."""
    stem = chapter.stem if isinstance(chapter, Chapter) else get_chapter(chapter).stem
    _CHAPTERS.pop(stem, None)
    if _loaded:
        _replicate().unregister_chapter_recipes(stem)
        _replicate().unregister_chapter_derived(stem)


def chapters() -> list[Chapter]:
    """Every registered chapter, in course order (by number; a ``runs_last`` chapter last).
    (Importing this module imports :mod:`poselab.chapters` first, which has discovered every
    chapter package.)"""
    return sorted(_CHAPTERS.values(), key=lambda c: (c.runs_last, c.number))


def get_chapter(key: str | int) -> Chapter:
    """The chapter a number (``4``, ``"04"``), stem (``"04_hdm"``, ``"04_hdm.ipynb"``) or name
    (``"hdm"``) selects; an unknown key raises ``KeyError`` listing the chapters."""
    text = str(key).lower().removesuffix(".ipynb")
    text = Path(text).name
    for chapter in chapters():
        if text in chapter.keys():
            return chapter
    raise KeyError(f"unknown chapter {key!r}; registered: "
                   f"{', '.join(c.stem for c in chapters()) or 'none'}")


def claim_prefixes() -> dict[str, Chapter]:
    """Claim-id prefix → its chapter, in course order."""
    return {p: c for c in chapters() for p in c.claim_prefixes}



def replicating(names: Sequence[str] | Callable[[], Sequence[str]] | None = None) -> Callable:
    """A chapter's ``replication_recipes``: ``fn(preset) -> list[Recipe]`` giving the registered
    recipes ``names`` (or ``names()``, read when the replication is planned; None: every
    registered recipe), each adapted to the preset as the runner will train it."""
    def recipes(preset) -> list:
        # deferred: this module is imported with `import poselab`; the engine loads only here
        from poselab.experiments.registry import RECIPES, adapt_to_preset, get_recipe
        chosen = sorted(RECIPES) if names is None else names() if callable(names) else names
        return [adapt_to_preset(get_recipe(n), preset) for n in chosen]
    return recipes


def recipes_module(chapter: Chapter, attribute: str | None = None):
    """The chapter's ``<package>.recipes`` module (or one of its attributes), imported on call;
    None when the chapter has no such module."""
    if not chapter.package or importlib.util.find_spec(f"{chapter.package}.recipes") is None:
        return None
    module = importlib.import_module(f"{chapter.package}.recipes")
    return module if attribute is None else getattr(module, attribute)


_loaded = False


def _replicate():
    # deferred: the engine (torch) loads with poselab.experiments, never with `import poselab`
    from poselab.experiments import replicate
    return replicate


def _load(chapter: Chapter) -> None:
    recipes_module(chapter)
    if chapter.replication_recipes is not None:
        _replicate().register_chapter_recipes(chapter.stem, chapter.replication_recipes)
    if chapter.replication_derived is not None:
        _replicate().register_chapter_derived(chapter.stem, chapter.replication_derived)  # resolved on first use


def load_recipes() -> list[str]:
    """Import every registered chapter's ``recipes`` module (registering its recipes with
    :mod:`poselab.experiments`) and hand its replication recipes to ``poselab replicate``; the
    package façade runs this when :mod:`poselab.experiments` is loaded (:mod:`poselab._hooks`).
    Returns the stems loaded. Chapters registered afterwards are loaded as they register."""
    global _loaded
    _loaded = True
    for chapter in chapters():
        _load(chapter)
    return [c.stem for c in chapters()]
