"""Heatmap regression loss (the MSE "detection" baseline of SimpleBaseline / HRNet / ViTPose).

Also holds the small input checks shared by the baseline losses (:mod:`.simcc`, :mod:`.integral`):
every loss follows ``(prediction, target, weights, **hyper) -> tensor`` with ``reduction=``,
raises ``ValueError`` naming the tensor on NaN/Inf, returns a zero that still carries a graph on an
empty batch, and returns exactly 0 (finite, with grad) when every weight is 0.
"""
from __future__ import annotations

import torch

__all__ = ["heatmap_mse_loss", "HeatmapMSELoss"]

REDUCTIONS = ("mean", "sum", "none")


def check_tensor(t, name: str, ndim: int | None = None, last: int | None = None) -> torch.Tensor:
    """Return ``t`` if it is a finite floating tensor of the right rank, else raise ValueError."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor, got dtype {t.dtype}; use .float()")
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dims, got shape {tuple(t.shape)}")
    if last is not None and t.shape[-1] != last:
        raise ValueError(f"{name} must have last dim {last}, got shape {tuple(t.shape)}")
    if t.numel() and not bool(torch.isfinite(t.detach()).all()):
        raise ValueError(f"{name} contains NaN or Inf; check the network output / the target "
                         "encoding (invisible joints must get finite targets and weight 0)")
    return t


def check_weights(weights, shape: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
    """Keypoint weights ``(B, K)`` (None → all ones), finite and non-negative."""
    if weights is None:
        return torch.ones(shape, dtype=like.dtype, device=like.device)
    w = check_tensor(weights.to(like.dtype) if isinstance(weights, torch.Tensor) and
                     not weights.is_floating_point() else weights, "weights")
    if tuple(w.shape) != tuple(shape):
        raise ValueError(f"weights must have shape (B, K) = {tuple(shape)}, got {tuple(w.shape)}")
    if w.numel() and bool((w < 0).any()):
        raise ValueError("weights must be >= 0 (0 = ignore the joint)")
    return w.to(like.dtype)


def check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_b} must have the shape of {name_a} {tuple(a.shape)}, "
                         f"got {tuple(b.shape)}")


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def empty_loss(prediction: torch.Tensor, reduction: str, shape: tuple[int, ...]) -> torch.Tensor:
    """Loss of an empty batch: 0 (or an empty tensor for ``reduction="none"``) tied to the graph."""
    zero = prediction.sum() * 0.0
    if reduction == "none":
        return zero.expand(shape) if 0 in shape else zero
    return zero


def reduce_per_keypoint(per_kp: torch.Tensor, reduction: str, denominator: float) -> torch.Tensor:
    """Reduce weighted per-keypoint losses ``(B, K)``: sum/denominator, sum, or as-is."""
    if reduction == "none":
        return per_kp
    total = per_kp.sum()
    return total if reduction == "sum" else total / denominator


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
    per_kp = (prediction - target).square().mean(dim=(-2, -1)) * w  # (B, K)
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
