"""Spatial-Aware Regression objective (SAR, Wang & Zhang, CVPR 2024, §3.2, Eq. 7–10).

Every grid cell ``t`` of an ``h × w`` output map regresses a point ``K_t`` (Eq. 5) and a selector
logit ``s_t`` (Eq. 6). The unified objective scores each cell's point by a Laplacian kernel and
weights it by the normalised selector:

    r_t = exp(−λ · |K_t − K*|)                  (Eq. 8; L1 distance, coordinates ÷ map size)
    c_t = σ(s_t),  w_t = c_t / Σ_u c_u          (Eq. 9, "two-step" normalisation)
    L   = −log Σ_t w_t · r_t                    (Eq. 7)

λ = 16 with coordinates normalised by the map size, as in the paper and the official code
(``kennethwdk/SAR``: ``|Δx|/w + |Δy|/h``, i.e. 16/w per heatmap pixel in x). The official loss
adds ``eps = 1e-6`` inside the log; we keep it (``eps=`` to change it, 0 for none).

Numerics: the sum is evaluated in the log domain, ``log Σ w r = logsumexp(log w_t − λ d_t)`` with
``log w_t = logsigmoid(s_t) − logsumexp_u logsigmoid(s_u)``, and the ``eps`` term joins through
``logaddexp(·, log eps)``. So the value is finite for every finite input (all r_t underflowing,
targets far outside the map, saturated logits) in float32, float64 and half precision; half
precision inputs are computed in float32 and the result cast back (saturating at the dtype's largest
value, reachable only with ``eps=0``).

The ``"softmax"`` normalisation (``w = softmax(s)``, the "one-step" alternative the paper argues
against in §3.2) is here for the comparison: its weights, unlike ``c_t``, depend on how many
targets share the map (see :func:`poselab.chapters.sar.analysis.normalization_study`).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from ._checks import has_nonfinite, mask_unlabelled_targets
from .heatmap import check_reduction, check_tensor, empty_loss

__all__ = ["sar_loss", "sar_multi_target_loss", "sar_log_weights", "sar_quality", "SARLoss",
           "sar_auxiliary_heatmap_loss", "NORMALIZATIONS"]

NORMALIZATIONS = ("two_step", "softmax")


def _map_size(map_size) -> tuple[float, float]:
    if map_size is None:
        raise ValueError("map_size is required: pass map_size=(W, H), the output grid's width and "
                         "height in heatmap px (coordinates are normalised by it, SAR Eq. 8)")
    try:
        w, h = (float(map_size[0]), float(map_size[1]))
        ok = len(map_size) == 2
    except Exception:
        ok = False
    if not ok or not (w > 0 and h > 0 and math.isfinite(w) and math.isfinite(h)):
        raise ValueError(f"map_size must be a (W, H) pair of positive numbers (heatmap px), "
                         f"got {map_size!r}")
    return w, h


def _check_lam(lam) -> float:
    lam = float(lam)
    if not (lam > 0 and math.isfinite(lam)):
        raise ValueError(f"lam (λ, SAR Eq. 8) must be a positive finite number, got {lam!r}")
    return lam


def sar_log_weights(selector_logits: torch.Tensor, normalization: str = "two_step") -> torch.Tensor:
    """``log w_t`` over the last axis (SAR Eq. 9): two-step ``σ(s)/Σσ(s)`` or one-step softmax.

    Args: selector_logits ``(..., T)``. Returns ``(..., T)``; ``exp`` of it sums to 1 over T.

    Example:
        >>> sar_log_weights(torch.zeros(1, 4)).exp()
        tensor([[0.2500, 0.2500, 0.2500, 0.2500]])
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if normalization == "softmax":
        return F.log_softmax(selector_logits, dim=-1)
    log_c = F.logsigmoid(selector_logits)
    return log_c - torch.logsumexp(log_c, dim=-1, keepdim=True)


def sar_quality(coords: torch.Tensor, target: torch.Tensor, lam: float = 16.0,
                map_size: Sequence[float] | None = None, log: bool = False) -> torch.Tensor:
    """Regression quality ``r_t = exp(−λ(|Δx|/W + |Δy|/H))`` (SAR Eq. 8), or its log.

    Args: coords ``(..., T, 2)`` heatmap px; target ``(..., 2)`` heatmap px; map_size ``(W, H)``.
    Returns ``(..., T)``.

    Example:
        >>> sar_quality(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.zeros(2), 16.0, (16, 16))
        tensor([0.3679, 1.0000])
    """
    w, h = _map_size(map_size)
    lam = _check_lam(lam)
    scale = torch.tensor([1.0 / w, 1.0 / h], dtype=coords.dtype, device=coords.device)
    log_r = -lam * ((coords - target.unsqueeze(-2)).abs() * scale).sum(-1)
    return log_r if log else log_r.exp()


