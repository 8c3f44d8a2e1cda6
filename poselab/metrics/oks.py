"""Object Keypoint Similarity (OKS), the COCO keypoint matching score.

COCO keypoint evaluation (cocodataset.org/#keypoints-eval; pycocotools ``COCOeval.computeOks``)
scores a predicted person against a ground-truth person by

    KS_k = exp(-d_k² / (2 s² κ_k²)),   κ_k = 2 σ_k,   s² = ground-truth segment area
    OKS  = Σ_k KS_k [v_k > 0] / Σ_k [v_k > 0]

where d_k is the Euclidean distance (pixels) between predicted and ground-truth joint k, σ_k the
per-joint sigma (``poselab.skeleton.OKS_SIGMAS``) and v_k the COCO visibility flag (a joint
counts when it is labelled, v > 0, whether occluded or not). Everything is float64 and follows
pycocotools' order of operations, ``d² / κ² / (area + eps) / 2`` with eps = 2.2e-16 (so an area
of 0 does not divide by zero), so results agree with ``computeOks`` to ~1e-16.
"""
from __future__ import annotations

import numpy as np

from poselab.metrics._checks import as_float64, check_xy
from poselab.skeleton import OKS_SIGMAS

_EPS = np.spacing(1)  # pycocotools adds this to the area


def _sigmas(sigmas, k: int) -> np.ndarray:
    s = OKS_SIGMAS if sigmas is None else as_float64(sigmas, "sigmas")
    if s.shape != (k,):
        raise ValueError(f"sigmas must have shape (K,) = ({k},) to match the keypoints, got {s.shape}")
    if np.any(s <= 0):
        raise ValueError("sigmas must be positive")
    return s


def _check_area(area: np.ndarray) -> None:
    if np.any(area < 0):
        raise ValueError("area must be >= 0 (it is the ground-truth object area s², in pixels²)")


def keypoint_similarity(pred_xy, gt_xy, area, sigmas=None) -> np.ndarray:
    """Per-joint keypoint similarity KS_k = exp(-d_k² / (2 s² κ_k²)), κ_k = 2 σ_k (COCO OKS).

    Args:
        pred_xy: (..., K, 2) predicted (x, y) pixels.
        gt_xy: (..., K, 2) ground-truth (x, y); broadcasts against ``pred_xy``.
        area: (...) ground-truth object area s² (pixels²), broadcast over the leading axes.
        sigmas: (K,) per-joint sigmas; default ``poselab.skeleton.OKS_SIGMAS`` (K = 17).

    Returns:
        (..., K) float64 in (0, 1]; visibility is *not* applied here (see :func:`oks`).

    Example:
        >>> ks = keypoint_similarity(np.zeros((17, 2)), np.full((17, 2), 3.0), area=900.0)
        >>> ks.shape
        (17,)
    """
    pred = as_float64(pred_xy, "pred_xy")
    gt = as_float64(gt_xy, "gt_xy")
    check_xy(pred, "pred_xy")
    check_xy(gt, "gt_xy")
    a = as_float64(area, "area")
    _check_area(a)
    try:
        k = np.broadcast_shapes(pred.shape, gt.shape)[-2]
        np.broadcast_shapes(pred.shape[:-1], a.shape + (1,))
    except ValueError:
        raise ValueError(f"pred_xy {pred.shape}, gt_xy {gt.shape} and area {a.shape} do not broadcast: "
                         "pass (..., K, 2), (..., K, 2) and (...) with the same K and leading axes") from None
    kappa_sq = (_sigmas(sigmas, k) * 2) ** 2
    with np.errstate(over="ignore"):  # a distance of ~1e155 px: d² = inf, similarity exp(−inf) = 0
        d_sq = ((pred - gt) ** 2).sum(axis=-1)  # (..., K)
        e = d_sq / kappa_sq / (a[..., None] + _EPS) / 2
    return np.exp(-e)


