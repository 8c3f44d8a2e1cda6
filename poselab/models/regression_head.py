"""Heads for the SAR chapter's comparators (SAR §3.1, Eq. 3–5, Table 1).

- :class:`GlobalRegressionHead` — conventional regression (Eq. 3): global average pooling →
  ``f^g`` → one linear layer → ``K`` points. No spatial prior.
- :class:`GridFCSARHead` — SAR's ``f^g + FC`` variant (Table 1, last row): the per-cell features
  ``f_t`` are made from the *pooled* ``f^g`` by a grid-wise linear layer, so the only spatial
  information is the cell's location prior ``p_t`` (Eq. 5); then the usual SAR selector/offset
  1×1 convolutions (:class:`poselab.models.heads.SARHead`).
- :class:`PooledHead` — average-pools the stride-4 feature map by an integer factor before a
  head, for output strides 8, 16, … (SAR Fig. 4).
- :class:`EncoderFeatures` — a backbone's encoder alone (to stride 16, no decoder): where the
  paper's regression baselines pool ``f^g`` (Table 1: Regression and f^g + FC have no
  deconvolutions; they pool the backbone's last stage).

The heads take a feature map ``(B, C, h, w)``.
"""
from __future__ import annotations

import torch
from torch import nn

from .._numbers import whole_number
from .backbones import ResNet18Backbone, TinyBackbone
from .heads import SARHead
from .imagenet_resnet import ImageNetResNet18Backbone

__all__ = ["GlobalRegressionHead", "GridFCSARHead", "PooledHead", "EncoderFeatures", "ENCODER_STRIDE"]

#: the output stride of :class:`EncoderFeatures` (input px per cell): an 8×6 grid at 128×96 input,
#: the grid the paper's stride-32 ResNet stage gives at 256×192
ENCODER_STRIDE = 16


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


class EncoderFeatures(nn.Module):
    """The encoder of a pose backbone, to :data:`ENCODER_STRIDE` (16), without its decoder or
    deconvolutions: ``(B, 3, H, W)`` → ``(B, out_channels, H/16, W/16)``.

    The module takes over the backbone's own encoder layers (its weights and their seeded
    initialisation), not copies: ``TinyBackbone`` stem → ``down16`` (``widths[3]`` channels);
    ``ResNet18Backbone`` and ``ImageNetResNet18Backbone`` stem → the third stage (256 channels;
    the fourth, stride-32 stage is left out so every backbone gives the same grid). Any other
    backbone is refused with a ``ValueError`` naming it.
    """

    def __init__(self, backbone: nn.Module):
        super().__init__()
        if isinstance(backbone, TinyBackbone):
            parts = [backbone.stem, backbone.down4, backbone.down8, backbone.down16]
            channels = backbone.down16[-1].bn2.num_features
        elif isinstance(backbone, ResNet18Backbone):
            parts = [backbone.stem, *list(backbone.layers)[:3]]
            channels = 256
        elif isinstance(backbone, ImageNetResNet18Backbone):
            parts = [backbone.conv1, backbone.bn1, backbone.relu, backbone.maxpool,
                     backbone.layer1, backbone.layer2, backbone.layer3]
            channels = 256
        else:
            raise ValueError(f"EncoderFeatures: no encoder known for a {type(backbone).__name__} backbone "
                             "(known: TinyBackbone, ResNet18Backbone, ImageNetResNet18Backbone)")
        self.encoder = nn.Sequential(*parts)
        self.out_channels = int(channels)
        self.stride = ENCODER_STRIDE

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)
