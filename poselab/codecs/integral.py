"""Integral regression: soft-argmax decoding and BCIR's bias compensation.

Coordinates are heatmap pixels in the pixel-centre convention of :mod:`poselab.codecs.heatmap`
(pixel ``(i, j)`` has its centre at ``x = j, y = i``; x runs along W).

Soft-argmax (BCIR Eq. 3): ``J_r = Σ_p p · softmax(β h)_p`` over the ``n = H·W`` pixel centres.
This module holds the **one** soft-argmax of poselab (:func:`soft_argmax`;
``poselab.losses.soft_argmax_2d`` is the same function under its older name).

Bias compensation (BCIR Eq. 18 / appendix Eq. 38), written for pixel-centre grids:

    J = C / (C - n) · J_r  -  n / (C - n) · centre,     C = Σ_p exp(β h_p),
    centre = ((W - 1) / 2, (H - 1) / 2).

(The paper writes the offset as ``h w² / 2(C - h w)``, i.e. ``n · (size/2) / (C - n)`` for
continuous coordinates in ``[0, size]``; with pixel centres ``0..W-1`` the uniform mean is
``(W-1)/2``.) h and w: the paper's Eq. 38 (and Eq. 18) pairs x with w and y with h, while its
Eq. 37 pairs x with ``h/2`` and y with ``w/2`` — one of the two is swapped. This module follows
x along W (pixel (i, j) has x = j): the centre is ``((W-1)/2, (H-1)/2)``, Eq. 38's pairing, and
Eq. 37 holds with h and w exchanged (tested on a non-square 64×48 map). Substituting ``J_r`` shows the compensated point is the expectation under the weights
``exp(β h_p) - 1`` instead of ``exp(β h_p)``:

    J = Σ_p p (e^{β h_p} - 1) / Σ_p (e^{β h_p} - 1),

so it is **exact** for any blob symmetric about a point on a zero background — the background
pixels get weight 0. MMPose's ``debias`` uses ``C/(C-1)`` with C summed over the map, which is
≈ 1 for realistic maps (a near no-op); that form is *not* used here.

Numerics: every softmax here subtracts the (detached) maximum *before* multiplying by β, so
``β · h`` never overflows (any finite β, any finite map); half-precision maps (float16 /
bfloat16) are computed in float32 and returned in their own dtype, as GPU autocast does for a
softmax.
"""
from __future__ import annotations

import math

import torch

from ._checks import as_tensor, check_maps, check_sigma, keypoints_and_visibility, size2
from .base import Codec
from .heatmap import encode_gaussian, heatmap_to_input, input_to_heatmap

__all__ = ["soft_argmax", "spatial_softmax", "softmax_log_normalizer", "compensate_softargmax_bias",
           "compensated_soft_argmax", "check_max_gain", "IntegralCodec"]

_HALF = (torch.float16, torch.bfloat16)


def _check_beta(beta, allow_zero: bool = True) -> float:
    """β as a float; ValueError naming ``beta`` unless finite and >= 0 (> 0 if not allow_zero)."""
    try:
        b = float(beta)
    except (TypeError, ValueError):
        raise ValueError(f"beta must be a number (the softmax scale β of BCIR Eq. 3), got {beta!r}") from None
    if not math.isfinite(b) or b < 0 or (b == 0 and not allow_zero):
        need = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"beta must be a finite number {need} (the softmax scale β of BCIR Eq. 3, "
                         f"paper default 10), got {beta!r}")
    return b


def _checked_maps(heatmaps, name: str = "heatmaps") -> torch.Tensor:
    """check_maps plus non-empty spatial dims (a softmax over 0 pixels is undefined)."""
    h = check_maps(heatmaps, name)
    if h.shape[-1] == 0 or h.shape[-2] == 0:
        raise ValueError(f"{name} must have at least one pixel (H, W >= 1), got shape {tuple(h.shape)}")
    return h


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in _HALF else dtype


