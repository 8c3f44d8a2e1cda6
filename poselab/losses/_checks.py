"""Input checks shared by every loss in :mod:`poselab.losses` (private).

Every loss follows ``(prediction, target, weights, **hyper) -> tensor`` with ``reduction=``; it
raises ``ValueError`` naming the argument on NaN/Inf (coordinate targets excepted for joints of
weight 0: :func:`mask_unlabelled_targets`), wrong rank or shape; returns a zero that
still carries a graph on an empty batch; and returns exactly 0 (finite, with grad) when every
weight is 0. These helpers implement those rules once.

Example:
    >>> import torch
    >>> check_reduction("mean")
    >>> check_tensor(torch.zeros(2, 3), "prediction", ndim=2).shape
    torch.Size([2, 3])
    >>> check_tensor(torch.tensor([1.0, float("nan")]), "prediction")
    Traceback (most recent call last):
    ...
    ValueError: prediction contains NaN or Inf; check the network output / the target encoding (invisible joints must get finite targets and weight 0)
"""
from __future__ import annotations

import math
import os

import torch

__all__ = ["MAX_PAIR_MB", "mask_unlabelled_targets", "has_nonfinite", "check_pair_memory", "finite_number", "REDUCTIONS", "all_finite", "check_tensor", "check_weights", "check_same_shape", "check_reduction",
           "empty_loss", "reduce_per_keypoint"]

REDUCTIONS = ("mean", "sum", "none")


def all_finite(t: torch.Tensor) -> bool:
    """Whether every element of ``t`` is finite, in one reduction pass for the usual case: a sum
    is finite only if every term is (NaN and ±Inf propagate: Inf − Inf is NaN), so a finite sum
    proves it; a non-finite sum (a NaN/Inf, or finite values whose sum overflows) falls back to
    the element-wise test. (``isfinite(t).all()`` costs three passes and a bool tensor: a third
    of the SAR loss's time at 64×48 maps.)

    Example:
        >>> all_finite(torch.tensor([1.0, 2.0])), all_finite(torch.tensor([1.0, float("inf")]))
        (True, False)
        >>> all_finite(torch.tensor([3e38, 3e38]))   # the sum overflows; the elements are finite
        True
    """
    t = t.detach()
    if bool(torch.isfinite(t.sum())):
        return True
    return bool(torch.isfinite(t).all())


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
    if t.numel() and not all_finite(t):
        raise ValueError(f"{name} contains NaN or Inf; check the network output / the target "
                         "encoding (invisible joints must get finite targets and weight 0)")
    return t


def mask_unlabelled_targets(target: torch.Tensor, weights: torch.Tensor | None, name: str,
                            what: str = "target") -> torch.Tensor:
    """Coordinate targets ``(B, K, 2)`` with their non-finite keypoints set to 0 where the checked
    ``(B, K)`` ``weights`` (called ``name``; ``what`` names ``target``) are 0, as
    :func:`poselab.losses.bcir_loss` reads a NaN keypoint: an unlabelled joint, weight 0 anyway.
    A non-finite keypoint of a joint with weight > 0, or with no weights to say, is refused. Call
    it only when ``target`` is not finite, so finite input keeps its bits."""
    if weights is None:
        raise ValueError(f"{what} contains NaN or Inf, and without {name} no joint is marked "
                         f"unlabelled; pass {name} with 0 for those joints (or give them finite values)")
    bad = ~torch.isfinite(target).all(-1)
    if bool((bad & (weights != 0)).any()):
        raise ValueError(f"{what} contains NaN or Inf for a joint with {name} > 0; mark it {name} = 0")
    return torch.where(bad[..., None], torch.zeros_like(target), target)


def has_nonfinite(t) -> bool:
    """Whether ``t`` is a non-empty floating tensor holding a NaN or Inf (anything else: False,
    left to :func:`check_tensor` to judge)."""
    return isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel() > 0 and not all_finite(t)


def check_weights(weights, shape: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
    """Keypoint weights ``(B, K)`` (None → all ones), finite and non-negative, in ``like``'s dtype."""
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
    """Raise ValueError unless ``b`` has the shape of ``a`` (the message names both)."""
    if a.shape != b.shape:
        raise ValueError(f"{name_b} must have the shape of {name_a} {tuple(a.shape)}, "
                         f"got {tuple(b.shape)}")


def check_reduction(reduction: str) -> None:
    """Raise ValueError unless ``reduction`` is "mean", "sum" or "none"."""
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


#: the most memory a loss's pair tables may take at once (MiB; env ``POSELAB_MAX_PAIR_MB``):
#: an (N, N) float64 table of 30 000 poses is 7.2 GB, a |P|×|P| table of a 160×160 map of soft
#: labels 2.6 GB — both used to be tried
MAX_PAIR_MB = 2048.0


def check_pair_memory(nbytes: int, what: str) -> None:
    """Refuse, before allocating, pair tables of ``nbytes`` bytes in all that would take more than
    :data:`MAX_PAIR_MB` (``POSELAB_MAX_PAIR_MB`` overrides it), naming ``what`` and the size."""
    limit = MAX_PAIR_MB
    env = os.environ.get("POSELAB_MAX_PAIR_MB")
    if env:
        try:
            limit = float(env)
        except ValueError:
            raise ValueError(f"POSELAB_MAX_PAIR_MB must be a number of MiB, got {env!r}") from None
    need = nbytes / 2 ** 20
    if need > limit:
        raise ValueError(f"{what} would build pair tables of about {need:,.0f} MiB (limit "
                         f"{limit:,.0f} MiB; POSELAB_MAX_PAIR_MB raises it)")


def finite_number(value, name: str) -> float:
    """``float(value)``, refused with a ValueError naming ``name`` unless it is a finite number."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return v
