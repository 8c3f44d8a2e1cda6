"""Training-step time of every registered recipe as a ratio to the ``mse`` recipe's step, at a
preset (default: the ``default`` preset a student's run uses).

Each recipe's model, codec and loss are built through the registries (``MODELS``, ``CODECS``,
``LOSSES`` of ``poselab.experiments``) with the preset's geometry (``default``: 128×96 input, the
stride-2 head, 64×48 heatmaps — the papers' size), batch size, memory layout (channels-last) and
forward precision (the preset's ``autocast`` as it resolves on this machine: bfloat16 on a CPU
with AVX512-BF16, else float32; ``--precision float32`` or ``both`` adds the float32 forward), on
one fixed synthetic batch (seed 0, keypoints uniform in the crop, all visible, each person's area
and crop window as the data pipeline gives them). One step = forward + loss + backward + gradient
clipping (the recipe's ``grad_clip``, as :func:`poselab.train.fit`) + AdamW update.

Measured **side by side in one process**: every repetition runs, for each recipe in turn, one
``mse`` step and then one step of the recipe, and keeps the ratio of their CPU times
(``process_time``, summed over threads); the ratio reported is the median over ``--repeats``
pairs (after one warm-up step each), with the spread of the pair ratios (25th–75th percentile).
Pairs adjacent in time see the same machine load, so the ratio is meaningful on a shared machine
where absolute times are not. Target (issue 32, goal 3): every recipe ≤ 1.3× ``mse`` → PASS /
MISS. Exit code 0 even with misses (they are findings); 1 if a recipe cannot step.

    python benchmarks/train_step.py [--quick] [--preset default] [--precision preset|float32|both]
                                    [--threads 1] [--repeats 9] [--recipes NAME ...]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

TARGET = 1.3


def make_batch(geometry, batch_size: int, channels_last: bool, seed: int = 0) -> dict:
    """One fixed synthetic batch: images, keypoints uniform in the crop (input px), all visible,
    COCO areas of a box filling the crop at the usual 1.25 padding, and the crop windows."""
    H, W = geometry.input_size
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch_size, 3, H, W, generator=g)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    kp = torch.rand(batch_size, geometry.num_keypoints, 2, generator=g) * torch.tensor([W - 1.0, H - 1.0])
    return {"image": images, "keypoints": kp, "visible": torch.ones(batch_size, geometry.num_keypoints),
            "step": 0, "epoch": 0, "area": torch.full((batch_size,), float(H * W) / 1.25 ** 2),
            "scale": torch.tensor([[float(W), float(H)]]).repeat(batch_size, 1)}


def build_step(name: str, preset, geometry, batch: dict, autocast):
    """``step()`` of recipe ``name``: the runner's model preparation (precision, layout), the
    recipe's codec targets on ``batch``, its loss, gradient clipping and AdamW."""
    from poselab.experiments import CODECS, LOSSES, MODELS, RECIPES
    from poselab.experiments.runner import _prepared
    r = RECIPES[name]
    model = _prepared(MODELS[r.model](r, geometry, 0), autocast, preset.channels_last)
    codec = CODECS[r.codec](geometry, **dict(r.codec_params))
    batch = {**batch, **codec.encode(batch["keypoints"], batch["visible"])}
    loss_fn = LOSSES[r.loss](geometry, **dict(r.loss_params))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    clip = r.grad_clip

    def step():
        out = loss_fn(model(batch["image"]), batch)
        loss = out["loss"] if isinstance(out, dict) else out
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{name}: non-finite loss {loss.item()}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in model.parameters() if p.grad is not None]
        if clip is not None and params:
            norm = torch.nn.utils.get_total_norm([p.grad for p in params])
            torch.nn.utils.clip_grads_with_norm_(params, float(clip), norm)
        opt.step()
    return step


def _cpu(fn) -> float:
    c0 = time.process_time()
    fn()
    return time.process_time() - c0