def _scaled_shifted(h: torch.Tensor, beta: float):
    """``(β·(h - max h), max h)`` over the last two dims in the working dtype.

    The maximum is detached (a softmax is shift-invariant, so the gradient is unchanged). β is
    clamped to the dtype's largest finite value so that ``0 · β`` is never ``0 · inf``; products
    that overflow become ``-inf`` and get probability 0, the limit they have for the true β.
    """
    w = h.to(_work_dtype(h.dtype))
    m = w.detach().amax((-2, -1), keepdim=True)
    scale = min(beta, torch.finfo(w.dtype).max)
    return (w - m) * scale, m


def _softmax_flat(z: torch.Tensor) -> torch.Tensor:
    H, W = z.shape[-2:]
    return torch.softmax(z.reshape(*z.shape[:-2], H * W), -1).reshape(z.shape)


def _expectation(p: torch.Tensor) -> torch.Tensor:
    H, W = p.shape[-2:]
    xs = torch.arange(W, dtype=p.dtype, device=p.device)
    ys = torch.arange(H, dtype=p.dtype, device=p.device)
    return torch.stack([(p.sum(-2) * xs).sum(-1), (p.sum(-1) * ys).sum(-1)], -1)


def _soft_argmax_unchecked(h: torch.Tensor, beta: float, compensate: bool = False,
                           keep_work_dtype: bool = False, max_gain: float | None = None):
    """Soft-argmax (and optionally Eq. 38) of checked maps; J_r stays in the working dtype
    between the two steps (rounding J_r to float16 first would be amplified by C / (C - n))."""
    if not compensate:
        z, _ = _scaled_shifted(h, beta)
        j = _expectation(_softmax_flat(z))
    else:
        j, _ = _soft_argmax_compensated(h, beta, max_gain)
    return j if keep_work_dtype else j.to(h.dtype)


def _soft_argmax_compensated(h: torch.Tensor, beta: float, max_gain: float | None = None):
    """J_r and Eq. 38 from one exponential pass: ``e = exp(β(h − max))`` gives both the softmax
    ``e / S`` and ``log C = log S + β·max`` (S >= 1, since the maximum contributes exp(0))."""
    z, m = _scaled_shifted(h, beta)
    e = torch.exp(z)
    total = e.sum((-2, -1))
    j = _expectation(e / total[..., None, None])
    log_c = torch.log(total) + m[..., 0, 0] * beta
    return _compensate_unchecked(j, h, beta, None, out_dtype=j.dtype, log_c=log_c, max_gain=max_gain)


def spatial_softmax(heatmaps, beta: float = 10.0) -> torch.Tensor:
    """The normalised heatmap ``h̃ = softmax(β h)`` over the H·W pixels (BCIR Eq. 3 / Eq. 29).

    Args:
        heatmaps: ``(..., H, W)`` logits, finite.
        beta: softmax scale β >= 0 (β = 0 gives the uniform map 1/(H·W)).
    Returns:
        ``(..., H, W)`` probabilities summing to 1 per map, dtype of ``heatmaps``.

    Example:
        >>> p = spatial_softmax(torch.zeros(2, 3, 4, dtype=torch.float64), beta=10.0)
        >>> p.shape, float(p.sum((-2, -1))[0])
        (torch.Size([2, 3, 4]), 1.0)
    """
    beta = _check_beta(beta)
    h = _checked_maps(heatmaps)
    z, _ = _scaled_shifted(h, beta)
    return _softmax_flat(z).to(h.dtype)


def softmax_log_normalizer(heatmaps, beta: float = 10.0) -> torch.Tensor:
    """``log C = log Σ_p exp(β h_p)`` (BCIR Eq. 19 / Eq. 30), computed without overflow.

    Returns ``(...)`` in the working dtype (float32 for half-precision maps). ``+inf`` only when
    ``β · max h`` itself exceeds the dtype's range (then ``n / C`` is 0 to that precision).

    Example:
        >>> round(float(softmax_log_normalizer(torch.zeros(4, 5), beta=3.0)), 6) == round(math.log(20), 6)
        True
    """
    beta = _check_beta(beta)
    h = _checked_maps(heatmaps)
    return _log_normalizer(h, beta)


