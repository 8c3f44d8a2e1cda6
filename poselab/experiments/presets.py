"""Presets: named training budgets. A chapter's code is the same under every preset.

- ``fast``: CI (seconds): a few dozen steps on a small generated subset. Every empirical verdict
  of a fast run is "inconclusive" (:mod:`poselab.claims`).
- ``default``: a student's run: one run trains ≤ 60 s on 2 CPU cores, so a chapter comparing
  2–4 recipes × 3 seeds finishes in ≤ 10 min.
- ``full``: the calibrated scale: hours on a CPU, minutes on a GPU.
- ``coco``: real COCO with an ImageNet-pretrained ResNet-18 SimpleBaseline at 256×192 (a GPU).

``preset.replace(input_size=(128, 128))`` varies a field (the cache key covers every field).
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import operator
from dataclasses import dataclass
from typing import Any

from ..models.pose_model import DEFAULT_HEATMAP_STRIDE
from ..train import device as _device

__all__ = ["Preset", "PRESETS", "get_preset", "chapter_preset", "resolve_autocast"]


def _int(value) -> int:
    """``value`` as an int: ints and numpy ints pass, bools / floats / strings raise TypeError."""
    if isinstance(value, bool):
        raise TypeError("bool is not a count")
    return operator.index(value)


@dataclass(frozen=True)
class Preset:
    """A training budget.

    Attributes:
        name: ``fast`` / ``default`` / ``full`` or your own.
        input_size: crop ``(H, W)``.
        heatmap_stride: input px per output-map px (4: SimpleBaseline; 2: one more decoder stage).
        epochs: passes over the training persons (``max_steps`` caps them when given).
        max_steps: optimiser-step cap (None: epochs decide).
        batch_size: training batch size.
        n_train, n_val: generated images per split (None: the default sets of 1333 / 333).
        val_every: validate every this many epochs (None: only at the end).
        schedule: learning rate after warm-up, ``"cosine"`` or ``"constant"``.
        backbone: overrides the recipe's backbone (None: keep it).
        lr_scale: multiplies the recipe's learning rate.
        flip_prob: horizontal-flip augmentation on generated data (0: a flip contradicts the
            generator's left-is-darker cue; real COCO training data uses 0.5).
        crop_cache: train from a :class:`~poselab.data.crop_cache.CropCache` (each person cropped
            once; batched augmentation) instead of decoding and warping every item.
        cache_resolution: cache pixels per output pixel of the crop cache.
        rotation, scale_jitter: augmentation strengths (degrees; relative scale), as
            :class:`~poselab.data.TopDownDataset`.
        autocast: forward pass precision of a :class:`~poselab.models.PoseModel`: None (float32),
            "bfloat16", "float16", or "auto" (bfloat16 where the device computes it natively —
            a CUDA GPU with bf16, a CPU with AVX512-BF16 —, float16 with a gradient scaler on a
            CUDA GPU without bf16, else float32). Outputs and losses
            stay float32. The resolved choice is part of the cache key.
        channels_last: NHWC memory layout for images and model (faster convolutions on CPU).
    """

    name: str
    input_size: tuple[int, int] = (64, 48)
    heatmap_stride: int = DEFAULT_HEATMAP_STRIDE
    epochs: int = 10
    max_steps: int | None = None
    batch_size: int = 32
    n_train: int | None = None
    n_val: int | None = None
    val_every: int | None = None
    schedule: str = "cosine"
    backbone: str | None = None
    lr_scale: float = 1.0
    flip_prob: float = 0.0
    crop_cache: bool = True
    cache_resolution: float = 1.0
    rotation: float = 30.0
    scale_jitter: float = 0.25
    autocast: str | None = None
    channels_last: bool = False

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"preset name must be a non-empty string, got {self.name!r}")
        where = f"preset {self.name!r}"
        if isinstance(self.heatmap_stride, bool) or self.heatmap_stride not in (2, 4):
            raise ValueError(f"{where}: heatmap_stride must be 2 or 4, got {self.heatmap_stride!r}")
        object.__setattr__(self, "heatmap_stride", int(self.heatmap_stride))
        try:
            if isinstance(self.input_size, (str, bytes)):
                raise TypeError
            h, w = (_int(v) for v in self.input_size)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: input_size must be an (H, W) pair of ints, e.g. (64, 48), "
                             f"got {self.input_size!r}") from None
        object.__setattr__(self, "input_size", (h, w))
        if h % (4 * self.heatmap_stride) or w % (4 * self.heatmap_stride) or h <= 0 or w <= 0:
            raise ValueError(f"{where}: input_size {self.input_size} must be positive multiples of "
                             f"{4 * self.heatmap_stride} with heatmap_stride {self.heatmap_stride}")
        for attr, optional in (("epochs", False), ("batch_size", False), ("max_steps", True),
                               ("n_train", True), ("n_val", True), ("val_every", True)):
            value = getattr(self, attr)
            if optional and value is None:
                continue
            try:
                value = _int(value)
            except (TypeError, ValueError):
                value = None
            if value is None or value < 1:
                raise ValueError(f"{where}: {attr} must be an int >= 1"
                                 f"{' or None' if optional else ''}, got {getattr(self, attr)!r}")
            object.__setattr__(self, attr, value)
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"{where}: schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if self.backbone is not None and (not isinstance(self.backbone, str) or not self.backbone):
            raise ValueError(f"{where}: backbone must be None or a backbone name such as 'tiny', "
                             f"got {self.backbone!r}")
        for attr, low, high, low_open in (("lr_scale", 0.0, math.inf, True),
                                          ("flip_prob", 0.0, 1.0, False),
                                          ("cache_resolution", 0.0, math.inf, True),
                                          ("rotation", 0.0, 180.0, False),
                                          ("scale_jitter", 0.0, 1.0 - 1e-12, False)):
            value = getattr(self, attr)
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(
                value) and (value > low if low_open else value >= low) and value <= high
            if not ok:
                span = (f"> {low:g}" if high == math.inf else
                        f"in [{low:g}, {1 if attr == 'scale_jitter' else high:g}"
                        f"{')' if attr == 'scale_jitter' else ']'}")
                raise ValueError(f"{where}: {attr} must be a finite number {span}, got {value!r}")
            object.__setattr__(self, attr, float(value))
        for attr in ("crop_cache", "channels_last"):
            if not isinstance(getattr(self, attr), bool):
                raise ValueError(f"{where}: {attr} must be True or False, got {getattr(self, attr)!r}")
        if self.autocast not in (None, "auto", "bfloat16", "float16"):
            raise ValueError(f"{where}: autocast must be None, 'auto', 'bfloat16' or 'float16', "
                             f"got {self.autocast!r}")

    @property
    def heatmap_size(self) -> tuple[int, int]:
        return (self.input_size[0] // self.heatmap_stride, self.input_size[1] // self.heatmap_stride)

    def replace(self, **changes) -> "Preset":
        """A copy with fields changed; keep the name or give a new one (both are in the key)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"Preset has no field(s) {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}


PRESETS: dict[str, Preset] = {
    # CI: a smoke test of the code path (AP ≈ 0), seconds per run
    "fast": Preset("fast", input_size=(64, 48), heatmap_stride=4, epochs=100, max_steps=40,
                   batch_size=16, n_train=150, n_val=40),
    # a student's run: 128×96 input with the stride-2 head (64×48 heatmaps, the papers' size),
    # light augmentation, lr 4e-3 (recipes' 2e-3 × 2), 5 epochs ≈ 630 steps of 16; bf16 forward
    # where native. Measured for mse on an idle 2-core machine: results/NOTES.md (the stride-4
    # head at 32×24 heatmaps needed 1000 steps and 74 s for AP 0.473)
    "default": Preset("default", input_size=(128, 96), heatmap_stride=2, epochs=5, batch_size=16,
                      lr_scale=2.0, val_every=2, rotation=10.0, scale_jitter=0.15,
                      autocast="auto", channels_last=True),
    # the calibrated scale: 64×48 heatmaps, full augmentation, 40 epochs; about 18 min on one
    # CPU thread for mse (results/mse_full.json), minutes on a GPU
    "full": Preset("full", input_size=(128, 96), heatmap_stride=2, epochs=40, batch_size=16,
                   lr_scale=2.0, val_every=4, autocast="auto", channels_last=True),
    # real COCO (a folder made by data_scripts/fetch_coco.py, train + val splits) with
    # SimpleBaseline's setting: 256×192 input, 64×48 heatmaps, ResNet-18 whose trunk starts from
    # torchvision's ImageNet weights (poselab.models.imagenet_resnet: a 45 MB file, no
    # torchvision needed), flips with COCO's left/right pairs (poselab.skeleton), rotation ±40°,
    # scale ±30 %, lr 1e-3 for the recipes' 2e-3, mixed precision (bf16, or fp16 + a gradient
    # scaler) where the device has it. Meant for a GPU; evaluated with ground-truth boxes.
    "coco": Preset("coco", input_size=(256, 192), heatmap_stride=4, epochs=20, batch_size=32,
                   backbone="resnet18_imagenet", lr_scale=0.5, flip_prob=0.5, rotation=40.0,
                   scale_jitter=0.3, val_every=5, autocast="auto", channels_last=True),
}


def resolve_autocast(autocast: str | None, device) -> str | None:
    """The forward precision a preset's ``autocast`` gives on ``device`` (see :class:`Preset` and
    :func:`poselab.train.device.autocast_plan`: "auto" → bfloat16 where native, float16 with a
    gradient scaler on a CUDA GPU without bfloat16, else float32)."""
    if autocast != "auto":
        return autocast
    return _device.autocast_plan(_device.device_capability(device), autocast).dtype


def chapter_preset(preset: "Preset | str", **overrides) -> Preset:
    """The preset a chapter trains under: ``preset`` with the chapter's own ``overrides`` (e.g.
    ``epochs=3, n_val=40`` to fit a student's time budget) applied **only under the default
    preset**; any other preset (``full``, ``fast``, a Preset of one's own) trains as defined, so
    ``-p preset=full`` gives a chapter the same runs as ``poselab train --preset full``. An
    override of ``None`` keeps the preset's value.

    Example:
        >>> chapter_preset("default", epochs=3).epochs, chapter_preset("full", epochs=3).epochs
        (3, 40)
    """
    preset = get_preset(preset)
    changes = {k: v for k, v in overrides.items() if v is not None}
    if preset.name != "default" or not changes:
        return preset
    return preset.replace(**changes)


def get_preset(preset: "Preset | str") -> Preset:
    """A :class:`Preset` or the named one of :data:`PRESETS`."""
    if isinstance(preset, Preset):
        return preset
    if isinstance(preset, str) and preset in PRESETS:
        return PRESETS[preset]
    raise KeyError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)} or pass a Preset")
