"""The chapters: where ``labs/`` is, the numbered notebooks in it, and chapter names resolved to
notebooks (a number ``4``/``04``, a file stem ``04_hdm`` or a name ``hdm``)."""
from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import CliError

__all__ = ["CHAPTER_PATTERN", "labs_dir", "list_chapters", "resolve_chapters"]

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


def list_chapters(folder: Path | None = None) -> list[Path]:
    folder = labs_dir() if folder is None else Path(folder)
    if not folder.is_dir():
        raise CliError(f"no chapters folder at {folder}; run from a poselab checkout or set "
                       "POSELAB_LABS to the labs/ folder")
    return sorted(p for p in folder.iterdir() if CHAPTER_PATTERN.match(p.name))


def resolve_chapters(names: list[str], folder: Path | None = None) -> list[Path]:
    """Map chapter names (number, stem, or stem without number) to notebook paths."""
    chapters = list_chapters(folder)
    if not names:
        return chapters
    by_key: dict[str, Path] = {}
    for path in chapters:
        number, rest = CHAPTER_PATTERN.match(path.name).groups()
        for key in (number, str(int(number)), path.stem, rest):
            by_key.setdefault(key.lower(), path)
    resolved = []
    for name in names:
        key = name.lower().removesuffix(".ipynb")
        key = Path(key).name
        if key not in by_key:
            available = ", ".join(p.stem for p in chapters) or "none"
            raise CliError(f"unknown chapter {name!r}; available: {available}")
        if by_key[key] not in resolved:
            resolved.append(by_key[key])
    return resolved
