"""Heads that turn the backbone's feature map ``(B, C, h, w)`` into each method's prediction.

Output conventions (``h, w = H/s, W/s`` for input ``(H, W)`` at the backbone's stride ``s``, 4 or 2;
each decodes with its codec, :class:`poselab.codecs.Codec`):

- :class:`HeatmapHead` — ``(B, K, h, w)`` heatmaps (MSE detection; integral regression reads the
  same tensor as logits for its soft-argmax).
- :class:`SimCCHead` — ``(x_logits (B, K, W·k), y_logits (B, K, H·k))`` with split ratio k.
- :class:`SARHead` — ``{"selector": (B, K, h, w) logits, "offsets": (B, K, 2, h, w)}``.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class HeatmapHead(nn.Module):
    """1×1 convolution to one heatmap per keypoint: ``(B, C, h, w) → (B, K, h, w)``."""

    def __init__(self, in_channels: int, num_keypoints: int = 17):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_keypoints, 1)
        nn.init.normal_(self.conv.weight, std=0.001)
        nn.init.zeros_(self.conv.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.conv(features)


class SimCCHead(nn.Module):
    """SimCC head (Li et al., ECCV 2022; MMPose ``SimCCHead`` layout).

    A 1×1 conv gives one ``h×w`` map per keypoint, which is flattened and mapped by two
    ``Linear`` layers (shared across keypoints) to ``W·k`` x-bins and ``H·k`` y-bins, k = split
    ratio. Returns ``(x_logits (B, K, W·k), y_logits (B, K, H·k))`` (raw logits, no softmax).
    """

    def __init__(self, in_channels: int, num_keypoints: int, input_size: tuple[int, int],
                 heatmap_size: tuple[int, int], split_ratio: float = 2.0):
        super().__init__()
        H, W = input_size
        h, w = heatmap_size
        self.conv = nn.Conv2d(in_channels, num_keypoints, 1)
        self.x_bins = int(round(W * split_ratio))
        self.y_bins = int(round(H * split_ratio))
        self.fc_x = nn.Linear(h * w, self.x_bins)
        self.fc_y = nn.Linear(h * w, self.y_bins)
        for fc in (self.fc_x, self.fc_y):
            nn.init.normal_(fc.weight, std=0.01)
            nn.init.zeros_(fc.bias)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.conv(features).flatten(2)  # (B, K, h*w)
        return self.fc_x(maps), self.fc_y(maps)


class SARHead(nn.Module):
    """Spatial-Aware Regression head (Wang & Zhang, CVPR 2024; official ``SARHead`` layout).

    Two 1×1 convs: selector logits ``(B, K, h, w)`` (bias initialised to the prior
    -log((1-0.01)/0.01) ≈ -4.6, weights N(0, 0.001)) and per-cell offsets ``(B, K, 2, h, w)``
    (units are defined by the SAR codec). Returns ``{"selector": ..., "offsets": ...}``.
    ``with_heatmap=True`` adds the official code's auxiliary branch: a third 1×1 conv (same
    prior init) returning ``"heatmap"`` logits ``(B, K, h, w)``, trained by
    :func:`poselab.losses.sar_auxiliary_heatmap_loss` and never decoded.
    """

    def __init__(self, in_channels: int, num_keypoints: int = 17, prior: float = 0.01,
                 with_heatmap: bool = False):
        super().__init__()
        self.num_keypoints = num_keypoints
        self.selector = nn.Conv2d(in_channels, num_keypoints, 1)
        self.offsets = nn.Conv2d(in_channels, 2 * num_keypoints, 1)
        nn.init.normal_(self.selector.weight, std=0.001)
        nn.init.constant_(self.selector.bias, -math.log((1 - prior) / prior))
        nn.init.normal_(self.offsets.weight, std=0.001)
        nn.init.zeros_(self.offsets.bias)
        self.heatmap = None
        if with_heatmap:
            self.heatmap = nn.Conv2d(in_channels, num_keypoints, 1)
            nn.init.normal_(self.heatmap.weight, std=0.001)
            nn.init.constant_(self.heatmap.bias, -math.log((1 - prior) / prior))

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        B, _, h, w = features.shape
        offsets = self.offsets(features).view(B, self.num_keypoints, 2, h, w)
        out = {"selector": self.selector(features), "offsets": offsets}
        if self.heatmap is not None:
            out["heatmap"] = self.heatmap(features)
        return out


#: value of each map's maximum after :class:`MaxAnchor` (HDM's EMD-trained head)
EMD_MAX_ANCHOR = 1.0


class MaxAnchor(nn.Module):
    """Parameter-free per-map offset ``H = z − max_{h,w} z + value``: ``(..., H, W) → same``.

    Every output map has maximum exactly ``value`` (> 0), so it always has a positive pixel and
    Eq. 3's suppliers are never empty; by Eq. 3's scale invariance no supplier distribution is
    lost (see the module docstring). The gradient through the max goes to the argmax pixel.
    """

    def __init__(self, value: float = EMD_MAX_ANCHOR):
        super().__init__()
        value = float(value)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"value must be a finite number > 0, got {value}")
        self.value = value

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim < 2:
            raise ValueError(f"heatmaps must have shape (..., H, W), got {tuple(z.shape)}")
        return z - z.amax(dim=(-2, -1), keepdim=True) + self.value

    def extra_repr(self) -> str:
        return f"value={self.value}"