def sar_loss(coords: torch.Tensor, selector_logits: torch.Tensor, target: torch.Tensor,
             visible: torch.Tensor | None = None, lam: float = 16.0,
             map_size: Sequence[float] | None = None, reduction: str = "mean", *,
             normalization: str = "two_step", eps: float = 1e-6) -> torch.Tensor:
    """SAR unified objective (SAR Eq. 7–9), per joint ``ℓ = −log(Σ_t w_t r_t + eps)``.

        d_t = |x_t − x*| / W + |y_t − y*| / H        (heatmap px ÷ map size: normalised L1)
        r_t = exp(−λ d_t)                            (Eq. 8)
        w_t = σ(s_t) / Σ_u σ(s_u)                    (Eq. 9; normalization="softmax": softmax(s))
        L   = Σ_bk v_bk ℓ_bk / Σ_bk v_bk             (reduction="mean": mean over visible joints)

    Args:
        coords: ``(B, K, T, 2)`` every cell's regressed point ``K_t = p_t + offset_t`` (Eq. 5) in
            heatmap px (:func:`poselab.codecs.sar_flatten_outputs` builds it from a SAR head).
        selector_logits: ``(B, K, T)`` selector logits ``s_t`` (Eq. 6).
        target: ``(B, K, 2)`` ground-truth keypoints in heatmap px (may lie outside the map);
            NaN/Inf only for a joint whose ``visible`` is 0 (it is ignored, as by ``bcir_loss``).
        visible: ``(B, K)`` joint weights (0 = ignore; COCO v > 0 → 1); None = all ones.
        lam: λ of Eq. 8 (paper: 16, on normalised coordinates).
        map_size: ``(W, H)`` of the output grid in heatmap px — **width first**, as the issue's
            contract and the official code (``keypoints / (w, h)``) have it. Required.
        reduction: "mean" (above; 0 with a graph when no joint is visible), "sum" (Σ v ℓ) or
            "none" → ``(B, K)`` of ``v · ℓ``.
        normalization: "two_step" (Eq. 9) or "softmax" (the one-step variant of §3.2).
        eps: added inside the log as in the official code (caps ℓ at −log eps ≈ 13.8, where the
            gradient vanishes); 0 for the pure Eq. 7.

    Returns a scalar (or ``(B, K)``). With ``T = 1`` the weight is 1 and ``ℓ = −log(r + eps)`` ≈
    ``λ · d``: λ times the normalised L1 regression loss (SAR §3.3, "degenerates to regression").

    Example:
        >>> coords = torch.tensor([[[[2.0, 3.0], [9.0, 9.0]]]])      # B=K=1, T=2 cells
        >>> logits = torch.tensor([[[10.0, -10.0]]])                  # the selector picks cell 0
        >>> round(sar_loss(coords, logits, torch.tensor([[[2.0, 3.0]]]), torch.ones(1, 1),
        ...                map_size=(16, 16)).item(), 4)
        0.0
    """
    check_reduction(reduction)
    check_tensor(coords, "coords", ndim=4, last=2)
    check_tensor(selector_logits, "selector_logits", ndim=3)
    target_nonfinite = has_nonfinite(target)
    # NaN/Inf is allowed for unlabelled joints (masked below, once visible is read)
    check_tensor(torch.nan_to_num(target) if target_nonfinite else target, "target", ndim=3, last=2)
    B, K, T = coords.shape[:3]
    if tuple(selector_logits.shape) != (B, K, T):
        raise ValueError(f"selector_logits must have shape (B, K, T) = {(B, K, T)} to match coords "
                         f"{tuple(coords.shape)}, got {tuple(selector_logits.shape)}")
    if tuple(target.shape) != (B, K, 2):
        raise ValueError(f"target must have shape (B, K, 2) = {(B, K, 2)}, got {tuple(target.shape)}")
    if T == 0:
        raise ValueError("coords has T = 0 cells; a SAR map needs at least one cell")
    if visible is None:
        v = torch.ones((B, K), dtype=coords.dtype, device=coords.device)
    else:
        if not isinstance(visible, torch.Tensor):
            raise ValueError(f"visible must be a (B, K) tensor, got {type(visible).__name__}")
        v = check_tensor(visible.to(coords.dtype), "visible")
        if tuple(v.shape) != (B, K):
            raise ValueError(f"visible must have shape (B, K) = {(B, K)}, got {tuple(v.shape)}")
        if v.numel() and bool((v < 0).any()):
            raise ValueError("visible must be >= 0 (0 = ignore the joint, 1 = labelled)")
    if target_nonfinite:
        target = mask_unlabelled_targets(target, None if visible is None else v, "visible")
    eps = float(eps)
    if not (eps >= 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    if B == 0 or K == 0:
        return empty_loss(coords + 0 * selector_logits.sum(), reduction, (B, K))
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    w_size, h_size = _map_size(map_size)
    lam = _check_lam(lam)
    # computed in float32 at least: in float16 a coordinate difference of ±6e4 px overflows to inf
    # (every r_t then −inf, and the posterior's −inf − (−inf) = NaN in the backward)
    work = torch.promote_types(coords.dtype, torch.float32)
    log_q = _LogWeightedQuality.apply(coords.to(work), selector_logits.to(work), target.to(work),
                                      lam / w_size, lam / h_size, normalization == "softmax")  # log Σ w r
    if eps > 0:
        log_q = torch.logaddexp(log_q, torch.tensor(math.log(eps), dtype=log_q.dtype,
                                                        device=log_q.device))
    v = v.to(work)
    per_kp = -log_q * v
    if reduction == "none":
        out = per_kp
    elif reduction == "sum":
        out = per_kp.sum()
    else:
        out = per_kp.sum() / v.sum().clamp_min(torch.finfo(v.dtype).tiny)  # no visible joint: 0 / tiny = 0
    return _to_input_dtype(out, coords.dtype)


def _to_input_dtype(out: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Cast a float32 result back to a half-precision input's dtype, saturating at its largest
    finite value (only reachable with ``eps=0``: ``λ·d`` > 65504 in float16) instead of inf."""
    if out.dtype == dtype:
        return out
    big = torch.finfo(dtype).max
    # the value saturates, the gradient passes unchanged ((out − out.detach()) is exactly 0)
    return (out.detach().clamp(-big, big) + (out - out.detach())).to(dtype)


class _LogWeightedQuality(torch.autograd.Function):
    """``log Σ_t w_t r_t`` (SAR Eq. 7–9) with a hand-written backward: one pass each way instead
    of autograd's chain over a dozen ``(B, K, T)`` tensors (the SAR loss cost ~5× the MSE loss).

    ``log Σ_t w_t r_t = logsumexp_t(log c_t + log r_t) − logsumexp_t(log c_t)`` with
    ``log c = logsigmoid(s)`` (two-step; ``s`` itself for softmax) and ``log r_t = −(λ/W)|Δx| −
    (λ/H)|Δy|``. With ``p_t = softmax_t(log c + log r)`` (the posterior over cells) and ``q_t = w_t``:
    ``∂/∂s_t = (p_t − q_t) · ∂log c_t/∂s_t`` (``1 − σ(s_t)`` two-step, 1 softmax) and
    ``∂/∂K_t = −p_t · (λ/W · sign Δx, λ/H · sign Δy)``. First derivatives only.
    """

    @staticmethod
    def forward(ctx, coords, logits, target, ax, ay, softmax):
        diff = coords - target.unsqueeze(-2)                                      # (B, K, T, 2)
        scale = torch.tensor([ax, ay], dtype=coords.dtype, device=coords.device)
        # a target of 1e300 px (inf once cast to float32) or a difference past the dtype's range
        # gives log r = −inf in every cell, and the backward's posterior −inf − (−inf) = NaN:
        # floor log r at a finite value (those cells tie, as far as the dtype can tell anyway)
        log_r = -(diff.abs() * scale).sum(-1).clamp_max(torch.finfo(coords.dtype).max / 4)
        log_c = logits if softmax else F.logsigmoid(logits)
        a = log_c + log_r
        lse_a = torch.logsumexp(a, dim=-1, keepdim=True)
        lse_c = torch.logsumexp(log_c, dim=-1, keepdim=True)
        ctx.softmax = bool(softmax)
        ctx.save_for_backward(diff, scale, a, lse_a, log_c, lse_c, logits)
        return (lse_a - lse_c).squeeze(-1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        diff, scale, a, lse_a, log_c, lse_c, logits = ctx.saved_tensors
        g = grad.unsqueeze(-1)
        p = (a - lse_a).exp_()                                                    # posterior over cells
        grad_logits = grad_coords = grad_target = None
        if ctx.needs_input_grad[1]:
            dq = (log_c - lse_c).exp_().sub_(p).neg_().mul_(g)                     # (p − w) · g
            grad_logits = dq if ctx.softmax else (log_c - logits).exp_().mul_(dq)  # 1 − σ(s) = e^{log σ(s) − s}
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[2]:
            grad_coords = torch.sign(diff).mul_(scale).mul_(p.mul_(g).neg_().unsqueeze(-1))
            if ctx.needs_input_grad[2]:
                grad_target = -grad_coords.sum(-2)
            if not ctx.needs_input_grad[0]:
                grad_coords = None
        return grad_coords, grad_logits, grad_target, None, None, None


def sar_multi_target_loss(coords: torch.Tensor, selector_logits: torch.Tensor, targets: torch.Tensor,
                          visible: torch.Tensor | None = None, lam: float = 16.0,
                          map_size: Sequence[float] | None = None, reduction: str = "mean", *,
                          normalization: str = "two_step", eps: float = 1e-6) -> torch.Tensor:
    """SAR objective with several targets of one joint type on the map (SAR §3.2, §4.3).

    Each target ``K*_n`` gets its own Eq. 7 term over the *same* cells and weights,
    ``ℓ_n = −log(Σ_t w_t r_t(K*_n) + eps)``; the mean runs over visible targets. This is where the
    normalisation matters: Σ_t w_t = 1 must be shared by all targets.

    Args:
        coords ``(B, K, T, 2)``, selector_logits ``(B, K, T)`` as in :func:`sar_loss`;
        targets ``(B, K, N, 2)`` heatmap px (NaN allowed in a slot whose visible is 0);
        visible ``(B, K, N)`` (0 for padding slots).
    Returns a scalar, or ``(B, K, N)`` for ``reduction="none"``.

    Example:
        >>> c = torch.tensor([[[[1.0, 1.0], [6.0, 6.0]]]])
        >>> t = torch.tensor([[[[1.0, 1.0], [6.0, 6.0]]]])             # two targets, one per cell
        >>> l = sar_multi_target_loss(c, torch.full((1, 1, 2), 20.0), t, map_size=(8, 8), eps=0)
        >>> round(l.item(), 4)                                          # each cell has w = 1/2
        0.6931
    """
    check_tensor(coords, "coords", ndim=4, last=2)
    # NaN/Inf targets of unlabelled slots are allowed: sar_loss masks (or refuses) them
    check_tensor(torch.nan_to_num(targets) if isinstance(targets, torch.Tensor) else targets, "targets",
                 ndim=4, last=2)
    B, K, T = coords.shape[:3]
    if tuple(targets.shape[:2]) != (B, K):
        raise ValueError(f"targets must have shape (B, K, N, 2) with (B, K) = {(B, K)}, "
                         f"got {tuple(targets.shape)}")
    N = targets.shape[2]
    if visible is None:
        visible = torch.ones((B, K, N), dtype=coords.dtype, device=coords.device)
    if not isinstance(visible, torch.Tensor) or tuple(visible.shape) != (B, K, N):
        raise ValueError(f"visible must be a (B, K, N) = {(B, K, N)} tensor")
    check_tensor(selector_logits, "selector_logits", ndim=3)
    if tuple(selector_logits.shape) != (B, K, T):
        raise ValueError(f"selector_logits must have shape (B, K, T) = {(B, K, T)}, "
                         f"got {tuple(selector_logits.shape)}")
    flat_c = coords.unsqueeze(2).expand(B, K, N, T, 2).reshape(B, K * N, T, 2)
    flat_s = selector_logits.unsqueeze(2).expand(B, K, N, T).reshape(B, K * N, T)
    out = sar_loss(flat_c, flat_s, targets.reshape(B, K * N, 2), visible.reshape(B, K * N), lam,
                   map_size, reduction, normalization=normalization, eps=eps)
    return out.reshape(B, K, N) if reduction == "none" else out


class SARLoss(torch.nn.Module):
    """Module wrapper of :func:`sar_loss` (λ, map size, normalisation and eps fixed at build)."""

    def __init__(self, map_size: Sequence[float], lam: float = 16.0, reduction: str = "mean",
                 normalization: str = "two_step", eps: float = 1e-6):
        super().__init__()
        check_reduction(reduction)
        self.map_size, self.lam = _map_size(map_size), _check_lam(lam)
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        self.reduction, self.normalization, self.eps = reduction, normalization, float(eps)

    def forward(self, coords, selector_logits, target, visible=None):
        return sar_loss(coords, selector_logits, target, visible, self.lam, self.map_size,
                        self.reduction, normalization=self.normalization, eps=self.eps)


def sar_auxiliary_heatmap_loss(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None,
                               gamma: float = 2.0, pos_threshold: float = 0.7) -> torch.Tensor:
    """The auxiliary heatmap loss of the official SAR code (``kennethwdk/SAR``, ``SARHead.loss``
    with ``with_heatmap=True``, weight 1 in every config; the paper does not mention it).

    A third 1×1 conv predicts heatmap logits ``z`` beside the selector and offsets; it is trained
    with a quality focal loss against the MSRA Gaussian ``g``, over the labelled joints' maps:

        L_hm = Σ_{maps, px} BCE(z, g) · |g − σ(z)|^γ  /  max(1, #{px : g > pos_threshold})

    (the official code writes the positive pixels ``g > 0`` and the negatives ``g = 0`` as two
    cases; with ``g = 0`` the positive formula is the negative one, so this one line is both).
    Its output is not used for decoding: it only shapes the shared features.

    Args:
        logits: ``(B, K, h, w)`` heatmap logits. target: ``(B, K, h, w)`` Gaussian targets in [0, 1].
        weights: ``(B, K)`` joint weights (> 0 = the map counts); None = all.
        gamma: focusing exponent (official: 2). pos_threshold: pixels counted as positives in
            the normaliser (official: 0.7).

    Returns a scalar (0 with a graph when no map counts). Computed in float32 at least.

    Example:
        >>> g = torch.zeros(1, 1, 5, 5); g[0, 0, 2, 2] = 1.0
        >>> good = torch.full((1, 1, 5, 5), -20.0); good[0, 0, 2, 2] = 20.0
        >>> bool(sar_auxiliary_heatmap_loss(good, g) < 1e-6 < sar_auxiliary_heatmap_loss(-good, g))
        True
    """
    check_tensor(logits, "logits", ndim=4)
    check_tensor(target, "target", ndim=4)
    if tuple(target.shape) != tuple(logits.shape):
        raise ValueError(f"target must have the logits' shape {tuple(logits.shape)}, got {tuple(target.shape)}")
    gamma, pos_threshold = float(gamma), float(pos_threshold)
    if not (gamma >= 0 and math.isfinite(gamma)):
        raise ValueError(f"gamma must be a finite number >= 0, got {gamma!r}")
    if not 0.0 <= pos_threshold < 1.0:
        raise ValueError(f"pos_threshold must be in [0, 1) (a Gaussian target value), got {pos_threshold!r}")
    if target.numel() and not (float(target.detach().amin()) >= 0.0 and float(target.detach().amax()) <= 1.0):
        raise ValueError(f"target must lie in [0, 1] (Gaussian heatmaps, the BCE's probabilities), got "
                         f"values in [{float(target.detach().amin()):g}, {float(target.detach().amax()):g}]; "
                         f"rescale 0-255 maps by / 255")
    B, K = logits.shape[:2]
    work = torch.promote_types(logits.dtype, torch.float32)
    z, g = logits.to(work), target.to(work)
    if weights is None:
        m = torch.ones((B, K), dtype=work, device=z.device)
    else:
        if not isinstance(weights, torch.Tensor) or tuple(weights.shape) != (B, K):
            raise ValueError(f"weights must be a (B, K) = {(B, K)} tensor")
        m = (check_tensor(weights.to(work), "weights") > 0).to(work)
    per_px = F.binary_cross_entropy_with_logits(z, g, reduction="none") * (g - torch.sigmoid(z)).abs().pow(gamma)
    m = m[..., None, None]
    n_pos = ((g > pos_threshold).to(work) * m).sum().clamp_min(1.0)
    return (per_px * m).sum() / n_pos
