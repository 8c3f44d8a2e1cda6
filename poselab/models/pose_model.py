"""``PoseModel`` (backbone + head) and the one factory :func:`build_model`."""
from __future__ import annotations

import math
import numbers
import operator
from typing import Any

import torch
from torch import nn

from ..codecs.base import Codec, attach_codec, codec_from_spec
from ..skeleton import NUM_KEYPOINTS
from .backbones import ResNet18Backbone, TinyBackbone
from .heads import HeatmapHead, SARHead, SimCCHead
from .imagenet_resnet import ImageNetResNet18Backbone

#: the model heads; :class:`poselab.experiments.Recipe` checks its ``head`` against this tuple
HEADS = ("heatmap", "integral", "simcc", "sar")
#: SimpleBaseline/HRNet's output stride, :func:`build_model`'s default (the presets choose their own)
DEFAULT_HEATMAP_STRIDE = 4
BACKBONES = ("tiny", "resnet18", "resnet18_imagenet")
_MULTIPLE = {"tiny": 16, "resnet18": 4, "resnet18_imagenet": 4}
MAX_INPUT_SIDE = 4096  # px; larger crops are a typo, not an experiment
MAX_KEYPOINTS = 1024  # COCO 17, COCO-WholeBody 133
MAX_SIMCC_PARAMS = 50_000_000  # SimCC fc weights h·w·(W·k + H·k); 64×48, k=2 → 43 008


