"""GPU check: every registered recipe trains, evaluates and agrees with a reference on one device.

    python benchmarks/gpu_check.py [--device auto|cpu|cuda|cuda:N] [--quick] [--only NAME ...]
                                   [--steps N] [--out FILE]

Per registered recipe, on the chosen device (``auto``: CUDA when present, else the CPU):

1. **Agreement on one batch.** The recipe's model (seed 0), codec and loss, built through the
   registries, on one fixed batch (random images, keypoints uniform in the crop, all visible),
   in train mode. Checked (relative errors; outputs: largest difference over largest magnitude):
   the device's float32 (TF32 off on CUDA) against the CPU's float32 — loss and outputs ≤ 1e-3;
   the CPU's float32 outputs against float64 ≤ 1e-3 (the float32 loss against float64 is shown,
   marked (!) above 1e-3, not failed: see :func:`agreement`); and, where the device's autocast
   plan (:func:`poselab.train.device.autocast_plan`) picks half precision, the loss under that
   autocast against float32 ≤ 5e-2 (bf16 keeps 8 significant bits, fp16 11). On the CPU the
   device column is 0 and the float64 and bfloat16 (where native) comparisons remain: the CPU's
   float32 path is what a GPU is compared with.
2. **Step time.** ``--timing-steps`` training steps (forward, loss, backward, AdamW) of the same
   batch in float32 on the device and on the CPU, median wall seconds per step and samples/s
   side by side (in one process, so machine load hits both; on the CPU both columns are the CPU).
3. **Train and evaluate.** ``poselab.experiments.run_recipe`` for ``--steps`` steps on generated
   data (the ``fast`` preset's data and geometry with ``--quick``, 128×96 input with 64×48
   heatmaps otherwise) into a temporary run cache, then COCO AP on the generated val set (and on
   the real COCO sample when one is found). A few hundred steps is not a trained model: the AP
   shows the path runs, not how well a recipe learns.

Prints one table row per recipe and exits 1 when a recipe fails to train or evaluate or misses a
tolerance. ``--out`` writes the same as markdown; without it, the markdown goes to
``benchmarks/gpu.md`` **only when the device is a CUDA GPU** (a CPU run is not a GPU result and
never overwrites it).
"""
from __future__ import annotations

import argparse
import copy
import datetime as _dt
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
LOSS_RTOL = 1e-3        # float32 vs float64 reference: relative loss error
OUTPUT_RTOL = 1e-3      # float32 vs float64: largest output difference / largest output magnitude
HALF_LOSS_RTOL = 5e-2   # bfloat16 / float16 autocast vs float64 reference


def _tensors(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for k in sorted(out) for t in _tensors(out[k])]
    if isinstance(out, (list, tuple)):
        return [t for v in out for t in _tensors(v)]
    return []


def _cast(batch: dict, device: torch.device, dtype: torch.dtype) -> dict:
    return {k: (v.to(device=device, dtype=dtype) if v.is_floating_point() else v.to(device))
            if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def make_batch(recipe, geometry, batch_size: int, seed: int = 0) -> dict:
    """One fixed float32 CPU batch with the recipe's codec targets (as ``benchmarks/train_step``)."""
    from poselab.experiments import CODECS
    H, W = geometry.input_size
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch_size, 3, H, W, generator=g)
    kp = torch.rand(batch_size, geometry.num_keypoints, 2, generator=g) * torch.tensor([W - 1.0, H - 1.0])
    vis = torch.ones(batch_size, geometry.num_keypoints)
    codec = CODECS[recipe.codec](geometry, **dict(recipe.codec_params))
    window = torch.tensor([[float(W), float(H)]]).repeat(batch_size, 1)
    return {"image": images, "keypoints": kp, "visible": vis, "step": 0, "epoch": 0,
            "area": torch.full((batch_size,), float(H * W) / 1.25 ** 2), "scale": window,
            **codec.encode(kp, vis)}


