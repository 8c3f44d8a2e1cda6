"""Time to AP 0.3 / 0.45 / 0.5 on generated val: the recommended default vs chapter 01's recipe.

Trains both configurations in one process, one after the other, with the same number of torch
threads, validating after every epoch with :class:`poselab.train.Evaluator` (pycocotools AP on
the 503 persons of generated val). Training time is CPU time of this process
(``time.process_time``) with validation excluded, so machine load from other processes inflates
it little; with one thread it is a conservative estimate of wall time on an idle 2-core machine.
Also measures the data path alone (ms per sample to build a batch): TopDownDataset + collate
vs :class:`poselab.data.crop_cache.CropCache`.

    python benchmarks/time_to_ap.py                 # both recipes, one thread
    python benchmarks/time_to_ap.py --only default  # just the recommended default
    python benchmarks/time_to_ap.py --json out.json

Configurations (``CONFIGS``): ``default`` — the recommended default preset (chapter 01's model
and input 128×96 / 32×24 heatmaps, with crop cache, bfloat16 autocast, channels-last, light
augmentation, lr 4e-3, 8 epochs); ``default_64x48_s2`` — the cheaper alternative (64×48 input,
stride-2 heatmaps 32×24, 16 epochs); ``chapter01`` — chapter 01's recipe before this change
(TopDownDataset, 128×96 input, stride-4 heatmaps 32×24, batch 16, lr 2e-3 cosine, 18 epochs).
"""
from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.data import default_collate

from poselab import data as pdata
from poselab.codecs import HeatmapCodec
from poselab.losses import heatmap_mse_loss
from poselab.models import build_model
from poselab.train import Callback, Evaluator, fit

THRESHOLDS = (0.3, 0.45, 0.5)

CONFIGS = {
    "default": dict(input_size=(128, 96), heatmap_stride=4, batch_size=16, lr=4e-3, epochs=8,
                    schedule="cosine", warmup_steps=50, crop_cache=True, channels_last=True,
                    autocast="bfloat16", sigma=2.0, rotation=10.0, scale_jitter=0.15),
    "default_64x48_s2": dict(input_size=(64, 48), heatmap_stride=2, batch_size=16, lr=4e-3,
                             epochs=16, schedule="cosine", warmup_steps=50, crop_cache=True,
                             channels_last=True, autocast="bfloat16", sigma=2.0, rotation=10.0,
                             scale_jitter=0.15),
    "chapter01": dict(input_size=(128, 96), heatmap_stride=4, batch_size=16, lr=2e-3, epochs=18,
                      schedule="cosine", warmup_steps=50, crop_cache=False, channels_last=False,
                      autocast=None, sigma=2.0, rotation=30.0, scale_jitter=0.25),
}


class _Clock(Callback):
    """Train CPU seconds (validation excluded) and AP after each validation."""

    def __init__(self, evaluator_seconds):
        self.eval_seconds = evaluator_seconds
        self.points = []

    def on_fit_start(self, state):
        self.t0 = time.process_time()

    def on_validation_end(self, state):
        cpu = time.process_time() - self.t0 - self.eval_seconds[0]
        v = state.history.val[-1]
        self.points.append({"epoch": state.epoch + 1, "samples": sum(state.history.batch_sizes),
                            "train_cpu_s": cpu, "AP": v["AP"], "EPE_crop": v["EPE_crop"]})
        print(f"  epoch {state.epoch + 1:3d}  train CPU {cpu:7.1f} s  AP {v['AP']:.3f}", flush=True)


def training_set(cfg, train_json, codec, seed):
    """The training data of ``cfg``: a CropCache (batch source) or a TopDownDataset."""
    kw = dict(input_size=cfg["input_size"], flip_prob=0.0, rotation=cfg["rotation"],
              scale_jitter=cfg["scale_jitter"])
    if cfg["crop_cache"]:
        from poselab.data.crop_cache import CropCache
        return CropCache(train_json, target_fn=codec.encode, batch_size=cfg["batch_size"],
                         seed=seed, **kw)
    ds = pdata.TopDownDataset(train_json, train=True, target_fn=codec, seed=seed, **kw)
    ds.preload()
    return ds


