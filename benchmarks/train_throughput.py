"""Training throughput of each head (tiny backbone, 64×48 input, batch 32) on this machine.

Measures one full optimiser step (forward, loss, backward, AdamW) on fixed synthetic batches
(no data loading), the four heads interleaved round-robin in one process so machine load hits
them alike; reports the median step time, samples/s and the ratio of each head's step time to
the heatmap head's.

    python benchmarks/train_throughput.py [--threads 2] [--batch 32] [--steps 15] [--size 64 48]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from poselab.codecs import HeatmapCodec, IntegralCodec, SARCodec, SimCCCodec
from poselab.codecs.sar import sar_flatten_outputs
from poselab.losses import heatmap_mse_loss, integral_l1_loss, sar_loss, simcc_kl_loss
from poselab.models import build_model, count_parameters


def make_case(head, size, batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    H, W = size
    hm = (H // 4, W // 4)
    kp = torch.rand(batch, 17, 2, generator=g) * torch.tensor([W - 1.0, H - 1.0])
    vis = torch.ones(batch, 17)
    images = torch.randn(batch, 3, H, W, generator=g)
    model = build_model(head, size, seed=seed)
    if head == "heatmap":
        t = HeatmapCodec(size, hm, sigma=2.0).encode(kp, vis)
        loss = lambda o: heatmap_mse_loss(o, t["target"], t["weights"])  # noqa: E731
    elif head == "integral":
        t = IntegralCodec(size, hm, beta=10.0, compensate=False).encode(kp, vis)
        loss = lambda o: integral_l1_loss(o, t["target"], t["weights"], beta=10.0)  # noqa: E731
    elif head == "simcc":
        t = SimCCCodec(size, split_ratio=2.0, sigma=6.0).encode(kp, vis)
        loss = lambda o: simcc_kl_loss(o, (t["target_x"], t["target_y"]), t["weights"])  # noqa: E731
    else:
        t = SARCodec(size, hm).encode(kp, vis)
        loss = lambda o: sar_loss(*sar_flatten_outputs(o["selector"], o["offsets"]),  # noqa: E731
                                  t["target"], t["weights"], map_size=(hm[1], hm[0]))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step():
        out = model(images)
        value = loss(out)
        opt.zero_grad(set_to_none=True)
        value.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return model, step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--size", type=int, nargs=2, default=(64, 48))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    size = tuple(args.size)
    heads = ("heatmap", "integral", "simcc", "sar")
    cases = {h: make_case(h, size, args.batch) for h in heads}
    times = {h: [] for h in heads}
    for i in range(args.warmup + args.steps):
        for h in heads:
            t0 = time.perf_counter()
            cases[h][1]()
            if i >= args.warmup:
                times[h].append(time.perf_counter() - t0)
    base = statistics.median(times["heatmap"])
    print(f"train throughput, tiny backbone, input {size[0]}x{size[1]}, batch {args.batch}, "
          f"{args.threads} thread(s), median of {args.steps} steps")
    print(f"{'head':10s} {'params':>9s} {'step ms':>9s} {'samples/s':>10s} {'vs heatmap':>11s}")
    for h in heads:
        med = statistics.median(times[h])
        print(f"{h:10s} {count_parameters(cases[h][0]):9d} {med * 1e3:9.1f} "
              f"{args.batch / med:10.1f} {med / base:10.2f}x")


if __name__ == "__main__":
    main()
