"""Training-step time of every registered recipe as a ratio to the ``mse`` recipe's step.

Each recipe's model, codec and loss are built through the registries (``MODELS``, ``CODECS``,
``LOSSES`` of ``poselab.experiments``, with ``Geometry``: heatmaps at stride 4, so 64×48 input →
16×12 maps, 256×192 → 64×48 as in the papers) on one fixed synthetic batch (seed 0, keypoints
uniform in the image, all visible), tiny backbone, batch 32. One step = forward + loss + backward
+ AdamW update, float32. All recipes run interleaved round-robin in one process (load hits them
alike); CPU time (``process_time``, summed over threads) per step, median over ``--repeats``
after one warm-up step at each thread count. Targets (issue 17): ``spatial_rs_is`` ≤ 1.25×, ``sar`` ≤ 1.2×, every other
recipe ≤ 1.5× the ``mse`` step → PASS / MISS. Exit code 0 even with misses (they are findings).

    python benchmarks/train_step.py [--quick] [--sizes 64x48 256x192] [--threads 1 2] [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

TARGETS = {"spatial_rs_is": 1.25, "sar": 1.2}
DEFAULT_TARGET = 1.5


def build(name, geom, images, kp, vis):
    from poselab.experiments import CODECS, LOSSES, MODELS, RECIPES
    r = RECIPES[name]
    model = MODELS[r.model](r, geom, 0)
    codec = CODECS[r.codec](geom, **dict(r.codec_params))
    B = images.shape[0]
    H, W = images.shape[-2:]
    # each person's COCO area and crop window (Instance-Sort needs them): a box filling the crop
    # at the usual 1.25 padding, so the person's area is the crop's / 1.25²
    window = torch.tensor([[float(W), float(H)]]).repeat(B, 1)
    batch = {"image": images, "keypoints": kp, "visible": vis, "step": 0, "epoch": 0,
             "area": torch.full((B,), float(H * W) / 1.25 ** 2), "scale": window,
             **codec.encode(kp, vis)}
    loss_fn = LOSSES[r.loss](geom, **dict(r.loss_params))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        out = loss_fn(model(batch["image"]), batch)
        loss = out["loss"] if isinstance(out, dict) else out
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{name}: non-finite loss {loss.item()}")
        loss.backward()
        opt.step()
    return step


def main(argv=None) -> None:
    from poselab.experiments import RECIPES, Geometry
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="64x48, batch 8, 2 steps, 1 thread")
    ap.add_argument("--sizes", nargs="+", default=["64x48", "256x192"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--recipes", nargs="+", default=None, help="default: every registered recipe")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.threads, args.batch, args.repeats = ["64x48"], [1], 8, 2
    names = args.recipes or list(RECIPES)
    if "mse" not in names:
        names = ["mse", *names]
    rows, misses, errors = [], [], []
    for size in args.sizes:
        H, W = (int(v) for v in size.split("x"))
        geom = Geometry((H, W), (H // 4, W // 4))
        g = torch.Generator().manual_seed(0)
        images = torch.randn(args.batch, 3, H, W, generator=g)
        kp = torch.rand(args.batch, 17, 2, generator=g) * torch.tensor([W - 1.0, H - 1.0])
        vis = torch.ones(args.batch, 17)
        steps = {}
        for name in names:
            try:
                steps[name] = build(name, geom, images, kp, vis)
                steps[name]()  # warm-up
            except Exception as exc:  # reported, not hidden: a recipe that cannot step is a failure
                errors.append(f"{name} at {size}: {type(exc).__name__}: {exc}")
                steps.pop(name, None)
        for nthreads in args.threads:
            torch.set_num_threads(nthreads)
            for step in steps.values():  # warm-up at this thread count (thread pool, kernels)
                step()
            times = {n: [] for n in steps}
            walls = {n: [] for n in steps}
            for _ in range(args.repeats):
                for name, step in steps.items():
                    c0, w0 = time.process_time(), time.perf_counter()
                    step()
                    times[name].append(time.process_time() - c0)
                    walls[name].append(time.perf_counter() - w0)
            base = statistics.median(times["mse"])
            for name in steps:
                t = statistics.median(times[name])
                ratio = t / base
                target = TARGETS.get(name, DEFAULT_TARGET)
                verdict = "—" if name == "mse" else ("PASS" if ratio <= target else "MISS")
                if verdict == "MISS":
                    misses.append(f"{name} {size} {nthreads}t {ratio:.2f}×")
                rows.append(f"| {name} | {size} | {nthreads} | {1e3 * t:.1f} | "
                            f"{1e3 * statistics.median(walls[name]):.1f} | {ratio:.2f} | ≤ {target:g} | {verdict} |")
    print(f"Training step (fwd + loss + bwd + AdamW), tiny backbone, batch {args.batch}, float32, "
          f"heatmaps at stride 4; CPU-time median of {args.repeats} interleaved steps after 1 warm-up "
          "(machine shared and loaded: ratios of CPU time; CPU time sums over threads)")
    print()
    print("| recipe | input | threads | ms/step (CPU) | ms/step (wall) | ratio to mse (CPU) | target | verdict |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    print()
    print(f"misses: {', '.join(misses) if misses else 'none'}")
    if errors:
        print("errors:\n" + "\n".join(f"- {e}" for e in errors))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
