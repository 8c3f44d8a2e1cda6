"""Time to AP 0.3 / 0.45 / 0.5 on generated val: the `default` and `full` presets beside chapter 01's earlier recipe.

Every time is **seconds of training** up to the first validation whose AP reaches the threshold:
the training loop's own clock (batch building + forward + backward + update, wall time), summed
over the steps before that validation, so validation itself is excluded. Each run validates
after every epoch with pycocotools on the 503 persons of generated val.

- ``default``: ``poselab train mse --preset default`` as a student runs it (``run_recipe``, crop
  cache, bf16 where native, channels-last), validating every epoch (the preset validates every 2;
  the training is the same). Trained now, at this process's torch thread count (torch's default:
  one per core, i.e. 2 on the 2-core machine of the issue's target).
- ``full``: read from the recorded run ``results/mse_full.json`` (validation every 4 epochs, its
  own thread count, printed) — it takes about 18 min on one thread; ``--train-full`` trains it now.
- ``chapter01``: chapter 01's recipe before ``poselab.experiments`` (TopDownDataset, 128×96 input,
  32×24 heatmaps, batch 16, lr 2e-3 cosine, 18 epochs, float32), through ``fit``, trained now.

    python benchmarks/time_to_ap.py                   # default + full (recorded) + chapter01
    python benchmarks/time_to_ap.py --only default    # just the default preset
    python benchmarks/time_to_ap.py --threads 1 --json out.json

Targets (issue 8): ``default`` AP ≥ 0.50 within 60 s of training on 2 CPU cores; ``full``
AP ≥ 0.65. Printed as MET / NOT MET; the exit code is 0 either way (a miss is a finding).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

THRESHOLDS = (0.3, 0.45, 0.5)
TARGETS = {"default": (0.50, 60.0), "full": (0.65, None)}
FULL_RECORD = Path(__file__).resolve().parent.parent / "results" / "mse_full.json"

CHAPTER01 = dict(input_size=(128, 96), heatmap_stride=4, batch_size=16, lr=2e-3, epochs=18,
                 warmup_steps=50, sigma=2.0, rotation=30.0, scale_jitter=0.25)


def curve(history: dict) -> list[dict]:
    """``[{"step", "train_s", "AP"}]`` per validation, from a training history dict (``History.to_dict()``).

    ``train_s`` sums ``step_times + data_times`` of the steps before the validation.
    """
    steps = np.asarray(history["step_times"], dtype=float) + np.asarray(history["data_times"], dtype=float)
    cum = np.concatenate([[0.0], np.cumsum(steps)])
    out = []
    for v in history["val"]:
        s = int(v["step"])
        if not 0 <= s < len(cum):
            raise ValueError(f"validation at step {s} but the history has {len(steps)} steps")
        out.append({"step": s, "train_s": float(cum[s]), "AP": float(v["AP"])})
    return out


def time_to(points: list[dict], threshold: float) -> float | None:
    """Training seconds at the first validation with AP ≥ ``threshold`` (None: never reached)."""
    return next((p["train_s"] for p in points if p["AP"] >= threshold), None)


def summary(name: str, points: list[dict], threads, source: str) -> dict:
    return {"name": name, "source": source, "threads": threads, "curve": points,
            "time_to_ap": {t: time_to(points, t) for t in THRESHOLDS},
            "final_AP": points[-1]["AP"] if points else float("nan"),
            "train_s": points[-1]["train_s"] if points else float("nan")}


def run_preset(name: str, seed: int) -> dict:
    from poselab.experiments import get_preset, run_recipe
    preset = get_preset(name)
    res = run_recipe("mse", preset=preset.replace(val_every=1), seed=seed, device="cpu", cache=False)
    return summary(name, curve(res.history), res.threads,
                   f"run_recipe('mse', preset={name!r} validating every epoch, seed={seed}), trained now")


def recorded_full() -> dict:
    record = json.loads(FULL_RECORD.read_text())
    run = record["runs"][0]
    return summary("full", curve(run["history"]), record.get("threads"),
                   f"recorded: {FULL_RECORD.name} (commit {str(record.get('commit'))[:7]}, "
                   f"{record.get('date', '?')[:10]}; validation every 4 epochs)")


def run_chapter01(seed: int) -> dict:
    from poselab import data as pdata
    from poselab.codecs import HeatmapCodec
    from poselab.losses import heatmap_mse_loss
    from poselab.models import build_model
    from poselab.train import Evaluator, fit
    cfg = CHAPTER01
    size = tuple(cfg["input_size"])
    hm = (size[0] // cfg["heatmap_stride"], size[1] // cfg["heatmap_stride"])
    codec = HeatmapCodec(size, hm, sigma=cfg["sigma"], decoder="quarter")
    train = pdata.TopDownDataset(pdata.default_dataset("train"), train=True, target_fn=codec, seed=seed,
                                 input_size=size, flip_prob=0.0, rotation=cfg["rotation"],
                                 scale_jitter=cfg["scale_jitter"])
    train.preload()
    model = build_model("heatmap", size, seed=seed, heatmap_stride=cfg["heatmap_stride"])
    ev = Evaluator(pdata.default_dataset("val"), head="heatmap", codec=codec, input_size=size,
                   device="cpu", return_predictions=False)
    history = fit(model, lambda out, b: heatmap_mse_loss(out, b["target"], b["weights"]), train, val=ev,
                  epochs=cfg["epochs"], batch_size=cfg["batch_size"], lr=cfg["lr"],
                  warmup_steps=cfg["warmup_steps"], schedule="cosine", device="cpu", seed=seed)
    return summary("chapter01", curve(history.to_dict()), torch.get_num_threads(),
                   f"fit with chapter 01's earlier recipe {cfg}, trained now")


def table(results: list[dict]) -> str:
    head = ("| config | threads | " + " | ".join(f"s to AP {t}" for t in THRESHOLDS)
            + " | final AP | training s | target | source |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for r in results:
        cells = " | ".join("—" if r["time_to_ap"][t] is None else f"{r['time_to_ap'][t]:.1f}"
                           for t in THRESHOLDS)
        target = TARGETS.get(r["name"])
        if target is None:
            verdict = "—"
        else:
            ap, seconds = target
            t = time_to(r["curve"], ap)
            met = t is not None and (seconds is None or t <= seconds)
            verdict = (f"AP ≥ {ap}" + (f" in ≤ {seconds:.0f} s" if seconds else "")
                       + (": MET" if met else ": NOT MET"))
        lines.append(f"| {r['name']} | {r['threads']} | {cells} | {r['final_AP']:.3f} | "
                     f"{r['train_s']:.1f} | {verdict} | {r['source']} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["default", "full", "chapter01"], action="append")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-full", action="store_true", help="train the full preset now (~18 min on 1 thread)")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            ap.error("--threads must be ≥ 1")
        torch.set_num_threads(args.threads)
    names = args.only or ["default", "full", "chapter01"]
    results = []
    for name in names:
        t0 = time.perf_counter()
        if name == "default" or (name == "full" and args.train_full):
            r = run_preset(name, args.seed)
        elif name == "full":
            r = recorded_full()
        else:
            r = run_chapter01(args.seed)
        print(f"{name}: final AP {r['final_AP']:.3f} after {r['train_s']:.1f} s of training "
              f"({time.perf_counter() - t0:.0f} s wall with validation)", flush=True)
        results.append(r)
    print(f"\nTime to AP on generated val (seconds of training, validation excluded; torch threads "
          f"as listed), seed {args.seed}\n")
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    return results


if __name__ == "__main__":
    main()
