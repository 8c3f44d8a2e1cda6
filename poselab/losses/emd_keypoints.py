"""HDM's EMD loss on a training batch: keypoints in input px mapped to the heatmap, the joints it
uses, and the ``loss_fn(outputs, batch)`` adapter the experiments engine and chapter 04 train with
(HDM Eqs. 2-5 through :func:`poselab.losses.emd_loss`)."""
from __future__ import annotations

import torch

from ..codecs.heatmap import input_to_heatmap
from .transport import emd_loss

__all__ = ["emd_visibility", "emd_batch_loss"]


def emd_visibility(keypoints_hm: torch.Tensor, weights: torch.Tensor, heatmap_size) -> torch.Tensor:
    """Joints the EMD loss uses: weight > 0 and the keypoint inside the heatmap
    (``-0.5 ≤ x < W - 0.5``, same for y). ``(B, K, 2), (B, K) -> (B, K)`` float."""
    H, W = heatmap_size
    x, y = keypoints_hm[..., 0], keypoints_hm[..., 1]
    inside = (x >= -0.5) & (x < W - 0.5) & (y >= -0.5) & (y < H - 0.5)
    return ((weights > 0) & inside & torch.isfinite(x) & torch.isfinite(y)).to(weights.dtype)


def emd_batch_loss(input_size, reg: float = 1.0, n_iters: int = 1000, tol: float = 1e-6):
    """``loss_fn(outputs (B, K, H, W), batch) -> scalar``: :func:`emd_loss` (HDM Eq. 5, mean over
    used joints) from the raw heatmaps to ``batch["keypoints"]`` (input px of an ``input_size``
    crop, mapped to the output's heatmap px), joints from :func:`emd_visibility` and
    ``batch["weights"]``."""
    input_size = tuple(int(v) for v in input_size)

    def emd_fn(outputs, batch):
        hm_size = tuple(outputs.shape[-2:])
        kp = input_to_heatmap(batch["keypoints"].to(outputs.dtype), input_size, hm_size)
        vis = emd_visibility(kp, batch["weights"], hm_size)
        kp = torch.where(torch.isfinite(kp), kp, torch.zeros_like(kp))
        return emd_loss(outputs, kp, vis, reg=reg, n_iters=n_iters, tol=tol)

    return emd_fn
