"""The heatmap playground: one heatmap, one ground truth, every loss's value and gradient map.

Each loss is the library's own function, called on the single map ``(1, 1, H, W)``; the gradient
is autograd's ``∂loss/∂heatmap``. Coordinates are heatmap pixels ``(x, y)`` with pixel centres
at integers (pixel ``(i, j)`` at ``x = j, y = i``).

- ``MSE``: :func:`poselab.losses.heatmap_mse_loss` to the unbiased Gaussian (σ) at the truth.
- ``KL``: :func:`poselab.losses.simcc_kl_loss` on the map flattened to one distribution over
  all H·W pixels (softmax of the map vs the normalised Gaussian): the 2-D form of SimCC's KL.
- ``Spatial Rank`` / ``Spatial Sort``: :func:`poselab.losses.spatial_rank_loss` /
  :func:`~poselab.losses.spatial_sort_loss` with the Gaussian (truncated at 3σ) as labels.
- ``EMD``: :func:`poselab.losses.emd_loss` to the sub-pixel dot (HDM Eq. 5).
- ``integral L1`` / ``integral L1, compensated``: :func:`poselab.losses.bcir_loss` with
  ``prior_weight=0`` and ``compensate`` off / on (BCIR Eq. 5 / Eq. 20), β = ``beta``.
- ``SAR``: :func:`poselab.losses.sar_loss` with the map as selector logits and every cell
  regressing its own centre (zero offsets), so the gradient shows which cells the selector
  should raise.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from poselab import losses as L

__all__ = ["PLAYGROUND_LOSSES", "blob_heatmap", "gaussian_labels", "loss_maps"]

PLAYGROUND_LOSSES = ("MSE", "KL", "Spatial Rank", "Spatial Sort", "EMD", "integral L1",
                     "integral L1, compensated", "SAR")


def blob_heatmap(size: Sequence[int], blobs: Sequence[tuple[float, float, float, float]],
                 background: float = 0.0) -> np.ndarray:
    """A ``(H, W)`` float64 map: ``background`` plus Gaussian blobs ``(x, y, sigma, amplitude)``."""
    h, w = (int(v) for v in size)
    if h < 2 or w < 2:
        raise ValueError(f"size must be at least (2, 2), got {tuple(size)}")
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.full((h, w), float(background))
    for x, y, sigma, amp in blobs:
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"blob sigma must be finite and > 0, got {sigma}")
        out += amp * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2))
    return out


def gaussian_labels(size: Sequence[int], keypoint: Sequence[float], sigma: float = 2.0,
                    truncate: float | None = 3.0) -> np.ndarray:
    """Unbiased Gaussian target (peak 1 at the sub-pixel keypoint), zero beyond ``truncate·σ``."""
    h, w = (int(v) for v in size)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    d2 = (xx - keypoint[0]) ** 2 + (yy - keypoint[1]) ** 2
    g = np.exp(-d2 / (2 * sigma ** 2))
    if truncate is not None:
        g = np.where(d2 <= (truncate * sigma) ** 2, g, 0.0)
    return g


def _value_and_grad(fn, heatmap: np.ndarray) -> tuple[float, np.ndarray]:
    h = torch.tensor(heatmap, dtype=torch.float64)[None, None].requires_grad_(True)
    loss = fn(h)
    loss.backward()
    grad = h.grad[0, 0].numpy().copy() if h.grad is not None else np.zeros_like(heatmap)
    return float(loss.detach()), grad


def loss_maps(heatmap: np.ndarray, keypoint: Sequence[float], sigma: float = 2.0,
              beta: float = 10.0, losses: Sequence[str] = PLAYGROUND_LOSSES) -> dict[str, dict]:
    """Value and gradient map of every playground loss for one heatmap.

    Args:
        heatmap: ``(H, W)`` array (raw network output: logits for KL / integral / SAR).
        keypoint: ground truth ``(x, y)`` in heatmap px (inside the map).
        sigma: σ of the Gaussian targets (MSE, KL, ranking labels), heatmap px.
        beta: soft-argmax β of the integral losses.
        losses: which of :data:`PLAYGROUND_LOSSES` to compute.

    Returns ``{name: {"value": float, "grad": (H, W) ndarray}}`` (float64).
    """

    hm = np.asarray(heatmap, dtype=np.float64)
    if hm.ndim != 2 or not np.all(np.isfinite(hm)):
        raise ValueError(f"heatmap must be a finite (H, W) array, got shape {hm.shape}")
    H, W = hm.shape
    x, y = (float(v) for v in keypoint)
    if not (-0.5 <= x < W - 0.5 and -0.5 <= y < H - 0.5):
        raise ValueError(f"keypoint {(x, y)} must lie inside the {W}x{H} map (heatmap px)")
    unknown = set(losses) - set(PLAYGROUND_LOSSES)
    if unknown:
        raise ValueError(f"unknown playground losses {sorted(unknown)}; choose from {PLAYGROUND_LOSSES}")
    kp = torch.tensor([[[x, y]]], dtype=torch.float64)
    vis = torch.ones(1, 1, dtype=torch.float64)
    full = torch.tensor(gaussian_labels((H, W), (x, y), sigma, None))[None, None]
    window = torch.tensor(gaussian_labels((H, W), (x, y), sigma, 3.0))[None, None]
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64),
                            indexing="ij")
    centres = torch.stack([xx.reshape(-1), yy.reshape(-1)], -1)[None, None]  # (1, 1, T, 2)
    fns = {
        "MSE": lambda h: L.heatmap_mse_loss(h, full, vis),
        "KL": lambda h: L.simcc_kl_loss((h.reshape(1, 1, -1), torch.zeros(1, 1, 1, dtype=h.dtype)),
                                        (full.reshape(1, 1, -1), torch.ones(1, 1, 1, dtype=h.dtype)), vis),
        "Spatial Rank": lambda h: L.spatial_rank_loss(h, window, vis),
        "Spatial Sort": lambda h: L.spatial_sort_loss(h, window, vis),
        "EMD": lambda h: L.emd_loss(h, kp, vis),
        "integral L1": lambda h: L.bcir_loss(h, kp, vis, beta=beta, prior_weight=0.0, compensate=False),
        "integral L1, compensated": lambda h: L.bcir_loss(h, kp, vis, beta=beta, prior_weight=0.0,
                                                          compensate=True),
        "SAR": lambda h: L.sar_loss(centres, h.reshape(1, 1, -1), kp, vis, map_size=(W, H)),
    }
    return {name: dict(zip(("value", "grad"), _value_and_grad(fns[name], hm))) for name in losses}
