"""Input checks of :func:`poselab.losses.transport.emd_loss` / ``hdm_transport``: every error
names the argument and says what to pass."""
from __future__ import annotations

import math

import torch

# keypoints further than this (heatmap px) from the map are refused: float32 squares of the
# offsets would lose all precision (and overflow beyond 1.8e19)
MAX_KEYPOINT_OFFSET = 1e6


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the transport problems are solved in: float64 for float64 input, else float32.

    Half precision (float16: 10 mantissa bits, smallest normal 6e-5; bfloat16: 7 bits) can hold
    neither the kernel's dynamic range nor integer pixel offsets beyond 256 (bfloat16), nor a
    marginal error of 1e-6; float16/bfloat16 heatmaps are therefore upcast (exactly) and solved
    in float32, and the loss and its gradient are returned in the input dtype — as autocast
    treats reductions and losses."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def resolve_solver(solver: str, tol: float) -> str:
    """``"auto"`` → ``"newton"`` if ``tol > 0`` else ``"sinkhorn"``; validates the name."""
    if solver not in ("auto", "newton", "sinkhorn"):
        raise ValueError(f"solver must be 'auto' (Newton if tol > 0, else Sinkhorn), 'newton' or "
                         f"'sinkhorn', got {solver!r}")
    if solver == "auto":
        return "newton" if tol > 0 else "sinkhorn"
    return solver


def _number(name: str, value, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number ({what}), got {value!r}") from None


def check_solver_args(reg, n_iters, tol) -> tuple[float, int, float]:
    """Validated ``(reg, n_iters, tol)``."""
    reg = _number("reg", reg, "the entropic regularisation ε in heatmap px, > 0; HDM uses 1")
    if not math.isfinite(reg) or reg <= 0:
        raise ValueError(f"reg (entropic regularisation ε, heatmap px) must be positive, got {reg!r}")
    n = _number("n_iters", n_iters, "the iteration cap, a positive integer; HDM uses 1000")
    if not math.isfinite(n) or int(n) != n or n < 1:
        raise ValueError(f"n_iters must be a positive integer (the iteration cap), got {n_iters!r}")
    tol = _number("tol", tol, "the demander-marginal L1 tolerance, ≥ 0")
    if not (tol >= 0):
        raise ValueError(f"tol must be ≥ 0 (0 runs exactly n_iters iterations), got {tol!r}")
    return reg, int(n), tol


def prepare(heatmaps, keypoints, visible, demanders) -> tuple[torch.Tensor, torch.Tensor]:
    """Check the loss inputs; return keypoints ``(B, K, 2)`` in the solve dtype (unlabelled
    joints set to 0) and the labelled mask ``(B, K)`` (``v > 0`` and finite keypoint)."""
    if not isinstance(heatmaps, torch.Tensor) or heatmaps.ndim != 4 or not heatmaps.is_floating_point():
        raise ValueError("heatmaps must be a float tensor (B, K, H, W), got "
                         f"{getattr(heatmaps, 'dtype', '')} {getattr(heatmaps, 'shape', type(heatmaps))}")
    B, K, H, W = heatmaps.shape
    if H < 1 or W < 1:
        raise ValueError(f"heatmaps must have H, W ≥ 1 pixel, got shape {tuple(heatmaps.shape)}")
    try:
        keypoints = torch.as_tensor(keypoints, device=heatmaps.device)
        visible = torch.as_tensor(visible, device=heatmaps.device)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"keypoints (B, K, 2) and visible (B, K) must be array-like numbers: {exc}") from None
    if tuple(keypoints.shape) != (B, K, 2):
        raise ValueError(f"keypoints must have shape (B, K, 2) = {(B, K, 2)} in heatmap pixels, "
                         f"got {tuple(keypoints.shape)}")
    if tuple(visible.shape) != (B, K):
        raise ValueError(f"visible must have shape (B, K) = {(B, K)}, got {tuple(visible.shape)}")
    if demanders not in ("subpixel", "naive"):
        raise ValueError(f"demanders must be 'subpixel' (HDM Eq. 4) or 'naive' (Table 4 baseline), "
                         f"got {demanders!r}")
    # a finite sum implies finite entries (one cheap pass); only if it is not, look closer
    if heatmaps.numel() and not (bool(torch.isfinite(heatmaps.detach().sum()))
                                 or bool(torch.isfinite(heatmaps.detach()).all())):
        raise ValueError("heatmaps contain NaN/inf; the network output diverged (lower the learning "
                         "rate) — the transport loss needs finite predictions")
    kp = keypoints.detach().to(compute_dtype(heatmaps.dtype))
    finite = torch.isfinite(kp).all(-1)
    valid = finite & (torch.nan_to_num(visible.to(torch.float32), nan=0.0) > 0)
    kp = torch.where(valid[..., None], kp, torch.zeros((), dtype=kp.dtype, device=kp.device))
    size = torch.tensor([W, H], dtype=kp.dtype, device=kp.device)
    if bool(((kp < -MAX_KEYPOINT_OFFSET) | (kp > size + MAX_KEYPOINT_OFFSET)).any()):
        raise ValueError(f"keypoints of labelled joints must lie within {MAX_KEYPOINT_OFFSET:g} heatmap "
                         f"pixels of the {H}x{W} map (x, y in heatmap pixels, not input pixels?); "
                         f"mark such joints invisible (visible = 0)")
    return kp, valid
