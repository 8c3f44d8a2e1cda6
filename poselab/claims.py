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

import functools
import itertools
import json
import math
import numbers
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .viz.html import fitted_table, plain_text
from .viz.kernel import release_memory_after_each_cell

__all__ = ["KINDS", "VERDICTS", "EVIDENCE_KEYS", "FAST_PRESETS", "ClaimError", "Verdict", "start",
           "record", "records", "t_critical", "compare_seeds", "compare_runs", "apply_floor",
           "combine_verdicts", "guard_dead_maps", "identical_settings", "not_testable", "evidence",
           "table", "ClaimsTable", "simulate_false_verdicts", "t_quantile", "Readiness", "has_learnt",
           "has_converged", "require_ready", "chain_verdict", "recorded_text"]

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
        return replace(self, **changes)

    def __str__(self) -> str:
        return f"{self.verdict} ({self.reason})"


@functools.lru_cache(maxsize=4096)
def _t_ppf(q: float, df: float) -> float:
    from scipy.stats import t as student_t  # deferred: scipy.stats is slow to import; verdicts only
    return float(student_t.ppf(q, df))


def t_critical(df: float, alpha: float = 0.05) -> float:
    """Two-sided Student-t critical value ``t_{1-alpha/2, df}`` (scipy), e.g. 4.303 at df = 2.

    Example:
        >>> round(t_critical(2), 3), round(t_critical(1e9), 3)
        (4.303, 1.96)
    """
    if not (df > 0) or not (0 < alpha < 1):
        raise ClaimError(f"t_critical needs df > 0 and 0 < alpha < 1, got df={df}, alpha={alpha}")
    return _t_ppf(1.0 - alpha / 2.0, float(df))


def _as_values(values, name: str) -> np.ndarray:
    try:
        raw = np.asarray(list(values))
        a = raw.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ClaimError(f"{name} must be a list of per-seed numbers: {exc}") from None
    if raw.ndim != 1 or raw.dtype == bool:
        # a nested list was flattened into "seeds", and True / False counted as 1 / 0
        raise ClaimError(f"{name} must be a flat list of per-seed numbers (one per seed), got "
                         f"{'booleans' if raw.dtype == bool else f'an array of shape {raw.shape}'}")
    if a.size == 0:
        raise ClaimError(f"{name} needs at least one per-seed value")
    return a