def _loss_and_outputs(recipe, geometry, model, batch, device, dtype, autocast=None):
    """Loss (python float) and outputs (float64 CPU tensors) of one forward pass in train mode."""
    from poselab.experiments import LOSSES
    model = copy.deepcopy(model).to(device=device, dtype=dtype).train()
    if hasattr(model, "autocast"):
        model.autocast = autocast
    loss_fn = LOSSES[recipe.loss](geometry, **dict(recipe.loss_params))
    batch = _cast(batch, device, dtype)
    outputs = model(batch["image"])
    value = loss_fn(outputs, batch)
    loss = value["loss"] if isinstance(value, dict) else value
    return float(loss.detach()), [t.detach().to("cpu", torch.float64) for t in _tensors(outputs)]


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


def _out_err(outs, refs) -> float:
    return max((float((a - b).abs().max()) / max(float(b.abs().max()), 1e-12)
                for a, b in zip(outs, refs)), default=0.0)


def agreement(recipe, geometry, model, batch, device: torch.device, half: str | None) -> dict:
    """Loss and output errors on one batch (see the module docstring):

    - ``device_*``: the device's float32 against the CPU's float32 (0 when the device is the CPU);
    - ``f64_*``: the CPU's float32 against its float64 (the precision of the float32 path);
    - ``half_err``: the device's ``half`` autocast loss against its float32 loss.

    Fails (``ok`` False) on a device/CPU difference, float32 outputs off float64, or a half-precision
    loss off float32. A float32 *loss* off float64 is reported (``f64_loss_err``), not failed: some
    losses decide in a dtype-relative tolerance (BCIR's compensation treats a map as unlocalized
    below ``1000·eps`` of the dtype), so float32 and float64 differ by design on near-uniform maps.
    """
    cpu = torch.device("cpu")
    ref_loss, ref_out = _loss_and_outputs(recipe, geometry, model, batch, cpu, torch.float64)
    cpu_loss, cpu_out = _loss_and_outputs(recipe, geometry, model, batch, cpu, torch.float32)
    result = {"f64_loss_err": _rel(cpu_loss, ref_loss), "f64_out_err": _out_err(cpu_out, ref_out),
              "device_loss_err": 0.0, "device_out_err": 0.0, "half": half, "half_err": None}
    dev_loss = cpu_loss
    if device.type != "cpu":
        tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        try:
            dev_loss, dev_out = _loss_and_outputs(recipe, geometry, model, batch, device, torch.float32)
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
        result["device_loss_err"] = _rel(dev_loss, cpu_loss)
        result["device_out_err"] = _out_err(dev_out, cpu_out)
    if half is not None:
        loss_h, _ = _loss_and_outputs(recipe, geometry, model, batch, device, torch.float32, half)
        result["half_err"] = _rel(loss_h, dev_loss)
    result["ok"] = (result["device_loss_err"] <= LOSS_RTOL and result["device_out_err"] <= OUTPUT_RTOL
                    and result["f64_out_err"] <= OUTPUT_RTOL
                    and (result["half_err"] is None or result["half_err"] <= half_tolerance(result)))
    return result


