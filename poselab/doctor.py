"""``poselab doctor``: what this installation will train on — the first thing to paste into an issue.

    poselab doctor [--device auto|cpu|cuda|cuda:N|mps]

Prints one ``name: value`` line per fact: poselab and Python versions, torch and its CUDA/cuDNN
builds, the device ``device="auto"`` picks (or the one asked for) with its name, the autocast
choice the ``default`` and ``full`` presets make there and why, whether float64 exists there,
pinned memory / non-blocking copies, torch's thread counts, the data folders (generated data,
the COCO sample), the run cache, and the optional packages (torchvision, pycocotools). Nothing is
trained or downloaded; a missing optional part is reported, not an error.
"""
from __future__ import annotations

import importlib.util
import os
import platform
import sys
from importlib.metadata import version
from pathlib import Path

from poselab._version import __version__

__all__ = ["doctor_report", "format_report", "main"]


def _version(module: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return None
    try:
        return version(module)
    except Exception:  # noqa: BLE001 - installed without metadata (a checkout on the path)
        return "installed"


def _folder(path: Path | None, what_if_missing: str) -> str:
    if path is None:
        return f"not found ({what_if_missing})"
    path = Path(path)
    return f"{path} ({'present' if path.exists() else 'not made yet'})"


def doctor_report(device: str = "auto") -> list[tuple[str, str]]:
    """The facts ``poselab doctor`` prints, as ``(name, value)`` pairs, in order.

    ``device``: what to resolve (as ``run_recipe(device=...)`` would); an unavailable device
    raises ``ValueError`` naming it.
    """
    # deferred: torch and the library under it; `poselab --help` imports this module
    import torch  # deferred
    from poselab.data import find_coco_sample  # deferred
    from poselab.data.synth import default_root  # deferred
    from poselab.experiments.cache import cache_root  # deferred
    from poselab.experiments.presets import PRESETS  # deferred
    from poselab.models.imagenet_resnet import RESNET18_URL, imagenet_weights_path  # deferred
    from poselab.train.device import (autocast_plan, device_capability, resolve_device,  # deferred
                                      transfer_plan)

    dev = resolve_device(device)
    cap = device_capability(dev)
    cuda_build = torch.version.cuda or "none (CPU build)"
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps is not None and mps.is_available())
    rows = [
        ("poselab", f"{__version__} at {Path(__file__).resolve().parent}"),
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("platform", f"{platform.platform()}, {os.cpu_count()} CPUs"),
        ("torch", f"{torch.__version__}; CUDA build {cuda_build}"
                  + (f", cuDNN {cudnn}" if cudnn else "")),
        ("device", f"{dev} (device={device!r}): {cap.name}"
                   + (f", compute capability {cap.capability[0]}.{cap.capability[1]}"
                      if cap.capability else "")),
        ("accelerators", f"{gpus} CUDA GPU(s); Apple MPS {'available' if mps_ok else 'not available'}"
                         + (" (device='auto' never picks MPS: no float64)" if mps_ok else "")),
        ("threads", f"torch {torch.get_num_threads()} intra-op, {torch.get_num_interop_threads()} "
                    f"inter-op; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"),
    ]
    for name in ("default", "full"):
        requested = PRESETS[name].autocast
        plan = autocast_plan(cap, requested)
        rows.append((f"autocast ({name} preset)",
                     f"{plan.dtype or 'float32'}"
                     + (", with a gradient scaler" if plan.grad_scaler else "")
                     + f" — {plan.reason} (preset asks {requested!r})"))
    rows.append(("float64", "yes" if cap.float64 else
                 "no: EMD, the ranking losses and Instance-Sort are refused here"))
    moves = transfer_plan(dev)
    rows.append(("transfers", "pinned memory and non-blocking copies" if moves["pin_memory"]
                 else "plain copies (pinned memory and non-blocking copies are for CUDA only)"))
    rows.append(("generated data", _folder(default_root(), "")))
    rows.append(("COCO sample", _folder(find_coco_sample(),
                                        "set POSELAB_COCO_SAMPLE or put it at ../shared/coco_sample")))
    data_dir = os.environ.get("POSELAB_DATA_DIR")
    rows.append(("POSELAB_DATA_DIR", data_dir or "unset"))
    rows.append(("run cache", _folder(cache_root(), "")))
    weights = imagenet_weights_path()
    rows.append(("ImageNet ResNet-18", f"{weights} (present)" if weights.is_file() else
                 f"not downloaded: the coco preset needs {RESNET18_URL} (about 45 MB) at {weights}"))
    tv = _version("torchvision")
    rows.append(("torchvision", tv or "not installed (optional: the coco preset reads "
                                      "torchvision's weights file without it)"))
    rows.append(("pycocotools", _version("pycocotools") or "not installed (needed for COCO AP)"))
    return rows


def format_report(rows: list[tuple[str, str]]) -> str:
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main(device: str = "auto") -> int:
    """Print the report; 0 (a missing optional part is a line, not a failure)."""
    print(format_report(doctor_report(device)))
    return 0
