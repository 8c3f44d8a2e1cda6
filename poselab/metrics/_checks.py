"""Input conversion and checks shared by the metrics (private)."""
from __future__ import annotations

import numpy as np


def as_float64(x, name: str) -> np.ndarray:
    """Any array-like (numpy, list, CPU/GPU torch tensor) → float64 numpy array, finite checked."""
    if hasattr(x, "detach"):  # torch tensor: no grad, host memory
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array, got {type(x).__name__}: {exc}") from None
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN/inf value(s); metrics need finite inputs "
                         f"(mark missing joints with visibility 0 instead of NaN coordinates)")
    return arr


def check_xy(arr: np.ndarray, name: str) -> None:
    if arr.ndim < 2 or arr.shape[-1] != 2:
        raise ValueError(f"{name} must have shape (..., K, 2) with (x, y) in the last axis, "
                         f"got {arr.shape}")
