"""Training-step time of the SAR recipe against the heatmap (MSE) recipe, side by side.

Same tiny backbone, batch, input size; each step = forward + loss + backward + AdamW update,
with each recipe's own loss (``sar``: SAR Eq. 7-9; ``mse``: heatmap MSE) on its codec's targets.
The steps alternate between the two models; CPU time (``time.process_time``) per step, median
over ``--repeats`` steps after two warm-up steps. Prints the ratio SAR / heatmap (issue budget:
at most 1.2). Run under ``flock /tmp/poselab-timing.lock`` on a shared machine.

    .venv/bin/python benchmarks/sar_step.py --input 64 48 --batch 32 --repeats 20
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from poselab.experiments import CODECS, LOSSES, MODELS, RECIPES, Geometry


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", nargs=2, type=int, default=(64, 48))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--recipes", nargs="+", default=("mse", "sar", "sar_simcc", "sar_regression"))
    args = ap.parse_args()
    H, W = args.input
    geom = Geometry((H, W), (H // 4, W // 4))
    g = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch, 3, H, W, generator=g)
    kp = torch.rand(args.batch, 17, 2, generator=g) * torch.tensor([W - 1.0, H - 1.0])
    vis = torch.ones(args.batch, 17)
    setups = {}
    for name in args.recipes:
        r = RECIPES[name]
        model = MODELS[r.model](r, geom, 0)
        codec = CODECS[r.codec](geom, **dict(r.codec_params))
        batch = {"image": images, "keypoints": kp, "visible": vis, **codec.encode(kp, vis)}
        loss_fn = LOSSES[r.loss](geom, **dict(r.loss_params))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        setups[name] = (model, loss_fn, batch, opt)
    times = {name: [] for name in setups}
    for i in range(args.repeats + 2):
        for name, (model, loss_fn, batch, opt) in setups.items():
            t0 = time.process_time()
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(batch["image"]), batch)
            loss.backward()
            opt.step()
            if i >= 2:
                times[name].append(time.process_time() - t0)
    base = statistics.median(times["mse"])
    print(f"input {H}x{W}, batch {args.batch}, torch threads {torch.get_num_threads()}, "
          f"{args.repeats} steps each (CPU time, median)")
    for name, t in times.items():
        print(f"  {name:16s} {1000 * statistics.median(t):8.1f} ms/step   ratio to mse "
              f"{statistics.median(t) / base:.3f}   (min ratio {min(t) / min(times['mse']):.3f})")


if __name__ == "__main__":
    main()
