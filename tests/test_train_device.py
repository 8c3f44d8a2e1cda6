"""Device-dependent branches, exercised on a CPU with simulated device capabilities: the autocast
choice (bfloat16 / float16 + gradient scaler / float32), the gradient scaler inside fit, pinned
memory and non-blocking copies only for CUDA, float64 refused on MPS."""
from __future__ import annotations

import pytest
import torch

from poselab.experiments.presets import resolve_autocast
from poselab.models import build_model
from poselab.train import fit, to_device
from poselab.train import device as devmod
from poselab.train.device import (AutocastPlan, DeviceCapability, autocast_plan, check_float64,
                                  device_capability, transfer_plan)

A100 = DeviceCapability("cuda", "NVIDIA A100", bf16=True, capability=(8, 0))
T4 = DeviceCapability("cuda", "Tesla T4", bf16=False, capability=(7, 5))
XEON_BF16 = DeviceCapability("cpu", "Xeon with AVX512-BF16", bf16=True)
OLD_CPU = DeviceCapability("cpu", "laptop CPU", bf16=False)
MPS = DeviceCapability("mps", "Apple MPS", bf16=False, float64=False)


@pytest.mark.parametrize("cap, dtype, scaler", [
    (A100, "bfloat16", False),   # native bf16: float32's range, no scaler
    (T4, "float16", True),       # pre-Ampere GPU: float16 needs the scaler
    (XEON_BF16, "bfloat16", False),
    (OLD_CPU, None, False),      # emulated half precision would be slower than float32
    (MPS, None, False),
])
def test_auto_precision_per_simulated_device(cap, dtype, scaler):
    plan = autocast_plan(cap, "auto")
    assert (plan.dtype, plan.grad_scaler) == (dtype, scaler), plan
    assert cap.name in plan.reason or cap.type in plan.reason


def test_explicit_precisions_and_bad_requests():
    assert autocast_plan(T4, None) == AutocastPlan(None, False, "float32 (autocast off)")
    assert autocast_plan(XEON_BF16, "float16").grad_scaler  # float16 is always scaled
    assert autocast_plan(A100, "bfloat16").dtype == "bfloat16"
    assert "emulated" in autocast_plan(OLD_CPU, "bfloat16").reason
    with pytest.raises(ValueError, match="autocast"):
        autocast_plan(A100, "int8")
    with pytest.raises(TypeError, match="DeviceCapability"):
        autocast_plan("cuda", "auto")
    with pytest.raises(ValueError, match="device type"):
        DeviceCapability("tpu", "x", bf16=True)
    with pytest.raises(TypeError, match="bf16"):
        DeviceCapability("cuda", "x", bf16="yes")


def test_preset_auto_follows_the_device_capability(monkeypatch):
    """A preset's "auto" on a GPU without bfloat16 is float16 (was float32 before the plan)."""
    monkeypatch.setattr(devmod, "device_capability", lambda device: T4)
    assert resolve_autocast("auto", torch.device("cpu")) == "float16"
    monkeypatch.setattr(devmod, "device_capability", lambda device: A100)
    assert resolve_autocast("auto", torch.device("cpu")) == "bfloat16"
    assert resolve_autocast(None, torch.device("cpu")) is None
    real = device_capability("cpu")
    assert real.type == "cpu" and real.float64 and real.capability is None


def test_transfers_pin_and_skip_blocking_only_on_cuda(monkeypatch):
    assert transfer_plan(T4) == {"pin_memory": True, "non_blocking": True}
    assert transfer_plan("cuda:1") == {"pin_memory": True, "non_blocking": True}
    assert transfer_plan(torch.device("cpu")) == {"pin_memory": False, "non_blocking": False}
    assert transfer_plan(MPS) == {"pin_memory": False, "non_blocking": False}
    calls = []
    real_to = torch.Tensor.to

    def spy(self, *args, **kwargs):
        calls.append(kwargs.get("non_blocking"))
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", spy)
    monkeypatch.setattr(torch.Tensor, "pin_memory",
                        lambda self: pytest.fail("pinned memory for a CPU target"))
    out = to_device({"image": torch.ones(2, 3), "meta": [torch.zeros(1)], "name": "x"}, "cpu")
    assert calls == [False, False] and out["name"] == "x"


def test_float64_refused_on_mps_by_name():
    with pytest.raises(ValueError, match="EMD's Sinkhorn computes in float64.*mps"):
        check_float64(MPS, "EMD's Sinkhorn")
    with pytest.raises(ValueError, match="float64"):
        check_float64("mps", "the ranking loss")
    check_float64(T4, "EMD")       # CUDA and CPU have float64: no error
    check_float64("cpu", "EMD")


