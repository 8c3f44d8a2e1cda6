"""The replication ledger: every chapter states the papers' claims as checks and records them.

    from poselab import claims
    claims.start("00_basics", out_dir="runs/latest")
    claims.record("basics.oks.matches_pycocotools", value=err, kind="math",
                  paper="COCO OKS definition", holds=err <= 1e-12)

``holds`` is always computed from a measured value. ``kind="math"`` claims are identities and
bounds that must hold (a failure is a bug). ``kind="empirical"`` claims are training outcomes at
our small scale; their three-way ``verdict`` ("reproduced", "not reproduced", "inconclusive",
with a ``reason``) comes from the functions below, never from a chapter cell:

- :func:`compare_seeds` — per-seed values of "ours" and "theirs" → a :class:`Verdict`. Welch's
  t interval with **t critical values** (not 2 normal standard errors), a **minimum effect size**
  stated per claim, at least ``min_seeds`` seeds per side, and an optional **baseline floor**.
  "reproduced": the interval excludes 0 in the paper's direction and the mean advantage is at
  least ``min_effect``. "not reproduced": the interval lies below ``min_effect`` (the effect is
  either the other way or too small to be the paper's). Otherwise "inconclusive".
- Fast runs (preset ``"fast"``) and runs with fewer than ``min_seeds`` seeds are always
  "inconclusive" — for every empirical claim, whatever the numbers.
- :func:`apply_floor` — a comparison against a baseline that did not reach a stated floor (e.g.
  AP ≥ 0.3) is "inconclusive: baseline too weak at this preset", the baseline value recorded.
- :func:`combine_verdicts` — several metrics of one claim (AP and EPE): definite only when they
  agree (``rule="unanimous"``), or a primary metric decides unless another contradicts it.
- :func:`guard_dead_maps` — a compactness verdict on collapsed (all ≤ 0) heatmaps is
  "inconclusive".
- :func:`identical_settings` — two settings that produced bit-identical results cannot explain a
  difference the paper reports: "not reproduced" with that reason.

Every empirical record carries its evidence: preset, seeds, per-seed values, image and heatmap
size and data (:func:`evidence`); :func:`record` refuses an empirical :class:`Verdict` without it.

A chapter's records are written to ``<out_dir>/claims/<chapter>.json`` after every record, so a
chapter that fails half-way still leaves the claims it reached. ``poselab run`` collects them into
``<out_dir>/claims.json``. :func:`table` renders the ledger (HTML in a notebook, Markdown, text).
"""
from __future__ import annotations

import html
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

__all__ = ["KINDS", "VERDICTS", "EVIDENCE_KEYS", "FAST_PRESETS", "ClaimError", "Verdict", "start",
           "record", "records", "t_critical", "compare_seeds", "compare_runs", "apply_floor",
           "combine_verdicts", "guard_dead_maps", "identical_settings", "not_testable", "evidence",
           "table", "ClaimsTable", "simulate_false_verdicts"]

KINDS = ("math", "empirical")
VERDICTS = ("reproduced", "not reproduced", "inconclusive")
EVIDENCE_KEYS = ("preset", "seeds", "per_seed", "input_size", "heatmap_size", "data")
FAST_PRESETS = ("fast",)
_state: dict[str, Any] = {"chapter": None, "out_dir": None, "records": []}


class ClaimError(ValueError):
    """A claim was recorded with an invalid id, kind, holds value, verdict or evidence."""


# ----------------------------------------------------------------------------- verdicts
@dataclass(frozen=True)
class Verdict:
    """A three-way verdict with its reason and the numbers behind it.

    ``verdict`` is one of :data:`VERDICTS`; ``holds`` is True only for "reproduced";
    ``reason`` says why in one sentence; ``summary`` holds means, stds, the interval, seeds and
    per-seed values; ``evidence`` the run's provenance (:func:`evidence`).
    """

    verdict: str
    reason: str
    summary: dict = field(default_factory=dict)
    evidence: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ClaimError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    @property
    def holds(self) -> bool:
        return self.verdict == "reproduced"

    def replace(self, **changes) -> "Verdict":
        from dataclasses import replace
        return replace(self, **changes)

    def __str__(self) -> str:
        return f"{self.verdict} ({self.reason})"


