"""benchmarks/gpu_check.py on the CPU: one row per recipe, the agreement checks fail on
constructed counter-cases, and a CPU run never writes benchmarks/gpu.md."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check  # noqa: E402

from poselab.experiments import MODELS, PRESETS, RECIPES, Geometry  # noqa: E402

SUBSET = ["mse", "emd", "spatial_rs_is"]  # heatmap, float64 transport, float64 ranking + custom autograd


def test_quick_cpu_run_prints_one_row_per_recipe(tmp_path):
    gpu_md = ROOT / "benchmarks" / "gpu.md"
    before = gpu_md.stat().st_mtime_ns if gpu_md.exists() else None
    out = tmp_path / "check.md"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu",
                           "--quick", "--only", *SUBSET, "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    rows = [l for l in proc.stdout.splitlines() if l.startswith("| ")]
    assert [r.split("|")[1].strip() for r in rows] == SUBSET
    assert all(r.split("|")[2].strip() == "ok" for r in rows)
    text = out.read_text()
    assert "device: cpu" in text and "AP generated val" in text
    assert "crop warp on cpu vs the CPU" in proc.stdout and "(ok, tolerance" in proc.stdout
    assert (gpu_md.stat().st_mtime_ns if gpu_md.exists() else None) == before  # CPU never writes it


def _setup(name="mse"):
    recipe = RECIPES[name]
    preset = PRESETS["fast"]
    geometry = Geometry(preset.input_size, preset.heatmap_size)
    model = MODELS[recipe.model](recipe, geometry, 0)
    return recipe, geometry, model, gpu_check.make_batch(recipe, geometry, 4)


def test_agreement_passes_on_the_real_cpu_path():
    res = gpu_check.agreement(*_setup(), torch.device("cpu"), "bfloat16")
    assert res["ok"] and res["f64_out_err"] < 1e-4 and res["half_err"] < gpu_check.HALF_LOSS_RTOL


def test_agreement_fails_when_float32_outputs_drift(monkeypatch):
    """Counter-case: float32 outputs 1 % off float64 (a broken float32 path) fail the check."""
    real = gpu_check._loss_and_outputs

    def drifting(recipe, geometry, model, batch, device, dtype, autocast=None):
        loss, outs = real(recipe, geometry, model, batch, device, dtype, autocast)
        return loss, [o * 1.01 for o in outs] if dtype == torch.float32 else outs

    monkeypatch.setattr(gpu_check, "_loss_and_outputs", drifting)
    res = gpu_check.agreement(*_setup(), torch.device("cpu"), None)
    assert not res["ok"] and res["f64_out_err"] > gpu_check.OUTPUT_RTOL
    assert gpu_check._misses(res) == ["float32 outputs vs float64"]


def test_agreement_fails_when_half_precision_loss_drifts(monkeypatch):
    """Counter-case: an autocast loss 10 % off float32 fails; the same without half passes."""
    real = gpu_check._loss_and_outputs

    def half_off(recipe, geometry, model, batch, device, dtype, autocast=None):
        loss, outs = real(recipe, geometry, model, batch, device, dtype, autocast)
        return (loss * 1.1 if autocast else loss), outs

    monkeypatch.setattr(gpu_check, "_loss_and_outputs", half_off)
    res = gpu_check.agreement(*_setup(), torch.device("cpu"), "bfloat16")
    assert not res["ok"] and gpu_check._misses(res) == ["bfloat16 loss vs float32"]
    assert gpu_check.agreement(*_setup(), torch.device("cpu"), None)["ok"]


def test_a_recipe_that_cannot_step_fails_the_run(monkeypatch, capsys):
    from poselab.experiments import LOSSES

    def broken(geometry, **params):
        raise RuntimeError("device kernel missing")

    monkeypatch.setitem(LOSSES, "mse", broken)
    before = os.environ.get("POSELAB_CACHE_DIR")
    assert gpu_check.main(["--device", "cpu", "--quick", "--only", "mse"]) == 1
    out = capsys.readouterr().out
    assert "| mse | ERROR RuntimeError: device kernel missing" in out
    assert os.environ.get("POSELAB_CACHE_DIR") == before  # the temporary run cache is not left set


def test_bad_arguments_are_named():
    with pytest.raises(SystemExit):
        gpu_check.main(["--device", "cpu", "--only", "no_such_recipe"])
    with pytest.raises(SystemExit):
        gpu_check.main(["--device", "tpu-please", "--quick"])


def test_a_crop_warp_off_the_cpus_fails_the_run(monkeypatch, capsys):
    """Counter-case: every recipe passes but the device's crop warp is 3 grey levels off."""
    monkeypatch.setattr(gpu_check, "crop_warp_difference", lambda device, preset, n=8: 3.0)
    assert gpu_check.main(["--device", "cpu", "--quick", "--only", "mse"]) == 1
    out = capsys.readouterr()
    assert "| mse | ok |" in out.out and "3 grey levels (MISS" in out.out
    assert "crop warp" in out.err


def test_half_tolerance_follows_the_float32_conditioning_of_the_loss():
    """bcir_beta20 at initialisation: float32 24 % off float64, bfloat16 5.4 % off float32 — not a
    failure of autocast; an exact float32 loss with a 10 % half error still fails."""
    import importlib.util
    import pathlib
    spec = importlib.util.spec_from_file_location("gpu_check_mod", pathlib.Path(__file__).parents[1] / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ill = {"half": "bfloat16", "half_err": 0.054, "f64_loss_err": 0.24}
    exact = {"half": "bfloat16", "half_err": 0.10, "f64_loss_err": 1e-7}
    assert mod._misses(ill) == [] and mod._misses(exact) == ["bfloat16 loss vs float32"]


def test_replication_estimate_sums_measured_recipes_and_names_the_rest():
    import importlib.util
    import pathlib
    spec = importlib.util.spec_from_file_location("gpu_check_est", pathlib.Path(__file__).parents[1] / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    steps = mod._recorded_full_steps()
    text = mod.replication_estimate([{"recipe": "mse", "device_step": 0.01}], batch=16, quick=False)
    # mse is in chapters 01, 02 (baseline), 03, 04, 05, 06: six chapters × 5 seeds
    from poselab.experiments.replicate import chapter_recipes
    runs = sum(5 for ch in ("01", "02", "03", "04", "05", "06") for r in chapter_recipes(ch, "full") if r.name == "mse")
    hours = runs * 0.01 * steps / 3600
    assert f"{runs} runs" in text and f"≈ {hours:.1f} h" in text and "not measured here: " in text and "emd" in text
