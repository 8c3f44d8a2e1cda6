"""Backbones: a tiny CPU encoder-decoder and a ResNet-18 SimpleBaseline, at stride 4 (default) or 2.

Both return a feature map of shape ``(B, C, H/s, W/s)`` (``s = stride``, 4 by default) for an
input ``(B, 3, H, W)`` whose height and width are multiples of 16 (tiny) or 4 (resnet18); heads
turn it into the representation of each method. Stride 2 (one more decoder stage) gives 32×24
heatmaps at 64×48 input: a quarter of the input pixels of 128×96 at the same heatmap size.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from .._numbers import whole_number


def conv_bn_relu(cin: int, cout: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    """3×3 (or ``kernel``) convolution → BatchNorm → ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def simple_baseline_deconvs(cin: int, channels: int, stride: int) -> nn.Sequential:
    """SimpleBaseline's head on a /32 ResNet: 4×4 stride-2 deconvolutions + BN + ReLU, three of
    them to reach H/4 (``stride`` 4), four to reach H/2 (``stride`` 2)."""
    layers = []
    for _ in range(3 if stride == 4 else 4):
        layers += [nn.ConvTranspose2d(cin, channels, 4, stride=2, padding=1, bias=False),
                   nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        cin = channels
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """ResNet basic block (two 3×3 convs + identity / 1×1 projection shortcut). The projection
    is named ``shortcut`` (``downsample`` in torchvision's layout, :data:`SHORTCUT_NAME` of a
    subclass, so that torchvision's state-dict names load)."""

    SHORTCUT_NAME = "shortcut"

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        projection = None
        if stride != 1 or cin != cout:
            projection = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(cout))
        setattr(self, self.SHORTCUT_NAME, projection)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        projection = getattr(self, self.SHORTCUT_NAME)
        identity = x if projection is None else projection(x)
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity, inplace=True)


class TinyBackbone(nn.Module):
    """A small U-shaped conv net that trains in minutes on 2 CPU cores.

    Encoder: stride 2 → 4 → 8 → 16 (channels ``widths``), one residual block per scale;
    decoder: nearest 2× upsampling with additive skip connections back to stride 4, so the
    heatmap pixels see the whole 64×48 crop (receptive field > input) while keeping the
    stride-4 resolution of SimpleBaseline/HRNet. About 0.5 M parameters with the default widths.

    ``stride=2`` adds one more decoder stage (skip from the stem, ``fine_channels`` wide): the
    output is then ``(B, fine_channels, H/2, W/2)``; ``out_channels`` is the stride-2 width.

    Input ``(B, 3, H, W)`` with H, W multiples of 16 → output ``(B, out_channels, H/s, W/s)``.
    """

    def __init__(self, widths: tuple[int, int, int, int] = (24, 48, 64, 96), out_channels: int = 64,
                 stride: int = 4, fine_channels: int = 32):
        super().__init__()
        if stride not in (2, 4):
            raise ValueError(f"stride must be 2 or 4 (output resolution H/stride), got {stride!r}")
        c1, c2, c3, c4 = widths
        self.stem = conv_bn_relu(3, c1, stride=2)                                   # /2
        self.down4 = nn.Sequential(conv_bn_relu(c1, c2, stride=2), BasicBlock(c2, c2))  # /4
        self.down8 = nn.Sequential(BasicBlock(c2, c3, stride=2), BasicBlock(c3, c3))    # /8
        self.down16 = nn.Sequential(BasicBlock(c3, c4, stride=2), BasicBlock(c4, c4))   # /16
        self.lat16 = nn.Conv2d(c4, out_channels, 1)
        self.lat8 = nn.Conv2d(c3, out_channels, 1)
        self.lat4 = nn.Conv2d(c2, out_channels, 1)
        self.fuse8 = conv_bn_relu(out_channels, out_channels)
        self.fuse4 = conv_bn_relu(out_channels, out_channels)
        self.out_channels = out_channels
        self.stride = whole_number(stride, "stride", 1)
        if self.stride == 2:
            self.lat2 = nn.Conv2d(c1, fine_channels, 1)
            self.reduce4 = nn.Conv2d(out_channels, fine_channels, 1)
            self.fuse2 = conv_bn_relu(fine_channels, fine_channels)
            self.out_channels = fine_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f2 = self.stem(x)
        f4 = self.down4(f2)
        f8 = self.down8(f4)
        f16 = self.down16(f8)
        p = self.lat16(f16)
        p = self.fuse8(self.lat8(f8) + F.interpolate(p, size=f8.shape[-2:], mode="nearest"))
        p = self.fuse4(self.lat4(f4) + F.interpolate(p, size=f4.shape[-2:], mode="nearest"))
        if self.stride == 2:
            p = self.fuse2(self.lat2(f2) + F.interpolate(self.reduce4(p), size=f2.shape[-2:],
                                                         mode="nearest"))
        return p


class ResNet18Backbone(nn.Module):
    """ResNet-18 (stride 32) + three 4×4 stride-2 deconvolutions (SimpleBaseline, Xiao et al. 2018).

    Trained from scratch (no pretrained weights are downloaded). ~15.4 M parameters with 256
    deconvolution channels. Input ``(B, 3, H, W)`` with H, W multiples of 4 →
    ``(B, deconv_channels, H/4, W/4)``; when H or W is not a multiple of 32 (64×48, 256×192
    is fine) the deconvolution output is bilinearly resampled to exactly H/4 × W/4.
    ``stride=2`` adds a fourth deconvolution (output H/2 × W/2). Meant for GPU runs.
    """

    def __init__(self, deconv_channels: int = 256, stride: int = 4):
        super().__init__()
        if stride not in (2, 4):
            raise ValueError(f"stride must be 2 or 4 (output resolution H/stride), got {stride!r}")
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(64),
            nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1))
        layers = []
        cin = 64
        for cout, block_stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers.append(nn.Sequential(BasicBlock(cin, cout, block_stride), BasicBlock(cout, cout)))
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.deconvs = simple_baseline_deconvs(cin, deconv_channels, stride)
        self.out_channels = deconv_channels
        self.stride = whole_number(stride, "stride", 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.deconvs(self.layers(self.stem(x)))
        size = (x.shape[-2] // self.stride, x.shape[-1] // self.stride)
        if out.shape[-2:] != size:  # input not a multiple of 32 (e.g. 64×48): resample to the stride
            out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
        return out
