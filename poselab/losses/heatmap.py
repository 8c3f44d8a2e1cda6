"""Heatmap regression loss (the MSE "detection" baseline of SimpleBaseline / HRNet / ViTPose).

The input checks shared by every loss live in :mod:`._checks` (re-exported here for older imports).
"""
from __future__ import annotations

import torch

from ._checks import (REDUCTIONS, check_reduction, check_same_shape, check_tensor,  # noqa: F401
                      check_weights, empty_loss, reduce_per_keypoint)

__all__ = ["heatmap_mse_loss", "HeatmapMSELoss"]


def heatmap_mse_loss(prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None,
                     reduction: str = "mean") -> torch.Tensor:
    """Weighted heatmap MSE (detection loss; BCIR Eq. 4 up to normalisation).

        L = 1/(B·K·H·W) · Σ_{b,k} w_bk · Σ_{p} (ĥ_bkp − h_bkp)²          (reduction="mean")

    Normalisation follows MMPose ``KeypointMSELoss(use_target_weight=True)``: the mean runs over
    **all** B·K·H·W elements, masked joints (w = 0) stay in the denominator, and there is no 0.5
    factor (the HRNet-lineage ``JointsMSELoss`` multiplies by 0.5 and applies w to both maps, i.e.
    w² — identical for 0/1 weights up to that 0.5). So the loss value does not depend on batch
    size, and a batch with more invisible joints has a smaller loss.

    Args:
        prediction: ``(B, K, H, W)`` predicted heatmaps.
        target: ``(B, K, H, W)`` target heatmaps (e.g. ``HeatmapCodec.encode(...)["target"]``).
        weights: ``(B, K)`` non-negative keypoint weights (0 = not labelled); None = all ones.
        reduction: "mean" (above), "sum" (Σ w·(ĥ−h)²) or "none" → ``(B, K)`` per-keypoint
            ``w · mean_p (ĥ−h)²``.

    Returns a scalar (or ``(B, K)``). Raises ValueError on NaN/Inf or mismatched shapes; an empty
    batch gives 0 with a graph; all weights 0 give exactly 0.

    Half precision: float16/bfloat16 inputs are upcast and the loss is computed **and returned in
    float32** (the ``torch.autocast`` policy for ``mse_loss``): a float16 square overflows to inf
    once |ĥ − h| > 256 (max 65504), and bfloat16 keeps only 8 mantissa bits. Gradients still flow
    back to the half-precision prediction. float32/float64 inputs are computed in their own dtype;
    a loss that overflows it (|ĥ − h| ≳ 1.8e19 in float32) raises ValueError instead of returning inf.

    Example:
        >>> pred = torch.zeros(2, 17, 16, 12, requires_grad=True)
        >>> heatmap_mse_loss(pred, torch.zeros(2, 17, 16, 12), torch.ones(2, 17)).item()
        0.0
    """
    check_reduction(reduction)
    check_tensor(prediction, "prediction", ndim=4)
    check_tensor(target, "target", ndim=4)
    check_same_shape(prediction, target, "prediction", "target")
    B, K, H, W = prediction.shape
    w = check_weights(weights, (B, K), prediction)
    if B == 0 or K == 0:
        return empty_loss(prediction, reduction, (B, K))
    if prediction.dtype in (torch.float16, torch.bfloat16):  # squares overflow float16 past 256
        prediction, w = prediction.float(), w.float()
    per_kp = (prediction - target.to(prediction.dtype)).square().mean(dim=(-2, -1)) * w  # (B, K)
    if not bool(torch.isfinite(per_kp.detach()).all()):
        raise ValueError(f"heatmap_mse_loss overflows {per_kp.dtype}: |prediction - target| reaches "
                         f"{float((prediction - target.to(prediction.dtype)).detach().abs().max()):.3g} "
                         "(a diverged network: lower the learning rate; or compute in float64)")
    if reduction == "sum":
        return per_kp.sum() * (H * W)
    return reduce_per_keypoint(per_kp, reduction, B * K)


class HeatmapMSELoss(torch.nn.Module):
    """Module wrapper of :func:`heatmap_mse_loss`."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        check_reduction(reduction)
        self.reduction = reduction

    def forward(self, prediction, target, weights=None):
        return heatmap_mse_loss(prediction, target, weights, reduction=self.reduction)
