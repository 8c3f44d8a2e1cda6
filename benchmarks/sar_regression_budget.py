"""At what budget / setting do SAR's regression baselines learn? (issue 27, item 4)

The recipes ``sar_regression`` (global average pool -> FC -> K points, L1 on normalised
coordinates; SAR Eq. 3) and ``sar_fg_fc`` (SAR's f^g + FC variant, Table 1 last row) stay near
the image-blind "every person gets the mean pose" level in the lab. This script trains a few
variants of them -- learning rate x0.1 / x10, no gradient clipping, and the paper's placement of
the pooled feature -- and prints, per probe: the steps trained, the final validation AP and
EPE (crop px), the constant-mean-pose EPE of the same validation set
(:func:`poselab.chapters.sar.analysis.mean_pose_epe`), the first validation step at which the
EPE is 10 % below it (``has_learnt``'s margin), and the gradient norm (median over the steps,
before clipping) with the share of steps the recipe's ``grad_clip`` clipped.

Nothing in ``poselab/`` changes (the run cache's source digest stays): the variants are
``Recipe.replace(...)`` and, for the paper's placement, two model builders registered here
(``bench_encoder_regression``, ``bench_encoder_fg_fc``). The paper (Table 1: Regression 4.0
GFLOPs and f^g+FC 5.3 GFLOPs, both *without* the deconvolutions) pools the backbone's last,
stride-32 stage (ResNet-50 C5: 8x6 cells at 256x192); the lab's recipes pool the tiny
backbone's *decoded* stride-2 output (32 channels at 64x48). The ``encoder`` probes pool the
tiny backbone's deepest stage instead (stride 16, 96 channels, 8x6 cells at 128x96 -- the
paper's grid) with the decoder dropped; f^g + FC then makes its 16-channel cells on that 8x6
grid (the recipe: 64x48 = 3072 cells from a 32-channel f^g).

The full mode trains :data:`SHORT` (600 steps) and :data:`LONG` (2400 steps): about 35 CPU
minutes on one thread. ``reg_lr10``, ``reg_noclip``, ``fg_lr0.1`` and ``fg_noclip`` are defined
but not in it: the recipe's lr already keeps regression at the mean pose (x10 cannot help), and
``grad_clip`` acts on 0 % of sar_regression's steps (the largest norm is below 1.0), so without
clipping its run is the same.

Runs are cached in a folder of their own (``--cache-dir``, default a folder under the system
temp dir; never the lab's run cache), so a second call prints the table without training.
One thread (``torch.set_num_threads(1)``). Generated data, seed 0, the default preset's
geometry (128x96 input, stride 2, batch 16, bf16 forward where native, cosine schedule).

    python benchmarks/sar_regression_budget.py --quick          # two steps per probe (a test)
    python benchmarks/sar_regression_budget.py                  # the probes of the report (~35 CPU min)
    python benchmarks/sar_regression_budget.py --probes reg reg_lr0.1 --steps 600
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from poselab.chapters.sar.analysis import mean_pose_epe
from poselab.claims import has_learnt
from poselab.chapters.sar.recipes import grid_geometry
from poselab.experiments import get_recipe, run_recipe
from poselab.experiments.presets import get_preset
from poselab.experiments.registry import MODELS, register_model
from poselab.models import build_model
from poselab.models.regression_head import GlobalRegressionHead, GridFCSARHead

SET = "generated val"


class EncoderOnly(nn.Module):
    """The tiny backbone's encoder (stem -> stride 16), no decoder: the paper's regression
    baselines pool the backbone's last stage (Table 1, "Deconvs" unticked)."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.stem, self.down4 = backbone.stem, backbone.down4
        self.down8, self.down16 = backbone.down8, backbone.down16
        self.out_channels = backbone.down16[-1].conv2.out_channels

    def forward(self, x):
        return self.down16(self.down8(self.down4(self.stem(x))))


def _encoder_model(recipe, geometry, seed, make_head, head_type):
    stride = int(dict(recipe.codec_params).get("stride", 16))
    hw = grid_geometry(geometry, stride).heatmap_size
    model = build_model(head_type, geometry.input_size, recipe.backbone, num_keypoints=geometry.num_keypoints,
                        seed=seed, heatmap_stride=int(round(geometry.stride)))
    model.backbone = EncoderOnly(model.backbone)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed) + 7919)
        model.head = make_head(model.backbone.out_channels, hw)
    return model


if "bench_encoder_regression" not in MODELS:
    register_model("bench_encoder_regression", lambda r, g, s: _encoder_model(
        r, g, s, lambda c, hw: GlobalRegressionHead(c, g.num_keypoints, hw), "heatmap"))
    register_model("bench_encoder_fg_fc", lambda r, g, s: _encoder_model(
        r, g, s, lambda c, hw: GridFCSARHead(c, g.num_keypoints, hw), "sar"))


def probes() -> dict:
    """name -> (recipe, what it changes)."""
    reg, fg = get_recipe("sar_regression"), get_recipe("sar_fg_fc")
    enc_reg = reg.replace(model="bench_encoder_regression", codec_params={"stride": 16}, loss_params={"stride": 16})
    enc_fg = fg.replace(model="bench_encoder_fg_fc", codec="sar_strided",
                        codec_params={"base": "sar", "stride": 16}, loss_params={**fg.loss_params, "stride": 16})
    return {
        "reg": (reg, "recipe as registered (clip 1.0, warm-up 50)"),
        "reg_lr0.1": (reg.replace(lr=reg.lr * 0.1), "lr x0.1"),
        "reg_lr10": (reg.replace(lr=reg.lr * 10), "lr x10"),
        "reg_noclip": (reg.replace(grad_clip=None), "no gradient clipping"),
        "reg_enc": (enc_reg, "pool the encoder's stride-16 stage (paper: C5, no deconvs)"),
        "reg_enc_lr0.1": (enc_reg.replace(lr=reg.lr * 0.1), "encoder pool, lr x0.1"),
        "fg": (fg, "recipe as registered (64x48 cells from the decoded f^g)"),
        "fg_lr0.1": (fg.replace(lr=fg.lr * 0.1), "lr x0.1"),
        "fg_noclip": (fg.replace(grad_clip=None), "no gradient clipping"),
        "fg_enc": (enc_fg, "f^g of the encoder's stride-16 stage, 8x6 cells (paper's grid)"),
        "fg_enc_lr0.1": (enc_fg.replace(lr=fg.lr * 0.1), "encoder f^g, 8x6 cells, lr x0.1"),
    }


#: the probes of the report (issue 27 item 4): 600 steps each, then the longer runs
SHORT = ("reg", "reg_lr0.1", "reg_enc", "reg_enc_lr0.1", "fg", "fg_enc")
LONG = ("reg=2400", "reg_lr0.1=2400", "reg_enc=2400", "reg_enc_lr0.1=2400", "fg=2400", "fg_enc=2400",
        "fg_enc_lr0.1=2400")


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
    names = args.probes or (["reg", "fg_enc"] if args.quick else list(SHORT))
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
