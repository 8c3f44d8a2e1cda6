"""The chapters' notebooks: where ``labs/`` is, and chapter names resolved to notebooks.

The chapters come from the registry (:mod:`poselab.chapters.registry`): each registered chapter's
notebook (``<labs folder>/<stem>.ipynb`` unless the chapter names its own), plus any other
``NN_name.ipynb`` in the labs folder (a notebook of one's own, or a folder given by
``POSELAB_LABS``). A chapter is selected by number (``4``/``04``), file stem (``04_hdm``), name
(``hdm``) or stem without its number (``train_in_a_minute``).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from .chapters.registry import Chapter, chapters
from .errors import CliError

__all__ = ["CHAPTER_PATTERN", "labs_dir", "notebook_of", "list_chapters", "resolve_chapters"]

CHAPTER_PATTERN = re.compile(r"^(\d{2})_([A-Za-z0-9_]+)\.ipynb$")


def labs_dir() -> Path:
    """The chapters folder: env ``POSELAB_LABS``, else ``labs/`` of the checkout, else ./labs."""
    env = os.environ.get("POSELAB_LABS")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parent.parent / "labs"
    if checkout.is_dir():
        return checkout
    return Path.cwd() / "labs"


def notebook_of(chapter: Chapter, folder: Path | None = None) -> Path:
    """A registered chapter's notebook path (its own ``notebook``, else ``folder/<stem>.ipynb``)."""
    if chapter.notebook is not None:
        return chapter.notebook
    return (labs_dir() if folder is None else Path(folder)) / f"{chapter.stem}.ipynb"


def list_chapters(folder: Path | None = None) -> list[Path]:
    """Every chapter notebook: the registered chapters' notebooks that exist and the other
    ``NN_name.ipynb`` files of the labs folder, sorted by file name except that a ``runs_last``
    chapter (the capstone, which reads the others' ledgers) comes last."""
    folder = labs_dir() if folder is None else Path(folder)
    if not folder.is_dir():
        raise CliError(f"no chapters folder at {folder}; run from a poselab checkout or set "
                       "POSELAB_LABS to the labs/ folder")
    found = {p.name: p for p in folder.iterdir() if CHAPTER_PATTERN.match(p.name)}
    last = set()
    for chapter in chapters():
        path = notebook_of(chapter, folder)
        if path.is_file():
            found.setdefault(path.name, path)
            if chapter.runs_last:
                last.add(path.name)
    return [found[name] for name in sorted(found, key=lambda n: (n in last, n))]


def resolve_chapters(names: list[str], folder: Path | None = None) -> list[Path]:
    """Map chapter names (number, stem, registered name, or stem without number) to notebooks."""
    notebooks = list_chapters(folder)
    if not names:
        return notebooks
    by_key: dict[str, Path] = {}
    for path in notebooks:
        number, rest = CHAPTER_PATTERN.match(path.name).groups()
        for key in (number, str(int(number)), path.stem, rest):
            by_key.setdefault(key.lower(), path)
    by_stem = {p.stem: p for p in notebooks}
    for chapter in chapters():
        if chapter.stem in by_stem:
            by_key.setdefault(chapter.name, by_stem[chapter.stem])
    resolved = []
    for name in names:
        key = name.lower().removesuffix(".ipynb")
        key = Path(key).name
        if key not in by_key:
            available = ", ".join(p.stem for p in notebooks) or "none"
            raise CliError(f"unknown chapter {name!r}; available: {available}")
        if by_key[key] not in resolved:
            resolved.append(by_key[key])
    return resolved
