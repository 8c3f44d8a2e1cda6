"""The run cache: results and weights on disk under a key that covers everything that changes them.

Key = sha256 over (the recipe's fields, the preset's fields, the seed, the data fingerprint —
sha256 of every annotation json the run reads plus the generator version —, the poselab
version and a digest of the package's source). The source digest is what keeps the cache from
ever being silently stale: editing a loss, a codec, the training loop or a recipe module changes
the key, so the next call trains again. Left out of it: the presentation layers (``viz``,
``widgets``, the CLI, the claims ledger, the scorecard), and the ``analysis`` modules that no
training code imports (found by scanning ``experiments/`` for analysis imports, transitively).

Layout: ``<root>/<recipe name>/<key[:16]>/`` holding ``result.json``, ``weights.pt`` and one
``predictions_<set>.npz`` per evaluation set; a run is written to a temporary folder and renamed
into place, so a crash never leaves a half-written entry. Root: ``$POSELAB_CACHE_DIR``, else
``runs/cache`` of the checkout, else ``~/.cache/poselab/runs``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["cache_root", "run_key", "file_sha256", "source_digest", "entry_dir", "list_entries"]

_PACKAGE = Path(__file__).resolve().parent.parent
_IGNORED = ("viz", "widgets")
_IGNORED_FILES = ("cli.py", "claims.py", "scorecard.py", "index.py", "assignments.py", "bench.py",
                  os.path.join("experiments", "cli.py"), os.path.join("experiments", "records.py"),
                  os.path.join("experiments", "arena.py"), os.path.join("experiments", "verdicts.py"))


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


_ANALYSIS_IMPORT = re.compile(r"analysis(?:\.|\s+import\s+)(\w+)")


def _training_analysis_modules() -> set[str]:
    """The ``poselab/analysis`` modules training code imports (recipes' builders live in
    ``experiments/``; some reuse an analysis module, e.g. HDM's max-anchored head), followed
    transitively. The other analysis modules (figures' numbers) cannot change a run."""
    sources = list((_PACKAGE / "experiments").rglob("*.py"))
    found: set[str] = set()
    while sources:
        path = sources.pop()
        text = path.read_text()
        names = _ANALYSIS_IMPORT.findall(text)
        if path.parent.name == "analysis":  # relative imports between analysis modules
            names += re.findall(r"from \.(\w+) import", text) + re.findall(r"from \. import (\w+)", text)
        for name in names:
            path = _PACKAGE / "analysis" / f"{name}.py"
            if name not in found and path.is_file():
                found.add(name)
                sources.append(path)
    return found


def source_digest() -> str:
    """sha256 over the package's Python sources that can change a training result: everything
    but the presentation layers and the analysis modules no training code imports."""
    h = hashlib.sha256()
    used = _training_analysis_modules()
    for path in sorted(_PACKAGE.rglob("*.py")):
        rel = path.relative_to(_PACKAGE)
        if rel.parts[0] in _IGNORED or str(rel) in _IGNORED_FILES:
            continue
        if rel.parts[0] == "analysis" and path.stem not in used and path.stem != "__init__":
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