def t_critical(df: float, alpha: float = 0.05) -> float:
    """Two-sided Student-t critical value ``t_{1-alpha/2, df}`` (scipy), e.g. 4.303 at df = 2.

    Example:
        >>> round(t_critical(2), 3), round(t_critical(1e9), 3)
        (4.303, 1.96)
    """
    from scipy.stats import t as student_t
    if not (df > 0) or not (0 < alpha < 1):
        raise ClaimError(f"t_critical needs df > 0 and 0 < alpha < 1, got df={df}, alpha={alpha}")
    return float(student_t.ppf(1.0 - alpha / 2.0, df))


def _as_values(values, name: str) -> np.ndarray:
    try:
        a = np.asarray(list(values), dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise ClaimError(f"{name} must be a list of per-seed numbers: {exc}") from None
    if a.size == 0:
        raise ClaimError(f"{name} needs at least one per-seed value")
    return a


def _std(a: np.ndarray) -> float:
    return float(a.std(ddof=1)) if a.size > 1 else 0.0


def compare_seeds(ours: Iterable[float], theirs: Iterable[float], *, lower_is_better: bool,
                  min_effect: float, metric: str = "", alpha: float = 0.05, min_seeds: int = 3,
                  preset: str | None = None, evidence: Mapping | None = None) -> Verdict:
    """Three-way verdict for "ours beats theirs by at least ``min_effect``" from per-seed values.

    With advantage ``Δ = mean(ours) − mean(theirs)`` (sign flipped when ``lower_is_better``) and
    Welch's standard error ``se`` with Welch–Satterthwaite degrees of freedom ``df``, the
    two-sided ``1 − alpha`` interval is ``Δ ± t_critical(df, alpha)·se``:

    - "reproduced": the interval's lower end > 0 **and** ``Δ ≥ min_effect``;
    - "not reproduced": the interval's upper end < ``min_effect`` (the other way, or smaller than
      the effect the claim is about);
    - "inconclusive": anything else, a fast preset, fewer than ``min_seeds`` values on a side, or
      a non-finite value.

    With 3 seeds per side and equal means the false "reproduced" rate is ≤ alpha/2 (tested by
    simulation, :func:`simulate_false_verdicts`); a difference of 1e-12 with zero variance is
    "not reproduced" (below ``min_effect``), never "reproduced".

    Args:
        ours, theirs: per-seed values (same seeds, any order).
        lower_is_better: True for errors (EPE), False for scores (AP).
        min_effect: the smallest advantage (in the metric's unit, > 0) the claim is about.
        metric: the metric's name (for the reason text).
        alpha: two-sided level of the interval.
        min_seeds: fewer values on either side → "inconclusive".
        preset: the run's preset name; ``"fast"`` → "inconclusive".
        evidence: the run's provenance (:func:`evidence`), kept on the verdict.

    Example:
        >>> v = compare_seeds([5.0, 5.1, 4.9], [6.0, 6.1, 5.9], lower_is_better=True, min_effect=0.2)
        >>> v.verdict, round(v.summary["advantage"], 3)
        ('reproduced', 1.0)
        >>> compare_seeds([5.0], [6.0], lower_is_better=True, min_effect=0.2).verdict
        'inconclusive'
    """
    a, b = _as_values(ours, "ours"), _as_values(theirs, "theirs")
    if not (math.isfinite(min_effect) and min_effect > 0):
        raise ClaimError(f"min_effect must be a finite number > 0 (the smallest advantage the claim "
                         f"is about, in the metric's unit), got {min_effect!r}")
    if int(min_seeds) < 2:
        raise ClaimError(f"min_seeds must be >= 2 (a t interval needs two values), got {min_seeds}")
    ev = dict(evidence or {})
    preset = preset if preset is not None else ev.get("preset")
    name = metric or "metric"
    summary: dict[str, Any] = {"metric": metric, "ours": a.tolist(), "theirs": b.tolist(),
                               "lower_is_better": bool(lower_is_better), "min_effect": float(min_effect),
                               "alpha": float(alpha), "seeds": int(min(a.size, b.size))}
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return Verdict("inconclusive", f"non-finite {name} value(s)", summary, ev)
    sign = -1.0 if lower_is_better else 1.0
    adv = sign * (a.mean() - b.mean())
    va, vb = (a.var(ddof=1) / a.size if a.size > 1 else float("nan"),
              b.var(ddof=1) / b.size if b.size > 1 else float("nan"))
    se = math.sqrt(va + vb) if math.isfinite(va + vb) else float("nan")
    summary.update(ours_mean=float(a.mean()), ours_std=_std(a), theirs_mean=float(b.mean()),
                   theirs_std=_std(b), advantage=float(adv), standard_error=se)
    if se > 0:  # computed for every preset, so a fast (CI) run takes the student's code path
        df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
        half = t_critical(df, alpha) * se
    else:  # zero variance on both sides: the interval is the point
        df, half = float("inf"), 0.0
    low, high = adv - half, adv + half
    if math.isfinite(low):
        summary.update(df=float(df), interval=[float(low), float(high)])
    if preset is not None and str(preset) in FAST_PRESETS:
        return Verdict("inconclusive", f"fast run (preset {preset!r}): a smoke test, never a finding",
                       summary, ev)
    if min(a.size, b.size) < int(min_seeds):
        return Verdict("inconclusive", f"{min(a.size, b.size)} seed(s) per side, fewer than {min_seeds}",
                       summary, ev)
    better = f"{name} {'lower' if lower_is_better else 'higher'}"
    if low > 0 and adv >= min_effect:
        return Verdict("reproduced", f"{better} by {adv:.3g} (interval {low:.3g}..{high:.3g}, "
                       f"minimum effect {min_effect:g})", summary, ev)
    if high < min_effect:
        why = "the other way" if high < 0 else f"smaller than the minimum effect {min_effect:g}"
        return Verdict("not reproduced", f"advantage {adv:.3g} (interval {low:.3g}..{high:.3g}): "
                       f"{why}", summary, ev)
    return Verdict("inconclusive", f"advantage {adv:.3g}, interval {low:.3g}..{high:.3g} contains "
                   f"both 0 and the minimum effect {min_effect:g}" if low <= 0 else
                   f"advantage {adv:.3g} significant but below the minimum effect {min_effect:g} "
                   f"with an interval reaching it ({low:.3g}..{high:.3g})", summary, ev)


def compare_runs(ours: Iterable[float], theirs: Iterable[float], *, lower_is_better: bool,
                 min_effect: float = 1e-9, alpha: float = 0.05, min_seeds: int = 3,
                 preset: str | None = None) -> tuple[bool, str, dict]:
    """Older tuple form of :func:`compare_seeds`: ``(holds, verdict, summary)``.

    Kept for callers written before :class:`Verdict`; pass ``min_effect`` (the default 1e-9 only
    rules out round-off). The summary carries the ``reason``.
    """
    v = compare_seeds(ours, theirs, lower_is_better=lower_is_better, min_effect=min_effect,
                      alpha=alpha, min_seeds=min_seeds, preset=preset)
    return v.holds, v.verdict, {**v.summary, "reason": v.reason}


def apply_floor(verdict: Verdict, baseline: Iterable[float], floor: float, *, name: str = "baseline",
                higher_is_better: bool = True) -> Verdict:
    """"inconclusive: baseline too weak at this preset" unless the baseline reached ``floor``.

    ``baseline``: per-seed values of the baseline's quality metric (e.g. MSE's AP). The mean must
    be ≥ ``floor`` (≤ for ``higher_is_better=False``); otherwise no comparison against it is a
    finding. The baseline's values and the floor are added to the summary either way.

    Example:
        >>> v = compare_seeds([0.5, 0.52, 0.51], [0.40, 0.41, 0.42], lower_is_better=False, min_effect=0.01)
        >>> apply_floor(v, [0.026, 0.03, 0.02], 0.3, name="mse AP").reason
        'baseline too weak at this preset: mse AP 0.0253 < floor 0.3'
    """
    vals = _as_values(baseline, "baseline")
    mean = float(vals.mean()) if np.all(np.isfinite(vals)) else float("nan")
    ok = math.isfinite(mean) and (mean >= floor if higher_is_better else mean <= floor)
    summary = {**verdict.summary, "baseline": {"name": name, "per_seed": vals.tolist(), "mean": mean,
                                               "floor": float(floor), "reached": bool(ok)}}
    if ok or verdict.reason.startswith("fast run"):  # a fast run's reason stays the first one
        return verdict.replace(summary=summary)
    rel = "<" if higher_is_better else ">"
    return verdict.replace(verdict="inconclusive", summary=summary,
                           reason=f"baseline too weak at this preset: {name} {mean:.3g} {rel} floor {floor:g}")


def combine_verdicts(verdicts: Mapping[str, Verdict], *, rule: str = "unanimous",
                     primary: str | None = None) -> Verdict:
    """One verdict from per-metric verdicts of the same claim (e.g. AP and EPE).

    ``rule="unanimous"``: "reproduced" only if every metric says so, "not reproduced" only if every
    metric says so, else "inconclusive" (metrics disagree or some are inconclusive). With two
    independent metrics at equal means this keeps each false rate ≤ the single-metric rate.
    ``rule="primary"``: the ``primary`` metric decides, unless another metric reaches the
    opposite definite verdict ("inconclusive: metrics disagree").

    Example:
        >>> r = Verdict("reproduced", "x"); n = Verdict("not reproduced", "y")
        >>> combine_verdicts({"AP": r, "EPE": n}).reason
        'metrics disagree: AP reproduced, EPE not reproduced'
    """
    if not verdicts:
        raise ClaimError("combine_verdicts needs at least one verdict")
    if rule not in ("unanimous", "primary"):
        raise ClaimError(f"rule must be 'unanimous' or 'primary', got {rule!r}")
    parts = ", ".join(f"{k} {v.verdict}" for k, v in verdicts.items())
    summary = {k: {**v.summary, "verdict": v.verdict, "reason": v.reason} for k, v in verdicts.items()}
    ev = next(iter(verdicts.values())).evidence
    kinds = {v.verdict for v in verdicts.values()}
    if rule == "primary":
        if primary not in verdicts:
            raise ClaimError(f"primary must be one of {list(verdicts)}, got {primary!r}")
        main = verdicts[primary].verdict
        opposite = {"reproduced": "not reproduced", "not reproduced": "reproduced"}.get(main)
        if opposite in kinds:
            return Verdict("inconclusive", f"metrics disagree: {parts}", summary, ev)
        return Verdict(main, f"{primary} decides: {verdicts[primary].reason}", summary, ev)
    if kinds == {"reproduced"}:
        return Verdict("reproduced", f"all metrics agree: {parts}", summary, ev)
    if kinds == {"not reproduced"}:
        return Verdict("not reproduced", f"all metrics agree: {parts}", summary, ev)
    if {"reproduced", "not reproduced"} <= kinds:
        return Verdict("inconclusive", f"metrics disagree: {parts}", summary, ev)
    reasons = {v.reason for v in verdicts.values()}
    if kinds == {"inconclusive"} and len(reasons) == 1:  # e.g. all "baseline too weak" or "fast run"
        return Verdict("inconclusive", reasons.pop(), summary, ev)
    return Verdict("inconclusive", f"not every metric is definite: {parts}", summary, ev)


def guard_dead_maps(verdict: Verdict, dead_fraction: float, *, max_dead: float = 0.5) -> Verdict:
    """"inconclusive" when more than ``max_dead`` of the model's heatmaps have no positive pixel.

    The compactness (or placement) of a collapsed, all-≤-0 map is not a learnt blob: HDM Fig. 3's
    effect cannot be read from it. NaN dead fraction (no maps) is also inconclusive.

    Example:
        >>> guard_dead_maps(Verdict("reproduced", "x"), 0.9).verdict
        'inconclusive'
    """
    d = float(dead_fraction)
    summary = {**verdict.summary, "dead_fraction": d, "max_dead": float(max_dead)}
    if math.isfinite(d) and d <= max_dead:
        return verdict.replace(summary=summary)
    return verdict.replace(verdict="inconclusive", summary=summary,
                           reason=f"{d:.0%} of the maps are dead (no positive pixel) > {max_dead:.0%}: "
                                  "their shape is a collapse, not the paper's effect")


def identical_settings(ours: Iterable[float], theirs: Iterable[float], *, setting: str,
                       preset: str | None = None, evidence: Mapping | None = None) -> Verdict | None:
    """If two settings gave bit-identical per-seed results, the verdict says so; else None.

    A setting that does not change a single number (e.g. a Sinkhorn iteration cap that is never
    reached) cannot cause the difference a paper reports: "not reproduced", with that reason —
    unless the run is fast (then "inconclusive", as every fast verdict).

    Example:
        >>> identical_settings([0.31, 0.32, 0.30], [0.31, 0.32, 0.30], setting="cap 500 vs 1000").verdict
        'not reproduced'
        >>> identical_settings([0.31, 0.32], [0.31, 0.33], setting="cap") is None
        True
    """
    a, b = _as_values(ours, "ours"), _as_values(theirs, "theirs")
    ev = dict(evidence or {})
    preset = preset if preset is not None else ev.get("preset")
    if a.shape != b.shape or not np.array_equal(a, b):
        return None
    summary = {"ours": a.tolist(), "theirs": b.tolist(), "max_abs_difference": 0.0,
               "seeds": int(a.size)}
    if preset is not None and str(preset) in FAST_PRESETS:
        return Verdict("inconclusive", f"fast run (preset {preset!r}); {setting}: identical results",
                       summary, ev)
    return Verdict("not reproduced", f"{setting}: bit-identical results in all {a.size} run(s), so the "
                   "setting cannot cause the reported difference", summary, ev)


def not_testable(reason: str, summary: Mapping | None = None, evidence: Mapping | None = None) -> Verdict:
    """"inconclusive" for a claim our setting cannot test, with the measured reason."""
    return Verdict("inconclusive", f"not testable here: {reason}", dict(summary or {}), dict(evidence or {}))


def evidence(*, preset, seeds: Sequence[int], per_seed: Mapping, input_size, heatmap_size, data,
             **extra) -> dict:
    """The provenance every empirical record carries (:data:`EVIDENCE_KEYS` plus ``extra``).

    ``preset``: a name or an object with ``.name``; ``per_seed``: ``{series: [value per seed]}``.
    """
    name = getattr(preset, "name", preset)
    out = {"preset": str(name), "seeds": [int(s) for s in seeds],
           "per_seed": {str(k): [float(x) for x in v] for k, v in dict(per_seed).items()},
           "input_size": [int(v) for v in input_size], "heatmap_size": [int(v) for v in heatmap_size],
           "data": str(data)}
    out.update(extra)
    return out


def simulate_false_verdicts(n_seeds: int = 3, trials: int = 20000, *, effect: float = 0.0,
                            sd: float = 1.0, min_effect: float = 0.5, n_metrics: int = 1,
                            alpha: float = 0.05, seed: int = 0) -> dict[str, float]:
    """Share of each verdict when per-seed values are drawn N(effect, sd²) vs N(0, sd²).

    ``n_metrics > 1`` draws independent metrics and combines them with
    :func:`combine_verdicts` (unanimous). Vectorised re-implementation of the decision rule is
    not used: every trial calls :func:`compare_seeds`, so the simulation tests the real code.
    """
    rng = np.random.default_rng(seed)
    counts = dict.fromkeys(VERDICTS, 0)
    for _ in range(int(trials)):
        per = {}
        for m in range(n_metrics):
            ours = rng.normal(effect, sd, n_seeds)
            theirs = rng.normal(0.0, sd, n_seeds)
            per[f"m{m}"] = compare_seeds(ours, theirs, lower_is_better=False, min_effect=min_effect,
                                         alpha=alpha, min_seeds=min(3, n_seeds))
        counts[(combine_verdicts(per) if n_metrics > 1 else per["m0"]).verdict] += 1
    return {k: v / trials for k, v in counts.items()}


# ----------------------------------------------------------------------------- the ledger
def start(chapter: str, out_dir: str | os.PathLike | None = None) -> None:
    """Begin the ledger of one chapter; earlier in-memory records are dropped.

    ``out_dir=None`` keeps records in memory only (a student's interactive run), unless the
    environment variable ``POSELAB_OUT_DIR`` names a folder.
    """
    if out_dir is None or str(out_dir) == "":
        out_dir = os.environ.get("POSELAB_OUT_DIR") or None
    _state.update(chapter=str(chapter), out_dir=Path(out_dir) if out_dir else None, records=[])


def _jsonable(value: Any) -> Any:
    if isinstance(value, Verdict):
        return _jsonable({"verdict": value.verdict, "reason": value.reason, **value.summary})
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


class Record(dict):
    """One ledger record (a dict); in a notebook it renders as a one-row table, not a raw dict."""

    def _repr_html_(self) -> str:
        return ClaimsTable([self])._repr_html_()

    def _repr_markdown_(self) -> str:
        return ClaimsTable([self]).to_markdown()


def record(claim_id: str, *, value: Any, paper: str, kind: str, holds: Any = None,
           verdict: Verdict | str | None = None, note: str = "",
           evidence: Mapping | None = None) -> Record:
    """Record one claim and return its record ``{id, chapter, kind, value, paper, holds, verdict,
    reason, evidence, note}``.

    - ``kind="math"``: ``holds`` must be a computed boolean (numpy/torch booleans are accepted);
      the verdict is "holds"/"fails".
    - ``kind="empirical"``: pass ``verdict=`` a :class:`Verdict` from :func:`compare_seeds` (and
      friends); ``holds`` then follows from it. The record must carry the run's evidence
      (:data:`EVIDENCE_KEYS`, from the verdict's ``evidence`` or ``evidence=``), else ClaimError.
      An empirical record with only a boolean ``holds`` (no per-seed comparison) is recorded as
      "inconclusive" — one number is never a finding — and a verdict string is refused.
      Evidence from a fast preset makes the verdict "inconclusive" whatever it was.
    """
    if not isinstance(claim_id, str) or not claim_id or " " in claim_id:
        raise ClaimError(f"claim id must be a non-empty dotted string, got {claim_id!r}")
    if kind not in KINDS:
        raise ClaimError(f"claim kind must be one of {KINDS}, got {kind!r}")
    reason = ""
    ev = dict(evidence or {})
    if kind == "math" or not isinstance(verdict, Verdict):
        if isinstance(verdict, str):
            raise ClaimError(f"{claim_id}: verdicts are not set by hand; pass verdict= a claims.Verdict "
                             "(claims.compare_seeds, apply_floor, combine_verdicts, ...)")
        if verdict is not None:
            raise ClaimError(f"{claim_id}: verdict must be a claims.Verdict, got {type(verdict).__name__}")
        if hasattr(holds, "item"):
            holds = holds.item()
        if not isinstance(holds, (bool, np.bool_)):
            raise ClaimError(f"holds must be a computed boolean, got {type(holds).__name__}: {holds!r}")
        holds = bool(holds)
        if kind == "math":
            verdict_text = "holds" if holds else "fails"
        else:
            verdict_text, reason = "inconclusive", ("a single comparison without per-seed values is never "
                                                     "a finding (use claims.compare_seeds)")
            holds = verdict_text == "reproduced"  # an inconclusive record never holds
    else:
        if holds is not None:
            raise ClaimError(f"{claim_id}: pass holds or a Verdict, not both (the Verdict decides)")
        ev = {**verdict.evidence, **ev}
        missing = [k for k in EVIDENCE_KEYS if k not in ev]
        if missing:
            raise ClaimError(f"{claim_id}: an empirical verdict needs its evidence {missing} "
                             "(claims.evidence(preset=..., seeds=..., per_seed=..., input_size=..., "
                             "heatmap_size=..., data=...))")
        verdict_text, reason = verdict.verdict, verdict.reason
        if str(ev["preset"]) in FAST_PRESETS and verdict_text != "inconclusive":
            verdict_text, reason = "inconclusive", f"fast run (preset {ev['preset']!r}): {reason}"
        holds = verdict_text == "reproduced"
        value = {"value": value, "comparison": verdict} if value is not None else verdict
    rec = Record({"id": claim_id, "chapter": _state["chapter"], "kind": kind, "value": _jsonable(value),
                  "paper": str(paper), "holds": holds, "verdict": verdict_text, "reason": reason,
                  "evidence": _jsonable(ev), "note": str(note)})
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
    tmp.write_text(json.dumps(_state["records"], indent=2, ensure_ascii=False))
    tmp.replace(target)


def records() -> list[dict]:
    """The records of the current chapter (copies)."""
    return [Record(r) for r in _state["records"]]


# ----------------------------------------------------------------------------- rendering
def _short(value: Any, limit: int = 90) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict) and "verdict" in value and "reason" in value:
        value = {k: value[k] for k in ("ours_mean", "theirs_mean", "advantage", "interval") if k in value}
    if isinstance(value, dict) and "comparison" in value:
        value = value["value"]
    text = json.dumps(_round(value), ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v) for v in value]
    return value