def _log_normalizer(h: torch.Tensor, beta: float) -> torch.Tensor:
    z, m = _scaled_shifted(h, beta)
    H, W = h.shape[-2:]
    return torch.logsumexp(z.reshape(*z.shape[:-2], H * W), -1) + m[..., 0, 0] * beta


def soft_argmax(heatmaps, beta: float = 10.0) -> torch.Tensor:
    """Soft-argmax of ``(..., H, W)`` maps (integral regression, BCIR Eq. 3).

    ``J_r = Σ_p p · softmax(β · h)_p`` with the pixel-centre grids ``x = 0..W-1`` (along W) and
    ``y = 0..H-1``. Differentiable. Stable for any finite β >= 0 and any finite map: the maximum
    is subtracted before the product with β, so ``β · h`` cannot overflow (β → ∞ tends to the
    argmax, ties averaged); β = 0 gives the map centre ``((W-1)/2, (H-1)/2)``. float16 and
    bfloat16 maps are computed in float32 and returned in their dtype.

    This is the one soft-argmax of poselab; ``poselab.losses.soft_argmax_2d`` is an alias.

    Args:
        heatmaps: ``(..., H, W)`` logits, finite (tensor, array or nested list).
        beta: softmax scale β >= 0 (BCIR default 10).
    Returns:
        ``(..., 2)`` ``(x, y)`` heatmap px, dtype of ``heatmaps``.
    Raises:
        ValueError on NaN/Inf maps, fewer than 2 dims, or β < 0 / non-finite.

    Example:
        >>> m = torch.zeros(5, 7, dtype=torch.float64)
        >>> m[1, 2] = 5.0
        >>> soft_argmax(m, beta=1e30).tolist()
        [2.0, 1.0]
        >>> [round(v, 9) for v in soft_argmax(m, beta=0.0).tolist()]
        [3.0, 2.0]
    """
    beta = _check_beta(beta)
    h = _checked_maps(heatmaps)
    return _soft_argmax_unchecked(h, beta)


def compensate_softargmax_bias(coords, heatmaps, beta: float = 10.0, tol: float | None = None,
                               return_valid: bool = False, max_gain: float | None = None):
    """Bias-compensated soft-argmax (BCIR Eq. 18 / Eq. 38, pixel-centre form; module docstring).

    ``J = (J_r - r · centre) / (1 - r)`` with ``r = n / C = exp(log n - log C)``, computed in log
    space so a huge β or huge logits cannot overflow (then r -> 0 and J -> J_r).

    No localized support: the derivation needs ``C > n`` (the map rises above a zero
    background; the weights ``e^{βh} - 1`` are then positive where the blob is). Where
    ``1 - n/C <= tol`` — a flat map, β = 0, or a map whose logits are mostly negative (C <= n) —
    Eq. 38 is 0/0 or meaningless, and the **uncorrected** ``J_r`` is returned (finite; for β = 0
    the centre). ``return_valid=True`` also returns the mask of maps that were corrected, so a
    caller can report how many had no localized support. ``tol`` defaults to ``1000 · eps`` of the
    working dtype (1.2e-4 float32 — also for float16/bfloat16 maps, computed in float32 —,
    2.2e-13 float64).

    Args:
        coords: ``(..., 2)`` soft-argmax output ``J_r`` (heatmap px) of these maps and this β.
        heatmaps: ``(..., H, W)`` the logits that produced it, finite.
        beta: the β used in :func:`soft_argmax`.
        tol: threshold on ``1 - n/C`` below which the map is left uncorrected.
        return_valid: also return ``valid (...)`` bool (True where Eq. 38 was applied).
        max_gain: a guard (ours, not the paper's): cap the compensation's gain ``C / (C − n)``
            at ``max_gain`` > 1 by clamping the background share to ``n/C <= 1 − 1/max_gain``
            (see :func:`check_max_gain`). None (default): Eq. 38 as derived.
    Returns:
        ``(..., 2)`` compensated coordinates in the dtype of ``heatmaps``; differentiable.
        With ``return_valid=True``: ``(coords, valid)``.

    Example:
        >>> m = torch.zeros(9, 11, dtype=torch.float64)
        >>> m[2, 3] = 1.0                       # a one-pixel blob at x=3, y=2
        >>> raw = soft_argmax(m, beta=1.0)      # pulled toward the centre (5, 4)
        >>> [round(v, 3) for v in raw.tolist()]
        [4.966, 3.966]
        >>> [round(v, 9) for v in compensate_softargmax_bias(raw, m, beta=1.0).tolist()]
        [3.0, 2.0]
    """
    beta = _check_beta(beta)
    h = _checked_maps(heatmaps)
    j = as_tensor(coords, "coords")
    if tuple(j.shape) != tuple(h.shape[:-2]) + (2,):
        raise ValueError(f"coords must have shape {tuple(h.shape[:-2]) + (2,)} (heatmaps' leading "
                         f"dims + 2), got {tuple(j.shape)}")
    if j.numel() and not bool(torch.isfinite(j).all()):
        raise ValueError("coords contains NaN or Inf; pass the soft_argmax of these heatmaps")
    out, valid = _compensate_unchecked(j, h, beta, tol, max_gain=check_max_gain(max_gain))
    return (out, valid) if return_valid else out


