"""SimCC 1-D classification labels (Li et al., ECCV 2022; MMPose ``SimCCLabel``).

Each axis of the **input** image is split into ``L = round(size · k)`` bins (split ratio ``k``,
default 2). Pixel-centre convention (see :mod:`poselab.codecs.heatmap`): bin ``b`` has its centre
at input pixel ``(b + 0.5) / k - 0.5``, i.e. ``x_bin = (x_in + 0.5) · k - 0.5`` — the heatmap
formula with stride ``1/k``. (MMPose uses ``x_in · k``.)

Labels are full-length 1-D Gaussians with peak 1 and σ in **bins** (default 6), as in MMPose
(not truncated). "Positive" bins are thresholded with :func:`positives` — by default those within
3σ of the centre (label ≥ exp(-9/2)).

Decoding: argmax per axis, converted back to input px (error ≤ 1/(2k) input px for the default
rounded-centre labels). Score: **min over the two axes of the maximum softmax probability** of
the 1-D vector (``score="softmax"``, default; bounded in (0, 1], unlike the raw logits MMPose
returns — see mmpose #3207), or the min of raw maxima (``score="raw"``, MMPose's behaviour).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from .base import Codec
from .heatmap import _as_tensor, _check_maps, _check_sigma, _keypoints_and_visibility, _size2

__all__ = ["simcc_bins", "encode_simcc", "decode_simcc", "positives", "SimCCCodec",
           "POSITIVE_THRESHOLD_3SIGMA"]

POSITIVE_THRESHOLD_3SIGMA = math.exp(-0.5 * 9.0)
#: Largest number of bins per axis :func:`simcc_bins` accepts (guards against a runaway
#: split_ratio allocating gigabytes).
MAX_BINS = 1 << 16


def _check_split(split_ratio) -> float:
    k = float(split_ratio)
    if not math.isfinite(k) or k <= 0:
        raise ValueError(f"split_ratio must be a positive number, got {split_ratio!r}")
    return k


def simcc_bins(input_size: Sequence[int], split_ratio: float = 2.0) -> tuple[int, int]:
    """Number of bins ``(L_x, L_y) = (round(W·k), round(H·k))`` for an ``(H, W)`` input."""
    H, W = _size2(input_size, "input_size")
    k = _check_split(split_ratio)
    bins = int(round(W * k)), int(round(H * k))
    if min(bins) < 1 or max(bins) > MAX_BINS:
        raise ValueError(f"split_ratio {split_ratio!r} gives {bins[0]}×{bins[1]} bins for input_size "
                         f"{(H, W)}; choose split_ratio so that each axis has 1 to {MAX_BINS} bins "
                         "(SimCC uses 2 or 3)")
    return bins


def encode_simcc(keypoints, visible=None, input_size: Sequence[int] = (256, 192),
                 split_ratio: float = 2.0, sigma: float = 6.0, unbiased: bool = False):
    """SimCC labels: one 1-D Gaussian (peak 1, σ in bins) per axis and joint.

    The centre is the rounded bin ``floor(x_bin + 0.5)`` (MMPose) or, with ``unbiased=True``, the
    real-valued ``x_bin``. Weight 1 for a labelled finite joint whose ±3σ interval overlaps the
    bins in both axes, else 0 (labels of weight-0 joints are all zeros).

    Args:
        keypoints: ``(..., K, 2)`` input px; visible: ``(..., K)`` COCO v or bool (None = all).
    Returns:
        ``(labels_x (..., K, L_x), labels_y (..., K, L_y), weights (..., K))`` float32.
    """
    Lx, Ly = simcc_bins(input_size, split_ratio)
    k = _check_split(split_ratio)
    sigma = _check_sigma(sigma)
    kp, valid = _keypoints_and_visibility(keypoints, visible)
    bins = (kp + 0.5) * k - 0.5
    centre = bins if unbiased else torch.floor(bins + 0.5)
    cx, cy = centre[..., 0:1], centre[..., 1:2]
    r = 3.0 * sigma
    inside = ((cx[..., 0] + r >= 0) & (cx[..., 0] - r <= Lx - 1)
              & (cy[..., 0] + r >= 0) & (cy[..., 0] - r <= Ly - 1))
    w = (valid & inside).to(torch.float32)
    bx = torch.arange(Lx, dtype=torch.float32, device=kp.device)
    by = torch.arange(Ly, dtype=torch.float32, device=kp.device)
    lx = torch.exp(-((bx - cx) ** 2) / (2 * sigma * sigma)) * w[..., None]
    ly = torch.exp(-((by - cy) ** 2) / (2 * sigma * sigma)) * w[..., None]
    return lx, ly, w


def positives(labels, threshold: float = POSITIVE_THRESHOLD_3SIGMA) -> torch.Tensor:
    """Boolean mask of "positive" bins: ``labels >= threshold``.

    With peak-1 Gaussian labels the default ``exp(-9/2)`` selects the bins within 3σ of the centre
    (at most ``6σ + 1`` bins). Zero labels (weight-0 joints) have no positives.
    """
    t = _as_tensor(labels, "labels")
    thr = float(threshold)
    if not (0 < thr <= 1):
        raise ValueError(f"threshold must lie in (0, 1] for peak-1 labels, got {threshold!r}")
    return t >= thr


def decode_simcc(simcc_x, simcc_y, split_ratio: float = 2.0, score: str = "softmax"):
    """Decode SimCC vectors by argmax per axis.

    Args:
        simcc_x: ``(..., K, L_x)``, simcc_y: ``(..., K, L_y)`` logits or labels, finite.
        split_ratio: k; bin ``b`` -> input px ``(b + 0.5) / k - 0.5``.
        score: ``"softmax"`` — min over axes of max softmax probability; ``"raw"`` — min of the
            raw maxima (MMPose).
    Returns:
        ``(coords (..., K, 2) input px float32, scores (..., K) float32)``.
    """
    if score not in ("softmax", "raw"):
        raise ValueError(f"score must be 'softmax' or 'raw', got {score!r}")
    k = _check_split(split_ratio)
    sx = _check_maps(simcc_x, "simcc_x", 1)
    sy = _check_maps(simcc_y, "simcc_y", 1)
    if sx.shape[:-1] != sy.shape[:-1]:
        raise ValueError(f"simcc_x {tuple(sx.shape)} and simcc_y {tuple(sy.shape)} must share "
                         "their leading (..., K) dims")
    if (sx.shape[-1] == 0 or sy.shape[-1] == 0) and sx.shape[:-1].numel() > 0:
        raise ValueError(f"simcc_x {tuple(sx.shape)} and simcc_y {tuple(sy.shape)} need at least one "
                         "bin per axis")
    if sx.numel() == 0 or sy.numel() == 0:
        return (torch.zeros(*sx.shape[:-1], 2, device=sx.device),
                torch.zeros(sx.shape[:-1], device=sx.device))
    vx, ix = sx.max(-1)
    vy, iy = sy.max(-1)
    coords = (torch.stack([ix, iy], -1).to(torch.float32) + 0.5) / k - 0.5
    if score == "softmax":
        vx = torch.softmax(sx.float(), -1).amax(-1)
        vy = torch.softmax(sy.float(), -1).amax(-1)
    return coords, torch.minimum(vx, vy).to(torch.float32)


class SimCCCodec(Codec):
    """SimCC codec: ``encode(keypoints input px, visible)`` ->
    ``{"target_x": (..., K, L_x), "target_y": (..., K, L_y), "weights": (..., K)}`` (usable as a
    dataset ``target_fn``); ``decode(outputs)`` with ``outputs`` the SimCC head's
    ``(simcc_x, simcc_y)`` pair (also ``decode(simcc_x, simcc_y)``) -> ``(coords input px,
    scores)``. No maps: ``heatmap_size`` is None and ``stride`` is ``1 / split_ratio`` (input px
    per bin)."""

    heatmap_size = None

    def __init__(self, input_size=(256, 192), split_ratio: float = 2.0, sigma: float = 6.0,
                 unbiased: bool = False, score: str = "softmax"):
        self.input_size = _size2(input_size, "input_size")
        self.split_ratio = _check_split(split_ratio)
        self.sigma = _check_sigma(sigma)
        if score not in ("softmax", "raw"):
            raise ValueError(f"score must be 'softmax' or 'raw', got {score!r}")
        self.unbiased, self.score = bool(unbiased), score
        self.bins = simcc_bins(self.input_size, self.split_ratio)
        self._remember(input_size=self.input_size, split_ratio=self.split_ratio, sigma=self.sigma,
                       unbiased=self.unbiased, score=score)

    @property
    def stride(self) -> float:
        """Input pixels per bin, ``1 / split_ratio``."""
        return 1.0 / self.split_ratio

    def __repr__(self) -> str:
        return (f"SimCCCodec(input_size={self.input_size}, split_ratio={self.split_ratio}, "
                f"sigma={self.sigma}, bins={self.bins})")

    def encode(self, keypoints, visible=None) -> dict:
        lx, ly, w = encode_simcc(keypoints, visible, self.input_size, self.split_ratio,
                                 self.sigma, self.unbiased)
        return {"target_x": lx, "target_y": ly, "weights": w}

    __call__ = encode

    def decode(self, outputs, simcc_y=None):
        if simcc_y is None:
            if isinstance(outputs, dict) and {"x", "y"} <= set(outputs):
                outputs = (outputs["x"], outputs["y"])
            if not isinstance(outputs, (tuple, list)) or len(outputs) != 2:
                raise ValueError("SimCC outputs are the head's (simcc_x (..., K, L_x), simcc_y (..., K, L_y)) "
                                 f"pair, got {type(outputs).__name__}")
            simcc_x, simcc_y = outputs
        else:
            simcc_x = outputs
        sx = _check_maps(simcc_x, "simcc_x", 1)
        sy = _check_maps(simcc_y, "simcc_y", 1)
        if (sx.shape[-1], sy.shape[-1]) != tuple(self.bins):
            raise ValueError(f"SimCC outputs have {sx.shape[-1]} x-bins and {sy.shape[-1]} y-bins but this codec "
                             f"decodes {self.bins[0]} and {self.bins[1]} (input {self.input_size[0]}×"
                             f"{self.input_size[1]}, split_ratio {self.split_ratio:g})")
        return decode_simcc(sx, sy, self.split_ratio, self.score)