def step_seconds(recipe, geometry, model, batch, device: torch.device, steps: int) -> float:
    """Median wall seconds of one float32 training step (forward, loss, backward, AdamW)."""
    from poselab.experiments import LOSSES
    model = copy.deepcopy(model).to(device).train()
    loss_fn = LOSSES[recipe.loss](geometry, **dict(recipe.loss_params))
    batch = _cast(batch, device, torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for i in range(steps + 1):  # the first step warms up (allocations, kernel selection)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        value = loss_fn(model(batch["image"]), batch)
        (value["loss"] if isinstance(value, dict) else value).backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


WARP_TOL = 0.5  # grey levels (0..255): crop warp on the device vs on the CPU


def crop_warp_difference(device: torch.device, preset, n: int = 8) -> float:
    """Largest difference, in grey levels, between one augmented batch of the crop cache warped on
    ``device`` (:meth:`poselab.data.crop_cache.CropCache.to`) and the same batch on the CPU."""
    from poselab.data import default_dataset
    from poselab.data.crop_cache import CropCache
    from poselab.data.dataset import IMAGENET_STD
    ann = default_dataset("val", n_images=preset.n_val)
    kw = dict(input_size=preset.input_size, batch_size=n, seed=0, flip_prob=0.5,
              rotation=preset.rotation, scale_jitter=preset.scale_jitter)
    cpu = CropCache(ann, **kw).batch(range(n), epoch=1)["image"]
    dev = CropCache(ann, **kw).to(device).batch(range(n), epoch=1)["image"].to("cpu")
    std255 = torch.as_tensor(IMAGENET_STD * 255.0, dtype=torch.float32).view(1, 3, 1, 1)
    return float(((dev - cpu).abs() * std255).max())


def train_and_evaluate(name: str, preset, device: torch.device) -> dict:
    from poselab.experiments import run_recipe
    res = run_recipe(name, preset=preset, device=device, cache=False)
    metrics = {set_name: m.get("AP", float("nan")) for set_name, m in res.metrics.items()}
    return {"ap": metrics, "seconds_per_step": res.seconds_per_step,
            "final_loss": res.history["losses"][-1] if res.history.get("losses") else float("nan")}


def check_recipe(name: str, device: torch.device, preset, timing_steps: int, batch_size: int,
                 half: str | None, cpu_timing: bool) -> dict:
    from poselab.experiments import MODELS, RECIPES, Geometry
    recipe = RECIPES[name]
    geometry = Geometry(preset.input_size, preset.heatmap_size)
    model = MODELS[recipe.model](recipe, geometry, 0)
    batch = make_batch(recipe, geometry, batch_size)
    row = {"recipe": name, "error": None}
    try:
        row.update(agreement(recipe, geometry, model, batch, device, half))
        row["device_step"] = step_seconds(recipe, geometry, model, batch, device, timing_steps)
        row["cpu_step"] = (step_seconds(recipe, geometry, model, batch, torch.device("cpu"),
                                        timing_steps) if cpu_timing else row["device_step"])
        row.update(train_and_evaluate(name, preset, device))
    except Exception as exc:  # noqa: BLE001 - reported per recipe; the script exits 1
        row["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        row["ok"] = False
    row["batch_size"] = batch_size
    return row


def _fmt(x, spec=".1e") -> str:
    return "—" if x is None else format(x, spec)


def _recorded_full_steps() -> int:
    """Steps of a recorded ``full`` run (40 epochs of the generated train set), 5000 if none."""
    import json
    for record in sorted((HERE.parent / "results" / "replications").glob("*/*__full__seed*.json")):
        try:
            return int(json.loads(record.read_text())["steps"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return 5000


def replication_estimate(rows: list[dict], batch: int, quick: bool, seeds: int = 5) -> str:
    """An **estimate** of the deciding-scale replication (``poselab replicate CH --preset full``,
    chapters 01-06, ``seeds`` seeds) on this device, one run at a time: each recipe's measured
    float32 step (scaled from ``batch`` to the full preset's batch) × the full preset's steps,
    summed over every chapter's replication recipes. A recipe not measured here is named."""
    from poselab.experiments import PRESETS
    from poselab.experiments.replicate import chapter_recipes
    full = PRESETS["full"]
    steps = full.max_steps or _recorded_full_steps()
    step = {r["recipe"]: r["device_step"] * full.batch_size / batch for r in rows if r.get("device_step")}
    runs, seconds, missing = 0, 0.0, set()
    for chapter in ("01", "02", "03", "04", "05", "06"):
        for recipe in chapter_recipes(chapter, "full"):
            if recipe.name not in step:
                missing.add(recipe.name)
                continue
            runs += seeds
            seconds += seeds * step[recipe.name] * steps
    where = "at the quick check's 64×48 input (full trains 128×96: several times more)" if quick else "at 128×96"
    text = (f"replication estimate (not a run): {runs} runs of `full` ({steps} steps "
            f"of {full.batch_size}), one at a time on this device, ≈ {seconds / 3600:.1f} h from the "
            f"measured float32 steps {where}; with --jobs N side by side, up to N× less while the "
            "device is not saturated")
    if missing:
        text += f"; not measured here: {', '.join(sorted(missing))}"
    return text


def half_tolerance(r: dict) -> float:
    """The half-precision loss may be off float32 by :data:`HALF_LOSS_RTOL`, or by as much as
    float32 is off float64 on the same batch where that is more: a loss ill-conditioned by
    design (BCIR's compensation on near-uniform maps, β = 20: float32 24 % off float64 at
    initialisation) is not made worse by autocast."""
    return max(HALF_LOSS_RTOL, r.get("f64_loss_err") or 0.0)


def _misses(r: dict) -> list[str]:
    """Which agreement checks a row failed."""
    out = []
    if r.get("device_loss_err", 0.0) > LOSS_RTOL or r.get("device_out_err", 0.0) > OUTPUT_RTOL:
        out.append("device vs CPU")
    if r.get("f64_out_err", 0.0) > OUTPUT_RTOL:
        out.append("float32 outputs vs float64")
    if r.get("half_err") is not None and r["half_err"] > half_tolerance(r):
        out.append(f"{r['half']} loss vs float32")
    return out


def format_rows(rows: list[dict], device: torch.device, half: str | None) -> list[str]:
    sets = sorted({s for r in rows for s in r.get("ap", {})})
    head = (["recipe", "status", f"{device.type}/cpu loss err", f"{device.type}/cpu output err",
             "f32/f64 output err", "f32/f64 loss err", f"{half or 'half'}/f32 loss err",
             f"device ({device.type}) s/step", "device samples/s", "cpu s/step", "cpu samples/s",
             "train s/step"] + [f"AP {s}" for s in sets])
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        status = "ok" if r.get("ok") else ("ERROR " + r["error"] if r["error"] else
                                           "MISS: " + ", ".join(_misses(r)))
        f64_loss = r.get("f64_loss_err")
        cells = [r["recipe"], status, _fmt(r.get("device_loss_err")), _fmt(r.get("device_out_err")),
                 _fmt(r.get("f64_out_err")),
                 _fmt(f64_loss) + (" (!)" if f64_loss is not None and f64_loss > LOSS_RTOL else ""),
                 _fmt(r.get("half_err"))]
        for key in ("device_step", "cpu_step"):
            t = r.get(key)
            cells += [_fmt(t, ".4f"), _fmt(None if t is None else r["batch_size"] / t, ".0f")]
        cells.append(_fmt(r.get("seconds_per_step"), ".4f"))
        cells += [_fmt(r.get("ap", {}).get(s), ".3f") for s in sets]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def header(device: torch.device, cap, half: str | None, args, preset) -> list[str]:
    return [
        f"# GPU check (`python benchmarks/gpu_check.py{' --quick' if args.quick else ''} "
        f"--device {args.device}`)",
        "",
        f"- date: {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- device: {device} — {cap.name}; torch {torch.__version__}, CUDA build "
        f"{torch.version.cuda or 'none'}; {platform.platform()}",
        f"- agreement: one batch of {args.batch}, {preset.input_size[0]}×{preset.input_size[1]} input, "
        f"{preset.heatmap_size[0]}×{preset.heatmap_size[1]} maps: {device.type} float32 vs CPU float32 "
        f"(≤ {LOSS_RTOL:g} loss and outputs), CPU float32 vs float64 (outputs ≤ {OUTPUT_RTOL:g}; "
        f"loss shown, (!) above {LOSS_RTOL:g}), "
        + (f"{half} autocast vs float32 (loss ≤ {HALF_LOSS_RTOL:g}, or ≤ the float32/float64 loss "
           "error where that is larger)" if half else
           "no half precision on this device"),
        f"- step time: median wall seconds of {args.timing_steps} float32 steps of that batch"
        + ("" if device.type != "cpu" else " (device = CPU: both columns are the CPU)"),
        f"- training: {preset.max_steps} steps of batch {preset.batch_size} on generated data, "
        "then AP (a smoke test of the path, not a trained model)",
        "",
    ]


def main(argv=None) -> int:
    from poselab.experiments import PRESETS, RECIPES
    from poselab.train.device import autocast_plan, device_capability, resolve_device
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    ap.add_argument("--quick", action="store_true",
                    help="CI size: fast preset geometry (64×48 input), 4 training steps, 3 timed steps")
    ap.add_argument("--only", nargs="+", default=None, metavar="NAME", help="recipes (default: all)")
    ap.add_argument("--steps", type=int, default=None, help="training steps per recipe (300; quick 4)")
    ap.add_argument("--timing-steps", type=int, default=None, help="timed steps (20; quick 3)")
    ap.add_argument("--batch", type=int, default=None, help="batch size (32; quick 8)")
    ap.add_argument("--out", default=None, help="markdown file (default: benchmarks/gpu.md on CUDA only)")
    args = ap.parse_args(argv)
    args.steps = args.steps or (4 if args.quick else 300)
    args.timing_steps = args.timing_steps or (3 if args.quick else 20)
    args.batch = args.batch or (8 if args.quick else 32)
    for name in ("steps", "timing_steps", "batch"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    names = args.only or sorted(RECIPES)
    unknown = sorted(set(names) - set(RECIPES))
    if unknown:
        ap.error(f"unknown recipes {unknown}; registered: {sorted(RECIPES)}")
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        ap.error(str(exc))
    cap = device_capability(device)
    half = autocast_plan(cap, "auto").dtype
    if args.quick:
        preset = PRESETS["fast"].replace(name="gpu_check_quick", max_steps=args.steps,
                                         batch_size=args.batch)
    else:
        preset = PRESETS["default"].replace(name="gpu_check", max_steps=args.steps, batch_size=args.batch,
                                            val_every=None, crop_cache=True)
    saved = os.environ.get("POSELAB_CACHE_DIR")
    cache = tempfile.mkdtemp(prefix="poselab-gpu-check-")
    os.environ["POSELAB_CACHE_DIR"] = cache  # a fresh run cache: no stale hits, nothing left behind
    rows = []
    print(f"gpu_check: {len(names)} recipes on {device} ({cap.name})", file=sys.stderr, flush=True)
    try:
        for name in names:
            row = check_recipe(name, device, preset, args.timing_steps, args.batch, half,
                               cpu_timing=device.type != "cpu")
            rows.append(row)
            print(format_rows([row], device, half)[-1], flush=True)  # one line per recipe as it ends
    finally:
        if saved is None:
            os.environ.pop("POSELAB_CACHE_DIR", None)
        else:
            os.environ["POSELAB_CACHE_DIR"] = saved
        shutil.rmtree(cache, ignore_errors=True)
    lines = header(device, cap, half, args, preset) + format_rows(rows, device, half)
    try:
        warp = crop_warp_difference(device, preset)
        warp_line = (f"crop warp on {device} vs the CPU (one augmented batch of 8): largest difference "
                     f"{warp:.2g} grey levels ({'ok' if warp <= WARP_TOL else 'MISS'}, tolerance {WARP_TOL:g})")
    except Exception as exc:  # noqa: BLE001 - reported; the script exits 1
        warp, warp_line = float("inf"), f"crop warp on {device}: ERROR {type(exc).__name__}: {exc}"
    print(warp_line)
    lines += ["", warp_line]
    estimate = replication_estimate(rows, args.batch, quick=args.quick)
    print(estimate)
    lines += ["", estimate]
    sensitive = [r["recipe"] for r in rows if (r.get("f64_loss_err") or 0.0) > LOSS_RTOL]
    if sensitive:
        lines += ["", f"(!) float32 loss off float64 by more than {LOSS_RTOL:g} on this batch: "
                      f"{', '.join(sensitive)} (reported, not failed; see agreement() in the script)"]
        print(lines[-1])
    text = "\n".join(lines) + "\n"
    out = args.out or (str(HERE / "gpu.md") if device.type == "cuda" else None)
    if out:
        Path(out).write_text(text, encoding="utf-8")
        print(f"gpu_check: wrote {out}", file=sys.stderr)
    failed = [r["recipe"] for r in rows if not r.get("ok")]
    if not warp <= WARP_TOL:
        failed.append("crop warp")
    if failed:
        print(f"gpu_check: FAILED {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))  # run from a checkout without install
    sys.exit(main())
