"""Spatial-Aware Regression (SAR, Wang & Zhang, CVPR 2024): grid priors and decoding.

Each cell ``t = (i, j)`` of an ``h × w`` output grid regresses the keypoint from its own location
prior ``p_t`` (SAR Eq. 5: ``K_t = R(f_t) + p_t``) and scores itself with a selector logit
``s_t`` (Eq. 6), ``c_t = sigmoid(s_t)``, ``w_t = c_t / Σ c_t`` (Eq. 9).

Our units and sign: ``p_t`` is the cell centre in **heatmap pixels** (pixel-centre convention,
``p_(i,j) = (x=j, y=i)``), and the offsets are heatmap-pixel displacements *added* to it:
``K_t = p_t + offset_t`` — the paper's Eq. 5. (The official code ``kennethwdk/SAR`` uses
``location - offset`` with ``location = (j/w, i/h)`` in normalised units, so
``offset_here = -offset_official · (w, h)``.)

Decoding (SAR Eq. 11): ``Δ = top(m, {c_t ≥ γ})`` — the m highest-scoring cells whose sigmoid
score passes the fixed threshold γ. Top-down SAR uses ``m = 1`` (the argmax cell's point). For
``m > 1`` :func:`decode_sar` returns the c-weighted mean of the selected points (our reduction to
one point per joint; bottom-up SAR keeps them as separate detections — :func:`sar_top_m`). If no
cell passes γ, the argmax cell is used anyway and its (low) score reported, so the caller can
filter by score.

Targets (:class:`SARCodec`): the keypoints in heatmap px plus weights; the loss compares every
cell's point with them.
"""
from __future__ import annotations

from typing import Sequence

from .._numbers import whole_number

import torch

from .base import Codec
from .heatmap import (_as_tensor, _check_maps, _check_sigma, _keypoints_and_visibility, _size2,
                      encode_gaussian, heatmap_to_input, input_to_heatmap)

__all__ = ["sar_cell_centres", "sar_cell_points", "sar_flatten_outputs", "sar_top_m", "decode_sar",
           "SARCodec"]


def sar_cell_centres(grid_size: Sequence[int], input_size: Sequence[int] | None = None,
                     dtype=torch.float32, device=None) -> torch.Tensor:
    """Location priors ``P`` (SAR Eq. 2/5): the ``(h, w, 2)`` cell centres ``(x, y)``.

    In heatmap px (``(j, i)``) by default; in input px (``(j + 0.5)·s - 0.5``) when ``input_size``
    is given.
    """
    h, w = _size2(grid_size, "grid_size")
    ys, xs = torch.meshgrid(torch.arange(h, dtype=dtype, device=device),
                            torch.arange(w, dtype=dtype, device=device), indexing="ij")
    p = torch.stack([xs, ys], -1)
    if input_size is not None:
        p = heatmap_to_input(p, input_size, (h, w))
    return p


def _check_sar_outputs(selector_logits, offsets):
    s = _check_maps(selector_logits, "selector_logits")
    o = _check_maps(offsets, "offsets", 3)
    H, W = s.shape[-2:]
    if tuple(o.shape) != tuple(s.shape[:-2]) + (2, H, W):
        raise ValueError(f"offsets must have shape {tuple(s.shape[:-2]) + (2, H, W)} "
                         f"(selector's (..., K) + (2, H, W)), got {tuple(o.shape)}")
    return s, o


def sar_cell_points(offsets) -> torch.Tensor:
    """Per-cell keypoints ``K_t = p_t + offset_t`` (SAR Eq. 5) in heatmap px.

    Args: offsets ``(..., 2, H, W)`` (x then y displacement, heatmap px).
    Returns: ``(..., H, W, 2)``.
    """
    o = _check_maps(offsets, "offsets", 3)
    if o.shape[-3] != 2:
        raise ValueError(f"offsets must have shape (..., 2, H, W), got {tuple(o.shape)}")
    H, W = o.shape[-2:]
    p = sar_cell_centres((H, W), dtype=o.dtype, device=o.device)
    return o.movedim(-3, -1) + p


def sar_flatten_outputs(selector_logits, offsets) -> tuple[torch.Tensor, torch.Tensor]:
    """A SAR head's maps as the per-cell lists the loss reads (SAR Eq. 5–6).

    Args: selector_logits ``(B, K, H, W)``; offsets ``(B, K, 2, H, W)`` heatmap px.
    Returns: ``(coords (B, K, T, 2) = p_t + offset_t in heatmap px, logits (B, K, T))`` with
    ``T = H·W`` cells in row-major order (cell ``t = i·W + j``), as :func:`poselab.losses.sar_loss`
    takes them.
    """
    s, o = _check_sar_outputs(selector_logits, offsets)
    H, W = s.shape[-2:]
    coords = sar_cell_points(o)
    return coords.reshape(*coords.shape[:-3], H * W, 2), s.reshape(*s.shape[:-2], H * W)


