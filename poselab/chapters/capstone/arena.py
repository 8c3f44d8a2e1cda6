"""Numbers behind the capstone's arena figures (arrays in, arrays out)."""
from __future__ import annotations

from typing import Mapping

import numpy as np

__all__ = ["per_keypoint_error", "time_to_metric"]


def per_keypoint_error(coords: np.ndarray, keypoints: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Mean end-point error per joint ``(K,)`` over persons where the joint is labelled
    (``visible > 0``); NaN for a joint labelled nowhere. Inputs ``(N, K, 2)``, ``(N, K, 2)``,
    ``(N, K)`` in the same pixel units (crop or image px).

    Example:
        >>> c = np.zeros((2, 2, 2)); g = np.array([[[3., 4.], [0., 0.]], [[0., 0.], [0., 1.]]])
        >>> per_keypoint_error(c, g, np.array([[1, 0], [1, 1]])).tolist()
        [2.5, 1.0]
    """
    c, g = np.asarray(coords, np.float64), np.asarray(keypoints, np.float64)
    v = np.asarray(visible) > 0
    if c.shape != g.shape or c.ndim != 3 or c.shape[-1] != 2 or v.shape != c.shape[:2]:
        raise ValueError(f"coords and keypoints must be (N, K, 2) and visible (N, K); got "
                         f"{c.shape}, {g.shape}, {v.shape}")
    d = np.linalg.norm(c - g, axis=-1)
    n = v.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (d * v).sum(0) / np.maximum(n, 1), np.nan)


def time_to_metric(history: Mapping, threshold: float, metric: str = "AP") -> float:
    """Training seconds (steps + data, validation excluded) until validation ``metric`` first
    reached ``threshold``; NaN if it never did. ``history`` is a ``History.to_dict()``."""
    t = np.cumsum(np.asarray(history["step_times"]) + np.asarray(history["data_times"]))
    for row in history.get("val", []):
        if metric in row and row[metric] is not None and row[metric] >= threshold:
            step = int(row["step"])
            return float(t[min(step, len(t)) - 1]) if step > 0 and len(t) else 0.0
    return float("nan")