def check_max_gain(max_gain) -> float | None:
    """The compensation guard ``max_gain``: None, or a finite number > 1 (ValueError otherwise).

    Why a guard (BCIR issue: the compensation is badly conditioned on real network output): Eq. 38
    is ``J = centre + g · (J_r − centre)`` with the gain ``g = C / (C − n)``. A network at
    initialisation predicts logits ≈ 0, so ``C ≈ n`` and ``g`` is in the tens to thousands: the
    compensated point lands far outside the map and its gradient — which carries a ``g²`` term
    through ``C`` — is 10⁴ times plain IPR's. With ``max_gain`` the background share is clamped
    at ``1 − 1/max_gain`` (so ``g <= max_gain``, and no gradient flows through the clamped
    share); a map whose blob holds more than that share of ``softmax(β h)`` is compensated
    exactly as Eq. 38, and the point is continuous in the logits. Maps with ``C <= n`` — left
    uncompensated without the guard — get the capped gain too.
    """
    if max_gain is None:
        return None
    try:
        g = float(max_gain)
    except (TypeError, ValueError):
        g = float("nan")
    if not (math.isfinite(g) and g > 1):
        raise ValueError(f"max_gain must be None or a finite number > 1 (the cap on the compensation's "
                         f"gain C/(C - n)), got {max_gain!r}")
    return g


def _compensate_unchecked(j: torch.Tensor, h: torch.Tensor, beta: float, tol: float | None,
                          out_dtype: torch.dtype | None = None, log_c: torch.Tensor | None = None,
                          max_gain: float | None = None):
    work = _work_dtype(h.dtype)
    jw = j.to(work)
    H, W = h.shape[-2:]
    n = H * W
    if tol is None:
        tol = 1000.0 * torch.finfo(work).eps
    log_c = _log_normalizer(h, beta) if log_c is None else log_c
    log_r = math.log(n) - log_c                              # log(n / C), may be ±inf
    if max_gain is not None:                                 # the guard: n/C <= 1 - 1/max_gain
        log_r = torch.clamp(log_r, max=math.log1p(-1.0 / max_gain))
    valid = (log_r < math.log1p(-tol)).detach()              # 1 - n/C > tol
    safe = torch.where(valid, log_r, torch.full_like(log_r, -1.0))
    r = torch.exp(safe)
    one_minus_r = -torch.expm1(safe)
    centre = torch.tensor([(W - 1) / 2.0, (H - 1) / 2.0], dtype=work, device=h.device)
    corrected = (jw - r[..., None] * centre) / one_minus_r[..., None]
    out = torch.where(valid[..., None], corrected, jw)
    return out.to(out_dtype or h.dtype), valid


