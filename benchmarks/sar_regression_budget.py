"""At what budget / setting do SAR's regression baselines learn? (issue 27, item 4)

The recipes ``sar_regression`` (global average pool -> FC -> K points, L1 on normalised
coordinates; SAR Eq. 3) and ``sar_fg_fc`` (SAR's f^g + FC variant, Table 1 last row) used to pool
the tiny backbone's *decoded* stride-2 output (32 channels at 64x48) and stayed near the
image-blind "every person gets the mean pose" level. The paper (Table 1: Regression 4.0 GFLOPs
and f^g+FC 5.3 GFLOPs, both *without* the deconvolutions) pools the backbone's last stage
(ResNet-50 C5: 8x6 cells at 256x192); the recipes now do the same with the tiny backbone's
encoder (stride 16, 96 channels, 8x6 cells at 128x96 -- the paper's grid), and f^g + FC makes
its 16-channel cells on that grid. This script trains both placements and a few learning-rate
and clipping variants and prints, per probe: the steps trained, the final validation AP and EPE
(crop px), the constant-mean-pose EPE of the same validation set
(:func:`poselab.chapters.sar.analysis.mean_pose_epe`), the first validation step at which the
EPE is 10 % below it (``has_learnt``'s margin), and the gradient norm (median over the steps,
before clipping) with the share of steps the recipe's ``grad_clip`` clipped.

Probes: ``reg`` / ``fg`` are the recipes as registered (the encoder); ``reg_dec`` / ``fg_dec``
rebuild the decoded placement with two model builders registered here
(``bench_decoded_regression``, ``bench_decoded_fg_fc``); ``_lr0.1``, ``_lr10`` and ``_noclip``
change the learning rate (``sar_regression`` now trains at 2e-4, a tenth of the shared 2e-3)
or drop gradient clipping. (Until the recipes changed, the report's ``reg`` / ``fg`` were the
decoded placement at 2e-3 and ``reg_enc`` / ``fg_enc`` the encoder one: today's ``reg_lr10`` /
``fg``, and ``reg_enc_lr0.1`` is today's ``reg``.)

The full mode trains :data:`SHORT` (600 steps) and :data:`LONG` (2400 steps): about 35 CPU
minutes on one thread.

Runs are cached in a folder of their own (``--cache-dir``, default a folder under the system
temp dir; never the lab's run cache), so a second call prints the table without training.
One thread (``torch.set_num_threads(1)``). Generated data, seed 0, the default preset's
geometry (128x96 input, stride 2, batch 16, bf16 forward where native, cosine schedule).

    python benchmarks/sar_regression_budget.py --quick          # two steps per probe (a test)
    python benchmarks/sar_regression_budget.py                  # the probes of the report (~35 CPU min)
    python benchmarks/sar_regression_budget.py --probes reg reg_dec --steps 600
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from poselab.chapters.sar.analysis import mean_pose_epe
from poselab.claims import has_learnt
from poselab.chapters.sar.recipes import grid_geometry
from poselab.experiments import get_recipe, run_recipe
from poselab.experiments.presets import get_preset
from poselab.experiments.registry import MODELS, register_model
from poselab.models import build_model
from poselab.models.regression_head import GlobalRegressionHead, GridFCSARHead

SET = "generated val"


def _decoded_model(recipe, geometry, seed, make_head, head_type):
    """The placement the recipes had before they pooled the encoder: the head on the backbone's
    decoded output (stride 2 on the default preset, 32 channels), its grid the preset's."""
    stride = dict(recipe.codec_params).get("stride")
    hw = grid_geometry(geometry, stride).heatmap_size
    model = build_model(head_type, geometry.input_size, recipe.backbone, num_keypoints=geometry.num_keypoints,
                        seed=seed, heatmap_stride=int(round(geometry.stride)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed) + 7919)
        model.head = make_head(model.backbone.out_channels, hw)
    return model


if "bench_decoded_regression" not in MODELS:
    register_model("bench_decoded_regression", lambda r, g, s: _decoded_model(
        r, g, s, lambda c, hw: GlobalRegressionHead(c, g.num_keypoints, hw), "heatmap"))
    register_model("bench_decoded_fg_fc", lambda r, g, s: _decoded_model(
        r, g, s, lambda c, hw: GridFCSARHead(c, g.num_keypoints, hw), "sar"))


