"""Data speed: synthetic generation (persons/s) and loading (crops/s) vs what training consumes.

1. ``poselab.data.synth.generate`` into a temp dir (``--images`` images, seed 0, one worker):
   persons/s of CPU time.
2. Loading training batches (64×48 crops, batch 32, augmentation on, heatmap targets of the
   ``mse`` recipe's codec) from that folder: :class:`poselab.data.crop_cache.CropCache` (batched
   warp of cached crops; its one-off build timed apart) vs :class:`TopDownDataset` (images
   decoded once, ``cache_images``) + ``default_collate`` + the codec's batched encode.
3. What the model consumes: samples/s of one ``mse`` training step (registries, tiny backbone,
   batch 32, 64×48, fwd + bwd + AdamW).
The loader is the bottleneck when it delivers fewer crops/s than the step consumes; the table
also gives the share of a serial (single-process) step spent loading. CPU-time medians after one
warm-up, the candidates interleaved; 1 and 2 torch threads (machine shared: CPU time, not wall).

    python benchmarks/data.py [--quick] [--images 40] [--repeats 5]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import default_collate

from _common import interleaved


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="12 images, 2 repeats, 1 thread")
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args(argv)
    threads = [1] if args.quick else [1, 2]
    n_images, repeats = (12, 2) if args.quick else (args.images, args.repeats)
    from poselab.data.crop_cache import CropCache
    from poselab.data.dataset import TopDownDataset
    from poselab.data.synth import generate
    from poselab.experiments import CODECS, LOSSES, MODELS, RECIPES, Geometry

    torch.set_num_threads(1)
    H, W = 64, 48
    geom = Geometry((H, W), (H // 4, W // 4))
    recipe = RECIPES["mse"]
    codec = CODECS[recipe.codec](geom, **dict(recipe.codec_params))
    with tempfile.TemporaryDirectory() as tmp:
        c0, w0 = time.process_time(), time.perf_counter()
        ann = generate(tmp, n_images, 0, split="train")
        gen_cpu, gen_wall = time.process_time() - c0, time.perf_counter() - w0
        n_persons = len(json.loads(Path(ann).read_text())["annotations"])
        c0 = time.process_time()
        cache = CropCache(ann, input_size=(H, W), target_fn=codec.encode, batch_size=args.batch)
        cache_build = time.process_time() - c0
        ds = TopDownDataset(ann, input_size=(H, W), train=True, flip_prob=0.0, cache_images=True)
        n = len(ds)
        g = torch.Generator().manual_seed(0)
        idx = torch.randint(0, n, (args.batch,), generator=g).tolist()

        def topdown():
            batch = default_collate([ds[i] for i in idx])
            batch.update(codec.encode(batch["keypoints"], batch["visible"]))
            return batch

        def cropcache():
            return cache.batch(idx, epoch=1)

        model = MODELS[recipe.model](recipe, geom, 0)
        loss_fn = LOSSES[recipe.loss](geom, **dict(recipe.loss_params))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        fixed = {**cropcache(), "step": 0, "epoch": 0}

        def step():
            opt.zero_grad(set_to_none=True)
            out = loss_fn(model(fixed["image"]), fixed)
            (out["loss"] if isinstance(out, dict) else out).backward()
            opt.step()

        print(f"generation: {n_images} images, {n_persons} persons in {gen_cpu:.2f} s CPU "
              f"({gen_wall:.2f} s wall) → {n_persons / gen_cpu:.1f} persons/s (CPU), one worker; "
              f"CropCache build (once): {cache_build:.2f} s CPU for {n} persons")
        print()
        print("| threads | TopDownDataset crops/s | CropCache crops/s | CropCache / TopDown | mse step samples/s | "
              "loading share of a serial step (CropCache / TopDown) | loader the bottleneck? |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for nthreads in threads:
            torch.set_num_threads(nthreads)
            t = interleaved({"topdown": topdown, "cropcache": cropcache, "step": step}, repeats)
            rate = {k: args.batch / v["cpu"] for k, v in t.items()}
            share_cc = t["cropcache"]["cpu"] / (t["cropcache"]["cpu"] + t["step"]["cpu"])
            share_td = t["topdown"]["cpu"] / (t["topdown"]["cpu"] + t["step"]["cpu"])
            verdict = ("no (CropCache faster than the step)" if rate["cropcache"] > rate["step"]
                       else "YES (CropCache slower than the step)")
            print(f"| {nthreads} | {rate['topdown']:.0f} | {rate['cropcache']:.0f} | "
                  f"{rate['cropcache'] / rate['topdown']:.1f} | {rate['step']:.0f} | "
                  f"{100 * share_cc:.0f} % / {100 * share_td:.0f} % | {verdict} |")


if __name__ == "__main__":
    main()