def run(name, cfg, seed=0):
    size = tuple(cfg["input_size"])
    hm = (size[0] // cfg["heatmap_stride"], size[1] // cfg["heatmap_stride"])
    codec = HeatmapCodec(size, hm, sigma=cfg["sigma"], decoder="quarter")
    train_json = pdata.default_dataset("train")
    val_json = pdata.default_dataset("val")
    t = time.process_time()
    train = training_set(cfg, train_json, codec, seed)
    setup = time.process_time() - t
    model = build_model("heatmap", size, seed=seed, heatmap_stride=cfg["heatmap_stride"],
                        autocast=cfg["autocast"])
    if cfg["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    ev = Evaluator(val_json, head="heatmap", codec=codec, input_size=size, device="cpu",
                   return_predictions=False)
    eval_seconds = [0.0]

    def val(m):
        t0 = time.process_time()
        r = ev(m)
        eval_seconds[0] += time.process_time() - t0
        return r

    clock = _Clock(eval_seconds)
    print(f"{name}: {cfg}  (data setup {setup:.1f} s CPU)", flush=True)
    fit(model, lambda out, b: heatmap_mse_loss(out, b["target"], b["weights"]), train, val=val,
        epochs=cfg["epochs"], batch_size=cfg["batch_size"], lr=cfg["lr"],
        warmup_steps=cfg["warmup_steps"], schedule=cfg["schedule"], device="cpu", seed=seed,
        callbacks=[clock])
    reached = {thr: next((p["train_cpu_s"] for p in clock.points if p["AP"] >= thr), None)
               for thr in THRESHOLDS}
    return {"config": cfg, "setup_cpu_s": setup, "curve": clock.points, "time_to_ap": reached,
            "final_AP": clock.points[-1]["AP"]}


def data_path_ms_per_sample(input_size=(64, 48), batch=32, repeats=5):
    """CPU ms per sample to build one training batch: TopDownDataset + collate vs CropCache."""
    from poselab.data.crop_cache import CropCache
    size = tuple(input_size)
    codec = HeatmapCodec(size, (size[0] // 2, size[1] // 2))
    train_json = pdata.default_dataset("train")
    ds = pdata.TopDownDataset(train_json, input_size=size, train=True, target_fn=codec, flip_prob=0.0)
    ds.preload()
    cache = CropCache(train_json, input_size=size, target_fn=codec.encode, batch_size=batch)
    order = cache.order(0)
    times = {"TopDownDataset": [], "CropCache": []}
    for r in range(repeats):
        idx = order[r % len(order)]
        t = time.process_time()
        default_collate([ds[i] for i in idx])
        times["TopDownDataset"].append((time.process_time() - t) / len(idx) * 1e3)
        t = time.process_time()
        cache.batch(idx, 0)
        times["CropCache"].append((time.process_time() - t) / len(idx) * 1e3)
    return {k: min(v) for k, v in times.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=sorted(CONFIGS), action="append")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = args.only or ["default", "chapter01"]
    results = {"threads": args.threads, "torch": torch.__version__}
    for size in ((64, 48), (128, 96)):
        results[f"data_ms_per_sample_{size[0]}x{size[1]}"] = data_path_ms_per_sample(size)
    for name in names:
        results[name] = run(name, CONFIGS[name], args.seed)
    print(f"\ntime to AP on generated val (train CPU seconds, {args.threads} thread(s), "
          f"validation excluded)")
    print(f"{'config':12s}" + "".join(f"{'AP ' + str(t):>10s}" for t in THRESHOLDS) + f"{'final AP':>10s}")
    for name in names:
        r = results[name]
        cells = "".join(f"{r['time_to_ap'][t]:10.1f}" if r["time_to_ap"][t] is not None else f"{'—':>10s}"
                        for t in THRESHOLDS)
        print(f"{name:12s}{cells}{r['final_AP']:10.3f}")
    for key in [k for k in results if k.startswith("data_ms")]:
        d = results[key]
        print(f"data path {key[-6:]}: TopDownDataset {d['TopDownDataset']:.2f} ms/sample, "
              f"CropCache {d['CropCache']:.2f} ms/sample ({d['TopDownDataset'] / d['CropCache']:.1f}x)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({k: v for k, v in results.items()}, fh, indent=1, default=str)
    return results


if __name__ == "__main__":
    main()