def probes() -> dict:
    """name -> (recipe, what it changes)."""
    reg, fg = get_recipe("sar_regression"), get_recipe("sar_fg_fc")
    shared = get_recipe("mse").lr       # every other recipe's learning rate
    dec_reg = reg.replace(model="bench_decoded_regression")
    dec_fg = fg.replace(model="bench_decoded_fg_fc", codec="sar", codec_params={},
                        loss_params={k: v for k, v in fg.loss_params.items() if k != "stride"})
    return {
        "reg": (reg, "recipe as registered: pool the encoder's stride-16 stage (paper: no deconvs), lr 2e-4"),
        "reg_lr10": (reg.replace(lr=shared), "encoder pool, the shared lr 2e-3 (x10)"),
        "reg_dec": (dec_reg.replace(lr=shared), "pool the decoded stride-2 map, lr 2e-3 (the recipe before)"),
        "reg_dec_lr0.1": (dec_reg, "decoded pool, lr 2e-4"),
        "reg_dec_lr10": (dec_reg.replace(lr=shared * 10), "decoded pool, lr 2e-2"),
        "reg_dec_noclip": (dec_reg.replace(lr=shared, grad_clip=None), "decoded pool, lr 2e-3, no gradient clipping"),
        "fg": (fg, "recipe as registered: f^g of the encoder's stride-16 stage, 8x6 cells (paper's grid)"),
        "fg_lr0.1": (fg.replace(lr=fg.lr * 0.1), "encoder f^g, 8x6 cells, lr x0.1"),
        "fg_dec": (dec_fg, "64x48 cells from the decoded f^g (the recipe before)"),
        "fg_dec_lr0.1": (dec_fg.replace(lr=fg.lr * 0.1), "decoded f^g, lr x0.1"),
        "fg_dec_noclip": (dec_fg.replace(grad_clip=None), "decoded f^g, no gradient clipping"),
    }


#: the probes of the report (issue 27 item 4): 600 steps each, then the longer runs
SHORT = ("reg_dec", "reg_dec_lr0.1", "reg_lr10", "reg", "fg_dec", "fg")
LONG = ("reg_dec=2400", "reg_dec_lr0.1=2400", "reg_lr10=2400", "reg=2400", "fg_dec=2400", "fg=2400",
        "fg_lr0.1=2400")


def first_learnt_step(curve, blind: float, margin: float = 0.1):
    """The first validation step whose EPE is at least ``margin`` below the mean-pose EPE
    ``blind`` (:func:`poselab.claims.has_learnt`'s rule for an error), or None.
    ``curve``: ``[(step, EPE, AP), ...]``."""
    return next((int(s) for s, e, *_ in curve
                 if has_learnt("probe", [e], blind=blind, metric="EPE", lower_is_better=True, margin=margin).ok), None)


def run_probe(name: str, recipe, what: str, preset, blind: float) -> dict:
    r = recipe.replace(name=f"bench_{name.replace('.', 'p')}")
    t0 = time.process_time()
    res = run_recipe(r, data="synth", preset=preset, seed=0, device="cpu", threads=1)
    cpu = time.process_time() - t0
    h = res.history
    gn = np.asarray(h.get("grad_norms") or [np.nan], dtype=np.float64)
    clipped = float(np.mean(gn > r.grad_clip)) if r.grad_clip is not None else float(np.mean(gn > 1.0))
    curve = [(int(v["step"]), float(v["EPE_crop"]), float(v["AP"])) for v in h.get("val", [])]
    learnt_at = first_learnt_step(curve, blind)
    m = res.metrics[SET]
    return {"probe": name, "what": what, "steps": int(h.get("steps", len(h.get("losses", [])))),
            "lr": r.lr * preset.lr_scale, "AP": float(m["AP"]), "EPE": float(m["EPE_crop"]), "blind": blind,
            "learnt_at": learnt_at, "gn_median": float(np.nanmedian(gn)), "clipped": clipped,
            "clip_applies": r.grad_clip is not None, "curve": curve, "cached": res.cached,
            "cpu_s": cpu, "train_s": float(res.train_seconds)}