class ClaimsTable:
    """The ledger as a table: HTML in a notebook, :meth:`to_markdown`, plain text via ``str``.

    Columns: claim, kind, verdict (with its reason), value (shortened), paper.
    """

    columns = ("claim", "kind", "verdict", "value", "paper")

    def __init__(self, recs: Sequence[Mapping]):
        self.records = [dict(r) for r in recs]

    def rows(self) -> list[dict[str, str]]:
        out = []
        for r in self.records:
            verdict = r["verdict"] + (f" — {r['reason']}" if r.get("reason") else "")
            out.append({"claim": r["id"], "kind": r["kind"], "verdict": verdict,
                        "value": _short(r["value"]), "paper": r.get("paper", "")})
        return out

    def to_markdown(self) -> str:
        def cell(text: str) -> str:
            return str(text).replace("|", "\\|").replace("\n", " ")
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(cell(row[c]) for c in self.columns) + " |" for row in self.rows()]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def _repr_html_(self) -> str:
        from poselab.viz.html import fitted_table
        return fitted_table(self.columns, [[row[c] for c in self.columns] for row in self.rows()])

    def __str__(self) -> str:
        lines = [f"{'claim':48s} {'kind':9s} {'verdict':15s} value"]
        for r in self.records:
            lines.append(f"{r['id']:48s} {r['kind']:9s} {r['verdict']:15s} {_short(r['value'], 60)}")
        return "\n".join(lines)

    __repr__ = __str__

    def __len__(self) -> int:
        return len(self.records)


def table(recs: Sequence[Mapping] | None = None) -> ClaimsTable:
    """The current chapter's records (or ``recs``) as a :class:`ClaimsTable` (renders in a notebook)."""
    return ClaimsTable(records() if recs is None else recs)
