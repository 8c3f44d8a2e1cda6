"""Integral regression: soft-argmax decoding and BCIR's bias compensation.

Coordinates are heatmap pixels in the pixel-centre convention of :mod:`poselab.codecs.heatmap`
(pixel ``(i, j)`` has its centre at ``x = j, y = i``; x runs along W).

Soft-argmax (BCIR Eq. 3): ``J_r = Σ_p p · softmax(β h)_p`` over the ``n = H·W`` pixel centres.

Bias compensation (BCIR Eq. 18 / appendix Eq. 38), written for pixel-centre grids:

    J = C / (C - n) · J_r  -  n / (C - n) · centre,     C = Σ_p exp(β h_p),
    centre = ((W - 1) / 2, (H - 1) / 2).

(The paper writes the offset as ``h w² / 2(C - h w)``, i.e. ``n · (size/2) / (C - n)`` for
continuous coordinates in ``[0, size]``; with pixel centres ``0..W-1`` the uniform mean is
``(W-1)/2``.) Substituting ``J_r`` shows the compensated point is the expectation under the weights
``exp(β h_p) - 1`` instead of ``exp(β h_p)``:

    J = Σ_p p (e^{β h_p} - 1) / Σ_p (e^{β h_p} - 1),

so it is **exact** for any blob symmetric about a point on a zero background — the background
pixels get weight 0. MMPose's ``debias`` uses ``C/(C-1)`` with C summed over the map, which is
≈ 1 for realistic maps (a near no-op); that form is *not* used here.
"""
from __future__ import annotations

import math

import torch

from .heatmap import (_as_tensor, _check_maps, _check_sigma, _size2, encode_gaussian,
                      heatmap_to_input, input_to_heatmap, _keypoints_and_visibility)

__all__ = ["soft_argmax", "compensate_softargmax_bias", "IntegralCodec"]


def _check_beta(beta) -> float:
    b = float(beta)
    if not math.isfinite(b) or b < 0:
        raise ValueError(f"beta must be a finite number >= 0 (the softmax temperature), got {beta!r}")
    return b


def _grids(H: int, W: int, dtype, device):
    return (torch.arange(W, dtype=dtype, device=device), torch.arange(H, dtype=dtype, device=device))


def soft_argmax(heatmaps, beta: float = 10.0) -> torch.Tensor:
    """Soft-argmax of ``(..., H, W)`` maps (integral regression, BCIR Eq. 3).

    ``softmax(β · h)`` over the H·W pixels, then the expectation of the pixel-centre grids
    ``x = 0..W-1`` (along W) and ``y = 0..H-1``. Differentiable; stable for any β (the softmax
    subtracts the maximum), β = 0 gives the map centre ``((W-1)/2, (H-1)/2)``.

    Args:
        heatmaps: ``(..., H, W)`` logits, finite.
        beta: softmax scale β >= 0.
    Returns:
        ``(..., 2)`` ``(x, y)`` heatmap px, dtype of ``heatmaps``.
    Raises:
        ValueError on NaN/Inf maps or β < 0 / non-finite.
    """
    beta = _check_beta(beta)
    h = _check_maps(heatmaps, "heatmaps")
    H, W = h.shape[-2:]
    p = torch.softmax((beta * h).reshape(*h.shape[:-2], H * W), -1).reshape(h.shape)
    xs, ys = _grids(H, W, h.dtype, h.device)
    x = (p.sum(-2) * xs).sum(-1)
    y = (p.sum(-1) * ys).sum(-1)
    return torch.stack([x, y], -1)