def table(rows: list[dict]) -> str:
    out = ["| probe | setting | lr | steps | val AP | EPE (crop px) | mean-pose EPE | EPE <= 0.9 x mean-pose at step "
           "| grad-norm median | share clipped (>1.0) | val EPE curve (step: px) |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        pts = r["curve"]
        if len(pts) > 7:  # six evenly spaced validations and the last
            pts = [pts[round(i * (len(pts) - 1) / 6)] for i in range(7)]
        curve = ", ".join(f"{s}: {e:.1f}" for s, e, _ in pts) or "-"
        clip = f"{r['clipped']:.1%}" + ("" if r["clip_applies"] else " (not clipped)")
        out.append(f"| {r['probe']} | {r['what']} | {r['lr']:.1e} | {r['steps']} | {r['AP']:.3f} | {r['EPE']:.2f} | "
                   f"{r['blind']:.2f} | {r['learnt_at'] if r['learnt_at'] is not None else 'never'} | "
                   f"{r['gn_median']:.3f} | {clip} | {curve} |")
    return "\n".join(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two steps per probe on the fast preset (a smoke test)")
    ap.add_argument("--probes", nargs="+", default=None, help=f"names among {sorted(probes())}")
    ap.add_argument("--steps", type=int, default=600, help="optimiser steps per probe (full mode)")
    ap.add_argument("--long", nargs="*", default=None, metavar="PROBE=STEPS",
                    help=f"longer runs (full mode default: {' '.join(LONG)}; none with --quick)")
    ap.add_argument("--cache-dir", default=os.path.join(tempfile.gettempdir(), "poselab-sar-regression-budget"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cache = Path(args.cache_dir)
    if cache.resolve().parts[-2:] == ("runs", "cache"):  # a lab checkout's run cache (…/runs/cache)
        raise SystemExit(f"--cache-dir must not be the lab's run cache ({cache}); probes keep their own")
    os.environ["POSELAB_CACHE_DIR"] = str(cache)
    every = probes()
    names = args.probes or (["reg", "fg", "fg_dec"] if args.quick else list(SHORT))
    unknown = set(names) - set(every)
    if unknown:
        raise SystemExit(f"unknown probe(s) {sorted(unknown)}; choose from {sorted(every)}")
    if args.quick:
        preset = get_preset("fast").replace(name="bench-sarreg-quick", max_steps=2, n_train=20, n_val=8,
                                            val_every=1, epochs=1)
    else:
        preset = get_preset("default").replace(name=f"bench-sarreg-{args.steps}", epochs=100,
                                               max_steps=args.steps, val_every=1)
    blind = mean_pose_epe(preset)
    jobs = [(n, preset) for n in names]
    for spec in (args.long if args.long is not None else ([] if args.quick else LONG)):
        n, _, steps = spec.partition("=")
        if n not in every or not steps.isdigit():
            raise SystemExit(f"--long takes PROBE=STEPS with a known probe, got {spec!r}")
        jobs.append((n, preset.replace(name=f"bench-sarreg-{steps}", max_steps=int(steps))))
    rows = []
    for n, p in jobs:
        recipe, what = every[n]
        row = run_probe(n, recipe, what, p, blind)
        rows.append(row)
        print(f"# {n} ({p.max_steps} steps): AP {row['AP']:.3f}, EPE {row['EPE']:.2f} px (mean pose {blind:.2f}), "
              + ("cached" if row["cached"] else f"trained, {row['cpu_s']:.0f} CPU s"), flush=True)
    print()
    print(f"preset {preset.name}: input {preset.input_size}, stride {preset.heatmap_stride}, batch {preset.batch_size}, "
          f"lr scale {preset.lr_scale:g}, {preset.schedule} schedule to 0 at the last step, autocast {preset.autocast}, "
          f"one thread; seed 0; validation every epoch on {SET}")
    print(table(rows))


if __name__ == "__main__":
    main()