class _Crops(torch.utils.data.Dataset):
    def __init__(self, n=8):
        g = torch.Generator().manual_seed(0)
        self.images = torch.rand(n, 3, 64, 48, generator=g)
        self.targets = torch.rand(n, 17, 16, 12, generator=g)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "target": self.targets[i]}


def _mse(outputs, batch):
    return ((outputs.float() - batch["target"]) ** 2).mean()


def _sqrt_at_zero(loss, outputs):
    """``loss`` unchanged in value, with a NaN gradient (sqrt's derivative at 0 is infinite)."""
    return loss + torch.sqrt(outputs.float().sum() * 0)


def test_fit_scales_float16_gradients_and_skips_overflowed_steps():
    """float16 autocast trains with a GradScaler on the CPU: an overflowing scaled gradient (inf,
    scale still ≥ 1) skips the step and halves the scale instead of raising; float32 and
    bfloat16 have no scaler."""
    torch.manual_seed(0)
    model = build_model("heatmap", autocast="float16", seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = {"n": 0}

    def overflow_first(outputs, batch):
        calls["n"] += 1
        loss = _mse(outputs, batch)
        if calls["n"] == 1:  # a non-finite gradient in the first step only
            return _sqrt_at_zero(loss, outputs)
        return loss

    states = []

    class Grab:
        def on_fit_start(self, s): pass
        def on_step_end(self, s): states.append(dict(s.extra))
        def on_validation_end(self, s): pass
        def on_epoch_end(self, s): pass
        def on_fit_end(self, s): pass

    hist = fit(model, overflow_first, _Crops(), max_steps=1, batch_size=4, warmup_steps=0,
               device="cpu", callbacks=[Grab()])
    assert states and states[0]["grad_scale"] == 65536.0 / 2  # overflow → scale halved
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if "running" not in k
               and "num_batches" not in k), "an overflowed step must not update the weights"
    assert len(hist.losses) == 1

    model32 = build_model("heatmap", seed=0)
    states.clear()
    fit(model32, _mse, _Crops(), max_steps=2, batch_size=4, warmup_steps=0, device="cpu",
        callbacks=[Grab()])
    assert "grad_scale" not in states[-1]  # no scaler outside float16


def test_fit_float16_with_a_real_nan_gradient_still_raises(monkeypatch):
    """Counter-case for the scaler: once the scale is below 1 a non-finite gradient is a bug in
    the loss, not an overflow, and stops training as in float32 (the scale starts at 2 here, so
    two skipped steps bring it below 1)."""
    import functools
    monkeypatch.setattr(torch.amp, "GradScaler", functools.partial(torch.amp.GradScaler, init_scale=2.0))
    model = build_model("heatmap", autocast="float16", seed=0)

    def nan_grad(outputs, batch):
        return _sqrt_at_zero(_mse(outputs, batch), outputs)

    with pytest.raises(FloatingPointError, match="gradient is nan at step 2"):
        fit(model, nan_grad, _Crops(), max_steps=30, batch_size=4, warmup_steps=0, device="cpu")


def test_fit_float16_learns_on_cpu():
    torch.manual_seed(0)
    model = build_model("heatmap", autocast="float16", seed=0)
    hist = fit(model, _mse, _Crops(), max_steps=4, batch_size=4, lr=3e-3, warmup_steps=0,
               device="cpu")
    assert all(torch.isfinite(torch.tensor(hist.losses)))
    assert hist.losses[-1] < hist.losses[0]


def test_run_recipe_on_mps_names_the_float64_recipe(tmp_path, monkeypatch):
    """Explicit MPS + a loss that computes in float64: MPS's own TypeError becomes a ValueError
    naming the recipe and what to use instead (simulated: the device resolves to mps and fit
    raises what torch raises on MPS)."""
    import poselab.train as ptrain
    from poselab.experiments import PRESETS, run_recipe
    monkeypatch.setenv("POSELAB_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(ptrain, "resolve_device", lambda device="auto": torch.device("mps"))

    def mps_fit(*args, **kwargs):
        raise TypeError("Cannot convert a MPS Tensor to float64 dtype as the MPS framework "
                        "doesn't support float64. Please use float32 instead.")

    monkeypatch.setattr(ptrain, "fit", mps_fit)
    with pytest.raises(ValueError, match="recipe 'emd' computes in float64, which mps does not have"):
        run_recipe("emd", preset=PRESETS["fast"].replace(max_steps=1), device="mps", cache=False)
    monkeypatch.setattr(ptrain, "fit", lambda *a, **k: (_ for _ in ()).throw(TypeError("other")))
    with pytest.raises(TypeError, match="other"):  # counter-case: other errors pass through
        run_recipe("emd", preset=PRESETS["fast"].replace(max_steps=1), device="mps", cache=False)
