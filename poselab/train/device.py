"""What a device can do, and what training does about it.

One place decides, per device, the forward precision (autocast), whether gradients are scaled,
whether batches are pinned and copied without blocking, and whether float64 exists:

- :func:`device_capability` probes a device into a :class:`DeviceCapability`; tests build one
  by hand to exercise a GPU's branches on a CPU machine.
- :func:`autocast_plan` turns a requested precision (a preset's ``autocast``) and a capability
  into an :class:`AutocastPlan`: ``"auto"`` → bfloat16 where the device computes it natively
  (a CUDA GPU of compute capability ≥ 8.0, a CPU with AVX512-BF16), float16 **with a gradient
  scaler** on a CUDA GPU without bfloat16 (float16 has 5 exponent bits: small gradients underflow
  to 0 unless the loss is scaled up first), float32 elsewhere (CPU float16 is emulated and slower;
  Apple MPS is left in float32).
- :func:`transfer_plan`: pinned host memory and ``non_blocking`` copies only for CUDA (on a CPU
  they are no-ops at best; pinning costs a copy).
- :func:`check_float64`: Apple MPS has no float64; the losses that solve in float64 (EMD's
  Sinkhorn and implicit gradient, the ranking losses, Instance-Sort) are refused there by name.
  ``device="auto"`` never picks MPS for this reason (:func:`poselab.train.resolve_device`).
"""
from __future__ import annotations

import platform
from dataclasses import dataclass

import torch

__all__ = ["DeviceCapability", "AutocastPlan", "resolve_device", "device_capability",
           "autocast_plan", "transfer_plan", "check_float64", "AUTOCAST_CHOICES"]

