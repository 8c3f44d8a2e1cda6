"""Pure functions behind chapter 01 "train in a minute": checks of the training engine itself.

- :func:`codec_roundtrip_report` — encode → decode error of every codec against tight bounds
  (:data:`ROUNDTRIP_BOUNDS_MEASURED`, what the code achieves, not a loose guarantee);
- :func:`known_coordinate_check` — the pixel convention checked against coordinates known from
  first principles (a wrong but self-consistent convention passes any round trip; it fails here);
  :func:`simcc_known_coordinate_check` the same for SimCC's sub-pixel bins;
- :func:`training_losses_in_processes` — one short run per fresh interpreter, side by side: the
  determinism claim across processes, not only within one;
- :func:`compare_first_seed_live` — a recipe's seeds with live curves for the first only, the
  others training at the same time in worker processes (the chapter's wall time is one run's,
  not three runs' one after another);
- :class:`OracleHeatmaps` — a "model" returning exact targets, to score a representation's ceiling;
- :func:`mean_heatmap_baseline` — the MSE of an image-blind per-joint mean heatmap, the floor a
  trained model must beat before "the loss decreased" means it learnt anything from images.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from poselab import claims
from poselab.codecs import (ROUNDTRIP_UNITS, HeatmapCodec, encode_gaussian, input_to_heatmap,
                            roundtrip_max_error)
from poselab.codecs.simcc import SimCCCodec
from poselab.data import TopDownDataset
from poselab.data.dataset import denormalize_image
from poselab.experiments import (CODECS, ComparisonTable, Geometry, Preset, compare, get_preset, get_recipe,
                                 resolve_run_data)
from poselab.experiments.parallel import train_in_background
from poselab.experiments.replicate import DerivedStep, recorded_derived_verdict
from poselab.experiments.runner import RunResult, cached_result
from poselab.losses import heatmap_mse_loss
from poselab.metrics import end_point_error
from poselab.train import Evaluator, predict_crops, resolve_device

__all__ = ["ROUNDTRIP_BOUNDS_MEASURED", "codec_roundtrip_report", "known_coordinate_check",
           "simcc_known_coordinate_check", "training_losses_in_processes", "compare_first_seed_live",
           "OracleHeatmaps", "oracle_heatmaps", "mean_heatmap_baseline", "mean_heatmap_baseline_chunks",
           "blind_baseline_for_runs", "blind_verdict",
           "BLIND_DERIVED", "blind_record", "blind_from_records", "recorded_blind_verdict", "derived_steps"]

# What the code achieves (n = 2000 random keypoints, seeds 0-2, float32, torch 2.13 CPU, measured
# 2026-11-24 by `codec_roundtrip_report`): quantising codecs at their exact quantisation bound
# (argmax: 0.5 px, quarter shift on unbiased maps: 0.25 px, SimCC split 2: 0.25 input px), the
# others at ~2x the measured maximum (float32 round-off or the stated approximation).
ROUNDTRIP_BOUNDS_MEASURED: dict[str, float] = {
    "gaussian_argmax": 0.5 + 1e-5,
    "gaussian_quarter": 0.5 + 1e-5,
    "unbiased_quarter": 0.25 + 1e-5,
    "unbiased_dark": 1e-5,
    "unbiased_dark_blur": 1.5e-2,
    "dot_argmax": 0.5 + 1e-5,
    "simcc": 0.25 + 1e-5,
    "integral_compensated": 7e-3,
    "sar": 1e-5,
}


def codec_roundtrip_report(n: int = 2000, seed: int = 0) -> dict[str, dict]:
    """``{codec: {"max_error", "bound", "unit", "holds"}}`` from :func:`poselab.codecs.roundtrip_max_error`
    against :data:`ROUNDTRIP_BOUNDS_MEASURED`."""
    out = {}
    for name, bound in ROUNDTRIP_BOUNDS_MEASURED.items():
        err = roundtrip_max_error(name, n=n, seed=seed)
        out[name] = {"max_error": err, "bound": bound, "unit": ROUNDTRIP_UNITS[name],
                     "holds": bool(err <= bound)}
    return out


def known_coordinate_check(n: int = 200, seed: int = 0, sigma: float = 2.0,
                           to_heatmap: Callable | None = None, input_size=(256, 192),
                           heatmap_size=(64, 48)) -> dict:
    """The pixel convention against coordinates known without poselab's conversion functions.

    With stride ``s``, heatmap pixel ``j`` covers input pixels ``s·j … s·j + s − 1``, so its centre
    is input ``x = s·j + (s − 1)/2``. Keypoints are placed at ``x_in = s·(j + δx) + (s − 1)/2`` for
    random pixels ``(j, i)`` and offsets ``δ ∈ (−0.45, 0.45)``: their heatmap coordinates are
    ``(j + δx, i + δy)`` by construction. Checked: the MSRA Gaussian (centre rounded) peaks at
    ``(i, j)`` with value 1; the unbiased Gaussian has value ``exp(−(δx² + δy²)/2σ²)`` there; the
    unbiased + DARK codec decodes to ``x_in`` (input px). ``to_heatmap`` replaces the library's
    input → heatmap map (a test passes a wrong convention, e.g. MMPose's ``x / s``, to see it fail).

    Returns ``peak_pixel_errors`` (count of MSRA peaks off ``(i, j)``), ``unbiased_value_error``,
    ``decode_error_px`` (input px) and ``holds``.
    """
    to_heatmap = to_heatmap or (lambda xy: input_to_heatmap(xy, input_size, heatmap_size))
    rng = np.random.default_rng(seed)
    H, W = heatmap_size
    s = input_size[1] / W
    if input_size[0] / H != s:
        raise ValueError(f"input_size {input_size} and heatmap_size {heatmap_size} need one stride")
    pix = np.stack([rng.integers(1, W - 1, n), rng.integers(1, H - 1, n)], 1).astype(np.float64)
    delta = rng.uniform(-0.45, 0.45, size=(n, 2))
    kp_in = torch.as_tensor(s * (pix + delta) + (s - 1) / 2)[:, None]           # (n, 1, 2)
    kp_hm = torch.as_tensor(to_heatmap(kp_in)).to(torch.float64)
    msra, _ = encode_gaussian(kp_hm, None, heatmap_size, sigma)
    unbiased, _ = encode_gaussian(kp_hm, None, heatmap_size, sigma, unbiased=True)
    flat = msra.reshape(n, -1).argmax(1).numpy()
    peak = np.stack([flat % W, flat // W], 1)
    wrong_peaks = int(np.any(peak != pix.astype(int), axis=1).sum())
    rows, cols = pix[:, 1].astype(int), pix[:, 0].astype(int)
    value = unbiased[np.arange(n), 0, rows, cols].double().numpy()
    expected = np.exp(-(delta ** 2).sum(1) / (2 * sigma ** 2))
    codec = HeatmapCodec(input_size, heatmap_size, sigma=sigma, unbiased=True, decoder="dark",
                         dark_kernel=None)
    got, _ = codec.decode(unbiased.to(torch.float32))
    decode_err = float((got.double() - kp_in).abs().max())
    value_err = float(np.abs(value - expected).max())
    return {"peak_pixel_errors": wrong_peaks, "unbiased_value_error": value_err,
            "decode_error_px": decode_err, "n": int(n),
            "holds": bool(wrong_peaks == 0 and value_err <= 1e-6 and decode_err <= 4e-5 * s)}


def simcc_known_coordinate_check(n: int = 200, seed: int = 0, input_size=(256, 192), split_ratio: int = 2,
                                 sigma: float = 6.0, codec=None) -> dict:
    """SimCC's bin convention against input-pixel coordinates known from first principles.

    Input pixel ``p`` (centre at ``x = p``) covers ``[p − 0.5, p + 0.5)``; split into ``k`` equal
    bins, its ``m``-th bin is bin ``b = k·p + m`` with centre ``p − 0.5 + (m + 0.5)/k``. Keypoints
    are placed at that centre plus ``δ/k``, ``δ ∈ (−0.45, 0.45)``, so they lie in bin ``b`` by
    construction. Checked, per axis: the rounded-centre label peaks at bin ``b`` with value 1;
    the unbiased label has value ``exp(−δ²/2σ²)`` there; decoding the rounded label gives the bin
    centre (input px). ``codec`` (default :class:`poselab.codecs.SimCCCodec`) can be replaced: a
    convention shifted by a quarter pixel in both encode and decode passes any round trip and
    fails here (tests). Returns ``peak_bin_errors``, ``unbiased_value_error``,
    ``decode_error_px`` and ``holds``.
    """
    k = int(split_ratio)
    make = codec or (lambda unbiased: SimCCCodec(input_size, k, sigma, unbiased=unbiased))
    rng = np.random.default_rng(seed)
    H, W = input_size
    pix = np.stack([rng.integers(2, W - 2, n), rng.integers(2, H - 2, n)], 1).astype(np.float64)
    sub = rng.integers(0, k, size=(n, 2)).astype(np.float64)
    delta = rng.uniform(-0.45, 0.45, size=(n, 2))
    centre = pix - 0.5 + (sub + 0.5) / k
    kp = torch.as_tensor(centre + delta / k)[:, None]                                  # (n, 1, 2)
    bins = (k * pix + sub).astype(int)
    rounded, unbiased = make(False).encode(kp), make(True).encode(kp)
    wrong, value_err = 0, 0.0
    for axis, name in ((0, "target_x"), (1, "target_y")):
        labels = rounded[name][:, 0].double()
        wrong += int((labels.argmax(-1).numpy() != bins[:, axis]).sum())
        wrong += int((labels[np.arange(n), bins[:, axis]].numpy() != 1.0).sum())
        value = unbiased[name][:, 0].double()[np.arange(n), bins[:, axis]].numpy()
        value_err = max(value_err, float(np.abs(value - np.exp(-delta[:, axis] ** 2 / (2 * sigma ** 2))).max()))
    got, _ = make(False).decode(rounded["target_x"], rounded["target_y"])
    decode_err = float(np.abs(got[:, 0].double().numpy() - centre).max())
    return {"peak_bin_errors": wrong, "unbiased_value_error": value_err, "decode_error_px": decode_err,
            "n": int(n), "split_ratio": k,
            "holds": bool(wrong == 0 and value_err <= 1e-6 and decode_err <= 1e-5)}


_LOSSES_IN_A_PROCESS = """
import json, sys
from poselab.experiments import run_recipe
from poselab.experiments.presets import Preset
spec = json.loads(open(sys.argv[1]).read())
run = run_recipe(spec["recipe"], data=spec["data"], preset=Preset(**spec["preset"]), seed=spec["seed"],
                 device="cpu", cache=False, threads=spec["threads"])
open(sys.argv[2], "w").write(json.dumps(run.training_history().losses))
"""


def training_losses_in_processes(recipe: str, data="synth", preset=None, seeds=(0, 0), threads: int = 1,
                                 timeout: float = 600.0) -> list[list[float]]:
    """Train ``recipe`` under ``preset`` once per entry of ``seeds``, each run in its own fresh
    Python interpreter, all side by side; return each run's training losses (one per step).

    Each process gets ``threads`` torch threads, its own empty run cache (nothing is loaded, and
    the caller's cache is not touched) and a different ``PYTHONHASHSEED`` (so anything that
    depended on hash order — set iteration, a dict built from one — would show). Same recipe,
    preset and seed in two processes must give the same losses bit for bit; ``seeds=(0, 1)``
    gives the counter-case. ``recipe`` must be a registered name (a fresh interpreter cannot see
    recipes defined in a notebook). Raises RuntimeError with the end of a failing process's output.
    """

    if not isinstance(recipe, str):
        raise TypeError(f"recipe must be a registered recipe name (str), got {type(recipe).__name__}")
    p = get_preset("fast" if preset is None else preset)
    with tempfile.TemporaryDirectory(prefix="poselab-determinism-") as tmp:
        procs = []
        for i, seed in enumerate(seeds):
            folder = Path(tmp) / f"process{i}"
            folder.mkdir()
            spec = folder / "spec.json"
            spec.write_text(json.dumps({"recipe": recipe, "data": str(data), "preset": p.to_dict(),
                                        "seed": int(seed), "threads": int(threads)}))
            env = dict(os.environ, OMP_NUM_THREADS=str(int(threads)), PYTHONHASHSEED=str(i),
                       POSELAB_CACHE_DIR=str(folder / "cache"))
            err = open(folder / "stderr.txt", "w+")
            procs.append((subprocess.Popen([sys.executable, "-c", _LOSSES_IN_A_PROCESS, str(spec),
                                            str(folder / "losses.json")], stdout=subprocess.DEVNULL,
                                           stderr=err, env=env), err, folder))
        out = []
        try:
            for proc, err, folder in procs:
                proc.wait(timeout=timeout)
                err.seek(0)
                message = err.read()
                if proc.returncode != 0 or not (folder / "losses.json").is_file():
                    raise RuntimeError(f"a training process failed (exit code {proc.returncode}):\n"
                                       f"{message[-2000:]}")
                out.append([float(v) for v in json.loads((folder / "losses.json").read_text())])
        finally:
            for proc, err, _ in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                err.close()
    return out


def compare_first_seed_live(recipe: str, seeds, data="synth", preset="default", device="auto",
                            cache: bool = True, callbacks=(), progress: bool = True):
    """:func:`poselab.experiments.compare` of one recipe over ``seeds`` where only the first seed
    trains in this process with ``callbacks`` (live curves, a progress bar) and the other seeds
    train **at the same time** in one-thread worker processes (a background thread waits for
    them), instead of one after another as callbacks otherwise force. Cached runs are loaded,
    not trained. Without callbacks, on a GPU, or when the recipe cannot go to a worker, this is
    plain ``compare`` (the table is the same either way, up to the last bits a thread count
    changes). Returns the :class:`poselab.experiments.ComparisonTable` in seed order.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("compare_first_seed_live needs at least one seed")
    preset = get_preset(preset)
    rec = get_recipe(recipe)
    others = [s for s in seeds[1:] if not cache or cached_result(rec, data, preset, s, device) is None]
    # jobs chosen by cores *and memory* (on a 2 GB Binder: none, the seeds then train one by one)
    background = (train_in_background([(rec, s) for s in others], data=data, preset=preset, device=str(device),
                                      cache=cache)
                  if callbacks and others and resolve_device(device).type == "cpu" else None)
    if background is None:
        return compare([rec], seeds=seeds, data=data, preset=preset, device=device, cache=cache,
                       callbacks=callbacks, progress=progress)
    if progress:
        print(f"seed {seeds[0]} trains here (live); seeds {', '.join(map(str, others))} at the same time "
              f"in {len(others)} worker process(es)", flush=True)
    first = compare([rec], seeds=[seeds[0]], data=data, preset=preset, device=device, cache=cache,
                    callbacks=callbacks, progress=progress)
    trained = {seed: RunResult.load(f) for (_, seed), f in background.join().items()}
    for run in trained.values():
        run.cached = False
    rest = compare([rec], seeds=[s for s in seeds[1:] if s not in trained], data=data, preset=preset,
                   device=device, cache=cache, progress=progress).results if len(trained) < len(seeds) - 1 else []
    by_seed = {r.seed: r for r in first.results + rest + list(trained.values())}
    return ComparisonTable([by_seed[s] for s in seeds])


class OracleHeatmaps(torch.nn.Module):
    """A "model" that returns given outputs in call order — exact targets, to measure what a
    representation could score with perfect predictions (and to test an evaluator end to end).

    Args:
        outputs: ``(N, ...)`` tensor, one row per crop in the order the evaluator asks.
        head_type: the head kind the evaluator expects (``"heatmap"``).
        input_size: crop ``(H, W)``.
    Calls past the last row raise IndexError; :meth:`rewind` starts again.

    Example:
        >>> oracle = OracleHeatmaps(torch.zeros(3, 17, 16, 12), input_size=(64, 48))
        >>> oracle(torch.zeros(2, 3, 64, 48)).shape, oracle(torch.zeros(1, 3, 64, 48)).shape
        (torch.Size([2, 17, 16, 12]), torch.Size([1, 17, 16, 12]))
    """

    def __init__(self, outputs: torch.Tensor, head_type: str = "heatmap", input_size=(64, 48)):
        super().__init__()
        self.outputs, self.i = outputs, 0
        self.head_type, self.input_size = head_type, tuple(input_size)
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # so .parameters() / device lookups work

    def rewind(self) -> None:
        self.i = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.i + len(images) > len(self.outputs):
            raise IndexError(f"the oracle holds {len(self.outputs)} outputs; asked for rows "
                             f"{self.i}..{self.i + len(images) - 1} (call rewind() to start again)")
        out = self.outputs[self.i:self.i + len(images)]
        self.i += len(images)
        return out


def oracle_heatmaps(dataset, codec) -> OracleHeatmaps:
    """:class:`OracleHeatmaps` holding ``codec.encode``'s exact target of every crop of ``dataset``
    (items with ``keypoints`` (K, 2) input px and ``visible`` (K,))."""
    targets = torch.stack([codec.encode(dataset[i]["keypoints"], dataset[i]["visible"])["target"]
                           for i in range(len(dataset))])
    return OracleHeatmaps(targets, "heatmap", getattr(codec, "input_size", (64, 48)))


def mean_heatmap_baseline(targets: torch.Tensor, weights: torch.Tensor,
                          evaluate_on: Sequence[torch.Tensor] | None = None) -> dict[str, float]:
    """MSE of the image-blind predictor "each joint's mean target heatmap" (no image used).

    ``targets (N, K, H, W)``, ``weights (N, K)``: the mean per joint is taken over labelled crops
    (weight > 0). Its loss is :func:`heatmap_mse_loss` (the training loss, MMPose normalisation)
    against ``targets`` — or against ``evaluate_on = (targets2, weights2)``. A model whose loss is
    not below this learnt nothing from images beyond where joints usually are. The sets may also
    come chunk by chunk: :func:`mean_heatmap_baseline_chunks`.

    Returns ``{"loss": float, "zero_loss": float}`` (``zero_loss``: predicting all zeros).
    """
    other = None if evaluate_on is None else (lambda: [tuple(evaluate_on)])
    return mean_heatmap_baseline_chunks(lambda: [(targets, weights)], other)


def mean_heatmap_baseline_chunks(train: Callable[[], Iterable], evaluate_on: Callable[[], Iterable] | None = None
                                 ) -> dict[str, float]:
    """:func:`mean_heatmap_baseline` over sets given chunk by chunk, so no whole set of maps is
    ever held: ``train()`` (and ``evaluate_on()``) return a fresh iterable of ``(targets (n, K, H,
    W), weights (n, K))`` chunks. ``train()`` is read twice (the per-joint mean, then its loss);
    every sum runs in float64. Equal to the whole-set computation up to float64 summation order."""
    mean = _blind_mean(train)
    return _blind_loss(mean, train if evaluate_on is None else evaluate_on)


def _blind_mean(train: Callable[[], Iterable]) -> torch.Tensor:
    """Each joint's mean target map ``(K, H, W)`` float64 over the labelled crops of ``train()``."""
    total = count = None
    for t, w in train():
        t, w = _checked_chunk(t, w, None if total is None else tuple(total.shape))
        lab = (w > 0).to(torch.float64)
        part = torch.einsum("nk,nkhw->khw", lab, t)
        total, count = (part, lab.sum(0)) if total is None else (total + part, count + lab.sum(0))
    if total is None:
        raise ValueError("the training set holds no crop: the blind mean needs at least one")
    return total / count.clamp_min(1)[:, None, None]


def _blind_loss(mean: torch.Tensor, chunks: Callable[[], Iterable]) -> dict[str, float]:
    """``{"loss", "zero_loss"}`` of the maps ``mean`` and of zeros against every chunk of ``chunks()``."""
    loss = zero = 0.0
    n = 0
    for t, w in chunks():
        t, w = _checked_chunk(t, w, tuple(mean.shape))
        loss += float(heatmap_mse_loss(mean.expand_as(t), t, w, reduction="sum"))
        zero += float(heatmap_mse_loss(torch.zeros_like(t), t, w, reduction="sum"))
        n += t.numel()
    if n == 0:
        raise ValueError("the evaluated set holds no crop")
    loss, zero = loss / n, zero / n
    if not (math.isfinite(loss) and math.isfinite(zero)):
        raise ValueError("targets give a non-finite loss")
    return {"loss": loss, "zero_loss": zero}


def _checked_chunk(t, w, maps: tuple | None):
    t = torch.as_tensor(t, dtype=torch.float64)
    w = torch.as_tensor(w, dtype=torch.float64)
    if t.ndim != 4 or w.shape != t.shape[:2] or (maps is not None and tuple(t.shape[1:]) != maps):
        raise ValueError(f"targets must be (N, K, H, W) and weights (N, K) with one map shape"
                         f"{'' if maps is None else f' (K, H, W) = {maps}'}, got {tuple(t.shape)} and {tuple(w.shape)}")
    return t, w


#: crops per chunk when the blind baseline reads a set (a 64×48-map chunk of 64 crops: 13 MB in float32)
BLIND_CHUNK = 64


def _crop_chunks(ann, size, codec, chunk: int = BLIND_CHUNK, images: bool = False):
    """A function returning a fresh iterator over ``ann``'s un-augmented crops, ``chunk`` at a time:
    ``(targets, weights)`` or, with ``images``, ``(images, targets, weights)``."""
    ds = TopDownDataset(ann, input_size=size, train=False, target_fn=codec, cache_images=False)  # one pass each

    def chunks():
        for start in range(0, len(ds), chunk):
            items = [ds[i] for i in range(start, min(start + chunk, len(ds)))]
            out = (torch.stack([torch.as_tensor(it["target"]) for it in items]),
                   torch.stack([torch.as_tensor(it["weights"]) for it in items]))
            yield ((torch.stack([torch.as_tensor(it["image"]) for it in items]),) + out) if images else out
    return chunks


def _blind_setup(run, data):
    """The run's preset, the blind predictor's losses and the first evaluation set's crops (read
    chunk by chunk: the default preset's training maps alone are ~0.4 GB in float32)."""
    preset = Preset(**run.config["preset"])  # the run's own budget (also for unnamed presets)
    codec = run.codec()
    train_json, sets = resolve_run_data(data, preset)
    train = _crop_chunks(train_json, preset.input_size, codec)
    set_name, ann = next(iter(sets.items()))
    crops = list(_crop_chunks(ann, preset.input_size, codec, images=True)())
    mean = _blind_mean(train)  # once: the training set is read twice, not four times
    blind = {"train crops": _blind_loss(mean, train)["loss"],
             "evaluation crops": _blind_loss(mean, lambda: [c[1:] for c in crops])["loss"]}
    return preset, set_name, blind, crops


def _blind_row(run, crops, device, last):
    """One run's row: its first and final training losses and its model's loss on the evaluation
    ``crops`` (chunks of ``(images, targets, weights)``), summed chunk by chunk in float64."""
    model = run.model(device).eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for images, t_val, w_val in crops:
            pred = model(images.to(device)).float().cpu()
            total += float(heatmap_mse_loss(pred.double(), t_val.double(), w_val.double(), reduction="sum"))
            n += t_val.numel()
    hist = run.training_history()
    return {"seed": run.seed, "first training loss": float(hist.losses[0]),
            "final training loss": float(hist.final_loss(min(last, hist.steps))),
            "model loss on evaluation crops": total / max(n, 1)}


def blind_verdict(rows, blind: dict, preset, data: str, set_name: str,
                  min_effect: float = 0.1) -> claims.Verdict:
    """The rule of ``engine.training.loss_decreases`` on per-seed ``rows`` (each with ``seed`` and
    ``model loss on evaluation crops``, ``final training loss``) against the blind predictor's
    losses ``blind``: the models' evaluation loss must be below the blind predictor's by at least
    ``min_effect`` × the blind loss (:func:`poselab.claims.compare_seeds`; fast presets and fewer
    than 3 seeds are "inconclusive"). The live run and the recorded replication use it alike."""
    rows = list(rows)
    if not rows:
        raise ValueError("blind_verdict needs at least one seed's row")
    seeds = [int(r["seed"]) for r in rows]
    if len(set(seeds)) < len(seeds):
        raise ValueError(f"each seed must come once (seeds {seeds}): a repeated seed is not another replicate")
    if "evaluation crops" not in blind or not (math.isfinite(float(blind["evaluation crops"]))
                                               and float(blind["evaluation crops"]) > 0):
        raise ValueError(f"blind must hold the blind predictor's finite, positive 'evaluation crops' loss, got {dict(blind)}")
    preset = get_preset(preset) if isinstance(preset, str) else preset
    model_losses = [float(r["model loss on evaluation crops"]) for r in rows]
    evidence = claims.evidence(preset=preset, seeds=[int(r["seed"]) for r in rows],
                               per_seed={"model loss": model_losses,
                                         "final training loss": [float(r["final training loss"]) for r in rows]},
                               input_size=preset.input_size, heatmap_size=preset.heatmap_size,
                               data=f"{data} ({set_name})", blind_losses=dict(blind))
    return claims.compare_seeds(model_losses, [float(blind["evaluation crops"])] * len(rows), lower_is_better=True,
                                min_effect=min_effect * float(blind["evaluation crops"]), metric="MSE",
                                evidence=evidence)


def blind_baseline_for_runs(results, data="synth", device="cpu", last: int = 10,
                            min_effect: float = 0.1) -> dict:
    """``engine.training.loss_decreases`` for heatmap runs of one recipe (one per seed).

    The image-blind predictor (:func:`mean_heatmap_baseline`: each joint's mean target over the
    un-augmented training crops) is scored on the training crops and on the first evaluation
    set's crops. Each run contributes its final training loss (mean of the ``last`` steps) and its
    model's loss on the evaluation crops (the training loss function, MMPose normalisation).
    The verdict is :func:`blind_verdict`.

    Returns ``rows`` (one per seed), ``blind`` (the blind losses), ``verdict`` (a
    :class:`poselab.claims.Verdict` with its evidence).
    """
    results = list(results)
    preset, set_name, blind, crops = _blind_setup(results[0], data)
    rows = [_blind_row(run, crops, device, last) for run in results]
    return {"rows": rows, "blind": blind,
            "verdict": blind_verdict(rows, blind, preset, data, set_name, min_effect=min_effect)}


#: the name of chapter 01's derived replication record (``blind_mse__<preset>__seed<N>.json``)
BLIND_DERIVED = "blind_mse"


def blind_record(run, preset=None, last: int = 10) -> dict:
    """Chapter 01's derived record for one seed's recorded ``mse`` run: its row of
    :func:`blind_baseline_for_runs` and the blind predictor's losses (``poselab replicate 01``)."""
    data = run.data if isinstance(run.data, str) else "synth"
    run_preset, set_name, blind, crops = _blind_setup(run, data)
    return {"row": _blind_row(run, crops, "cpu", last), "blind": blind, "set": set_name, "data": data,
            "preset": run_preset.name}


def blind_from_records(records, min_effect: float = 0.1) -> claims.Verdict:
    """:func:`blind_verdict` on chapter 01's derived records (one per seed). The records must share
    one blind predictor (same data and preset), else ValueError names the seeds that differ."""
    records = list(records)
    if not records:
        raise ValueError("no blind_mse records")
    bad = [i for i, r in enumerate(records) if not ({"seed", "preset", "values"} <= set(r)
                                                   and {"row", "blind", "set", "data"} <= set(r["values"]))]
    if bad:
        raise ValueError(f"records {bad} are not blind_mse records (need seed, preset and values with row, blind, "
                         "set, data: engine.blind_record)")
    first = records[0]["values"]
    odd = [int(r["seed"]) for r in records
           if r["values"]["blind"] != first["blind"] or r["values"]["set"] != first["set"]
           or r["values"]["data"] != first["data"] or r["preset"] != records[0]["preset"]]
    if odd:
        raise ValueError(f"seeds {odd} were scored against another blind predictor than seed "
                         f"{records[0]['seed']} (other data or preset)")
    mixed = [int(r["seed"]) for r in records if int(r["values"]["row"]["seed"]) != int(r["seed"])]
    if mixed:
        raise ValueError(f"records of seed(s) {mixed} hold another seed's row")
    return blind_verdict([r["values"]["row"] for r in records], first["blind"], records[0]["preset"],
                         first["data"], first["set"], min_effect=min_effect)


def recorded_blind_verdict(preset: str = "full", root=None) -> dict:
    """``engine.training.loss_decreases`` judged on the recorded replication (:func:`blind_from_records`
    on ``results/replications/01_train_in_a_minute/blind_mse__<preset>__seed*.json``), in the shape
    of :func:`poselab.experiments.replicate.recorded_verdict`."""
    return recorded_derived_verdict("01_train_in_a_minute", BLIND_DERIVED, blind_from_records,
                                    preset=preset, root=root)


def derived_steps() -> list:
    """What chapter 01 registers with ``poselab replicate`` (``Chapter.replication_derived``)."""
    return [DerivedStep(BLIND_DERIVED, "mse", blind_record)]


def oracle_ceilings(ann_json, input_size=(64, 48), heatmap_size=(16, 12), sigma: float = 2.0) -> dict:
    """AP/EPE of *exact* targets scored like a model (:class:`OracleHeatmaps`): what each
    representation could reach at this size. ``{"MSRA target + quarter": {...},
    "unbiased target + DARK": {...}}`` with AP, AP50, EPE_crop."""
    out = {}
    for name, kw in (("MSRA target + quarter decoder", dict(decoder="quarter")),
                     ("unbiased target + DARK (no blur)", dict(unbiased=True, decoder="dark", dark_kernel=None))):
        codec = HeatmapCodec(tuple(input_size), tuple(heatmap_size), sigma=sigma, **kw)
        ev = Evaluator(ann_json, head="heatmap", codec=codec, input_size=tuple(input_size),
                       return_predictions=False, device="cpu")
        oracle = oracle_heatmaps(ev.dataset(tuple(input_size)), codec)
        oracle.input_size = tuple(input_size)
        r = ev(oracle)
        out[name] = {"AP": r["AP"], "AP50": r["AP50"], "EPE_crop": r["EPE_crop"]}
    return out


DECODERS = {"argmax": dict(decoder="argmax"), "argmax + quarter": dict(decoder="quarter"),
            "DARK (blur 11)": dict(decoder="dark", dark_kernel=11),
            "DARK (no blur)": dict(decoder="dark", dark_kernel=None)}


def decoder_comparison(model, sets: dict, input_size=(64, 48), heatmap_size=(16, 12),
                       sigma: float = 2.0, device="cpu") -> dict:
    """EPE (crop px) of one heatmap model's outputs decoded four ways (:data:`DECODERS`) on each
    evaluation set ``{name: ann_json}``. Returns ``{decoder: {set name: EPE}}``."""
    out: dict[str, dict] = {name: {} for name in DECODERS}
    for set_name, ann in sets.items():
        ds = Evaluator(ann, input_size=tuple(input_size)).dataset(tuple(input_size))
        for name, kw in DECODERS.items():
            codec = HeatmapCodec(tuple(input_size), tuple(heatmap_size), sigma=sigma, **kw)
            p = predict_crops(model, ds, "heatmap", codec, device=device)
            out[name][set_name] = float(end_point_error(p["coords_crop"], p["keypoints_crop"], p["visible"] > 0))
    return out


def largest_persons(predictions: dict, n: int) -> np.ndarray:
    """Indices of the ``n`` persons with the largest boxes in a ``RunResult.predictions`` dict."""
    box = np.asarray(predictions["bbox"], dtype=np.float64)
    return np.argsort(-box[:, 2] * box[:, 3], kind="stable")[: int(n)]


def example_training_item(recipe: str = "mse", preset="default", data="synth", seed: int = 0,
                          index: int = 0) -> dict:
    """One augmented training crop as ``run_recipe`` builds it: ``image`` (H, W, 3) uint8, the
    recipe codec's ``target`` (K, h, w) and ``keypoints`` (K, 2) crop px."""
    r, p = get_recipe(recipe), get_preset(preset)
    codec = CODECS[r.codec](Geometry(p.input_size, p.heatmap_size), **dict(r.codec_params))
    train_json, _ = resolve_run_data(data, p)
    ds = TopDownDataset(train_json, input_size=p.input_size, train=True, target_fn=codec, seed=seed,
                        flip_prob=p.flip_prob)
    item = ds[int(index)]
    return {"image": denormalize_image(item["image"]), "target": item["target"],
            "keypoints": item["keypoints"]}
