"""Recorded runs: ledgers of real runs with provenance, kept in ``results/`` and re-checkable.

A record is a JSON file::

    {"kind": "poselab-run-record", "command": "poselab train mse --preset full --seed 0 1 2 ...",
     "commit": "<git sha>", "dirty": false, "date": "2026-11-24T12:00:00+00:00",
     "machine": "...", "device": "cpu", "threads": 1, "wall_seconds": 1234.5,
     "source_digest": "...", "runs": [<RunResult dict>, ...]}

``verify_record(path)`` re-runs every run of a record (same recipe, preset, seed and data; no
cache) and compares the metrics; :func:`record_status` says whether the record is older than
the code it depends on (its ``source_digest`` differs from the package's now).
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import numbers
import operator
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from .cache import source_digest
from .presets import Preset
from .registry import Recipe
from .runner import RunResult, _jsonable, run_recipe

__all__ = ["check_record_path", "write_record", "load_record", "record_status", "verify_record", "record_results"]

KIND = "poselab-run-record"
_REPO = Path(__file__).resolve().parent.parent.parent


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=_REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def check_record_path(path: str | os.PathLike, *, force: bool = False) -> Path:
    """``path`` as a Path if a record can be written there (a ``.json`` file name, not a folder,
    not under a file, and not an existing file that is not a poselab run record — an annotation
    file, someone's notes — unless ``force``), else ``ValueError`` naming it — call it before
    training."""
    if not isinstance(path, (str, os.PathLike)) or str(path) == "":
        raise ValueError(f"record path must be a .json file name, got {path!r}")
    path = Path(path)
    if path.is_dir() or path.suffix.lower() != ".json":
        raise ValueError(f"record path {str(path)!r} must be a .json file (e.g. results/mse_full.json), "
                         "not a folder")
    if any(p.exists() and not p.is_dir() for p in path.parents):
        raise ValueError(f"record path {str(path)!r} is under a file, not a folder")
    if path.exists() and not force:
        try:
            load_record(path)
        except (OSError, ValueError):
            raise ValueError(f"{str(path)!r} exists and is not a poselab run record: refusing to "
                             "overwrite it (choose another file, or pass --force)") from None
    return path


def provenance() -> dict[str, Any]:
    """The checkout's commit, whether ``poselab/`` has uncommitted changes, and the time — take
    it when the runs start (the code can change while a long run trains)."""
    return {"commit": _git("rev-parse", "HEAD"),
            "dirty": bool(_git("status", "--porcelain", "--", "poselab")),
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def write_record(path: str | os.PathLike, results: Sequence[RunResult], command: str,
                 wall_seconds: float, started: dict[str, Any] | None = None, *,
                 force: bool = False) -> Path:
    """Write a record of ``results`` (runs that actually ran) with provenance to ``path``.

    ``started``: :func:`provenance` taken before the runs (default: now). The record's source
    digest is the one the runs trained with (each run's ``config``), not the package's now.
    """
    if not results or not all(isinstance(r, RunResult) for r in results):
        raise ValueError("a record needs at least one run (RunResult objects from run_recipe)")
    path = check_record_path(path, force=force)
    path.parent.mkdir(parents=True, exist_ok=True)
    started = dict(started or provenance())
    digests = {r.config.get("source_digest") for r in results}
    digest = digests.pop() if len(digests) == 1 and None not in digests else source_digest()
    rec = {"kind": KIND, "command": command, "commit": started.get("commit"),
           "dirty": bool(started.get("dirty")), "started": started.get("started"),
           "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "machine": f"{platform.platform()}; {os.cpu_count()} CPUs",
           "device": results[0].device, "threads": torch.get_num_threads(),
           "wall_seconds": float(wall_seconds), "source_digest": digest,
           "runs": [_jsonable(r.to_dict()) for r in results]}
    path.write_text(json.dumps(rec, indent=1) + "\n")
    return path


def load_record(path: str | os.PathLike) -> dict[str, Any]:
    """Read a record; a file that is not one raises ``ValueError`` naming it."""
    path = Path(path)
    try:
        rec = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no record at {path}; records live in results/ "
                                "(poselab results lists cached runs)") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable JSON record: {exc}") from None
    if not isinstance(rec, dict) or rec.get("kind") != KIND or not isinstance(rec.get("runs"), list):
        raise ValueError(f"{path} is not a poselab run record (expected kind {KIND!r} and a "
                         "list of runs)")
    for i, run in enumerate(rec["runs"]):
        config = run.get("config") if isinstance(run, dict) else None
        problem = ("is not an object" if not isinstance(run, dict) else
                   "has no config.recipe / config.preset objects" if not (
                       isinstance(config, dict) and isinstance(config.get("recipe"), dict)
                       and isinstance(config.get("preset"), dict)) else
                   "has no integer seed" if isinstance(run.get("seed"), bool) or not isinstance(
                       run.get("seed"), int) else
                   "has no data name" if not isinstance(run.get("data"), str) else
                   "has no metrics object" if not isinstance(run.get("metrics"), dict) else None)
        if problem:
            raise ValueError(f"{path}: run {i} {problem}; not a poselab run record (written by "
                             "poselab train --record)")
    return rec


def record_status(rec: dict[str, Any]) -> str:
    """``"current"`` when the record's source digest equals the package's now, else a label
    saying the record is older than the code it depends on."""
    if rec.get("source_digest") == source_digest():
        return "current"
    return (f"recorded at commit {str(rec.get('commit'))[:10]} on {str(rec.get('date'))[:10]}; "
            "the code has changed since (re-run with poselab results verify)")


def _preset_of(run: dict[str, Any]) -> Preset:
    fields = dict(run["config"]["preset"])
    fields["input_size"] = tuple(fields["input_size"])
    return Preset(**fields)


def verify_record(path: str | os.PathLike, *, seeds: Iterable[int] | None = None,
                  metrics: Sequence[str] = ("AP", "EPE_crop"), tol: float = 1e-6,
                  device: str = "auto") -> list[dict[str, Any]]:
    """Re-run the runs of a record (``seeds`` selects some) and compare ``metrics`` per set.

    Returns one row per (run, set, metric): ``recorded``, ``now``, ``abs_diff``, ``match``
    (``abs_diff <= tol``). Training is deterministic on one CPU, so a match is expected
    there; another device or thread count may differ by round-off.
    """
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not math.isfinite(tol) or tol < 0:
        raise ValueError(f"tol must be a finite number >= 0 (allowed |recorded - now|), got {tol!r}")
    if isinstance(metrics, str):
        metrics = (metrics,)
    if not metrics or not all(isinstance(m, str) and m for m in metrics):
        raise ValueError(f"metrics must be metric names such as ('AP', 'EPE_crop'), got {metrics!r}")
    if seeds is not None:
        try:
            wanted = {operator.index(s) for s in ([seeds] if isinstance(seeds, int) else seeds)}
        except TypeError:
            raise ValueError(f"seeds must be None or integers, got {seeds!r}") from None
    else:
        wanted = None
    rec = load_record(path)
    rows = []
    plans = []
    for i, run in enumerate(rec["runs"]):  # check every selected run before training any
        if wanted is not None and run["seed"] not in wanted:
            continue
        try:
            plans.append((run, Recipe(**run["config"]["recipe"]), _preset_of(run)))
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"{path}: run {i} has an invalid recipe or preset: {exc}") from None
    for run, recipe, preset in plans:
        threads = run["config"].get("threads")  # a thread count changes a run's last bits
        now = run_recipe(recipe, data=run["data"], preset=preset, seed=int(run["seed"]),
                         device=device, cache=False,
                         threads=threads if isinstance(threads, int) and threads >= 1 else None)
        for set_name, values in run["metrics"].items():
            for m in metrics:
                a = values.get(m) if isinstance(values, dict) else None
                b = now.metrics.get(set_name, {}).get(m)
                ok = all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
                         for v in (a, b))
                diff = abs(a - b) if ok else float("nan")
                rows.append({"recipe": recipe.name, "seed": int(run["seed"]), "set": set_name,
                             "metric": m, "recorded": a, "now": b, "abs_diff": diff,
                             "match": bool(ok and diff <= tol)})
    if not rows:
        raise ValueError(f"nothing to verify in {path} (seeds {sorted(wanted or [])} not in it)")
    return rows


def record_results(path: str | os.PathLike) -> tuple[list[RunResult], dict[str, Any]]:
    """The runs of a record as :class:`RunResult` objects (no weights) and the provenance."""
    rec = load_record(path)
    fields = set(RunResult.__dataclass_fields__)
    try:
        runs = [RunResult(**{k: v for k, v in r.items() if k in fields}) for r in rec["runs"]]
    except TypeError as exc:
        raise ValueError(f"{path}: a run lacks RunResult fields: {exc}") from None
    return runs, {k: v for k, v in rec.items() if k != "runs"}