#: the values a preset's ``autocast`` may take
AUTOCAST_CHOICES = (None, "auto", "bfloat16", "float16")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → cuda if available, else cpu; anything else → ``torch.device``.

    ``"auto"`` never picks Apple's MPS: it has no float64, which several losses compute in
    (EMD's Sinkhorn, the ranking losses, Instance-Sort), so a chapter on ``"auto"`` would crash
    there. Ask for ``device="mps"`` explicitly to train the float32 recipes on it; a float64 path
    then stops with an error naming the device (:func:`poselab.experiments.run_recipe`).
    """
    if isinstance(device, torch.device):
        return device
    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}") from exc
    if dev.type == "cuda" and (not torch.cuda.is_available()
                               or (dev.index or 0) >= torch.cuda.device_count()):
        found = torch.cuda.device_count() if torch.cuda.is_available() else 0
        raise ValueError(f"device {device!r} is not available ({found} CUDA device(s) found); "
                         "pass device='auto' (picks cuda, mps or cpu) or device='cpu'")
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"device {device!r} is not available (no Apple MPS backend); pass "
                             "device='auto' or device='cpu'")
    return dev


@dataclass(frozen=True)
class DeviceCapability:
    """What a device can compute.

    Attributes:
        type: ``"cpu"``, ``"cuda"`` or ``"mps"``.
        name: a readable name (GPU model, CPU model).
        bf16: computes bfloat16 natively (so autocast to bfloat16 is faster, not emulated).
        float64: has float64 tensors (False on Apple MPS).
        capability: CUDA compute capability ``(major, minor)``; None off CUDA.
    """

    type: str
    name: str
    bf16: bool
    float64: bool = True
    capability: tuple[int, int] | None = None

    def __post_init__(self):
        if self.type not in ("cpu", "cuda", "mps"):
            raise ValueError(f"device type must be 'cpu', 'cuda' or 'mps', got {self.type!r}")
        for attr in ("bf16", "float64"):
            if not isinstance(getattr(self, attr), bool):
                raise TypeError(f"{attr} must be True or False, got {getattr(self, attr)!r}")


@dataclass(frozen=True)
class AutocastPlan:
    """The forward precision on one device: ``dtype`` None (float32), ``"bfloat16"`` or
    ``"float16"``; ``grad_scaler`` True when the loss must be scaled (float16); ``reason`` says
    why, for ``poselab doctor`` and run records."""

    dtype: str | None
    grad_scaler: bool
    reason: str


def _cpu_name() -> str:
    name = platform.processor() or platform.machine() or "CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return name


def device_capability(device: str | torch.device = "auto") -> DeviceCapability:
    """Probe ``device`` (resolved as :func:`poselab.train.resolve_device` does)."""
    dev = resolve_device(device)
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return DeviceCapability("cuda", torch.cuda.get_device_name(index),
                                bf16=bool(torch.cuda.is_bf16_supported()), float64=True,
                                capability=tuple(torch.cuda.get_device_capability(index)))
    if dev.type == "mps":
        return DeviceCapability("mps", "Apple MPS", bf16=False, float64=False)
    if dev.type == "cpu":
        probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
        return DeviceCapability("cpu", _cpu_name(), bf16=bool(probe is not None and probe()))
    raise ValueError(f"device {str(dev)!r}: poselab trains on 'cpu', 'cuda' or 'mps'")


def autocast_plan(capability: DeviceCapability, requested: str | None = "auto") -> AutocastPlan:
    """The forward precision ``requested`` gives on a device (see the module docstring).

    ``requested``: None (float32), ``"bfloat16"``, ``"float16"`` (used as asked; float16 always
    with a gradient scaler), or ``"auto"``.

    Example:
        >>> gpu = DeviceCapability("cuda", "Tesla T4", bf16=False, capability=(7, 5))
        >>> autocast_plan(gpu)
        AutocastPlan(dtype='float16', grad_scaler=True, reason='cuda without native bfloat16 (Tesla T4): float16 with a gradient scaler')
    """
    if not isinstance(capability, DeviceCapability):
        raise TypeError(f"capability must be a DeviceCapability (device_capability(device)), got "
                        f"{type(capability).__name__}")
    if requested not in AUTOCAST_CHOICES:
        raise ValueError(f"autocast must be one of {AUTOCAST_CHOICES}, got {requested!r}")
    if requested is None:
        return AutocastPlan(None, False, "float32 (autocast off)")
    if requested == "bfloat16":
        return AutocastPlan("bfloat16", False, "bfloat16 as asked"
                            + ("" if capability.bf16 else f" (emulated on {capability.name}: slow)"))
    if requested == "float16":
        return AutocastPlan("float16", True, "float16 as asked, with a gradient scaler")
    if capability.bf16 and capability.type in ("cuda", "cpu"):
        return AutocastPlan("bfloat16", False, f"{capability.type} with native bfloat16 "
                                               f"({capability.name})")
    if capability.type == "cuda":
        return AutocastPlan("float16", True, f"cuda without native bfloat16 ({capability.name}): "
                                             "float16 with a gradient scaler")
    if capability.type == "cpu":
        return AutocastPlan(None, False, "cpu without AVX512-BF16: float32 (half precision "
                                         "would be emulated, slower)")
    return AutocastPlan(None, False, f"{capability.type}: float32")


def transfer_plan(device: str | torch.device | DeviceCapability) -> dict[str, bool]:
    """``{"pin_memory": ..., "non_blocking": ...}``: both True only for a CUDA device."""
    kind = device.type if isinstance(device, (DeviceCapability, torch.device)) else torch.device(device).type
    cuda = kind == "cuda"
    return {"pin_memory": cuda, "non_blocking": cuda}


def check_float64(device: str | torch.device | DeviceCapability, what: str) -> None:
    """Raise ``ValueError`` naming ``what`` when the device has no float64 (Apple MPS)."""
    if isinstance(device, DeviceCapability):
        ok, kind = device.float64, device.type
    else:
        kind = device.type if isinstance(device, torch.device) else torch.device(device).type
        ok = kind != "mps"
    if not ok:
        raise ValueError(f"{what} computes in float64, which {kind} does not have; use "
                         "device='cpu' or a CUDA GPU (device='auto' never picks MPS)")