def compensated_soft_argmax(heatmaps, beta: float = 10.0, return_valid: bool = False,
                            max_gain: float | None = None):
    """Soft-argmax followed by the bias compensation (BCIR Eq. 3 then Eq. 38), in one call.

    Same result as ``compensate_softargmax_bias(soft_argmax(h, β), h, β)``, but ``J_r`` is not
    rounded to the maps' dtype in between: for float16/bfloat16 maps that rounding is amplified
    by the compensation's condition number ``C / (C - n)`` (about 125 for a unit-peak σ = 2 blob
    on a 64×48 map at β = 1), so use this function for half-precision maps. ``max_gain``: the
    guard of :func:`check_max_gain` (ours; None = Eq. 38 as derived).

    Example:
        >>> m = torch.zeros(9, 11, dtype=torch.float16)
        >>> m[2, 3] = 1.0
        >>> compensated_soft_argmax(m, beta=1.0).tolist()
        [3.0, 2.0]
    """
    beta = _check_beta(beta)
    h = _checked_maps(heatmaps)
    j, valid = _soft_argmax_compensated(h, beta, check_max_gain(max_gain))
    return (j.to(h.dtype), valid) if return_valid else j.to(h.dtype)


class IntegralCodec(Codec):
    """Integral-regression targets and decoding (BCIR).

    ``encode(keypoints (..., K, 2) input px, visible)`` ->
    ``{"target": (..., K, 2) float32 keypoints in heatmap px, "weights": (..., K)}`` and, with
    ``with_prior=True``, ``"prior": (..., K, H, W)`` — the unbiased Gaussian (σ heatmap px)
    normalised to sum 1 (BCIR's Gaussian prior target; all zeros for weight-0 joints).
    Weight 1 for labelled, finite keypoints inside the heatmap area ``[-0.5, W-0.5] x
    [-0.5, H-0.5]``, else 0.

    ``decode(heatmaps (..., K, H, W))`` -> ``(coords (..., K, 2) input px, scores (..., K))``:
    soft-argmax with β, compensated when ``compensate=True`` (with the gain guard ``max_gain``
    when given, :func:`check_max_gain`); score = max softmax probability.

    Example:
        >>> codec = IntegralCodec((64, 48), (16, 12), beta=10.0)
        >>> out = codec.encode([[[10.0, 20.0]]], [[2]])
        >>> out["target"].tolist(), out["weights"].tolist()
        ([[[2.125, 4.625]]], [[1.0]])
    """

    def __init__(self, input_size=(256, 192), heatmap_size=(64, 48), beta: float = 10.0,
                 compensate: bool = True, sigma: float = 2.0, with_prior: bool = False,
                 max_gain: float | None = None):
        self.input_size = size2(input_size, "input_size")
        self.heatmap_size = size2(heatmap_size, "heatmap_size")
        self.beta = _check_beta(beta)
        self.sigma = check_sigma(sigma)
        self.compensate, self.with_prior = bool(compensate), bool(with_prior)
        self.max_gain = check_max_gain(max_gain)
        self._remember(input_size=self.input_size, heatmap_size=self.heatmap_size, beta=self.beta,
                       compensate=self.compensate, sigma=self.sigma, with_prior=self.with_prior,
                       max_gain=self.max_gain)

    def __repr__(self) -> str:
        return (f"IntegralCodec(input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
                f"beta={self.beta}, compensate={self.compensate}, with_prior={self.with_prior}"
                + (f", max_gain={self.max_gain}" if self.max_gain is not None else "") + ")")

    def encode(self, keypoints, visible=None) -> dict:
        H, W = self.heatmap_size
        kp_in = as_tensor(keypoints, "keypoints")
        kp, valid = keypoints_and_visibility(
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
        h = _checked_maps(heatmaps)
        self.check_map_size(h, "heatmap")
        coords = _soft_argmax_unchecked(h, self.beta, compensate=self.compensate, max_gain=self.max_gain)
        if h.numel():
            z, _ = _scaled_shifted(h, self.beta)
            scores = _softmax_flat(z).amax((-2, -1)).to(h.dtype)
        else:
            scores = h.new_zeros(h.shape[:-2])
        return heatmap_to_input(coords, self.input_size, self.heatmap_size), scores
