"""The run cache: results and weights on disk under a key that covers everything that changes them.

Key = sha256 over (the recipe's fields, the preset's fields, the seed, the data fingerprint —
sha256 of every annotation json the run reads plus the generator version —, the poselab
version and a digest of the package's source). The source digest is what keeps the cache from
ever being silently stale: editing a loss, a codec, the training loop or a recipe module changes
the key, so the next call trains again. Only the presentation layers (``viz``, ``widgets``, the
CLI and the claims ledger) are left out of it.

Layout: ``<root>/<recipe name>/<key[:16]>/`` holding ``result.json``, ``weights.pt`` and one
``predictions_<set>.npz`` per evaluation set; a run is written to a temporary folder and renamed
into place, so a crash never leaves a half-written entry. Root: ``$POSELAB_CACHE_DIR``, else
``runs/cache`` of the checkout, else ``~/.cache/poselab/runs``.
"""
from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["cache_root", "run_key", "file_sha256", "source_digest", "entry_dir", "list_entries"]

_PACKAGE = Path(__file__).resolve().parent.parent
_IGNORED = ("viz", "widgets")
_IGNORED_FILES = ("cli.py", "claims.py", os.path.join("experiments", "cli.py"))


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


def source_digest() -> str:
    """sha256 over the package's Python sources that can change a training result."""
    h = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*.py")):
        rel = path.relative_to(_PACKAGE)
        if rel.parts[0] in _IGNORED or str(rel) in _IGNORED_FILES:
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
        rec["path"] = str(result.parent)
        out.append(rec)
    return sorted(out, key=lambda r: r.get("created", ""), reverse=True)
