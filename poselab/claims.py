"""The replication ledger: every chapter states the papers' claims as checks and records them.

    from poselab import claims
    claims.start("00_basics", out_dir="runs/latest")
    claims.record("basics.oks.matches_pycocotools", value=err, kind="math",
                  paper="COCO OKS definition", holds=err <= 1e-12)

``holds`` is always computed from a measured value. ``kind="math"`` claims are identities and
bounds that must hold (a failure is a bug); ``kind="empirical"`` claims are training outcomes at
our small scale and carry a three-way ``verdict`` ("reproduced", "not reproduced",
"inconclusive") — see :func:`compare_runs`.

A chapter's records are written to ``<out_dir>/claims/<chapter>.json`` after every record, so a
chapter that fails half-way still leaves the claims it reached. ``poselab run`` collects them into
``<out_dir>/claims.json``.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

KINDS = ("math", "empirical")
_state: dict[str, Any] = {"chapter": None, "out_dir": None, "records": []}


class ClaimError(ValueError):
    """A claim was recorded with an invalid id, kind or holds value."""


def start(chapter: str, out_dir: str | os.PathLike | None = None) -> None:
    """Begin the ledger of one chapter; earlier in-memory records are dropped.

    ``out_dir=None`` keeps records in memory only (a student's interactive run), unless the
    environment variable ``POSELAB_OUT_DIR`` names a folder.
    """
    if out_dir is None or str(out_dir) == "":
        out_dir = os.environ.get("POSELAB_OUT_DIR") or None
    _state.update(chapter=str(chapter), out_dir=Path(out_dir) if out_dir else None, records=[])


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()  # numpy / torch scalars
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep it visible instead of invalid json
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(value)


def record(claim_id: str, *, value: Any, paper: str, kind: str, holds: Any,
           verdict: str | None = None, note: str = "") -> dict:
    """Record one claim and return its record ``{id, chapter, kind, value, paper, holds, verdict}``.

    ``holds`` must be a computed boolean (numpy/torch booleans are accepted).
    ``verdict`` defaults to "holds"/"fails" for math claims and "reproduced"/"not reproduced"
    for empirical ones; pass the result of :func:`compare_runs` for seed-averaged verdicts.
    """
    if not isinstance(claim_id, str) or not claim_id or " " in claim_id:
        raise ClaimError(f"claim id must be a non-empty dotted string, got {claim_id!r}")
    if kind not in KINDS:
        raise ClaimError(f"claim kind must be one of {KINDS}, got {kind!r}")
    if hasattr(holds, "item"):
        holds = holds.item()
    if not isinstance(holds, (bool, np.bool_)):
        raise ClaimError(f"holds must be a computed boolean, got {type(holds).__name__}: {holds!r}")
    holds = bool(holds)
    if verdict is None:
        verdict = ("holds" if holds else "fails") if kind == "math" else (
            "reproduced" if holds else "not reproduced")
    rec = {"id": claim_id, "chapter": _state["chapter"], "kind": kind, "value": _jsonable(value),
           "paper": str(paper), "holds": holds, "verdict": verdict, "note": str(note)}
    _state["records"] = [r for r in _state["records"] if r["id"] != claim_id] + [rec]
    _write()
    return rec


def _write() -> None:
    out_dir = _state["out_dir"]
    if out_dir is None:
        return
    folder = Path(out_dir) / "claims"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{_state['chapter'] or 'unnamed'}.json"
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_state["records"], indent=2))
    tmp.replace(target)


def records() -> list[dict]:
    """The records of the current chapter (copies)."""
    return [dict(r) for r in _state["records"]]


def compare_runs(ours: Iterable[float], theirs: Iterable[float], *, lower_is_better: bool,
                 n_se: float = 2.0) -> tuple[bool, str, dict]:
    """Three-way verdict for "ours beats theirs" from per-seed values.

    Returns ``(holds, verdict, summary)``: verdict "reproduced" when the mean difference favours
    ours by more than ``n_se`` standard errors, "not reproduced" when it favours theirs by more
    than that, otherwise "inconclusive" (also with a single seed, where no standard error exists).
    ``holds`` is True only for "reproduced".
    """
    a = np.asarray(list(ours), dtype=np.float64)
    b = np.asarray(list(theirs), dtype=np.float64)
    if a.size == 0 or b.size == 0:
        raise ClaimError("compare_runs needs at least one value per side")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        summary = {"ours": a.tolist(), "theirs": b.tolist()}
        return False, "inconclusive", summary
    diff = (b.mean() - a.mean()) if lower_is_better else (a.mean() - b.mean())  # > 0: ours better
    if a.size > 1 and b.size > 1:
        se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    else:
        se = float("nan")
    summary = {"ours_mean": float(a.mean()), "ours_std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
               "theirs_mean": float(b.mean()),
               "theirs_std": float(b.std(ddof=1)) if b.size > 1 else 0.0,
               "advantage": float(diff), "standard_error": se, "seeds": int(min(a.size, b.size))}
    if not math.isfinite(se):
        verdict = "inconclusive"
    elif diff > n_se * se:
        verdict = "reproduced"
    elif -diff > n_se * se:
        verdict = "not reproduced"
    else:
        verdict = "inconclusive"
    return verdict == "reproduced", verdict, summary


def table(recs: list[dict] | None = None) -> str:
    """A plain-text scorecard of records (the current chapter's by default)."""
    recs = records() if recs is None else recs
    lines = [f"{'claim':48s} {'kind':9s} {'verdict':15s} value"]
    for r in recs:
        value = json.dumps(r["value"])
        lines.append(f"{r['id']:48s} {r['kind']:9s} {r['verdict']:15s} "
                     f"{value[:60] + ('…' if len(value) > 60 else '')}")
    return "\n".join(lines)
