"""The run cache: results and weights on disk under a key that covers everything that changes them.

Key = sha256 over (the recipe's fields, the preset's fields, the seed, the data fingerprint —
sha256 of every annotation json the run reads plus the generator version —, the poselab
version and a digest of the package's source). The source digest is what keeps the cache from
ever being silently stale: editing a loss, a codec, the training loop or a recipe module changes
the key, so the next call trains again. Left out of it: the presentation layers (``viz``, the
CLI, the claims ledger, the scorecard) and the chapter modules no recipe imports (a chapter's
``recipes.py`` and the chapter modules it imports, transitively, are in; its figures, widgets and
other analyses are out). The chapters' files are read as text: this module imports none.

Layout: ``<root>/<recipe name>/<key[:16]>/`` holding ``result.json``, ``weights.pt`` and one
``predictions_<set>.npz`` per evaluation set; a run is written to a temporary folder and renamed
into place, so a crash never leaves a half-written entry. Root: ``$POSELAB_CACHE_DIR``, else
``runs/cache`` of the checkout, else ``~/.cache/poselab/runs``.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["cache_root", "run_key", "file_sha256", "source_digest", "entry_dir", "list_entries"]

_PACKAGE = Path(__file__).resolve().parent.parent
_IGNORED = ("viz", "cli")
_IGNORED_FILES = ("cli.py", "claims.py", "scorecard.py", "index.py", "assignments.py", "bench.py",
                  os.path.join("experiments", "cli.py"), os.path.join("experiments", "records.py"),
                  os.path.join("experiments", "arena.py"), os.path.join("experiments", "verdicts.py"),
                  # records and orchestrates runs; what a run computes is the runner's and the loop's
                  os.path.join("experiments", "replicate.py"))


def cache_root(root: str | os.PathLike | None = None) -> Path:
    """Where runs are cached (see the module docstring)."""
    if root is not None:
        return Path(root)
    env = os.environ.get("POSELAB_CACHE_DIR")
    if env:
        return Path(env)
    checkout = _PACKAGE.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "labs").is_dir():
        return checkout / "runs" / "cache"
    return Path.home() / ".cache" / "poselab" / "runs"


@lru_cache(maxsize=64)
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file (memoised on path, mtime and size)."""
    st = os.stat(path)
    return _file_sha256(str(Path(path).resolve()), st.st_mtime_ns, st.st_size)


def _imported_chapter_files(path: Path) -> set[Path]:
    """The files of ``poselab/chapters`` that ``path`` imports (module- or function-level)."""
    chapters = _PACKAGE / "chapters"
    rel = path.relative_to(_PACKAGE.parent).with_suffix("").parts
    package = list(rel[:-1])  # a module's package (an __init__.py is its own package's file)
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = (package[: len(package) - node.level + 1] if node.level else [])
            module = ".".join(base + ([node.module] if node.module else []))
            targets = [module] + [f"{module}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            if parts[:2] != [_PACKAGE.name, "chapters"] or len(parts) < 3:
                continue
            for candidate in (chapters.joinpath(*parts[2:]).with_suffix(".py"),
                              chapters.joinpath(*parts[2:], "__init__.py")):
                if candidate.is_file() and candidate.name != "__init__.py":
                    found.add(candidate)
    return found


def _training_chapter_files() -> set[Path]:
    """The chapter modules training code can run: every chapter's ``recipes.py`` (its codecs,
    losses and models) and, transitively, the chapter modules they import. A chapter's figures,
    widgets and the analyses no recipe imports cannot change a run."""
    todo = sorted((_PACKAGE / "chapters").glob("*/recipes.py"))
    found: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in found:
            continue
        found.add(path)
        todo.extend(_imported_chapter_files(path) - found)
    return found


def source_digest() -> str:
    """sha256 over the package's Python sources that can change a training result: everything
    but the presentation layers and the chapter modules no recipe imports."""
    h = hashlib.sha256()
    used = _training_chapter_files()
    for path in sorted(_PACKAGE.rglob("*.py")):
        rel = path.relative_to(_PACKAGE)
        if rel.parts[0] in _IGNORED or str(rel) in _IGNORED_FILES:
            continue
        if rel.parts[0] == "chapters" and path not in used:
            continue
        h.update(str(rel).encode())
        h.update(file_sha256(path).encode())
    return h.hexdigest()


def run_key(parts: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``parts`` (sorted keys)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def entry_dir(recipe_name: str, key: str, root: str | os.PathLike | None = None) -> Path:
    return cache_root(root) / recipe_name / key[:16]


def list_entries(root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Every cached run's ``result.json`` (plus its folder under ``"path"``), newest first."""
    base = cache_root(root)
    out = []
    for result in base.glob("*/*/result.json"):
        try:
            rec = json.loads(result.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(rec, dict):
            continue  # not a run's result (hand-edited or foreign file): not listed
        rec["path"] = str(result.parent)
        out.append(rec)
    return sorted(out, key=lambda r: str(r.get("created", "")), reverse=True)