def compensate_softargmax_bias(coords, heatmaps, beta: float = 10.0, tol: float | None = None):
    """Bias-compensated soft-argmax (BCIR Eq. 18 / Eq. 38, pixel-centre form; module docstring).

    ``J = (J_r - r · centre) / (1 - r)`` with ``r = n / C = exp(log n - logsumexp(β h))``,
    computed in log space so huge β cannot overflow (then r -> 0 and J -> J_r).

    Ill-conditioned case: when ``|1 - r| <= tol`` (an almost flat map or β -> 0, where C ≈ n and
    the correction is 0/0) the **uncorrected** ``J_r`` is returned (finite, and for β = 0 equal to
    the centre). ``tol`` defaults to ``1000 · eps`` of the dtype (1.2e-4 float32, 2.2e-13
    float64). Maps with C < n (mostly negative logits) are corrected by the same formula.

    Args:
        coords: ``(..., 2)`` soft-argmax output ``J_r`` (heatmap px) of these maps and this β.
        heatmaps: ``(..., H, W)`` the logits that produced it, finite.
        beta: the β used in :func:`soft_argmax`.
    Returns:
        ``(..., 2)`` compensated coordinates, same dtype; differentiable.
    """
    beta = _check_beta(beta)
    h = _check_maps(heatmaps, "heatmaps")
    j = _as_tensor(coords, "coords").to(h.dtype)
    if tuple(j.shape) != tuple(h.shape[:-2]) + (2,):
        raise ValueError(f"coords must have shape {tuple(h.shape[:-2]) + (2,)} (heatmaps' leading "
                         f"dims + 2), got {tuple(j.shape)}")
    if j.numel() and not bool(torch.isfinite(j).all()):
        raise ValueError("coords contains NaN or Inf")
    H, W = h.shape[-2:]
    n = H * W
    if tol is None:
        tol = 1000.0 * torch.finfo(h.dtype).eps
    log_c = torch.logsumexp((beta * h).reshape(*h.shape[:-2], n), -1)
    r = torch.exp(math.log(n) - log_c)              # n / C, in (0, inf)
    one_minus_r = -torch.expm1(math.log(n) - log_c)  # 1 - n/C without cancellation
    ok = one_minus_r.abs() > tol
    denom = torch.where(ok, one_minus_r, torch.ones_like(one_minus_r))
    centre = torch.tensor([(W - 1) / 2.0, (H - 1) / 2.0], dtype=h.dtype, device=h.device)
    corrected = (j - r[..., None] * centre) / denom[..., None]
    return torch.where(ok[..., None], corrected, j)


class IntegralCodec:
    """Integral-regression targets and decoding (BCIR).

    ``encode(keypoints (..., K, 2) input px, visible)`` ->
    ``{"target": (..., K, 2) float32 keypoints in heatmap px, "weights": (..., K)}`` and, with
    ``with_prior=True``, ``"prior": (..., K, H, W)`` — the unbiased Gaussian (σ heatmap px)
    normalised to sum 1 (BCIR's Gaussian prior target; all zeros for weight-0 joints).
    Weight 1 for labelled, finite keypoints inside the heatmap area ``[-0.5, W-0.5] x
    [-0.5, H-0.5]``, else 0.

    ``decode(heatmaps (..., K, H, W))`` -> ``(coords (..., K, 2) input px, scores (..., K))``:
    soft-argmax with β, compensated when ``compensate=True``; score = max softmax probability.
    """

    def __init__(self, input_size=(256, 192), heatmap_size=(64, 48), beta: float = 10.0,
                 compensate: bool = True, sigma: float = 2.0, with_prior: bool = False):
        self.input_size = _size2(input_size, "input_size")
        self.heatmap_size = _size2(heatmap_size, "heatmap_size")
        self.beta = _check_beta(beta)
        self.sigma = _check_sigma(sigma)
        self.compensate, self.with_prior = bool(compensate), bool(with_prior)

    def __repr__(self) -> str:
        return (f"IntegralCodec(input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
                f"beta={self.beta}, compensate={self.compensate}, with_prior={self.with_prior})")

    def encode(self, keypoints, visible=None) -> dict:
        H, W = self.heatmap_size
        kp_in = _as_tensor(keypoints, "keypoints")
        kp, valid = _keypoints_and_visibility(
            input_to_heatmap(kp_in, self.input_size, self.heatmap_size), visible)
        inside = ((kp[..., 0] >= -0.5) & (kp[..., 0] <= W - 0.5)
                  & (kp[..., 1] >= -0.5) & (kp[..., 1] <= H - 0.5))
        w = (valid & inside).to(torch.float32)
        out = {"target": kp.to(torch.float32), "weights": w}
        if self.with_prior:
            g, _ = encode_gaussian(kp, w, self.heatmap_size, self.sigma, unbiased=True)
            s = g.sum((-2, -1), keepdim=True)
            out["prior"] = g / torch.where(s > 0, s, torch.ones_like(s))
        return out

    __call__ = encode

    def decode(self, heatmaps):
        h = _check_maps(heatmaps, "heatmaps")
        coords = soft_argmax(h, self.beta)
        if self.compensate:
            coords = compensate_softargmax_bias(coords, h, self.beta)
        H, W = h.shape[-2:]
        if h.numel():
            scores = torch.softmax((self.beta * h).reshape(*h.shape[:-2], H * W), -1).amax(-1)
        else:
            scores = h.new_zeros(h.shape[:-2])
        return heatmap_to_input(coords, self.input_size, self.heatmap_size), scores
