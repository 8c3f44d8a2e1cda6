"""Integral pose regression losses: L1 on soft-argmax coordinates, the heatmap-shrinkage
regulariser and the BCIR loss (Gu, Yang, Mi, Yao, "Bias-Compensated Integral Regression for
Human Pose Estimation", TPAMI 2023).

Integral regression (Sun et al. 2018) decodes a heatmap by softmax + expectation (BCIR Eq. 3)
and trains with an L1 loss on the coordinates (BCIR Eq. 5). BCIR

- compensates the soft-argmax's pull toward the map centre (Eq. 18 / 38,
  :func:`poselab.codecs.compensate_softargmax_bias`) and puts the compensated point in the L1
  loss (Eq. 20);
- adds the detection loss on the same raw heatmap, ``λ(t)·L_de`` (Eq. 4, Eq. 21), with a step
  schedule λ(t) = 1 for t < T_o, else 0 (:func:`step_schedule`).

The regulariser of §4.4 (Eq. 15) penalises sharp peaks of the normalised heatmap
(:func:`laplacian_shrinkage_regularizer`).

All coordinates are heatmap pixels, pixel-centre convention (pixel (i, j) has centre x=j, y=i).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..codecs.heatmap import encode_gaussian
from ..codecs.integral import _check_beta, _soft_argmax_unchecked, _work_dtype, check_max_gain, soft_argmax
from ._checks import (check_reduction, check_same_shape, check_tensor, check_weights, empty_loss,
                      has_nonfinite, mask_unlabelled_targets, reduce_per_keypoint)

__all__ = ["integral_l1_loss", "soft_argmax_2d", "step_schedule", "IntegralL1Loss",
           "laplacian_shrinkage_regularizer", "bcir_loss", "BCIRLoss"]

#: Older name of :func:`poselab.codecs.soft_argmax` (one soft-argmax in poselab). Note the
#: default β is the paper's 10 (the old function defaulted to 1).
soft_argmax_2d = soft_argmax


def step_schedule(t: float, t_off: float, value: float = 1.0) -> float:
    """BCIR's λ(t) (Eq. 21): ``value`` while ``t < t_off``, 0 from ``t_off`` on.

    ``t`` and ``t_off`` are in the same unit (epochs in the paper: T_o = 120 for SBL; steps here
    when that is what the training loop counts).

    Example:
        >>> [step_schedule(t, 2) for t in range(4)]
        [1.0, 1.0, 0.0, 0.0]
    """
    return float(value) if t < t_off else 0.0


def integral_l1_loss(prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None,
                     beta: float = 10.0, prior_heatmaps: torch.Tensor | None = None,
                     prior_weight: float = 0.0, reduction: str = "mean") -> torch.Tensor:
    """Integral-regression L1 loss (BCIR Eq. 5) with the optional Gaussian prior term (Eq. 21).

        Ĵ_bk = soft-argmax(β · ĥ_bk)                                   (Eq. 3)
        ℓ_bk = w_bk · ( |Ĵx − Jx| + |Ĵy − Jy|                           (Eq. 5)
                        + λ · Σ_p (h_bkp − ĥ_bkp)² )                    (Eq. 4, Eq. 21)
        L = 1/(B·K) · Σ_{b,k} ℓ_bk                                      (reduction="mean")

    Coordinates are in heatmap pixels (pixel-centre convention). The prior term compares the
    **raw** heatmap ĥ (not its softmax) with the given target h, summed over pixels as in
    Eq. 4; λ comes from :func:`step_schedule`. (:func:`bcir_loss` builds the Gaussian target and
    adds the bias compensation.)

    Args:
        prediction: heatmap logits ``(B, K, H, W)`` or already-decoded coordinates ``(B, K, 2)``.
        target: ground-truth coordinates ``(B, K, 2)`` in heatmap pixels; NaN/Inf only for a
            joint of weight 0 (it is ignored, as by :func:`bcir_loss`).
        weights: ``(B, K)`` keypoint weights; None = all ones.
        beta: softmax scale β > 0 of Eq. 3 (default: BCIR's 10, as the integral codec's; ignored
            for coordinates).
        prior_heatmaps: ``(B, K, H, W)`` target heatmaps for the prior term, or None.
        prior_weight: λ(t) ≥ 0; the prior term is skipped when it is 0 or ``prior_heatmaps`` is
            None.
        reduction: "mean", "sum" or "none" → ``(B, K)``.

    float16 / bfloat16 inputs are computed in float32 and the loss is float32 (as under autocast).

    Example:
        >>> hm = torch.zeros(1, 1, 5, 7)
        >>> hm[0, 0, 1, 2] = 10.0
        >>> float(integral_l1_loss(hm, torch.tensor([[[2.0, 1.0]]]), beta=10.0)) < 1e-6
        True
    """
    check_reduction(reduction)
    check_tensor(prediction, "prediction")
    target_nonfinite = has_nonfinite(target)  # allowed for unlabelled joints: masked below
    check_tensor(torch.nan_to_num(target) if target_nonfinite else target, "target", ndim=3, last=2)
    if prediction.dim() == 4:
        heatmaps = prediction
    elif prediction.dim() == 3 and prediction.shape[-1] == 2:
        heatmaps = None
    else:
        raise ValueError("prediction must be heatmap logits (B, K, H, W) or coordinates (B, K, 2), "
                         f"got shape {tuple(prediction.shape)}")
    B, K = prediction.shape[:2]
    if heatmaps is not None and 0 in heatmaps.shape[-2:]:
        raise ValueError(f"prediction heatmaps must have H, W >= 1, got shape {tuple(prediction.shape)}")
    if tuple(target.shape[:2]) != (B, K):
        raise ValueError(f"target must have shape (B, K, 2) = {(B, K, 2)}, got {tuple(target.shape)}")
    w = check_weights(weights, (B, K), prediction)
    if target_nonfinite:
        target = mask_unlabelled_targets(target, None if weights is None else w, "weights")
    beta = _check_beta(beta, allow_zero=False)
    lam = _check_prior_weight(prior_weight)
    use_prior = prior_heatmaps is not None and lam > 0
    if use_prior:
        if heatmaps is None:
            raise ValueError("the prior term needs heatmap logits (B, K, H, W) as prediction, "
                             "not coordinates")
        check_tensor(prior_heatmaps, "prior_heatmaps", ndim=4)
        check_same_shape(heatmaps, prior_heatmaps, "prediction", "prior_heatmaps")
    if B == 0 or K == 0:
        return empty_loss(prediction, reduction, (B, K))
    coords = (_soft_argmax_unchecked(heatmaps, beta, keep_work_dtype=True) if heatmaps is not None
              else prediction.to(_work_dtype(prediction.dtype)))
    per_kp = (coords - target.to(coords.dtype)).abs().sum(-1)
    if use_prior:
        per_kp = per_kp + lam * _prior_term(heatmaps, prior_heatmaps.to(coords.dtype), "integral_l1_loss")
    return reduce_per_keypoint(per_kp * w.to(coords.dtype), reduction, B * K)


def _prior_term(heatmaps: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """Σ_p (ĥ_p − target_p)² per map, ``(B, K)``, in ``target``'s dtype; a square that overflows
    it (|ĥ| ≳ 1.8e19 in float32) raises ValueError instead of returning inf."""
    prior = (heatmaps.to(target.dtype) - target).square().sum((-2, -1))
    if not bool(torch.isfinite(prior.detach()).all()):
        raise ValueError(f"{loss}: the prior term overflows {prior.dtype}: |heatmap| reaches "
                         f"{float(heatmaps.detach().abs().max()):.3g} (a diverged network: lower the "
                         "learning rate; or compute in float64)")
    return prior


def _check_prior_weight(prior_weight) -> float:
    lam = float(prior_weight)
    if not (lam >= 0 and math.isfinite(lam)):
        raise ValueError(f"prior_weight must be a finite number >= 0 (λ(t) of BCIR Eq. 21, e.g. "
                         f"step_schedule(epoch, T_o)), got {prior_weight!r}")
    return lam


def laplacian_shrinkage_regularizer(probabilities: torch.Tensor, tau: float,
                                    weights: torch.Tensor | None = None,
                                    reduction: str = "mean") -> torch.Tensor:
    """Heatmap-shrinkage regulariser (BCIR §4.4, Eq. 15).

        ∇²h̃ = 4·h̃(i, j) − h̃(i−1, j) − h̃(i+1, j) − h̃(i, j−1) − h̃(i, j+1)   (3×3 Laplacian)
        ℓ_bk = w_bk · Σ_p ( |∇²h̃_p − τ| + ∇²h̃_p − τ ) = w_bk · Σ_p 2·max(∇²h̃_p − τ, 0)
        L = 1/(B·K) · Σ_{b,k} ℓ_bk                                  (reduction="mean")

    Sign convention: the filter has +4 at the centre, so a sharp peak gives a large positive
    value — the "large values" Eq. 15 penalises; values below τ cost nothing. The map is padded by
    replicating its border, so a flat map costs 0 everywhere. A one-pixel peak of mass 1 gives
    ∇²h̃ = 4; a normalised Gaussian of σ = 2 px about 0.019 at its centre, so τ between the two
    sets how localized a map may get.

    Args:
        probabilities: ``(B, K, H, W)`` normalised heatmaps h̃ (e.g.
            :func:`poselab.codecs.spatial_softmax`), finite.
        tau: threshold τ (finite; same unit as h̃).
        weights: ``(B, K)`` keypoint weights; None = all ones.
        reduction: "mean", "sum" or "none" → ``(B, K)``.
    Returns:
        the loss (scalar, or ``(B, K)`` for "none").

    Example:
        >>> peak = torch.zeros(1, 1, 5, 5); peak[0, 0, 2, 2] = 1.0
        >>> float(laplacian_shrinkage_regularizer(peak, tau=0.5))   # 2 * (4 - 0.5)
        7.0
        >>> float(laplacian_shrinkage_regularizer(torch.full((1, 1, 5, 5), 0.04), tau=0.0))
        0.0
    """
    check_reduction(reduction)
    check_tensor(probabilities, "probabilities", ndim=4)
    t = float(tau)
    if not math.isfinite(t):
        raise ValueError(f"tau must be a finite number (the Laplacian threshold τ of BCIR Eq. 15), "
                         f"got {tau!r}")
    B, K, H, W = probabilities.shape
    w = check_weights(weights, (B, K), probabilities)
    if probabilities.numel() == 0:
        return empty_loss(probabilities, reduction, (B, K))
    p = F.pad(probabilities.reshape(B * K, 1, H, W), (1, 1, 1, 1), mode="replicate")
    lap = (4 * p[..., 1:-1, 1:-1] - p[..., :-2, 1:-1] - p[..., 2:, 1:-1]
           - p[..., 1:-1, :-2] - p[..., 1:-1, 2:])
    per_kp = 2 * torch.relu(lap - t).reshape(B, K, H * W).sum(-1)
    return reduce_per_keypoint(per_kp * w, reduction, B * K)


def bcir_loss(heatmaps: torch.Tensor, keypoints: torch.Tensor, visible: torch.Tensor | None = None,
              beta: float = 10.0, prior_weight: float = 1.0, sigma: float = 2.0,
              compensate: bool = True, reduction: str = "mean", return_terms: bool = False,
              max_gain: float | None = None):
    """BCIR loss (Eq. 21): L1 on the bias-compensated soft-argmax + λ(t) · Gaussian prior.

        Ĵ_r  = soft-argmax(β · ĥ)                                         (Eq. 3)
        Ĵ_ro = C/(C − n) · Ĵ_r − n/(C − n) · centre,  C = Σ_p e^{β ĥ_p}   (Eq. 18 / 38)
        ℓ_bk = w_bk · ( ‖Ĵ_ro − J‖₁  +  λ(t) · Σ_p (G_σ(p; J) − ĥ_p)² )  (Eq. 20, Eq. 4, Eq. 21)
        L    = 1/(B·K) · Σ_{b,k} ℓ_bk                                    (reduction="mean")

    ``G_σ(p; J) = exp(−‖p − J‖² / 2σ²)`` is the detection target with peak 1 at the sub-pixel
    keypoint (unbiased encoding, whole map), compared with the **raw** heatmap as in Eq. 4. λ(t)
    is :func:`step_schedule` (1 before T_o, 0 after). Maps without localized support (C ≤ n) are
    left uncompensated (see :func:`poselab.codecs.compensate_softargmax_bias`).

    Ablations of Table 6 are parameter choices: ``compensate=False, prior_weight=0`` is plain
    IPR (Eq. 5); ``compensate=False, prior_weight=λ`` is IPR + L_de; ``compensate=True,
    prior_weight=0`` is "de-bias" only.

    Args:
        heatmaps: ``(B, K, H, W)`` logits ĥ, finite.
        keypoints: ``(B, K, 2)`` ground truth (x, y) in heatmap pixels; non-finite entries are
            allowed only for joints that are not visible.
        visible: ``(B, K)`` COCO visibility or 0/1 weights: a joint counts, with weight 1, where
            ``visible > 0`` and its keypoint is finite (COCO v = 1 and v = 2 count alike; the
            value is not a weight); None = all. Negative values are refused, as by every other loss.
        beta: softmax scale β > 0 (paper default 10).
        prior_weight: λ(t) >= 0.
        sigma: σ of the Gaussian prior, heatmap px (paper: 2).
        compensate: use the bias-compensated point (Eq. 20) instead of Ĵ_r (Eq. 5).
        reduction: "mean", "sum" or "none" → ``(B, K)``.
        return_terms: return ``{"loss", "l1", "prior"}`` (each reduced the same way).
        max_gain: cap on the compensation's gain C/(C − n) (ours, not the paper's; None = Eq. 38
            as derived): :func:`poselab.codecs.integral.check_max_gain`.

    float16 / bfloat16 heatmaps are computed in float32 and the loss is float32 (as under
    autocast: rounding the coordinates or the prior's pixel sum to half precision would cost
    up to 0.25 px and 3 % of the prior term). A prior term that overflows its dtype (|ĥ| ≳ 1.8e19
    in float32: a diverged network) raises ValueError instead of returning inf.

    Example:
        >>> hm = torch.zeros(1, 1, 9, 11, requires_grad=True)
        >>> loss = bcir_loss(hm, torch.tensor([[[3.0, 2.0]]]), torch.ones(1, 1), prior_weight=1.0)
        >>> loss.backward(); bool(hm.grad[0, 0, 2, 3] < 0)   # raise the ground-truth pixel
        True
    """
    check_reduction(reduction)
    check_tensor(heatmaps, "heatmaps", ndim=4)
    if not isinstance(keypoints, torch.Tensor) or keypoints.dim() != 3 or keypoints.shape[-1] != 2:
        raise ValueError("keypoints must be a (B, K, 2) tensor of (x, y) heatmap px, got "
                         f"{getattr(keypoints, 'shape', type(keypoints).__name__)}")
    B, K, H, W = heatmaps.shape
    if H == 0 or W == 0:
        raise ValueError(f"heatmaps must have H, W >= 1, got shape {tuple(heatmaps.shape)}")
    if tuple(keypoints.shape[:2]) != (B, K):
        raise ValueError(f"keypoints must have shape (B, K, 2) = {(B, K, 2)} to match heatmaps, "
                         f"got {tuple(keypoints.shape)}")
    if visible is None:
        vis = torch.ones((B, K), dtype=heatmaps.dtype, device=heatmaps.device)
    else:
        if not isinstance(visible, torch.Tensor) or tuple(visible.shape) != (B, K):
            raise ValueError(f"visible must be a (B, K) = {(B, K)} tensor (COCO v or 0/1 weights), got "
                             f"{getattr(visible, 'shape', type(visible).__name__)}")
        if visible.is_floating_point() and visible.numel() and not bool(torch.isfinite(visible).all()):
            raise ValueError("visible contains NaN or Inf; pass COCO v (0, 1, 2) or 0/1 weights")
        if visible.numel() and bool((visible < 0).any()):
            raise ValueError("visible must be >= 0: pass COCO v (0, 1, 2) or 0/1 weights (0 = ignore the joint)")
        vis = (visible > 0).to(heatmaps.dtype)
    kp = keypoints.to(heatmaps.dtype)
    finite = torch.isfinite(kp).all(-1)
    if bool(((vis > 0) & ~finite).any()):
        raise ValueError("keypoints contains NaN or Inf for a visible joint; mark it visible = 0")
    w = vis * finite.to(vis.dtype)
    kp = torch.where(finite[..., None], kp, torch.zeros_like(kp))
    beta = _check_beta(beta, allow_zero=False)
    lam = _check_prior_weight(prior_weight)
    if not (math.isfinite(float(sigma)) and float(sigma) > 0):
        raise ValueError(f"sigma must be a positive finite number (heatmap px), got {sigma!r}")
    if heatmaps.numel() == 0:
        zero = empty_loss(heatmaps, reduction, (B, K))
        return {"loss": zero, "l1": zero, "prior": zero} if return_terms else zero
    coords = _soft_argmax_unchecked(heatmaps, beta, compensate=compensate, keep_work_dtype=True,
                                    max_gain=check_max_gain(max_gain))
    kp, w = kp.to(coords.dtype), w.to(coords.dtype)
    l1 = (coords - kp).abs().sum(-1) * w
    if lam > 0:
        target, _ = encode_gaussian(kp.detach(), w.detach() > 0, (H, W), float(sigma), unbiased=True,
                                    dtype=coords.dtype)
        prior = _prior_term(heatmaps, target.to(coords.dtype), "bcir_loss") * w
    else:
        prior = torch.zeros_like(l1)
    total = l1 + lam * prior
    if not return_terms:
        return reduce_per_keypoint(total, reduction, B * K)
    return {name: reduce_per_keypoint(v, reduction, B * K)
            for name, v in (("loss", total), ("l1", l1), ("prior", prior))}


class IntegralL1Loss(torch.nn.Module):
    """Module wrapper of :func:`integral_l1_loss` (fixed β, default 10; pass ``prior_weight`` per call)."""

    def __init__(self, beta: float = 10.0, reduction: str = "mean"):
        super().__init__()
        check_reduction(reduction)
        self.beta, self.reduction = beta, reduction

    def forward(self, prediction, target, weights=None, prior_heatmaps=None, prior_weight=0.0):
        return integral_l1_loss(prediction, target, weights, beta=self.beta,
                                prior_heatmaps=prior_heatmaps, prior_weight=prior_weight,
                                reduction=self.reduction)


class BCIRLoss(torch.nn.Module):
    """Module wrapper of :func:`bcir_loss` (BCIR Eq. 21): β, σ, the compensation and the reduction
    fixed at construction; λ(t) per call (``prior_weight``, e.g. :func:`step_schedule` of the
    epoch), so a training loop switches the prior off at T_o without rebuilding the loss.

    Example:
        >>> loss_fn = BCIRLoss()
        >>> hm = torch.zeros(2, 17, 64, 48, requires_grad=True)
        >>> loss_fn(hm, torch.full((2, 17, 2), 20.0), torch.ones(2, 17), prior_weight=step_schedule(3, 6)).shape
        torch.Size([])
    """

    def __init__(self, beta: float = 10.0, sigma: float = 2.0, compensate: bool = True,
                 reduction: str = "mean", max_gain: float | None = None):
        super().__init__()
        check_reduction(reduction)
        _check_beta(beta, allow_zero=False)
        if not (math.isfinite(float(sigma)) and float(sigma) > 0):
            raise ValueError(f"sigma must be a positive finite number (heatmap px), got {sigma!r}")
        self.beta, self.sigma, self.compensate, self.reduction = float(beta), float(sigma), bool(compensate), reduction
        self.max_gain = check_max_gain(max_gain)

    def forward(self, heatmaps, keypoints, visible=None, prior_weight: float = 1.0, return_terms: bool = False):
        return bcir_loss(heatmaps, keypoints, visible, beta=self.beta, prior_weight=prior_weight,
                         sigma=self.sigma, compensate=self.compensate, reduction=self.reduction,
                         return_terms=return_terms, max_gain=self.max_gain)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, sigma={self.sigma}, compensate={self.compensate}, reduction={self.reduction!r}"
