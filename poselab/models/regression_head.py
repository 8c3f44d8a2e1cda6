"""Heads for the SAR chapter's comparators (SAR §3.1, Eq. 3–5, Table 1).

- :class:`GlobalRegressionHead` — conventional regression (Eq. 3): global average pooling →
  ``f^g`` → one linear layer → ``K`` points. No spatial prior.
- :class:`GridFCSARHead` — SAR's ``f^g + FC`` variant (Table 1, last row): the per-cell features
  ``f_t`` are made from the *pooled* ``f^g`` by a grid-wise linear layer, so the only spatial
  information is the cell's location prior ``p_t`` (Eq. 5); then the usual SAR selector/offset
  1×1 convolutions (:class:`poselab.models.heads.SARHead`).
- :class:`PooledHead` — average-pools the stride-4 feature map by an integer factor before a
  head, for output strides 8, 16, … (SAR Fig. 4).

All take a feature map ``(B, C, h, w)`` (stride 4 of the input).
"""
from __future__ import annotations

import torch
from torch import nn

from .._numbers import whole_number
from .heads import SARHead

__all__ = ["GlobalRegressionHead", "GridFCSARHead", "PooledHead"]


class GlobalRegressionHead(nn.Module):
    """Conventional regression (SAR Eq. 3): ``K = R(f^g)``, ``f^g`` = global average pool.

    Output ``{"coords": (B, K, 2)}`` in heatmap px of a ``map_size = (h, w)`` grid:
    ``coords = (0.5 + FC(f^g)) · (w, h) − 0.5`` — the linear layer predicts normalised
    coordinates, starting (bias 0, weights N(0, 0.001)) at the map centre.
    """

    def __init__(self, in_channels: int, num_keypoints: int, map_size: tuple[int, int]):
        super().__init__()
        self.num_keypoints = whole_number(num_keypoints, "num_keypoints", 1)
        h, w = map_size
        self.register_buffer("scale", torch.tensor([float(w), float(h)]), persistent=False)
        self.fc = nn.Linear(in_channels, 2 * self.num_keypoints)
        nn.init.normal_(self.fc.weight, std=0.001)
        nn.init.zeros_(self.fc.bias)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        g = features.mean((-2, -1))
        z = self.fc(g).view(features.shape[0], self.num_keypoints, 2)
        return {"coords": (0.5 + z) * self.scale - 0.5}


class GridFCSARHead(nn.Module):
    """SAR ``f^g + FC`` (SAR §3.2 "generated from the pooled feature f^g with a grid-wise FC
    layer"; Table 1 last row).

    ``f_t = ReLU(FC_t(f^g))`` ∈ R^d for every cell t of the ``map_size`` grid (one linear layer
    ``C → d·h·w``), then :class:`SARHead` on the ``(B, d, h, w)`` map:
    ``{"selector": (B, K, h, w), "offsets": (B, K, 2, h, w)}``. ``d`` (``cell_channels``) is ours
    (the paper does not give it); 16 keeps the layer at ``C·16·h·w`` weights.
    """

    def __init__(self, in_channels: int, num_keypoints: int, map_size: tuple[int, int],
                 cell_channels: int = 16):
        super().__init__()
        self.map_size = (whole_number(map_size[0], "map_size[0]", 1), whole_number(map_size[1], "map_size[1]", 1))
        self.cell_channels = whole_number(cell_channels, "cell_channels", 1)
        h, w = self.map_size
        self.grid_fc = nn.Linear(in_channels, self.cell_channels * h * w)
        self.sar = SARHead(self.cell_channels, num_keypoints)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        g = features.mean((-2, -1))
        h, w = self.map_size
        cells = torch.relu(self.grid_fc(g)).view(features.shape[0], self.cell_channels, h, w)
        return self.sar(cells)


class PooledHead(nn.Module):
    """``head(AvgPool(factor)(features))``: a coarser output grid (stride 4·factor)."""

    def __init__(self, head: nn.Module, factor: int):
        super().__init__()
        self.factor = whole_number(factor, "factor", 1)
        self.pool = nn.AvgPool2d(self.factor) if self.factor > 1 else nn.Identity()
        self.head = head

    def forward(self, features: torch.Tensor):
        return self.head(self.pool(features))