def paired_ratios(steps: dict, repeats: int, base: str = "mse") -> dict[str, dict]:
    """Per recipe: ``base`` step then recipe step, ``repeats`` times round-robin over the recipes;
    median CPU seconds of each and the median, quartiles and extremes of the pair ratios."""
    for fn in steps.values():  # warm-up
        fn()
    pairs = {n: [] for n in steps if n != base}
    base_t = []
    for _ in range(repeats):
        for name, times in pairs.items():
            tb = _cpu(steps[base])
            tr = _cpu(steps[name])
            base_t.append(tb)
            times.append((tb, tr))
    out = {base: {"ms": 1e3 * statistics.median(base_t), "ratio": 1.0, "q1": 1.0, "q3": 1.0,
                  "lo": 1.0, "hi": 1.0}}
    for name, ts in pairs.items():
        ratios = sorted(tr / tb for tb, tr in ts)
        q = statistics.quantiles(ratios, n=4) if len(ratios) >= 2 else [ratios[0]] * 3
        out[name] = {"ms": 1e3 * statistics.median(tr for _, tr in ts),
                     "ratio": statistics.median(ratios), "q1": q[0], "q3": q[2],
                     "lo": ratios[0], "hi": ratios[-1]}
    return out


def main(argv=None) -> None:
    from poselab.experiments import RECIPES, Geometry, get_preset
    from poselab.experiments.presets import resolve_autocast
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: batch 4, 2 pairs per recipe, the preset's precision")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--precision", choices=["preset", "float32", "both"], default="both")
    ap.add_argument("--threads", nargs="+", type=int, default=[1])
    ap.add_argument("--batch", type=int, default=None, help="default: the preset's batch size")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--recipes", nargs="+", default=None, help="default: every registered recipe")
    args = ap.parse_args(argv)
    if args.quick:
        args.repeats, args.precision, args.batch = 2, "preset", args.batch or 4
    preset = get_preset(args.preset)
    geometry = Geometry(preset.input_size, preset.heatmap_size)
    batch_size = args.batch or preset.batch_size
    names = args.recipes or list(RECIPES)
    names = ["mse", *[n for n in names if n != "mse"]]
    resolved = resolve_autocast(preset.autocast, torch.device("cpu"))
    precisions = {"preset": [resolved], "float32": [None], "both": [resolved, None]}[args.precision]
    precisions = list(dict.fromkeys(precisions))
    batch = make_batch(geometry, batch_size, preset.channels_last)
    rows, misses, errors = [], [], []
    for autocast in precisions:
        steps = {}
        for name in names:
            try:
                steps[name] = build_step(name, preset, geometry, batch, autocast)
            except Exception as exc:  # reported, not hidden: a recipe that cannot step is a failure
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
        for nthreads in args.threads:
            torch.set_num_threads(nthreads)
            try:
                res = paired_ratios(steps, args.repeats)
            except Exception as exc:
                errors.append(f"{autocast or 'float32'} {nthreads}t: {type(exc).__name__}: {exc}")
                continue
            for name, r in res.items():
                verdict = "—" if name == "mse" else ("PASS" if r["ratio"] <= TARGET else "MISS")
                if verdict == "MISS":
                    misses.append(f"{name} ({autocast or 'float32'}, {nthreads}t) {r['ratio']:.2f}×")
                spread = "—" if name == "mse" else f"{r['q1']:.2f}–{r['q3']:.2f} ({r['lo']:.2f}–{r['hi']:.2f})"
                rows.append(f"| {name} | {autocast or 'float32'} | {nthreads} | {r['ms']:.1f} | "
                            f"{r['ratio']:.2f} | {spread} | ≤ {TARGET:g} | {verdict} |")
    H, W = preset.input_size
    h, w = preset.heatmap_size
    print(f"Training step (forward + loss + backward + clipping + AdamW) at the `{preset.name}` preset: "
          f"input {H}x{W}, heatmaps {h}x{w}, batch {batch_size}, "
          f"{'channels-last' if preset.channels_last else 'contiguous'}, forward precision "
          f"{' and '.join(a or 'float32' for a in precisions)} (the preset's autocast resolves to "
          f"{resolved or 'float32'} here); each recipe step paired with an mse step just before it, "
          f"median of {args.repeats} pair ratios of CPU time after one warm-up "
          f"(shared machine: ratios, not absolute times)")
    print()
    print("| recipe | forward | threads | ms/step (CPU, median) | ratio to mse | pair ratios: quartiles (min–max) | target | verdict |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    print()
    print(f"misses: {', '.join(misses) if misses else 'none'}")
    if errors:
        print("errors:\n" + "\n".join(f"- {e}" for e in errors))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