def sar_top_m(selector_logits, offsets, m: int = 1, gamma: float = 0.0):
    """SAR Eq. 11: the top-m cells by ``c_t = sigmoid(s_t)`` and which of them pass ``c_t ≥ γ``.

    Args:
        selector_logits: ``(..., K, H, W)``; offsets: ``(..., K, 2, H, W)`` heatmap px.
    Returns:
        ``(points (..., K, m, 2) heatmap px, scores (..., K, m) = c_t, keep (..., K, m) bool)``
        sorted by decreasing score.
    """
    s, o = _check_sar_outputs(selector_logits, offsets)
    H, W = s.shape[-2:]
    m = whole_number(m, "m", 1, H * W)
    if not 0.0 <= float(gamma) <= 1.0:
        raise ValueError(f"gamma is a threshold on sigmoid scores and must lie in [0, 1], got {gamma!r}")
    logit = s.reshape(*s.shape[:-2], H * W)
    if logit.numel() == 0:
        z = logit.new_zeros(*logit.shape[:-1], m)
        return z[..., None].expand(*z.shape, 2).clone(), z, z.bool()
    # sigmoid is monotonic: rank the logits, then transform only the m selected ones
    top_s, idx = logit.max(-1, keepdim=True) if m == 1 else logit.topk(m, dim=-1)
    top_c = torch.sigmoid(top_s)
    off = o.reshape(*o.shape[:-2], H * W).gather(-1, idx.unsqueeze(-2).expand(*idx.shape[:-1], 2, m))
    centre = torch.stack([idx % W, torch.div(idx, W, rounding_mode="floor")], -1).to(o.dtype)
    top_p = centre + off.transpose(-1, -2)  # K_t = p_t + offset_t (Eq. 5)
    return top_p, top_c, top_c >= float(gamma)


def decode_sar(selector_logits, offsets, m: int = 1, gamma: float = 0.0, score: str = "sigmoid"):
    """Decode SAR outputs to one point per joint (SAR Eq. 11; module docstring for m > 1).

    Args:
        selector_logits: ``(..., K, H, W)``; offsets: ``(..., K, 2, H, W)`` heatmap px.
        m, gamma: Eq. 11's top-m and threshold on ``c_t = sigmoid(s_t)``.
        score: ``"sigmoid"`` — ``c_t`` of the best cell (the paper's confidence);
            ``"normalised"`` — its ``w_t = c_t / Σ c`` (what the official code returns; small,
            sums to 1 over the map).
    Returns:
        ``(coords (..., K, 2) heatmap px, scores (..., K))``.
    """
    if score not in ("sigmoid", "normalised"):
        raise ValueError(f"score must be 'sigmoid' or 'normalised', got {score!r}")
    pts, c, keep = sar_top_m(selector_logits, offsets, m, gamma)
    keep = keep.clone()
    keep[..., 0] = True  # fall back to the argmax cell when nothing passes gamma
    wts = c * keep
    coords = (pts * wts[..., None]).sum(-2) / wts.sum(-1, keepdim=True).clamp_min(1e-30)
    if m == 1:
        coords = pts[..., 0, :]
    best = c[..., 0]
    if score == "normalised" and best.numel():
        total = torch.sigmoid(_as_tensor(selector_logits, "selector_logits")).sum((-2, -1))
        best = best / total
    return coords, best


class SARCodec(Codec):
    """SAR codec. ``encode(keypoints input px, visible)`` ->
    ``{"target": (..., K, 2) keypoints in heatmap px, "weights": (..., K)}`` and, with
    ``with_heatmap=True``, ``"heatmap"``: the MSRA Gaussian (σ) for the auxiliary heatmap branch
    of the official code. Weights: labelled and finite (SAR can regress points outside the grid,
    so no inside-map condition).
    ``decode(outputs)`` with ``outputs`` the SAR head's ``{"selector", "offsets"}`` dict (also
    ``decode(selector_logits, offsets)``) -> ``(coords (..., K, 2) input px, scores (..., K))``.
    """

    def __init__(self, input_size=(256, 192), heatmap_size=(64, 48), m: int = 1, gamma: float = 0.0,
                 with_heatmap: bool = False, sigma: float = 2.0, score: str = "sigmoid"):
        self.input_size = _size2(input_size, "input_size")
        self.heatmap_size = _size2(heatmap_size, "heatmap_size")
        self.m, self.gamma, self.score = whole_number(m, "m", 1), float(gamma), score
        self.with_heatmap, self.sigma = bool(with_heatmap), _check_sigma(sigma)
        if score not in ("sigmoid", "normalised"):
            raise ValueError(f"score must be 'sigmoid' or 'normalised', got {score!r}")
        self._remember(input_size=self.input_size, heatmap_size=self.heatmap_size, m=self.m,
                       gamma=self.gamma, with_heatmap=self.with_heatmap, sigma=self.sigma, score=score)

    def __repr__(self) -> str:
        return (f"SARCodec(input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
                f"m={self.m}, gamma={self.gamma})")

    def cell_centres(self) -> torch.Tensor:
        """``(h, w, 2)`` cell centres in input px."""
        return sar_cell_centres(self.heatmap_size, self.input_size)

    def encode(self, keypoints, visible=None) -> dict:
        kp_hm = input_to_heatmap(_as_tensor(keypoints, "keypoints"), self.input_size, self.heatmap_size)
        kp, valid = _keypoints_and_visibility(kp_hm, visible)
        out = {"target": kp.to(torch.float32), "weights": valid.to(torch.float32)}
        if self.with_heatmap:
            out["heatmap"], _ = encode_gaussian(kp, valid, self.heatmap_size, self.sigma)
        return out

    __call__ = encode

    def decode(self, outputs, offsets=None):
        if offsets is None:
            if isinstance(outputs, (tuple, list)) and len(outputs) == 2:
                outputs = {"selector": outputs[0], "offsets": outputs[1]}
            if not isinstance(outputs, dict) or "selector" not in outputs or "offsets" not in outputs:
                raise ValueError("SAR outputs are the head's {'selector': (..., K, h, w), 'offsets': "
                                 f"(..., K, 2, h, w)}} dict, got {type(outputs).__name__}")
            selector_logits, offsets = outputs["selector"], outputs["offsets"]
        else:
            selector_logits = outputs
        self.check_map_size(_check_maps(selector_logits, "selector_logits"), "selector")
        coords, scores = decode_sar(selector_logits, offsets, self.m, self.gamma, self.score)
        return heatmap_to_input(coords, self.input_size, self.heatmap_size), scores
