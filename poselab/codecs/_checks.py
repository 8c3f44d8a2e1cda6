"""Input conversion and checks shared by every codec in :mod:`poselab.codecs` (private).

Codecs accept torch tensors, numpy arrays or nested lists and return torch tensors. These helpers
convert once and raise ``ValueError`` naming the argument and saying what to pass.

Example:
    >>> as_tensor([1, 2], "keypoints").dtype
    torch.float32
    >>> size2((64, 48), "heatmap_size")
    (64, 48)
    >>> size2((64.5, 48), "heatmap_size")
    Traceback (most recent call last):
    ...
    ValueError: heatmap_size must be an (H, W) pair of positive ints, got (64.5, 48)
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

__all__ = ["as_tensor", "size2", "keypoints_and_visibility", "check_maps", "check_sigma"]


def as_tensor(x, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Convert a numpy array / list / tensor to a tensor (floating unless ``dtype`` says)."""
    if isinstance(x, torch.Tensor):
        t = x
    elif isinstance(x, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x))
    else:
        try:
            t = torch.as_tensor(x)
        except Exception as exc:  # pragma: no cover - message path
            raise ValueError(f"{name} must be a tensor or array, got {type(x).__name__}") from exc
    if dtype is not None:
        t = t.to(dtype)
    elif not t.is_floating_point():
        t = t.to(torch.float32)
    return t


def size2(size: Sequence[int], name: str) -> tuple[int, int]:
    """Validate an ``(H, W)`` size tuple of positive ints and return it as ints."""
    try:
        h, w = (int(size[0]), int(size[1]))
        ok = len(size) == 2 and h == size[0] and w == size[1]
    except Exception:
        ok = False
    if not ok or h <= 0 or w <= 0:
        raise ValueError(f"{name} must be an (H, W) pair of positive ints, got {size!r}")
    return h, w


def keypoints_and_visibility(keypoints, visible, dtype=torch.float32):
    """Return ``(kp (..., K, 2), valid (..., K) bool)`` with non-finite keypoints replaced by 0.

    ``visible`` follows COCO (v > 0 counts as labelled); ``None`` means all labelled.
    A joint with a NaN/Inf coordinate is invalid (weight 0) whatever its visibility.
    """
    kp = as_tensor(keypoints, "keypoints")
    if kp.ndim < 2 or kp.shape[-1] != 2:
        raise ValueError(f"keypoints must have shape (..., K, 2), got {tuple(kp.shape)}")
    kp = kp.to(dtype)
    finite = torch.isfinite(kp).all(-1)
    if visible is None:
        vis = torch.ones(kp.shape[:-1], dtype=torch.bool, device=kp.device)
    else:
        v = as_tensor(visible, "visible")
        if tuple(v.shape) != tuple(kp.shape[:-1]):
            raise ValueError(f"visible must have shape {tuple(kp.shape[:-1])} (keypoints without the "
                             f"last axis), got {tuple(v.shape)}")
        v = v.to(kp.device)
        vis = torch.nan_to_num(v.to(torch.float32), nan=0.0) > 0
    valid = finite & vis
    kp = torch.where(finite[..., None], kp, torch.zeros((), dtype=dtype, device=kp.device))
    return kp, valid


def check_maps(maps, name: str, min_dims: int = 2) -> torch.Tensor:
    """Convert ``maps`` (..., H, W) to a tensor; raise ValueError on too few dims or NaN/Inf."""
    t = as_tensor(maps, name)
    if t.ndim < min_dims:
        raise ValueError(f"{name} must have at least {min_dims} dims (..., H, W), got {tuple(t.shape)}")
    if t.numel() and not (bool(torch.isfinite(t.detach().sum())) or bool(torch.isfinite(t).all())):
        # a finite sum proves every element finite in one pass (see poselab.losses._checks.all_finite)
        raise ValueError(f"{name} contains NaN or Inf; check the network output (e.g. a diverged "
                         "loss) before decoding")
    return t


MIN_SIGMA = 1e-3  # below it 2σ² underflows float32 (σ ≲ 1e-20) long before a target changes


def check_sigma(sigma) -> float:
    """Return ``sigma`` as a float if finite and >= :data:`MIN_SIGMA` (heatmap px), else raise
    ValueError. A Gaussian a thousandth of a pixel wide is already a one-hot target on every grid;
    far narrower ones made 0/0 = NaN targets in float32."""
    if isinstance(sigma, bool):
        raise ValueError(f"sigma must be a number (heatmap px), got {sigma!r}")
    try:
        s = float(sigma)
    except (TypeError, ValueError):
        raise ValueError(f"sigma must be a number (heatmap px), got {sigma!r}") from None
    if not math.isfinite(s) or s < MIN_SIGMA:
        raise ValueError(f"sigma must be a finite number >= {MIN_SIGMA:g} (heatmap px), got {sigma!r}")
    return s


# the names the codec modules used before this module existed
_as_tensor, _size2, _keypoints_and_visibility = as_tensor, size2, keypoints_and_visibility
_check_maps, _check_sigma = check_maps, check_sigma
