"""Integral pose regression loss: L1 on soft-argmax coordinates, with BCIR's Gaussian prior term.

Integral regression (Sun et al. 2018) decodes a heatmap by softmax + expectation (BCIR Eq. 3)
and trains with an L1 loss on the coordinates (BCIR Eq. 5). BCIR (Eq. 21) adds the detection
loss on the same raw heatmap, ``λ(t)·L_de`` with a step schedule λ(t) = 1 for t < T_o, else 0.
"""
from __future__ import annotations

import torch

from .heatmap import (check_reduction, check_same_shape, check_tensor, check_weights, empty_loss,
                      reduce_per_keypoint)

__all__ = ["integral_l1_loss", "soft_argmax_2d", "step_schedule", "IntegralL1Loss"]


def soft_argmax_2d(heatmaps: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Soft-argmax (BCIR Eq. 3): ``Σ_p p · softmax(β·ĥ)_p`` over the pixel-centre grid.

    ``heatmaps (..., H, W)`` → coordinates ``(..., 2)`` as (x, y) in heatmap pixels (pixel
    (i, j) has centre x=j, y=i; no bias compensation).
    """
    H, W = heatmaps.shape[-2:]
    prob = torch.softmax(heatmaps.flatten(-2) * beta, dim=-1).unflatten(-1, (H, W))
    xs = torch.arange(W, dtype=heatmaps.dtype, device=heatmaps.device)
    ys = torch.arange(H, dtype=heatmaps.dtype, device=heatmaps.device)
    x = (prob.sum(-2) * xs).sum(-1)
    y = (prob.sum(-1) * ys).sum(-1)
    return torch.stack([x, y], dim=-1)


def step_schedule(t: float, t_off: float, value: float = 1.0) -> float:
    """BCIR's λ(t) (Eq. 21): ``value`` while ``t < t_off``, 0 from ``t_off`` on.

    ``t`` and ``t_off`` are in the same unit (epochs in the paper: T_o = 120 for SBL; steps here
    when that is what the training loop counts).
    """
    return float(value) if t < t_off else 0.0


def integral_l1_loss(prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None,
                     beta: float = 1.0, prior_heatmaps: torch.Tensor | None = None,
                     prior_weight: float = 0.0, reduction: str = "mean") -> torch.Tensor:
    """Integral-regression L1 loss (BCIR Eq. 5) with the optional Gaussian prior term (Eq. 21).

        Ĵ_bk = soft-argmax(β · ĥ_bk)                                   (Eq. 3)
        ℓ_bk = w_bk · ( |Ĵx − Jx| + |Ĵy − Jy|                           (Eq. 5)
                        + λ · Σ_p (h_bkp − ĥ_bkp)² )                    (Eq. 4, Eq. 21)
        L = 1/(B·K) · Σ_{b,k} ℓ_bk                                      (reduction="mean")

    Coordinates are in heatmap pixels (pixel-centre convention). The prior term compares the
    **raw** heatmap ĥ (not its softmax) with the Gaussian target h, summed over pixels as in
    Eq. 4; λ comes from :func:`step_schedule`.

    Args:
        prediction: heatmap logits ``(B, K, H, W)`` or already-decoded coordinates ``(B, K, 2)``.
        target: ground-truth coordinates ``(B, K, 2)`` in heatmap pixels (finite; give invisible
            joints any finite value and weight 0).
        weights: ``(B, K)`` keypoint weights; None = all ones.
        beta: softmax inverse temperature β of Eq. 3 (BCIR default 10; ignored for coordinates).
        prior_heatmaps: ``(B, K, H, W)`` Gaussian target heatmaps for the prior term, or None.
        prior_weight: λ(t) ≥ 0; the prior term is skipped when it is 0 or ``prior_heatmaps`` is
            None.
        reduction: "mean", "sum" or "none" → ``(B, K)``.
    """
    check_reduction(reduction)
    check_tensor(prediction, "prediction")
    check_tensor(target, "target", ndim=3, last=2)
    if prediction.dim() == 4:
        heatmaps = prediction
    elif prediction.dim() == 3 and prediction.shape[-1] == 2:
        heatmaps = None
    else:
        raise ValueError("prediction must be heatmap logits (B, K, H, W) or coordinates (B, K, 2), "
                         f"got shape {tuple(prediction.shape)}")
    B, K = prediction.shape[:2]
    if tuple(target.shape[:2]) != (B, K):
        raise ValueError(f"target must have shape (B, K, 2) = {(B, K, 2)}, got {tuple(target.shape)}")
    w = check_weights(weights, (B, K), prediction)
    beta = float(beta)
    if not (beta > 0 and beta < float("inf")):
        raise ValueError(f"beta must be a positive finite number, got {beta}")
    lam = float(prior_weight)
    if not (lam >= 0 and lam < float("inf")):
        raise ValueError(f"prior_weight must be a finite number >= 0, got {prior_weight}")
    use_prior = prior_heatmaps is not None and lam > 0
    if use_prior:
        if heatmaps is None:
            raise ValueError("the prior term needs heatmap logits (B, K, H, W) as prediction, "
                             "not coordinates")
        check_tensor(prior_heatmaps, "prior_heatmaps", ndim=4)
        check_same_shape(heatmaps, prior_heatmaps, "prediction", "prior_heatmaps")
    if B == 0 or K == 0:
        return empty_loss(prediction, reduction, (B, K))
    coords = soft_argmax_2d(heatmaps, beta) if heatmaps is not None else prediction
    per_kp = (coords - target.to(coords.dtype)).abs().sum(-1)
    if use_prior:
        per_kp = per_kp + lam * (heatmaps - prior_heatmaps.to(heatmaps.dtype)).square().sum((-2, -1))
    return reduce_per_keypoint(per_kp * w, reduction, B * K)


class IntegralL1Loss(torch.nn.Module):
    """Module wrapper of :func:`integral_l1_loss` (fixed β; pass ``prior_weight`` per call)."""

    def __init__(self, beta: float = 1.0, reduction: str = "mean"):
        super().__init__()
        check_reduction(reduction)
        self.beta, self.reduction = beta, reduction

    def forward(self, prediction, target, weights=None, prior_heatmaps=None, prior_weight=0.0):
        return integral_l1_loss(prediction, target, weights, beta=self.beta,
                                prior_heatmaps=prior_heatmaps, prior_weight=prior_weight,
                                reduction=self.reduction)
