"""Peak memory of chapter 04's heatmap measurement (``hdm.training.compactness``): the whole
evaluation set measured at once (the previous implementation, kept here as the reference) vs
:func:`poselab.chapters.hdm.training.heatmap_statistics`, which measures 64 crops at a time.

At the default preset the evaluation set is 503 crops × 17 joints of 64×48 maps; measured at
once, every per-map measure built float64 work arrays of the whole set (~210 MB each, several
alive together), which made the chapter's compactness cell its kernel's peak (issue 31). Side by
side in one process, on the same untrained models at the preset's geometry (memory depends on
the map count and size, not on the weights), alternating so that neither profits from memory
the other freed:

* peak RSS above the RSS at the call's start (a sampling thread, every 2 ms: a lower bound), and
* the tracemalloc peak (numpy's allocations, exact; torch's are not traced),

and the values of both, which must be equal (the script exits non-zero if not).

    python benchmarks/hdm_memory.py [--quick] [--preset default] [--reps 2]
"""
from __future__ import annotations

import argparse
import gc
import os
import threading
import time
import tracemalloc

import numpy as np
import torch

from poselab.chapters.hdm import training as T
from poselab.chapters.hdm.analysis import heatmap_compactness, pixels_above_truth
from poselab.codecs.heatmap import input_to_heatmap
from poselab.experiments import MODELS, Geometry, get_preset, get_recipe, resolve_run_data

MIB = 2 ** 20


def _rss() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def whole_set_statistics(model, dataset, input_size, radius: float = 1.5) -> dict[str, float]:
    """The previous ``heatmap_statistics``: every map of the set predicted, then measured at once."""
    pred = T.predict_heatmaps(model, dataset)
    hm_size = pred["heatmaps"].shape[-2:]
    kp = input_to_heatmap(torch.as_tensor(pred["keypoints"]), tuple(input_size), hm_size)
    vis = T.emd_visibility(kp, torch.as_tensor(pred["visible"]), hm_size).numpy()
    used = pred["heatmaps"][vis > 0]
    pc = T.peak_compactness(used, radius=radius)
    gt = heatmap_compactness(pred["heatmaps"], kp.numpy(), vis, radius=radius)
    sharpened = heatmap_compactness(np.maximum(pred["heatmaps"], 0.0) ** T.SHARPENING, kp.numpy(), vis,
                                    radius=radius)
    above = pixels_above_truth(pred["heatmaps"], kp.numpy(), vis)

    def mean(a):
        return float(a.mean()) if a.size else float("nan")

    return {"mass_near_gt": mean(gt["mass_near_gt"]), "rms_radius_to_gt": mean(gt["rms_radius_to_gt"]),
            "mass_near_peak": mean(pc["mass_near_peak"]), "spread": mean(pc["spread"]),
            "dead_fraction": T.dead_fraction(used), "pixels_above_truth": mean(above),
            "mass_near_gt_sharpened": mean(sharpened["mass_near_gt"])}


def measured(fn) -> tuple[dict, float, float]:
    """``(fn(), peak RSS above the start in MiB, tracemalloc peak in MiB)``."""
    gc.collect()
    start = _rss()
    peak = [start]
    running = [True]

    def sample():
        while running[0]:
            peak[0] = max(peak[0], _rss())
            time.sleep(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    tracemalloc.start()
    thread.start()
    try:
        out = fn()
    finally:
        running[0] = False
        thread.join()
        traced = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return out, (max(peak[0], _rss()) - start) / MIB, traced / MIB


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the fast preset's geometry, 40 crops")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args(argv)
    p = get_preset("fast" if args.quick else args.preset)
    _, sets = resolve_run_data("synth", p)
    ds = T.make_evaluator(sets["generated val"], None, p.input_size, "cpu").dataset(p.input_size)
    if args.quick:
        ds = [ds[i] for i in range(min(40, len(ds)))]
    geometry = Geometry(tuple(p.input_size), tuple(p.heatmap_size))
    print(f"{p.name} preset: {len(ds)} evaluation crops at {p.input_size[0]}×{p.input_size[1]}, "
          f"{p.heatmap_size[0]}×{p.heatmap_size[1]} maps, {'channels-last' if p.channels_last else 'contiguous'} "
          "models; one thread; machine under load (memory does not depend on load)\n")
    print("| model | implementation | rep | peak RSS above start (MiB) | tracemalloc peak (MiB) |")
    print("| --- | --- | --- | --- | --- |")
    bad = []
    for loss in T.LOSSES:
        # built as the runner builds the recipe's model at this preset (stride, head, memory format)
        model = MODELS[get_recipe(loss).model](get_recipe(loss), geometry, 0)
        if p.channels_last:
            model = model.to(memory_format=torch.channels_last)
        for rep in range(args.reps):
            order = (("batched (now)", lambda: T.heatmap_statistics(model, ds, p.input_size)),
                     ("whole set (before)", lambda: whole_set_statistics(model, ds, p.input_size)))
            values = {}
            for name, fn in (order if rep % 2 == 0 else order[::-1]):
                values[name], rss, traced = measured(fn)
                print(f"| {loss} | {name} | {rep} | {rss:.0f} | {traced:.0f} |", flush=True)
            a, b = values["batched (now)"], values["whole set (before)"]
            if a.keys() != b.keys() or any(not (a[k] == b[k] or (np.isnan(a[k]) and np.isnan(b[k]))) for k in a):
                bad.append((loss, rep, a, b))
    print()
    print("values identical (==, NaN = NaN): " + ("yes" if not bad else f"NO: {bad}"))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