def _flag(value, name: str) -> bool:
    """``value`` as a bool, refusing anything else (the string "no" is truthy: it would flip a
    comparison's direction silently)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ClaimError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _std(a: np.ndarray) -> float:
    return float(a.std(ddof=1)) if a.size > 1 else 0.0


def t_quantile(q: float, df: float) -> float:
    """Student-t quantile ``t_{q, df}`` (scipy), e.g. ``t_quantile(0.8, 2)`` = 1.061."""
    if not (df > 0) or not (0 < q < 1):
        raise ClaimError(f"t_quantile needs df > 0 and 0 < q < 1, got q={q}, df={df}")
    return _t_ppf(float(q), float(df))


def _paper_effect_advantage(paper_effect, lower_is_better: bool, min_effect: float, name: str) -> float | None:
    """The paper's effect as an advantage (> 0), checked against the claim's direction."""
    if paper_effect is None:
        return None
    try:
        pe = float(paper_effect)
    except (TypeError, ValueError):
        raise ClaimError(f"paper_effect must be a number (the paper's ours − theirs in the metric's "
                         f"unit), got {paper_effect!r}") from None
    if not math.isfinite(pe) or pe == 0:
        raise ClaimError(f"paper_effect must be finite and non-zero, got {paper_effect!r}")
    if (pe < 0) != bool(lower_is_better):
        raise ClaimError(f"paper_effect {pe:+g} is against the claim's direction ({name} "
                         f"{'lower' if lower_is_better else 'higher'} is better): give the paper's "
                         "ours − theirs with its sign (negative for an error the paper lowers)")
    if min_effect > abs(pe) * (1 + 1e-12):
        raise ClaimError(f"min_effect {min_effect:g} exceeds the paper's own effect {abs(pe):g}: even a "
                         "perfect replication could never be 'reproduced' (state a minimum derived "
                         "from the paper's effect, e.g. half of it)")
    return abs(pe)


def _permutation_pvalues(a: np.ndarray, b: np.ndarray, sign: float, paired: bool, shift: float,
                         rng_seed: int = 0) -> tuple[float, float]:
    """One-sided permutation p-values of the advantage ``sign·(mean a − mean b)``: ``p_up`` for
    "advantage > 0" and ``p_down`` for "advantage < shift" (ours moved by ``shift`` first).
    Exact enumeration when small (sign flips of the paired differences; splits of the pooled
    values), else 20000 random ones. Valid for ties and discrete values."""

    def null_stats(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        if paired:
            d = sign * (x - y)
            if d.size <= 16:
                signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
            else:
                signs = np.random.default_rng(rng_seed).choice((1.0, -1.0), size=(20000, d.size))
            return float(d.mean()), (signs * d).mean(axis=1)
        pool, n = np.concatenate([x, y]), x.size
        if math.comb(pool.size, n) <= 50000:
            idx = np.array(list(itertools.combinations(range(pool.size), n)))
        else:
            idx = np.argsort(np.random.default_rng(rng_seed).random((20000, pool.size)), axis=1)[:, :n]
        mask = np.zeros((idx.shape[0], pool.size))
        np.put_along_axis(mask, idx, 1.0, axis=1)
        s_in = mask @ pool
        return (float(sign * (x.mean() - y.mean())),
                sign * (s_in / n - (pool.sum() - s_in) / y.size))

    # equal statistics up to round-off count as ties (in the null's favour)
    scale = 1e-9 * max(float(np.abs(a).max()), float(np.abs(b).max()), abs(shift), 1e-300)
    observed, stats = null_stats(a, b)
    p_up = float(np.mean(stats >= observed - scale))
    observed, stats = null_stats(a - sign * shift, b)
    p_down = float(np.mean(stats <= observed + scale))
    return p_up, p_down


def _seeds_needed(spread: float, paired: bool, target: float, alpha: float, power: float,
                  start: int, cap: int = 10000) -> int | None:
    """Smallest seeds per side whose detectable effect ``(t_{1−α/2} + t_{power})·se`` is at most
    ``target``, with the observed per-seed spread; None if more than ``cap``."""
    if spread <= 0:
        return max(start, 2)
    n = max(2, start)
    while n <= cap:
        df = n - 1 if paired else 2 * n - 2
        se = spread * math.sqrt((1 if paired else 2) / n)
        if (t_critical(df, alpha) + t_quantile(power, df)) * se <= target:
            return n
        n = n + 1 if n < 100 else int(n * 1.1) + 1
    return None


def compare_seeds(ours: Iterable[float], theirs: Iterable[float], *, lower_is_better: bool,
                  min_effect: float, metric: str = "", alpha: float = 0.05, min_seeds: int = 3,
                  preset: str | None = None, evidence: Mapping | None = None, paired: bool = False,
                  paper_effect: float | None = None, discrete: bool = False,
                  power: float = 0.8) -> Verdict:
    """Three-way verdict for "ours beats theirs" from per-seed values, against the paper's effect.

    With the advantage ``Δ`` (ours − theirs, sign flipped when ``lower_is_better``) and its
    standard error ``se`` — Welch's (unpaired) or that of the per-seed differences
    (``paired=True``: the i-th values of both sides come from the same seed / model / data, e.g.
    one model scored two ways) — the two-sided ``1 − alpha`` interval is ``Δ ± t·se``:

    - "reproduced": the interval excludes 0 in the claim's direction **and** ``Δ ≥ min_effect``
      (not a negligible effect);
    - "not reproduced": the interval lies below ``min_effect`` — the data rule out an effect as
      large as the claim's minimum (derived from the paper's effect, e.g. half of it) — or lies
      entirely the other way;
    - "inconclusive": anything else, with the reason; also a fast preset, fewer than
      ``min_seeds`` values on a side, or a non-finite value.

    **Power.** ``summary["detectable_effect"]`` is the smallest advantage these seeds detect with
    probability ``power``: ``(t_{1−α/2,df} + t_{power,df})·se``. When ``paper_effect`` (the
    paper's ours − theirs in the metric's unit, signed: −0.5 px for an EPE the paper lowers) is
    below it, the verdict is never "not reproduced" by the small-effect route: it is
    "inconclusive: under-powered", with ``summary["seeds_needed"]`` computed from the seeds'
    spread. An effect significantly the other way stays "not reproduced" (a finding at any power).
    ``min_effect`` above ``|paper_effect|`` is refused (such a claim could never pass).

    **Ties and discrete values** (epochs to a threshold, counts; or zero spread on both sides):
    ``discrete=True``, or both sides constant, uses an exact permutation test (sign flips when
    paired) in place of the t interval — with 3 seeds a side it can never reach ``alpha`` = 0.05,
    so ``[2, 2, 2]`` vs ``[4, 4, 4]`` is "inconclusive", not "reproduced".

    Args:
        ours, theirs: per-seed values (paired: same length and seed order).
        lower_is_better: True for errors (EPE), False for scores (AP).
        min_effect: the smallest advantage (metric's unit, > 0, ≤ ``|paper_effect|``) the claim is about.
        metric: the metric's name (reason text). alpha: two-sided level. power: for the detectable effect.
        min_seeds: fewer values on either side → "inconclusive".
        preset: the run's preset name; ``"fast"`` → "inconclusive" (the statistics are still computed).
        evidence: the run's provenance (:func:`evidence`), kept on the verdict.
        paired, paper_effect, discrete: see above.

    Example:
        >>> v = compare_seeds([5.0, 5.1, 4.9], [6.0, 6.1, 5.9], lower_is_better=True, min_effect=0.2)
        >>> v.verdict, round(v.summary["advantage"], 3)
        ('reproduced', 1.0)
        >>> compare_seeds([5.0], [6.0], lower_is_better=True, min_effect=0.2).verdict
        'inconclusive'
        >>> v = compare_seeds([0.50, 0.53, 0.49], [0.50, 0.51, 0.50], lower_is_better=False,
        ...                   min_effect=0.004, paper_effect=0.008)
        >>> v.verdict, v.summary["seeds_needed"] > 3
        ('inconclusive', True)
    """
    a, b = _as_values(ours, "ours"), _as_values(theirs, "theirs")
    lower_is_better, paired, discrete = (_flag(lower_is_better, "lower_is_better"),
                                         _flag(paired, "paired"), _flag(discrete, "discrete"))
    if not (isinstance(min_effect, numbers.Real) and math.isfinite(min_effect) and min_effect > 0):
        raise ClaimError(f"min_effect must be a finite number > 0 (the smallest advantage the claim "
                         f"is about, in the metric's unit), got {min_effect!r}")
    if isinstance(min_seeds, bool) or int(min_seeds) < 2:
        raise ClaimError(f"min_seeds must be >= 2 (a t interval needs two values), got {min_seeds}")
    if not (0 < alpha < 0.5) or not (0.5 <= power < 1):
        raise ClaimError(f"alpha must be in (0, 0.5) and power in [0.5, 1), got {alpha}, {power}")
    if paired and a.size != b.size:
        raise ClaimError(f"paired=True needs the same number of values on both sides (one per seed), "
                         f"got {a.size} and {b.size}")
    name = metric or "metric"
    paper_adv = _paper_effect_advantage(paper_effect, lower_is_better, float(min_effect), name)
    ev = dict(evidence or {})
    preset = preset if preset is not None else ev.get("preset")
    summary: dict[str, Any] = {"metric": metric, "ours": a.tolist(), "theirs": b.tolist(),
                               "lower_is_better": bool(lower_is_better), "min_effect": float(min_effect),
                               "alpha": float(alpha), "seeds": int(min(a.size, b.size)),
                               "paired": bool(paired), "test": "", "paper_effect": (
                                   None if paper_effect is None else float(paper_effect))}
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return Verdict("inconclusive", f"non-finite {name} value(s)", summary, ev)
    sign = -1.0 if lower_is_better else 1.0
    adv = sign * (a.mean() - b.mean())
    summary.update(ours_mean=float(a.mean()), ours_std=_std(a), theirs_mean=float(b.mean()),
                   theirs_std=_std(b), advantage=float(adv))
    if not (math.isfinite(adv) and math.isfinite(_std(a)) and math.isfinite(_std(b))):
        return Verdict("inconclusive", f"{name} values so large that their mean or spread overflows "
                       "float64: not per-seed metric values", summary, ev)
    tiny = 1e-12 * max(float(np.abs(a).max()), float(np.abs(b).max()), 1e-300)  # round-off spread
    if paired:
        d = sign * (a - b)
        spread = _std(d)
        se = spread / math.sqrt(d.size) if d.size > 1 else float("nan")
        df = float(d.size - 1)
        constant = d.size > 1 and spread <= tiny
    else:
        va = a.var(ddof=1) / a.size if a.size > 1 else float("nan")
        vb = b.var(ddof=1) / b.size if b.size > 1 else float("nan")
        se = math.sqrt(va + vb) if math.isfinite(va + vb) else float("nan")
        spread = math.sqrt((_std(a) ** 2 + _std(b) ** 2) / 2)
        df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1)) if se > 0 else float("nan")
        constant = a.size > 1 and b.size > 1 and max(_std(a), _std(b)) <= tiny
    summary.update(standard_error=se)
    use_permutation = bool(discrete) or constant
    up = down = float("nan")
    low = high = float("nan")
    if use_permutation and min(a.size, b.size) >= 2:
        up, down = _permutation_pvalues(a, b, sign, paired, float(min_effect))
        summary.update(test="exact permutation (ties / discrete values)" + (", paired" if paired else ""),
                       p_value_positive=up, p_value_below_min_effect=down)
    elif math.isfinite(se) and se > 0 and not use_permutation:  # every preset: fast runs take this path too
        half = t_critical(df, alpha) * se
        low, high = adv - half, adv + half
        summary.update(test="paired t" if paired else "Welch t", df=float(df), interval=[float(low), float(high)])
        detectable = (t_critical(df, alpha) + t_quantile(power, df)) * se
        summary["detectable_effect"] = float(detectable)
    if preset is not None and str(preset) in FAST_PRESETS:
        return Verdict("inconclusive", f"fast run (preset {preset!r}): a smoke test, never a finding",
                       summary, ev)
    n_min = min(a.size, b.size)
    if n_min < int(min_seeds):
        return Verdict("inconclusive", f"{n_min} seed(s) per side, fewer than {min_seeds}", summary, ev)
    better = f"{name} {'lower' if lower_is_better else 'higher'}"
    paper_txt = f"; the paper's {paper_effect:+.3g}" if paper_effect is not None else ""
    if use_permutation:
        if up <= alpha / 2 and adv >= min_effect:
            return Verdict("reproduced", f"{better} by {adv:.3g} (permutation p = {up:.3g}{paper_txt})",
                           summary, ev)
        if down <= alpha / 2:
            why = "the other way" if adv < 0 else f"smaller than the minimum effect {min_effect:g}"
            return Verdict("not reproduced", f"advantage {adv:.3g}: {why} (permutation p = {down:.3g}"
                           f"{paper_txt})", summary, ev)
        return Verdict("inconclusive", f"advantage {adv:.3g} with tied / discrete values: a permutation "
                       f"test over {n_min} seeds cannot decide (p = {min(up, down):.3g} > {alpha / 2:g})"
                       f"{paper_txt}", summary, ev)
    verdict = None
    if low > 0 and adv >= min_effect:
        verdict = Verdict("reproduced", f"{better} by {adv:.3g} (interval {low:.3g}..{high:.3g}, "
                          f"minimum effect {min_effect:g}{paper_txt})", summary, ev)
    elif high < 0:
        verdict = Verdict("not reproduced", f"advantage {adv:.3g} (interval {low:.3g}..{high:.3g}): "
                          f"significantly the other way{paper_txt}", summary, ev)
    if paper_adv is not None and "detectable_effect" in summary:
        needed = _seeds_needed(spread, paired, paper_adv, alpha, power, n_min)
        summary["seeds_needed"] = needed
        if verdict is None and summary["detectable_effect"] > paper_adv:
            more = f"≈ {needed} seeds" if needed is not None else "more than 10000 seeds"
            return Verdict("inconclusive", f"under-powered: detecting the paper's {paper_effect:+.3g} "
                           f"{name} needs {more} per side (with {n_min} the detectable effect is "
                           f"{summary['detectable_effect']:.3g}; interval {low:.3g}..{high:.3g})",
                           summary, ev)
    if verdict is not None:
        return verdict
    if high < min_effect:
        return Verdict("not reproduced", f"advantage {adv:.3g} (interval {low:.3g}..{high:.3g}): "
                       f"smaller than the minimum effect {min_effect:g}{paper_txt}", summary, ev)
    return Verdict("inconclusive", f"advantage {adv:.3g}, interval {low:.3g}..{high:.3g} contains "
                   f"both 0 and the minimum effect {min_effect:g}{paper_txt}" if low <= 0 else
                   f"advantage {adv:.3g} significant but below the minimum effect {min_effect:g} "
                   f"with an interval reaching it ({low:.3g}..{high:.3g}){paper_txt}", summary, ev)


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
    higher_is_better = _flag(higher_is_better, "higher_is_better")
    if isinstance(floor, bool) or not (isinstance(floor, numbers.Real) and math.isfinite(floor)):
        raise ClaimError(f"floor must be a finite number (the baseline's least acceptable value), got {floor!r}")
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


# ----------------------------------------------------------------------------- learnt, converged, chains
@dataclass(frozen=True)
class Readiness:
    """Whether one compared side can carry a verdict: it has learnt, or it has converged.

    ``ok``: the check passed; ``reason``: one sentence ("ipr has not learnt (AP 0.131 < floor
    0.3)"); ``summary``: the numbers behind it.
    """

    name: str
    check: str
    ok: bool
    reason: str
    summary: dict = field(default_factory=dict)


def has_learnt(name: str, values: Iterable[float], *, floor: float | None = None,
               blind: float | None = None, metric: str = "AP", lower_is_better: bool = False,
               margin: float = 0.1) -> Readiness:
    """Has ``name`` learnt? Its mean per-seed ``metric`` reaches ``floor`` (e.g. AP ≥ 0.3), and/or
    beats the ``blind`` baseline's value (a constant mean-pose / mean-heatmap guess) by at least
    ``margin`` of it (10 %: EPE ≤ 0.9 × blind for an error).

    Example:
        >>> has_learnt("ipr", [0.13, 0.12, 0.14], floor=0.3).reason
        'ipr has not learnt (AP 0.13 < floor 0.3)'
        >>> has_learnt("sar_fg_fc", [30.9, 31.2], blind=31.0, metric="EPE", lower_is_better=True).ok
        False
    """
    if floor is None and blind is None:
        raise ClaimError("has_learnt needs a floor, a blind baseline value, or both")
    vals = _as_values(values, f"{name} {metric}")
    mean = float(vals.mean()) if np.all(np.isfinite(vals)) else float("nan")
    summary = {"metric": metric, "per_seed": vals.tolist(), "mean": mean, "floor": floor, "blind": blind,
               "margin": float(margin), "lower_is_better": bool(lower_is_better)}
    problems = []
    if not math.isfinite(mean):
        problems.append(f"{metric} not finite")
    else:
        if floor is not None and (mean > floor if lower_is_better else mean < floor):
            problems.append(f"{metric} {mean:.3g} {'>' if lower_is_better else '<'} floor {floor:g}")
        if blind is not None:
            target = blind * (1 - margin) if lower_is_better else blind * (1 + margin)
            if (mean > target) if lower_is_better else (mean < target):
                problems.append(f"{metric} {mean:.3g}, not {margin:.0%} better than the blind guess's "
                                f"{blind:.3g}")
    if problems:
        return Readiness(name, "learnt", False, f"{name} has not learnt ({'; '.join(problems)})", summary)
    return Readiness(name, "learnt", True, f"{name} has learnt ({metric} {mean:.3g})", summary)


def _gain_over_tail(steps: Sequence[float], values: Sequence[float], fraction: float,
                    changed_at: float | None = None) -> tuple[float | None, float | None]:
    """``(gain, window start)``: the metric's gain over the last ``fraction`` of training, or
    (None, None) when no validation came early enough. With ``changed_at`` (the step at which the
    objective last changed) inside that window and at least two validations after it, the window
    starts at the first of them and the gain is scaled to the last ``fraction``'s length (the
    rate under the final objective); with fewer, the whole last ``fraction`` is read as without
    a change (the jump then counts as gain: never more lenient than the plain rule)."""
    s, v = np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)
    order = np.argsort(s)
    s, v = s[order], v[order]
    if s.size < 2 or not np.all(np.isfinite(v)) or s[-1] <= s[0]:
        return None, None
    start = s[-1] - fraction * s[-1]
    after = np.flatnonzero(s > changed_at) if changed_at is not None and start < changed_at < s[-1] else []
    if len(after) >= 2:
        first = after[0]
        return float((v[-1] - v[first]) * (s[-1] - start) / (s[-1] - s[first])), float(s[first])
    if start < s[0]:
        return None, None  # no validation early enough to see the last part of training
    return float(v[-1] - np.interp(start, s, v)), None


def has_converged(name: str, curves: Iterable, *, tolerance: float, fraction: float = 0.2,
                  metric: str = "AP", lower_is_better: bool = False, relative: bool = False,
                  changed_at: Sequence[float | None] | None = None) -> Readiness:
    """Has ``name`` converged? Over the last ``fraction`` of training (by step), its validation
    ``metric`` improved by less than ``tolerance`` (mean over seeds; linear interpolation between
    validations) — in the metric's unit, or with ``relative=True`` as a share of the final value
    (0.05: less than 5 % of the final AP gained over the last fifth). ``curves``: one per seed,
    each ``(steps, values)`` or a ``{"steps", "values"}`` mapping. A curve with no validation
    before the last ``fraction`` cannot tell: not converged.

    ``changed_at``: per curve, the step at which the run's objective last changed (a loss term
    switched off on a schedule, e.g. BCIR's prior at T_o), or None. A change inside the last
    ``fraction`` makes the jump it causes no sign of slow learning: with at least two validations
    after the change, the gain is read from the first of them to the end and scaled to the last
    ``fraction`` (the rate under the final objective); with fewer, as without a change.

    Example:
        >>> has_converged("emd", [([250, 500, 625], [0.03, 0.118, 0.136])], tolerance=0.01).reason
        'emd not converged at 625 steps (AP +0.018 over the last 20% of training > tolerance 0.01)'
        >>> has_converged("emd", [([250, 500, 625], [0.03, 0.118, 0.136])], tolerance=0.05,
        ...               relative=True).reason
        'emd not converged at 625 steps (AP +13.2% over the last 20% of training > tolerance 5.0%)'
        >>> curve = ([3000, 4000, 4500, 5000], [0.46, 0.52, 0.63, 0.631])   # a term off at step 4284
        >>> has_converged("prior", [curve], tolerance=0.05, relative=True, changed_at=[4284]).ok
        True
        >>> has_converged("prior", [curve], tolerance=0.05, relative=True).ok     # the jump counted
        False
    """
    if not (isinstance(tolerance, numbers.Real) and math.isfinite(tolerance) and tolerance > 0):
        raise ClaimError(f"tolerance must be a finite number > 0, got {tolerance!r}")
    if not (0 < fraction < 1):
        raise ClaimError(f"fraction must be in (0, 1), got {fraction!r}")
    curves = list(curves)
    if changed_at is not None and (isinstance(changed_at, (str, bytes, Mapping)) or not isinstance(changed_at, Iterable)):
        raise ClaimError(f"changed_at must be a list with one step (or None) per curve, got {changed_at!r:.60}")
    changes = [None] * len(curves) if changed_at is None else list(changed_at)
    if len(changes) != len(curves):
        raise ClaimError(f"changed_at needs one step (or None) per curve: {len(changes)} for {len(curves)} curves")
    bad = [c for c in changes if c is not None and (isinstance(c, bool) or not isinstance(c, numbers.Real)
                                                      or not math.isfinite(c) or c < 0)]
    if bad:
        raise ClaimError(f"changed_at holds steps >= 0 (or None), got {bad[0]!r:.60}")
    gains, last_steps, windows = [], [], []
    for curve, change in zip(curves, changes):
        steps, values = (curve["steps"], curve["values"]) if isinstance(curve, Mapping) else curve
        g, window = _gain_over_tail(steps, values, fraction, None if change is None else float(change))
        windows.append(window)
        last_steps.append(int(max(steps)) if len(steps) else 0)
        if g is not None and lower_is_better:
            g = -g
        if g is not None and relative:
            last = abs(float(np.asarray(values, dtype=np.float64)[np.argmax(np.asarray(steps))]))
            g = g / last if last > 0 else float("inf")
        gains.append(float("nan") if g is None else g)
    summary = {"metric": metric, "gains": gains, "tolerance": float(tolerance), "fraction": float(fraction),
               "relative": bool(relative), "steps": last_steps}
    moved = sorted({round(c) for c, w in zip(changes, windows) if w is not None})
    if moved:
        summary["objective_changed_at"] = moved
    at = f" at {max(last_steps)} steps" if last_steps and max(last_steps) > 0 else ""
    if not gains or not all(math.isfinite(g) or g == float("inf") for g in gains) or any(
            math.isnan(g) for g in gains):
        why = (f"no validation before the last {fraction:.0%} of training" if any(last_steps)
               else "the run kept no validation curve")
        return Readiness(name, "converged", False, f"{name}: convergence cannot be told{at} ({why})", summary)
    mean = float(np.mean(gains))
    summary["mean_gain"] = mean
    # one decimal: a 5.2 % gain against a 5 % tolerance must not read "+5% > 5%"
    shown = f"{mean:+.1%}" if relative else f"{mean:+.3g}"
    tol = f"{tolerance:.1%}" if relative else f"{tolerance:g}"
    how = (f", from the first validation after the objective changed at step "
           f"{' / '.join(map(str, moved))}, scaled to that length" if moved else "")
    if mean > tolerance:
        return Readiness(name, "converged", False, f"{name} not converged{at} ({metric} {shown} over "
                         f"the last {fraction:.0%} of training{how} > tolerance {tol})", summary)
    return Readiness(name, "converged", True, f"{name} converged{at} ({metric} {shown} over the last "
                     f"{fraction:.0%}{how})", summary)


def require_ready(verdict: Verdict, checks: Iterable[Readiness]) -> Verdict:
    """The verdict stands only if every compared side has learnt and converged; otherwise
    "inconclusive" naming each side that has not (a fast run keeps its own reason first).

    Example:
        >>> v = Verdict("not reproduced", "the other way")
        >>> require_ready(v, [has_learnt("ipr", [0.13, 0.12, 0.14], floor=0.3)]).verdict
        'inconclusive'
    """
    checks = list(checks)
    summary = {**verdict.summary, "readiness": [
        {"name": c.name, "check": c.check, "ok": c.ok, "reason": c.reason, **c.summary} for c in checks]}
    failing = [c.reason for c in checks if not c.ok]
    if not failing or verdict.reason.startswith("fast run"):
        return verdict.replace(summary=summary)
    if verdict.verdict == "inconclusive":  # already undecided: keep its reason first
        return verdict.replace(summary=summary, reason=f"{verdict.reason}; " + "; ".join(failing))
    return verdict.replace(verdict="inconclusive", summary=summary,
                           reason="; ".join(failing) + f" (the comparison alone said: {verdict.verdict})")


def chain_verdict(links: Mapping[str, Verdict], *, order: str = "") -> Verdict:
    """An ordering claim (A ≤ B ≤ C ...) from one verdict per link, each kept in the summary.

    "reproduced" when every link is; "not reproduced" when any link is (naming it: a broken
    chain is not "inconclusive"), still naming the links that hold and those left undecided;
    else "inconclusive", saying which links hold and which are undecided.

    Example:
        >>> r, n, i = Verdict("reproduced", "x"), Verdict("not reproduced", "y"), Verdict("inconclusive", "z")
        >>> chain_verdict({"mse < rank": r, "rank < rs": n, "rs < is": i}).reason
        'broken at rank < rs: y (holds: mse < rank) (undecided: rs < is: z)'
    """
    if not links:
        raise ClaimError("chain_verdict needs at least one link")
    summary = {"order": order, "links": {k: {"verdict": v.verdict, "reason": v.reason, **v.summary}
                                         for k, v in links.items()}}
    ev = next(iter(links.values())).evidence
    holds = [k for k, v in links.items() if v.verdict == "reproduced"]
    broken = [k for k, v in links.items() if v.verdict == "not reproduced"]
    open_ = [k for k, v in links.items() if v.verdict == "inconclusive"]
    held = f" (holds: {', '.join(holds)})" if holds else ""
    if broken:
        undecided = (" (undecided: " + "; ".join(f"{k}: {links[k].reason}" for k in open_) + ")"
                     if open_ else "")
        return Verdict("not reproduced", "broken at " + "; ".join(f"{k}: {links[k].reason}" for k in broken)
                       + held + undecided, summary, ev)
    if not open_:
        return Verdict("reproduced", f"every link holds: {', '.join(holds)}", summary, ev)
    return Verdict("inconclusive", "undecided: " + "; ".join(f"{k}: {links[k].reason}" for k in open_)
                   + held, summary, ev)


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
                            alpha: float = 0.05, seed: int = 0, paired: bool = False,
                            paper_effect: float | None = None, seed_sd: float = 0.0) -> dict[str, float]:
    """Share of each verdict when per-seed values are drawn N(effect, sd²) vs N(0, sd²).

    ``paired=True`` adds a per-seed component N(0, seed_sd²) shared by both sides (same seed,
    same model) and judges with the paired test. ``paper_effect`` is passed to the rule (the
    power check). ``n_metrics > 1`` draws independent metrics combined with
    :func:`combine_verdicts` (unanimous). Every trial calls :func:`compare_seeds`, so the
    simulation tests the real code: with ``effect=0`` the "reproduced" share is the false
    "reproduced" rate; with ``effect=paper_effect`` the "not reproduced" share is the false
    "not reproduced" rate.
    """
    if isinstance(trials, bool) or not isinstance(trials, numbers.Integral) or trials < 1:
        raise ClaimError(f"trials must be a whole number >= 1, got {trials!r}")
    rng = np.random.default_rng(seed)
    counts = dict.fromkeys(VERDICTS, 0)
    for _ in range(int(trials)):
        per = {}
        for m in range(n_metrics):
            shared = rng.normal(0.0, seed_sd, n_seeds) if paired else 0.0
            ours = shared + rng.normal(effect, sd, n_seeds)
            theirs = shared + rng.normal(0.0, sd, n_seeds)
            per[f"m{m}"] = compare_seeds(ours, theirs, lower_is_better=False, min_effect=min_effect,
                                         alpha=alpha, min_seeds=min(3, n_seeds), paired=paired,
                                         paper_effect=paper_effect)
        counts[(combine_verdicts(per) if n_metrics > 1 else per["m0"]).verdict] += 1
    return {k: v / trials for k, v in counts.items()}


# ----------------------------------------------------------------------------- the ledger
def start(chapter: str, out_dir: str | os.PathLike | None = None) -> None:
    """Begin the ledger of one chapter; earlier in-memory records are dropped.

    ``out_dir=None`` keeps records in memory only (a student's interactive run), unless the
    environment variable ``POSELAB_OUT_DIR`` names a folder. In a notebook kernel it also makes
    the kernel give freed memory back to the system after every cell
    (:func:`poselab.viz.kernel.release_memory_after_each_cell`: Binder's 2 GB).
    """
    if out_dir is None or str(out_dir) == "":
        out_dir = os.environ.get("POSELAB_OUT_DIR") or None
    _state.update(chapter=str(chapter), out_dir=Path(out_dir) if out_dir else None, records=[])
    release_memory_after_each_cell()


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
           evidence: Mapping | None = None, recorded: Mapping | None = None) -> Record:
    """Record one claim and return its record ``{id, chapter, kind, value, paper, holds, verdict,
    reason, evidence, note}`` (plus ``recorded`` when given).

    ``recorded`` (empirical claims): the same claim judged by the same rule on the recorded
    replication at a deciding scale (:func:`poselab.experiments.replicate.recorded_verdict`:
    ``{recorded, verdict, reason, preset, seeds, ...}``), shown beside the live verdict.

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
    if recorded is not None:
        if kind != "empirical" or not isinstance(recorded, Mapping) or "verdict" not in recorded:
            raise ClaimError(f"{claim_id}: recorded= is an empirical claim's recorded verdict (a mapping "
                             "with 'verdict', from experiments.replicate.recorded_verdict)")
        rec["recorded"] = _jsonable(dict(recorded))
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
    text = plain_text(value)  # "key: value; …" with rounded numbers, never raw JSON
    return text if len(text) <= limit else text[: limit - 1] + "…"


def recorded_text(recorded: Mapping | None) -> str:
    """One cell for a record's recorded verdict: "reproduced (full, seeds 0-4) — reason", or why
    there is none ("—: no recorded replication yet")."""
    if not recorded:
        return "—"
    if not recorded.get("recorded"):
        return f"— ({recorded.get('reason') or 'no recorded replication yet'})"
    seeds = recorded.get("seeds") or []
    span = f"seeds {seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else f"seed {seeds[0]}" if seeds else ""
    stale = "; recorded with older code" if recorded.get("current") is False else ""
    scale = ", ".join(p for p in (str(recorded.get("preset") or ""), span) if p)
    return (f"{recorded['verdict']} ({scale}{stale})"
            + (f" — {recorded['reason']}" if recorded.get("reason") else ""))


class ClaimsTable:
    """The ledger as a table: HTML in a notebook, :meth:`to_markdown`, plain text via ``str``.

    Columns: claim, kind, verdict (with its reason), value (shortened), paper.
    """

    columns = ("claim", "kind", "verdict", "value", "paper")

    def __init__(self, recs: Sequence[Mapping]):
        self.records = [dict(r) for r in recs]
        if any(r.get("recorded") for r in self.records):
            self.columns = ("claim", "kind", "verdict", "recorded verdict", "value", "paper")

    def rows(self) -> list[dict[str, str]]:
        out = []
        for r in self.records:
            verdict = r["verdict"] + (f" — {r['reason']}" if r.get("reason") else "")
            row = {"claim": r["id"], "kind": r["kind"], "verdict": verdict,
                   "value": _short(r["value"]), "paper": r.get("paper", "")}
            if "recorded verdict" in self.columns:
                row["recorded verdict"] = recorded_text(r.get("recorded"))
            out.append(row)
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
        # the full value (the renderer rounds it and folds a long one), not the shortened text
        return fitted_table(self.columns, [[rec.get("value") if c == "value" else row[c] for c in self.columns]
                                           for rec, row in zip(self.records, self.rows())])

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
