"""poselab doctor: exits 0, prints the device and what training will do there (simulated GPUs)."""
from __future__ import annotations

import torch

from poselab import cli, doctor
from poselab.train import device as devmod
from poselab.train.device import DeviceCapability


def _rows(device="auto"):
    return dict(doctor.doctor_report(device))


def test_doctor_exits_zero_and_prints_the_device(capsys):
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("device "))
    assert "device='auto'" in line and ("cpu" in line or "cuda" in line)
    for name in ("torch", "threads", "autocast (default preset)", "float64", "run cache",
                 "COCO sample", "generated data", "torchvision", "pycocotools", "transfers"):
        assert any(l.startswith(name) for l in out.splitlines()), name


def test_doctor_reports_the_real_cpu_consistently():
    rows = _rows("cpu")
    cap = devmod.device_capability("cpu")
    assert rows["device"].startswith("cpu") and cap.name in rows["device"]
    expected = devmod.autocast_plan(cap, "auto").dtype or "float32"
    assert rows["autocast (default preset)"].startswith(expected)
    assert rows["float64"] == "yes" and rows["transfers"].startswith("plain copies")
    assert f"torch {torch.get_num_threads()} intra-op" in rows["threads"]


def _simulate(monkeypatch, kind, cap):
    monkeypatch.setattr(devmod, "resolve_device", lambda device="auto": torch.device(kind))
    monkeypatch.setattr(devmod, "device_capability", lambda device="auto": cap)


def test_doctor_on_a_simulated_gpu_without_bf16(monkeypatch):
    _simulate(monkeypatch, "cuda", DeviceCapability("cuda", "Tesla T4", bf16=False, capability=(7, 5)))
    rows = _rows()
    assert rows["device"].startswith("cuda") and "Tesla T4" in rows["device"]
    assert "compute capability 7.5" in rows["device"]
    assert rows["autocast (default preset)"].startswith("float16, with a gradient scaler")
    assert rows["transfers"].startswith("pinned memory")


def test_doctor_on_simulated_mps_says_float64_is_missing(monkeypatch):
    _simulate(monkeypatch, "mps", DeviceCapability("mps", "Apple MPS", bf16=False, float64=False))
    rows = _rows("mps")
    assert rows["float64"].startswith("no") and "EMD" in rows["float64"]
    assert rows["autocast (full preset)"].startswith("float32")


def test_doctor_says_whether_the_imagenet_weights_are_there(tmp_path, monkeypatch):
    path = tmp_path / "resnet18.pth"
    monkeypatch.setenv("POSELAB_RESNET18_WEIGHTS", str(path))
    assert _rows("cpu")["ImageNet ResNet-18"].startswith("not downloaded")
    assert "download.pytorch.org/models/resnet18-f37072fd.pth" in _rows("cpu")["ImageNet ResNet-18"]
    path.write_bytes(b"x")
    assert _rows("cpu")["ImageNet ResNet-18"] == f"{path} (present)"


def test_doctor_names_an_unavailable_device(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.main(["doctor", "--device", "cuda:3"]) == 2
    assert "cuda:3" in capsys.readouterr().err
