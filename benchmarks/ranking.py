"""RSPose losses: vectorised Spatial RS + Instance-Sort against the per-positive reference loop,
and a training step with RS + IS against the MSE step.

1. Forward + backward of ``rspose_loss`` (Spatial Rank δ 0.4 + 2·Spatial Sort δ 1.5 +
   0.25·Instance-Sort δ 3.0) at B = 16, K = 17, 64×48 heatmaps, MSRA Gaussian σ = 2 (169
   positives per map), against the RS reference's loop (one problem and one positive at a time,
   :func:`poselab.chapters.rspose.analysis.reference_rank_sort_loop`; Instance-Sort through the same loop on
   the heatmap maxima). Three score maps: random normal (an untrained head), noisy labels (the
   Gaussian target + σ 0.3 normal noise: every 13×13 window's positives mixed with the
   negatives, the case an outside check measured) and a displaced noisy blob (a trained head).
   Same result checked in float64 (≤ 1e-6 on losses and updates). Target (issue 32, goal 4):
   vectorised float32 ≥ 50× the loop on every map.
2. One training step (forward, loss, backward, AdamW step) of the tiny heatmap model at 64×48
   input (16×12 maps: the Gaussian window covers most pixels, the hardest case for RS + IS relative
   to MSE) and at 256×192 input (64×48 maps), batch 16, with MSE and with RS + IS, interleaved.

Both parts at 1 and 2 torch threads (``--threads``); float32 and float64 for the losses.

CPU time of this process (``time.process_time``), minimum / median over repeats. Run it alone:
``flock /tmp/poselab-timing.lock .venv/bin/python benchmarks/ranking.py``.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from poselab.chapters.rspose.analysis import reference_rank_sort_loop
from poselab.codecs import encode_gaussian
from poselab.losses import heatmap_mse_loss, rspose_loss
from poselab.losses.ranking import instance_keypoint_similarity

B, K, H, W, SIGMA = 16, 17, 64, 48, 2.0
AREA = 600.0  # heatmap px²


def problem(kind: str, dtype=torch.float64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    kp = torch.rand(B, K, 2, generator=g, dtype=torch.float64) * torch.tensor([W - 1.0, H - 1.0])
    labels, vis = encode_gaussian(kp, None, (H, W), SIGMA, dtype=torch.float64)
    if kind == "random":
        scores = torch.randn(B, K, H, W, generator=g, dtype=torch.float64)
    elif kind == "noisy":
        scores = labels + 0.3 * torch.randn(B, K, H, W, generator=g, dtype=torch.float64)
    else:
        shift = torch.randint(-2, 3, (B, K, 2), generator=g).double()
        blob, _ = encode_gaussian(kp + shift, None, (H, W), SIGMA, unbiased=True, dtype=torch.float64)
        scores = 3 * blob + 0.2 * torch.randn(B, K, H, W, generator=g, dtype=torch.float64)
    return scores.to(dtype), labels.to(dtype), vis.to(dtype), kp.to(dtype)


def vectorised(scores, labels, vis, kp):
    x = scores.clone().requires_grad_(True)
    loss = rspose_loss(x, labels, vis, kp, torch.full((B,), AREA, dtype=scores.dtype))
    loss.backward()
    return loss.detach(), x.grad


def loop(scores, labels, vis, kp):
    """The reference: spatial rank + sort by the per-positive loop, Instance-Sort by the same loop
    on the heatmap maxima (every visible person a positive, labels = KS)."""
    spatial = reference_rank_sort_loop(scores, labels, vis, 0.4, 1.5)
    conf, ks = instance_keypoint_similarity(scores, kp, torch.full((B,), AREA, dtype=scores.dtype))
    inst = reference_rank_sort_loop(conf.t()[None], ks.t()[None], vis.t()[None], 3.0, 3.0,
                                    positive_threshold=-1.0)
    # the per-keypoint-type problems are averaged over K types, not over the one "batch" row
    loss = spatial["rank"] + 2.0 * spatial["sort"] + 0.25 * inst["sort"]
    grad = spatial["grad_rank"] + 2.0 * spatial["grad_sort"]
    idx = scores.reshape(B, K, -1).argmax(-1)
    g_conf = 0.25 * inst["grad_sort"][0].t()
    grad.reshape(B, K, -1).scatter_add_(2, idx[..., None], g_conf[..., None])
    return loss, grad


def timed(fn, repeats):
    times = []
    out = None
    for _ in range(repeats):
        t = time.process_time()
        out = fn()
        times.append(time.process_time() - t)
    return np.min(times), np.median(times), out


def loss_benchmark(repeats: int, loop_repeats: int, kinds=("random", "noisy", "blob")):
    print(f"1. rspose_loss fwd+bwd, B={B} K={K} {H}x{W} sigma={SIGMA}, torch threads "
          f"{torch.get_num_threads()} (CPU time: loop minimum, vectorised minimum; target >= 50x)")
    for kind in kinds:
        s64 = problem(kind)
        ref_loss, ref_grad = loop(*s64)
        got_loss, got_grad = vectorised(*s64)
        err = max(abs(float(got_loss) - ref_loss), float((got_grad - ref_grad).abs().max()))
        t_loop, _, _ = timed(lambda: loop(*s64), loop_repeats)
        s32 = problem(kind, torch.float32)
        t32, m32, _ = timed(lambda: vectorised(*s32), repeats)
        t64, m64, _ = timed(lambda: vectorised(*s64), repeats)
        print(f"  {kind:6s} scores: loop {t_loop:.2f} s | vectorised float32 {t32 * 1e3:.1f} ms "
              f"(median {m32 * 1e3:.1f}) = {t_loop / t32:.0f}x | float64 {t64 * 1e3:.1f} ms = "
              f"{t_loop / t64:.0f}x | max |difference| float64 {err:.1e} | "
              f"{'met' if t_loop / t32 >= 50 else 'NOT met'}")


def step_benchmark(repeats: int, size=(256, 192)):
    from poselab.models import build_model
    from poselab.codecs import input_to_heatmap
    hs = (size[0] // 4, size[1] // 4)
    print(f"2. training step, tiny heatmap model, input {size[0]}x{size[1]} ({hs[0]}x{hs[1]} maps), "
          f"batch {B}, torch threads {torch.get_num_threads()}")
    model = build_model("heatmap", size, "tiny", num_keypoints=K, seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    images = torch.randn(B, 3, *size, generator=g)
    kp_in = torch.rand(B, K, 2, generator=g) * torch.tensor([size[1] - 1.0, size[0] - 1.0])
    kp = input_to_heatmap(kp_in, size, hs)
    labels, vis = encode_gaussian(kp, None, hs, SIGMA)
    areas = torch.full((B,), AREA * hs[0] * hs[1] / (H * W))
    losses = {"mse": lambda out: heatmap_mse_loss(out, labels, vis),
              "rs+is": lambda out: rspose_loss(out, labels, vis, kp, areas)}

    def step(name):
        opt.zero_grad()
        losses[name](model(images)).backward()
        opt.step()

    for name in losses:  # warm-up
        step(name)
    times = {name: [] for name in losses}
    for _ in range(repeats):
        for name in losses:
            t = time.process_time()
            step(name)
            times[name].append(time.process_time() - t)
    med = {k: float(np.median(v)) for k, v in times.items()}
    mins = {k: float(np.min(v)) for k, v in times.items()}
    print(f"  MSE step {med['mse']:.3f} s, RS+IS step {med['rs+is']:.3f} s (medians of {repeats}); "
          f"ratio {med['rs+is'] / med['mse']:.3f} (minima: {mins['rs+is'] / mins['mse']:.3f})")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--loop-repeats", type=int, default=2)
    ap.add_argument("--step-repeats", type=int, default=5)
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--step-sizes", nargs="*", default=["64x48", "256x192"],
                    help="input sizes of the tiny-model step comparison (none: skip it; "
                         "benchmarks/train_step.py measures every recipe at the default preset)")
    ap.add_argument("--kinds", nargs="+", default=["random", "noisy", "blob"],
                    choices=["random", "noisy", "blob"])
    args = ap.parse_args(argv)
    for nthreads in args.threads:
        torch.set_num_threads(nthreads)
        loss_benchmark(args.repeats, args.loop_repeats, args.kinds)
    for size in args.step_sizes:
        for nthreads in args.threads:
            torch.set_num_threads(nthreads)
            step_benchmark(args.step_repeats, tuple(int(v) for v in size.split("x")))


if __name__ == "__main__":
    main()
