"""How well confidence scores rank detections by their true quality (e.g. OKS).

``spearman`` is the rank correlation used by the score-calibration papers; ``ranking_accuracy``
is the fraction of detection pairs put in the right order.
"""
from __future__ import annotations

import numpy as np

from poselab.metrics._checks import as_float64


def _vector(x, name: str) -> np.ndarray:
    arr = as_float64(x, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per detection), got shape {arr.shape}")
    return arr


def average_ranks(x) -> np.ndarray:
    """Ranks 1..n of a 1-D array; tied values share the mean of the ranks they span.

    Example: ``average_ranks([10, 20, 20, 5]) -> [2, 3.5, 3.5, 1]``.
    """
    arr = _vector(x, "x")
    _, inverse, counts = np.unique(arr, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)  # rank of the last member of each group of ties
    return (last - (counts - 1) / 2.0)[inverse]


def spearman(a, b) -> float:
    """Spearman rank correlation ρ: Pearson correlation of the average ranks of ``a`` and ``b``.

    ρ = Σ (r_a − r̄)(r_b − r̄) / sqrt(Σ (r_a − r̄)² Σ (r_b − r̄)²), ties get average ranks
    (same as ``scipy.stats.spearmanr``).

    Args:
        a, b: 1-D arrays of the same length n ≥ 2.

    Returns:
        float in [-1, 1]. When either input is constant the correlation is undefined (0/0);
        this function then returns **0.0** (no rank information), never NaN.

    Raises:
        ValueError: lengths differ, n < 2, not 1-D, NaN/inf.
    """
    x = _vector(a, "a")
    y = _vector(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b must have the same length, got {x.size} and {y.size}")
    if x.size < 2:
        raise ValueError(f"spearman needs at least 2 values, got {x.size}")
    rx = average_ranks(x)
    ry = average_ranks(y)
    rx -= rx.mean()
    ry -= ry.mean()
    denom = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    if denom == 0:
        return 0.0
    return float(np.clip((rx * ry).sum() / denom, -1.0, 1.0))


def ranking_accuracy(scores, quality, *, chunk: int = 2048) -> float:
    """Fraction of detection pairs whose scores are ordered like their quality.

    Over all pairs (i, j) with quality_i > quality_j (pairs tied in quality are excluded), a pair
    scores 1 when score_i > score_j, 0.5 when score_i == score_j (a tie is a coin flip), 0
    otherwise; the result is the mean over those pairs. For two quality levels this is the ROC
    AUC of the scores.

    Args:
        scores: (n,) confidence scores. quality: (n,) true quality (e.g. OKS with the matched GT).
        chunk: rows compared at once (bounds memory at chunk·n; time is O(n²)).

    Returns:
        float in [0, 1].

    Raises:
        ValueError: no pair with distinct quality (all equal or n < 2), lengths differ, NaN.
    """
    s = _vector(scores, "scores")
    q = _vector(quality, "quality")
    if s.shape != q.shape:
        raise ValueError(f"scores and quality must have the same length, got {s.size} and {q.size}")
    if chunk < 1:
        raise ValueError("chunk must be >= 1")
    correct = 0.0
    pairs = 0
    for start in range(0, s.size, chunk):
        qi, si = q[start:start + chunk, None], s[start:start + chunk, None]
        better = qi > q[None, :]  # ordered pairs: i strictly better than j
        pairs += int(better.sum())
        correct += float((better & (si > s[None, :])).sum()) + 0.5 * float(
            (better & (si == s[None, :])).sum())
    if pairs == 0:
        raise ValueError("ranking_accuracy needs at least one pair of detections with different "
                         "quality; all quality values are equal (or fewer than 2 detections)")
    return correct / pairs
