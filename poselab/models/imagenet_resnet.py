"""An ImageNet-pretrained ResNet-18 SimpleBaseline without torchvision.

:class:`ImageNetResNet18Backbone` is a plain-torch ResNet-18 whose parameter and buffer names are
torchvision's ``resnet18`` (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer2.0.downsample.0``, …),
so torchvision's ImageNet file loads into it unchanged (its ``fc.*`` classifier is dropped), plus
SimpleBaseline's three 4×4 stride-2 deconvolutions (Xiao et al. 2018) to stride 4 (a fourth for
stride 2). torchvision itself is not needed: the weights are one file.

The weights file (torchvision's ``ResNet18_Weights.IMAGENET1K_V1``, about 45 MB)::

    https://download.pytorch.org/models/resnet18-f37072fd.pth

looked up at ``$POSELAB_RESNET18_WEIGHTS`` if set, else in torch hub's cache
(``torch.hub.get_dir()/checkpoints/resnet18-f37072fd.pth``, usually
``~/.cache/torch/hub/checkpoints/``), where torchvision itself puts it — so either of these fills it::

    python -c "import torch; torch.hub.load_state_dict_from_url('https://download.pytorch.org/models/resnet18-f37072fd.pth')"
    curl -L --create-dirs -o ~/.cache/torch/hub/checkpoints/resnet18-f37072fd.pth https://download.pytorch.org/models/resnet18-f37072fd.pth

As in torch hub, the 8 hex digits in a file name ``<name>-<8 hex>.pth`` are the start of the
file's sha256, and a file whose sha256 does not start with them is refused (a truncated or
replaced download). Inputs are the crops normalised with ImageNet's mean and std, as
:class:`~poselab.data.crop_cache.CropCache` and :class:`~poselab.data.TopDownDataset` give them.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F

from .._numbers import whole_number
from .backbones import BasicBlock, simple_baseline_deconvs

__all__ = ["ImageNetResNet18Backbone", "RESNET18_URL", "RESNET18_FILE", "imagenet_weights_path",
           "load_imagenet_weights"]

RESNET18_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"
RESNET18_FILE = "resnet18-f37072fd.pth"
_ENV = "POSELAB_RESNET18_WEIGHTS"
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.pth?$")


class _Block(BasicBlock):
    """torchvision's ``BasicBlock`` layout (``conv1``, ``bn1``, ``conv2``, ``bn2``, ``downsample``)."""

    SHORTCUT_NAME = "downsample"


class ImageNetResNet18Backbone(nn.Module):
    """ResNet-18 (torchvision names) + SimpleBaseline deconvolutions.

    Input ``(B, 3, H, W)`` (H, W multiples of 4; 256×192 in the papers) →
    ``(B, deconv_channels, H/stride, W/stride)``, resampled bilinearly to exactly that size when
    H or W is not a multiple of 32. ``weights``: a path to torchvision's ImageNet file, ``"auto"``
    (:func:`imagenet_weights_path`; a missing file raises ``FileNotFoundError`` saying where to
    get it) or None (random initialisation, for tests and for loading a trained checkpoint).
    """

    def __init__(self, deconv_channels: int = 256, stride: int = 4,
                 weights: str | os.PathLike | None = "auto"):
        super().__init__()
        if stride not in (2, 4):
            raise ValueError(f"stride must be 2 or 4 (output resolution H/stride), got {stride!r}")
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = 64
        for i, (cout, first_stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2)), start=1):
            setattr(self, f"layer{i}", nn.Sequential(_Block(cin, cout, first_stride), _Block(cout, cout)))
            cin = cout
        self.deconvs = simple_baseline_deconvs(cin, deconv_channels, stride)
        for m in self.deconvs.modules():  # SimpleBaseline's initialisation of the new layers
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
        self.out_channels = deconv_channels
        self.stride = whole_number(stride, "stride", 1)
        self.weights_file = None
        if weights is not None:
            path = imagenet_weights_path() if weights == "auto" else Path(weights)
            self.weights_file = load_imagenet_weights(self, path)

    def trunk_names(self) -> set[str]:
        """The state-dict keys that torchvision's resnet18 file fills."""
        return {k for k in self.state_dict() if not k.startswith("deconvs.")}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = self.deconvs(out)
        size = (x.shape[-2] // self.stride, x.shape[-1] // self.stride)
        if out.shape[-2:] != size:
            out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
        return out


def imagenet_weights_path() -> Path:
    """``$POSELAB_RESNET18_WEIGHTS``, else torch hub's ``checkpoints/resnet18-f37072fd.pth``."""
    env = os.environ.get(_ENV)
    if env:
        return Path(env).expanduser()
    return Path(torch.hub.get_dir()) / "checkpoints" / RESNET18_FILE


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_imagenet_weights(backbone: ImageNetResNet18Backbone, path: str | os.PathLike) -> str:
    """Load torchvision's resnet18 ImageNet file into ``backbone``'s trunk; returns the file's
    sha256. Raises ``FileNotFoundError`` (with the URL) for a missing file and ``ValueError`` for
    a file whose sha256 does not start with the hash in its name, or that is not a resnet18
    state dict (names or shapes differ)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no ImageNet ResNet-18 weights at {path}; download {RESNET18_URL} (about 45 MB) "
            f"there (e.g. curl -L --create-dirs -o {path} {RESNET18_URL}), or set {_ENV} to the "
            "file, or use backbone='resnet18' (trained from scratch)")
    digest = _sha256(path)
    named = _HASH_IN_NAME.search(path.name)
    if named and not digest.startswith(named.group(1)):
        raise ValueError(f"{path}: sha256 {digest[:16]}… does not start with {named.group(1)} "
                         "(the hash in its name): a truncated or different file; download it again")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors of many kinds
        raise ValueError(f"{path} is not a torch state dict ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} is not a state dict of tensors (torchvision's resnet18 file is)")
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    expected = backbone.trunk_names()
    # BatchNorm's num_batches_tracked counters are absent from older files: optional
    missing = sorted(k for k in expected - set(state) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(f"{path} is not torchvision's resnet18: missing {missing[:4]}, "
                         f"unexpected {unexpected[:4]}")
    own = backbone.state_dict()
    wrong = [k for k in state if state[k].shape != own[k].shape]
    if wrong:
        raise ValueError(f"{path}: shapes differ from resnet18 for {wrong[:4]}")
    backbone.load_state_dict(state, strict=False)
    return digest