class PoseModel(nn.Module):
    """A top-down pose network: ``image (B, 3, H, W) → head output`` (see :mod:`.heads`).

    Attributes: ``head_type``, ``backbone_name``, ``input_size`` (H, W), ``heatmap_stride``
    (4 unless built with 2), ``heatmap_size`` (H/stride, W/stride), ``num_keypoints``,
    ``autocast`` (None, "bfloat16" or "float16": the forward pass runs under ``torch.autocast``
    in that dtype and the outputs are returned as float32) and ``config`` (the
    :func:`build_model` keyword arguments, so a checkpoint can rebuild the model).
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, config: dict[str, Any]):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.config = dict(config)
        self.head_type = config["head"]
        self.backbone_name = config["backbone"]
        self.input_size = tuple(config["input_size"])
        self.heatmap_stride = int(config.get("heatmap_stride", DEFAULT_HEATMAP_STRIDE))
        self.heatmap_size = (self.input_size[0] // self.heatmap_stride,
                             self.input_size[1] // self.heatmap_stride)
        self.num_keypoints = config["num_keypoints"]
        self.autocast = config.get("autocast")

    def forward(self, images: torch.Tensor):
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got shape {tuple(images.shape)}")
        if not images.is_floating_point():
            raise TypeError(f"images must be a float tensor, normalised with the ImageNet mean and std "
                            f"as poselab's loaders make them (poselab.data.dataset.IMAGENET_MEAN / "
                            f"IMAGENET_STD), got {images.dtype}")
        if images.numel() and not bool(torch.isfinite(images.detach().sum())) \
                and not bool(torch.isfinite(images).all()):  # one pass when finite; NaN in, NaN maps out
            raise ValueError("images contain NaN or Inf: the output maps would hold NaN")
        if tuple(images.shape[-2:]) != self.input_size and self.head_type == "simcc":
            raise ValueError(f"the SimCC head was built for input_size={self.input_size} "
                             f"but got images of size {tuple(images.shape[-2:])}; rebuild the "
                             f"model with build_model(..., input_size={tuple(images.shape[-2:])})")
        if self.autocast is None:
            return self.head(self.backbone(images))
        with torch.autocast(images.device.type, dtype=getattr(torch, self.autocast)):
            out = self.head(self.backbone(images))
        return _to_float32(out)


def _to_float32(out):
    """Head outputs (tensor, tuple or dict of tensors) as float32."""
    if isinstance(out, torch.Tensor):
        return out.float()
    if isinstance(out, tuple):
        return tuple(_to_float32(v) for v in out)
    if isinstance(out, dict):
        return {k: _to_float32(v) for k, v in out.items()}
    return out


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_model(head: str = "heatmap", input_size: tuple[int, int] = (64, 48),
                backbone: str = "tiny", num_keypoints: int = NUM_KEYPOINTS,
                simcc_split_ratio: float = 2.0, seed: int | None = None,
                heatmap_stride: int = DEFAULT_HEATMAP_STRIDE, autocast: str | None = None,
                weights: str | None = "auto", codec=None) -> PoseModel:
    """Build a pose model.

    Args:
        head: "heatmap" | "integral" (same head; the loss reads it as soft-argmax logits) |
            "simcc" | "sar".
        input_size: (H, W) of the input crops, multiples of 16 for "tiny", of 4 for "resnet18".
        backbone: "tiny" (~0.6 M params with a heatmap head, CPU minutes) or "resnet18"
            (SimpleBaseline-style ResNet-18 + 3 deconvs, ~15.4 M, from scratch, for GPUs) or
            "resnet18_imagenet" (the same with torchvision's parameter names, its trunk loaded
            from torchvision's ImageNet file: :mod:`poselab.models.imagenet_resnet`).
        weights: for "resnet18_imagenet" only: "auto" (the ImageNet file where torch hub keeps
            it, or ``$POSELAB_RESNET18_WEIGHTS``), a file path, or None (random trunk).
        num_keypoints: K (17 for COCO).
        simcc_split_ratio: k, SimCC bins per input pixel (MMPose default 2.0).
        seed: if given, the weights are initialised under ``torch.manual_seed(seed)`` without
            touching the global RNG state (so two ``build_model(seed=0)`` are identical).
        heatmap_stride: 4 (SimpleBaseline/HRNet resolution, the default) or 2 (one more decoder
            stage: 32×24 maps at 64×48 input; the fast CPU setting). The stride-4 model is
            unchanged by this option (same layers, same seeded weights).
        autocast: None (float32, the default), "bfloat16" or "float16": run the forward pass under
            ``torch.autocast`` in that dtype (convolutions in half precision, weights and
            outputs float32). On CPUs with AVX512-BF16 "bfloat16" trains the tiny model 1.4-1.7×
            faster (benchmarks/time_to_ap.py).
        codec: the codec the model's outputs decode with (a :class:`poselab.codecs.Codec` or its
            ``spec()``), attached by :func:`poselab.codecs.attach_codec`; so
            ``build_model(**checkpoint["model_config"])`` rebuilds a trained model with its codec.

    Outputs (h, w = H/stride, W/stride): heatmap/integral → ``(B, K, h, w)``; simcc →
    ``(x_logits (B, K, W·k), y_logits (B, K, H·k))``; sar → ``{"selector": (B, K, h, w),
    "offsets": (B, K, 2, h, w)}``.
    """
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; choose one of {HEADS}")
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {BACKBONES}")
    try:
        H, W = (operator.index(v) for v in input_size)  # ints only: 64.5 or "64" is an error
    except (TypeError, ValueError):
        raise ValueError(f"input_size must be an (H, W) pair of ints, e.g. (64, 48), got "
                         f"{input_size!r}") from None
    if isinstance(input_size, (str, bytes)) or any(isinstance(v, bool) for v in input_size):
        raise ValueError(f"input_size must be an (H, W) pair of ints, e.g. (64, 48), got "
                         f"{input_size!r}")
    m = _MULTIPLE[backbone]
    if H <= 0 or W <= 0 or H % m or W % m:
        raise ValueError(f"input_size {(H, W)} must be positive multiples of {m} for the "
                         f"{backbone!r} backbone (e.g. (64, 48), (128, 96), (256, 192))")
    if H > MAX_INPUT_SIDE or W > MAX_INPUT_SIDE:
        raise ValueError(f"input_size {(H, W)}: each side must be <= {MAX_INPUT_SIDE} px (the papers "
                         f"use up to 384×288)")
    if isinstance(num_keypoints, bool) or not isinstance(num_keypoints, numbers.Integral) or not (
            1 <= num_keypoints <= MAX_KEYPOINTS):
        raise ValueError(f"num_keypoints must be an int in [1, {MAX_KEYPOINTS}] (17 for COCO), got "
                         f"{num_keypoints!r}")
    if isinstance(simcc_split_ratio, bool) or not isinstance(simcc_split_ratio, numbers.Real) or \
            not math.isfinite(simcc_split_ratio) or simcc_split_ratio <= 0:
        raise ValueError(f"simcc_split_ratio must be a finite number > 0 (SimCC bins per input pixel, "
                         f"MMPose 2.0), got {simcc_split_ratio!r}")
    if head == "simcc":
        bins = round(W * simcc_split_ratio) + round(H * simcc_split_ratio)
        fc_params = (H // heatmap_stride) * (W // heatmap_stride) * bins if heatmap_stride in (
            2, 4) else 0
        if min(round(W * simcc_split_ratio), round(H * simcc_split_ratio)) < 1:
            raise ValueError(f"simcc_split_ratio {simcc_split_ratio} gives no SimCC bins for "
                             f"input_size {(H, W)}; use e.g. 2.0")
        if fc_params > MAX_SIMCC_PARAMS:
            raise ValueError(f"the SimCC head would have {fc_params:,} weights (> {MAX_SIMCC_PARAMS:,}) "
                             f"with input_size {(H, W)} and simcc_split_ratio {simcc_split_ratio}; "
                             "use a smaller input_size or simcc_split_ratio")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                             or not -2 ** 63 <= seed < 2 ** 64):
        raise ValueError(f"seed must be None or an int (torch.manual_seed range), got {seed!r}")
    if heatmap_stride not in (2, 4) or isinstance(heatmap_stride, bool):
        raise ValueError(f"heatmap_stride must be 4 (default) or 2, got {heatmap_stride!r}")
    stride = int(heatmap_stride)
    if autocast not in (None, "bfloat16", "float16"):
        raise ValueError(f"autocast must be None, 'bfloat16' or 'float16', got {autocast!r}")
    config = dict(head=head, input_size=(H, W), backbone=backbone, num_keypoints=int(num_keypoints),
                  simcc_split_ratio=float(simcc_split_ratio), heatmap_stride=stride)
    if autocast is not None:
        config["autocast"] = autocast

    def make() -> PoseModel:
        if backbone == "resnet18_imagenet":
            net = ImageNetResNet18Backbone(stride=stride, weights=weights)
        else:
            net = TinyBackbone(stride=stride) if backbone == "tiny" else ResNet18Backbone(stride=stride)
        hm = (H // stride, W // stride)
        if head in ("heatmap", "integral"):
            h = HeatmapHead(net.out_channels, num_keypoints)
        elif head == "simcc":
            h = SimCCHead(net.out_channels, num_keypoints, (H, W), hm, simcc_split_ratio)
        else:
            h = SARHead(net.out_channels, num_keypoints)
        return PoseModel(net, h, config)

    if codec is not None and not isinstance(codec, Codec):
        codec = codec_from_spec(codec)
    if seed is None:
        model = make()
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = make()
    return model if codec is None else attach_codec(model, codec)
