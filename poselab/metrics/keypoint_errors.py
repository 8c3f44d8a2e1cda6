"""Distance-based keypoint errors: end-point error (EPE) and PCK.

Both average over *visible* joints only (COCO: v > 0, or a boolean mask) and refuse to average
over nothing: when no joint is visible they raise ``ValueError`` instead of returning NaN.
"""
from __future__ import annotations

import numpy as np

from poselab.metrics._checks import as_float64, check_xy


def _distances(pred, gt, visible) -> tuple[np.ndarray, np.ndarray]:
    p = as_float64(pred, "pred")
    g = as_float64(gt, "gt")
    check_xy(p, "pred")
    check_xy(g, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred and gt must have the same shape (..., K, 2), got {p.shape} and {g.shape}")
    v = as_float64(visible, "visible")
    if v.shape != p.shape[:-1]:
        raise ValueError(f"visible must have shape {p.shape[:-1]} (pred's shape without the last "
                         f"axis), got {v.shape}")
    mask = v > 0
    if not mask.any():
        raise ValueError("no visible joint (all visible <= 0): EPE/PCK average over visible joints "
                         "and are undefined here; filter out persons without labelled joints")
    d = p - g
    with np.errstate(over="ignore"):
        dist = np.sqrt((d ** 2).sum(axis=-1))  # (..., K)
    big = ~np.isfinite(dist)
    if big.any():  # a coordinate of ~1e155 or more: dx² overflows; hypot scales instead of squaring
        dist[big] = np.hypot(d[..., 0], d[..., 1])[big]
    return dist, mask


def _mean(x: np.ndarray) -> float:
    """Mean that stays finite for finite values whose sum overflows (distances of ~1e306)."""
    with np.errstate(over="ignore"):
        m = float(x.mean())
    if not np.isfinite(m) and np.isfinite(x).all():
        top = float(x.max())
        m = top * float((x / top).mean())
    return m


def end_point_error(pred, gt, visible) -> float:
    """Mean Euclidean distance (pixels) between predicted and true joints over visible joints.

    EPE = Σ ‖pred_k − gt_k‖₂ [v_k > 0] / Σ [v_k > 0], pooled over all persons and joints
    (every visible joint has the same weight).

    Args:
        pred: (..., K, 2) predicted (x, y). gt: (..., K, 2) true (x, y).
        visible: (..., K) COCO visibility or boolean mask; a joint counts when > 0.

    Returns:
        float (pixels, in the frame the coordinates are given in).

    Raises:
        ValueError: when no joint is visible (the mean would be 0/0), on shape mismatch or
            non-finite inputs.
    """
    dist, mask = _distances(pred, gt, visible)
    return _mean(dist[mask])


def pck(pred, gt, visible, bbox_size, alpha: float = 0.2) -> float:
    """Percentage of Correct Keypoints, normalised by the person's box size (PCK@α).

    A visible joint is correct when ‖pred_k − gt_k‖₂ < α · bbox_size (strict, as in mmpose's
    ``keypoint_pck_accuracy``), where ``bbox_size = max(w, h)`` of the person's ground-truth box.
    Returns the fraction of visible joints that are correct, pooled over persons.

    Args:
        pred, gt: (..., K, 2). visible: (..., K).
        bbox_size: (...) one positive size per person (broadcast over K), or a scalar.
        alpha: threshold as a fraction of the box size, > 0.

    Returns:
        float in [0, 1].

    Raises:
        ValueError: no visible joint, bbox_size <= 0, alpha <= 0, shape mismatch, NaN.
    """
    dist, mask = _distances(pred, gt, visible)
    size = as_float64(bbox_size, "bbox_size")
    if np.any(size <= 0):
        raise ValueError("bbox_size must be > 0 (max(w, h) of each ground-truth box)")
    if not (np.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a positive fraction of the box size, got {alpha}")
    try:
        size = np.broadcast_to(size[..., None], dist.shape)
    except ValueError:
        raise ValueError(f"bbox_size must have shape {dist.shape[:-1]} (one per person) or be "
                         f"a scalar, got {size.shape}") from None
    correct = dist < alpha * size
    return float(correct[mask].mean())