def oks(pred_xy, gt_xy, gt_vis, area, sigmas=None) -> np.ndarray:
    """OKS of predictions against ground truths paired one to one.

    Args:
        pred_xy: (..., K, 2); gt_xy: (..., K, 2); gt_vis: (..., K) COCO v (visible = v > 0);
        area: (...) ground-truth areas.

    Returns:
        (...) float64. A ground truth with no visible joint gets OKS 0.0 here (use
        :func:`oks_matrix` with ``gt_bbox`` for pycocotools' box rule).
    """
    ks = keypoint_similarity(pred_xy, gt_xy, area, sigmas)
    vis = as_float64(gt_vis, "gt_vis") > 0
    try:
        vis = np.broadcast_to(vis, ks.shape)
    except ValueError:
        raise ValueError(f"gt_vis {vis.shape} does not broadcast to the keypoints' (..., K) = {ks.shape}") from None
    count = vis.sum(axis=-1)
    total = np.where(vis, ks, 0.0).sum(axis=-1)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def oks_matrix(pred_xy, gt_xy, gt_vis, gt_area, *, gt_bbox=None, sigmas=None) -> np.ndarray:
    """OKS between every prediction and every ground truth (COCO, pycocotools ``computeOks``).

    Args:
        pred_xy: (N, K, 2) predicted (x, y) pixels.
        gt_xy: (M, K, 2) ground-truth (x, y) pixels.
        gt_vis: (M, K) COCO visibility; a joint counts when v > 0.
        gt_area: (M,) ground-truth areas s² in pixels² (COCO ``area``: the segment area).
        gt_bbox: optional (M, 4) ground-truth boxes (x, y, w, h). Only used for ground truths
            with **no** visible joint: pycocotools then measures each predicted joint's distance
            to the box enlarged by its own size on every side, ``[x - w, x + 2w] × [y - h,
            y + 2h]`` (0 inside), and averages KS over all K joints. Pass it to reproduce
            ``computeOks`` exactly. Without it, such ground truths get OKS **0.0** (defined,
            finite; COCOeval ignores them for AP anyway).
        sigmas: (K,) per-joint sigmas, default ``poselab.skeleton.OKS_SIGMAS``.

    Returns:
        (N, M) float64 OKS. Memory is N·M·K floats.
    """
    pred = as_float64(pred_xy, "pred_xy")
    gt = as_float64(gt_xy, "gt_xy")
    vis = as_float64(gt_vis, "gt_vis")
    area = as_float64(gt_area, "gt_area")
    if pred.ndim != 3 or pred.shape[-1] != 2:
        raise ValueError(f"pred_xy must have shape (N, K, 2), got {pred.shape}")
    if gt.ndim != 3 or gt.shape[-1] != 2:
        raise ValueError(f"gt_xy must have shape (M, K, 2), got {gt.shape}")
    n, k, _ = pred.shape
    m = gt.shape[0]
    if gt.shape[1] != k:
        raise ValueError(f"pred_xy has K={k} joints but gt_xy has K={gt.shape[1]}")
    if vis.shape != (m, k):
        raise ValueError(f"gt_vis must have shape (M, K) = ({m}, {k}), got {vis.shape}")
    if area.shape != (m,):
        raise ValueError(f"gt_area must have shape (M,) = ({m},), got {area.shape}")
    ks = keypoint_similarity(pred[:, None], gt[None], area[None, :], sigmas)  # (N, M, K)
    visible = vis > 0
    count = visible.sum(axis=1)  # (M,)
    total = np.where(visible[None], ks, 0.0).sum(axis=-1)  # (N, M)
    result = np.where(count[None] > 0, total / np.maximum(count, 1)[None], 0.0)
    empty = count == 0
    if gt_bbox is not None and np.any(empty):
        box = as_float64(gt_bbox, "gt_bbox")
        if box.shape != (m, 4):
            raise ValueError(f"gt_bbox must have shape (M, 4) = ({m}, 4) as (x, y, w, h), got {box.shape}")
        b = box[empty]  # (E, 4)
        x0, x1 = b[:, 0] - b[:, 2], b[:, 0] + 2 * b[:, 2]
        y0, y1 = b[:, 1] - b[:, 3], b[:, 1] + 2 * b[:, 3]
        px, py = pred[:, None, :, 0], pred[:, None, :, 1]  # (N, 1, K)
        dx = np.maximum(0, x0[None, :, None] - px) + np.maximum(0, px - x1[None, :, None])
        dy = np.maximum(0, y0[None, :, None] - py) + np.maximum(0, py - y1[None, :, None])
        kappa_sq = (_sigmas(sigmas, k) * 2) ** 2
        with np.errstate(over="ignore"):  # d² = inf for huge coordinates: exp(−inf) = 0, exact
            e = (dx ** 2 + dy ** 2) / kappa_sq / (area[empty][None, :, None] + _EPS) / 2
        result[:, empty] = np.exp(-e).mean(axis=-1)
    return result
