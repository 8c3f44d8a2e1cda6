"""SimCC classification loss: KL divergence between 1-D label distributions and softmax outputs.

SimCC (Li et al., ECCV 2022) treats x and y as two classification problems over ``W·k`` and
``H·k`` bins; the label is a 1-D Gaussian (label smoothing) and the loss is a KL divergence.
"""
from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

from .heatmap import check_reduction, check_tensor, check_weights, empty_loss, reduce_per_keypoint

__all__ = ["simcc_kl_loss", "SimCCKLLoss"]


def _split(pair, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ValueError(f"{name} must be a pair (x (B, K, Wx), y (B, K, Wy)) — the SimCC "
                         f"convention — got {type(pair).__name__}")
    return pair[0], pair[1]


def _kl_1d(logits: torch.Tensor, target: torch.Tensor, beta: float) -> torch.Tensor:
    """KL(t ‖ softmax(β·logits)) per row: ``(B, K, N) → (B, K)``; t is normalised to sum 1.

    Rows whose target sums to 0 contribute 0 (their weight should be 0 anyway).
    """
    log_p = F.log_softmax(logits * beta, dim=-1)
    mass = target.sum(-1, keepdim=True)
    t = target / mass.clamp_min(torch.finfo(target.dtype).tiny)
    return (torch.xlogy(t, t) - t * log_p).sum(-1)


def simcc_kl_loss(prediction, target, weights: torch.Tensor | None = None, beta: float = 1.0,
                  reduction: str = "mean") -> torch.Tensor:
    """SimCC KL loss on 1-D distributions (SimCC Sec. 3; MMPose ``KLDiscretLoss`` up to scale).

        p_x = softmax(β · x_logits),  t_x = target_x / Σ target_x   (same for y)
        ℓ_bk = w_bk · [KL(t_x ‖ p_x) + KL(t_y ‖ p_y)],   KL(t‖p) = Σ_i t_i (log t_i − log p_i)
        L = 1/(B·K) · Σ_{b,k} ℓ_bk                                  (reduction="mean")

    Normalisation: a proper KL (sum over bins) averaged over all B·K joints (masked joints count
    in the denominator, like :func:`heatmap_mse_loss`), so the value does not depend on batch size.
    MMPose's ``KLDiscretLoss`` instead averages the KL terms over bins (÷ number of bins), sums
    over the batch and divides by K only, so it grows linearly with batch size:
    ``L_mmpose = B · (L_ours with KL_x/N_x, KL_y/N_y)``.

    Args:
        prediction: ``(x_logits (B, K, Nx), y_logits (B, K, Ny))`` raw SimCC outputs.
        target: ``(target_x (B, K, Nx), target_y (B, K, Ny))`` non-negative label vectors
            (normalised here, so MMPose's σ√(2π)-scaled Gaussians work as is).
        weights: ``(B, K)`` keypoint weights; None = all ones.
        beta: inverse temperature β applied to the logits before the softmax (MMPose default 1;
            RTMPose uses 10).
        reduction: "mean", "sum" or "none" → ``(B, K)``.

    Raises ValueError naming ``beta`` unless it is a finite real number > 0, and when ``β·logits``
    or the resulting KL overflows (e.g. ``beta=1e38`` in float32 — lower β). float16/bfloat16
    inputs are computed and returned in float32 (like :func:`heatmap_mse_loss`). A β so small that
    ``β·logits`` underflows to 0 gives the (finite) KL to the uniform distribution.

    Example:
        >>> x, y = torch.zeros(1, 17, 96), torch.zeros(1, 17, 128)
        >>> round(simcc_kl_loss((x, y), (torch.ones_like(x), torch.ones_like(y))).item(), 6)
        0.0
    """
    check_reduction(reduction)
    px, py = _split(prediction, "prediction")
    tx, ty = _split(target, "target")
    for t, n in ((px, "prediction[0] (x logits)"), (py, "prediction[1] (y logits)"),
                 (tx, "target[0] (x labels)"), (ty, "target[1] (y labels)")):
        check_tensor(t, n, ndim=3)
    if px.shape[:2] != py.shape[:2]:
        raise ValueError(f"x and y logits disagree on (B, K): {tuple(px.shape)} vs {tuple(py.shape)}")
    if tx.shape != px.shape or ty.shape != py.shape:
        raise ValueError(f"target shapes {tuple(tx.shape)}, {tuple(ty.shape)} must match prediction "
                         f"shapes {tuple(px.shape)}, {tuple(py.shape)} (same number of bins)")
    if isinstance(beta, torch.Tensor) and beta.numel() == 1:
        beta = beta.item()
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real):
        raise ValueError(f"beta must be a positive finite number (SimCC inverse temperature, e.g. 1 "
                         f"or RTMPose's 10), got {beta!r}")
    beta = float(beta)
    if not (beta > 0 and math.isfinite(beta)):
        raise ValueError(f"beta must be a positive finite number (SimCC inverse temperature, e.g. 1 "
                         f"or RTMPose's 10), got {beta}")
    for t, n in ((tx, "target[0] (x labels)"), (ty, "target[1] (y labels)")):
        if t.numel() and bool((t < 0).any()):
            raise ValueError(f"{n} must be non-negative (a distribution over bins)")
    B, K = px.shape[:2]
    w = check_weights(weights, (B, K), px)
    if B == 0 or K == 0:
        return empty_loss(px + 0 * py.sum(), reduction, (B, K))
    if px.dtype in (torch.float16, torch.bfloat16):  # β·logits and the KL overflow float16 fast
        px, py, w = px.float(), py.float(), w.float()
    limit = torch.finfo(px.dtype).max / beta
    for t, n in ((px, "x"), (py, "y")):
        if t.numel() and float(t.detach().abs().max()) >= limit:
            raise ValueError(f"beta={beta:g} times the {n} logits overflows {px.dtype} (max |logit| "
                             f"{float(t.detach().abs().max()):.3g}); use a smaller beta")
    per_kp = (_kl_1d(px, tx.to(px.dtype), beta) + _kl_1d(py, ty.to(py.dtype), beta)) * w
    if not bool(torch.isfinite(per_kp.detach()).all()):
        raise ValueError(f"simcc_kl_loss overflows {px.dtype} with beta={beta:g} (KL ≈ β·logit "
                         "range); use a smaller beta")
    return reduce_per_keypoint(per_kp, reduction, B * K)


class SimCCKLLoss(torch.nn.Module):
    """Module wrapper of :func:`simcc_kl_loss`."""

    def __init__(self, beta: float = 1.0, reduction: str = "mean"):
        super().__init__()
        check_reduction(reduction)
        self.beta, self.reduction = beta, reduction

    def forward(self, prediction, target, weights=None):
        return simcc_kl_loss(prediction, target, weights, beta=self.beta, reduction=self.reduction)
