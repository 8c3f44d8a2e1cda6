"""Pure functions behind the RSPose chapter (Keles et al., 2025): arrays in, numbers out.

- §4 / Table 1 / Fig. 2: positive–negative imbalance counted from the codecs
  (:func:`heatmap_imbalance`, :func:`simcc_imbalance`, :func:`imbalance_table`).
- Fig. 3: how the gradient splits between positive and negative pixels
  (:func:`gradient_split`, :func:`loss_gradient`, :func:`model_gradient_split`,
  :class:`GradientBalanceProbe` over a training run).
- §5 / App. A: the three error-driven updates on one heatmap (:func:`updates_on_one_heatmap`) and
  an independent per-positive loop (:func:`reference_rank_sort_loop`, the RS reference's loop).
- App. B, Theorem 1: the covariance identity (:func:`theorem1_check`) and a counter-case when
  keypoints are not independent (:func:`theorem1_counterexample`).
- App. C: per-keypoint min-max confidence scaling and its effect on AP (:func:`minmax_fit`,
  :func:`minmax_apply`, :func:`ap_with_keypoint_scores`; one run's two APs :func:`minmax_scaling_aps`
  and the paired rule :func:`minmax_verdict`, shared by the live cell and the recorded replication).
- Eq. 5–6, flat tops: Spatial Rank cannot see where inside the window a map peaks
  (:func:`rank_blind_inside_window`), and what trained maps look like (:func:`model_heatmaps`,
  :func:`plateau_statistics`, :func:`example_maps`, :func:`plateau_sentence`).
- Fig. 3 over training, window and peak-pixel framings (:func:`peak_pixels`,
  :func:`share_over_training`, :func:`gradient_share_sentence`); one map's updates for the
  explorer widget (:func:`single_map_updates`).
- Table 6 as a chain (:func:`ablation_chain_verdict`, with the image-blind guess of
  :func:`blind_ap`); Table E.8 beside our recipes (:data:`TABLE_E8`, :func:`table_e8_rows`).
- App. D, cost: ranking vs MSE step time of the trained runs, paired by seed
  (:func:`run_step_seconds`, :func:`step_cost_verdict`, :func:`step_cost`; its sentence: ``figures.step_cost_sentence``).

Coordinates: ``(x, y)``, pixel centres at integers (DEVELOPERS.md).
"""
from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from poselab import claims
from poselab._numbers import positive_number
from poselab.codecs import HeatmapCodec, encode_dot, encode_gaussian
from poselab.data import TopDownDataset
from poselab.experiments import GENERATED_VAL, get_recipe, run_recipe
from poselab.experiments.cache import cache_root
from poselab.experiments.runner import cached_result
from poselab.experiments.registry import LOSSES
from poselab.experiments.verdicts import DEFAULT_CONVERGE_TOLERANCE, compare_recipes, paired_table, validation_curves
from poselab.losses import heatmap_mse_loss, rspose_loss
from poselab.losses.ranking import (instance_keypoint_similarity, instance_sort_loss, spatial_rank_loss,
                                    spatial_rank_sort_loss, spatial_sort_loss)
from poselab.metrics import coco_keypoint_eval, keypoint_similarity, spearman
from poselab.models import DEFAULT_HEATMAP_STRIDE, build_model
from poselab.paths import writable_folder
from poselab.train.callbacks import Callback
from poselab.train.evaluate import instance_scores, predict_crops

__all__ = [
    "PAPER_SPEARMAN", "PAPER_SIMCC_AP", "spearman_verdict", "simcc_verdict",
    "PAPER_TABLE1", "heatmap_imbalance", "simcc_imbalance", "imbalance_table", "gradient_split",
    "loss_gradient", "model_gradient_split", "GradientBalanceProbe", "reference_rank_sort_loop",
    "updates_on_one_heatmap", "theorem1_check", "theorem1_counterexample", "keypoint_quality",
    "minmax_fit", "minmax_apply", "ap_with_keypoint_scores", "probe_batch", "train_score_range",
    "equivalence_verdict", "init_gradient_shares", "ablation_chain_verdict", "ABLATION_LINKS",
    "combined_path_errors", "rank_blind_inside_window", "model_heatmaps", "plateau_statistics",
    "plateau_sentence", "peak_pixels", "share_over_training", "gradient_share_sentence", "PEAK", "THEOREM1_FORMS",
    "theorem1_identity", "example_maps", "single_map_updates", "blind_ap", "TABLE_E8",
    "recipe_loss_settings", "table_e8_rows", "PAPER_STEP_SECONDS", "PAPER_STEP_RATIO", "STEP_BENCHMARK",
    "run_step_seconds", "step_cost_verdict", "step_cost", "MINMAX_RECIPE", "MINMAX_MARGIN", "minmax_scaling_aps",
    "minmax_verdict", "probed_run",
]

# RSPose Table 1: |N|/|P|
PAPER_TABLE1 = {"dot_2d": 3071, "gaussian_2d": 17, "simcc_dot_x": 383, "simcc_dot_y": 511,
                "simcc_gaussian_x": 1.2, "simcc_gaussian_y": 2}


# ----------------------------------------------------------------------------- imbalance
def heatmap_imbalance(heatmap_size=(64, 48), sigma: float = 2.0, target: str = "gaussian",
                      keypoint=None) -> dict:
    """Positives (label > 0) and negatives of one 2-D target (RSPose §4, Table 1, Fig. 2).

    ``target="gaussian"``: MSRA Gaussian (truncated to its (6σ+1)² window,
    :func:`poselab.codecs.encode_gaussian`); ``"dot"``: one-hot (:func:`encode_dot`).
    ``keypoint`` (x, y) heatmap px; default the map centre (the window fully inside).

    Returns ``{"positives", "negatives", "ratio" (= N/P), "labels" (H, W) float32}``.
    """
    H, W = int(heatmap_size[0]), int(heatmap_size[1])
    kp = torch.tensor([[(W - 1) / 2.0, (H - 1) / 2.0] if keypoint is None else list(keypoint)],
                      dtype=torch.float32)
    if target == "gaussian":
        labels, w = encode_gaussian(kp, None, (H, W), sigma=sigma)
    elif target == "dot":
        labels, w = encode_dot(kp, None, (H, W))
    else:
        raise ValueError(f"target must be 'gaussian' or 'dot', got {target!r}")
    if float(w[0]) == 0:
        raise ValueError(f"keypoint {kp[0].tolist()} gives no target on a {H}x{W} map")
    pos = int((labels > 0).sum())
    neg = H * W - pos
    return {"positives": pos, "negatives": neg, "ratio": neg / pos, "labels": labels[0].numpy()}


def simcc_imbalance(input_size=(256, 192), split_ratio: float = 2.0, sigma: float = 6.0,
                    target: str = "dot", count: str = "nonzero", normalize: bool = True) -> dict:
    """Positives and negatives of SimCC 1-D labels per axis (RSPose Table 1), as MMPose builds them.

    MMPose ``SimCCLabel``: ``L = round(size · k)`` bins per axis, the label a Gaussian over the
    **whole** vector (not truncated) in float32 numpy, ``normalize=True`` divides it by σ√(2π).
    ``count="nonzero"`` counts bins whose float32 label is > 0 (the Gaussian underflows to 0 about
    86 bins from the centre for σ = 6); ``count="3sigma"`` counts the bins within 3σ. ``target="dot"``:
    a one-hot bin per axis.

    Returns ``{"x": {"bins", "positives", "negatives", "ratio"}, "y": {...}}``.
    """
    if count not in ("nonzero", "3sigma"):
        raise ValueError(f"count must be 'nonzero' or '3sigma', got {count!r}")
    if target not in ("dot", "gaussian"):
        raise ValueError(f"target must be 'dot' or 'gaussian', got {target!r}")
    H, W = int(input_size[0]), int(input_size[1])
    split_ratio, sigma = positive_number(split_ratio, "split_ratio"), positive_number(sigma, "sigma")
    if H < 1 or W < 1 or round(min(H, W) * split_ratio) < 2:
        raise ValueError(f"input_size {input_size} at split_ratio {split_ratio} leaves fewer than 2 bins per axis")
    out = {}
    for axis, size in (("x", W), ("y", H)):
        bins = int(round(size * split_ratio))
        centre = int(round((size / 2.0) * split_ratio))
        b = np.arange(bins, dtype=np.float32)
        if target == "dot":
            pos = 1
        elif count == "3sigma":
            pos = int((np.abs(b - centre) <= 3 * sigma).sum())
        else:
            label = np.exp(-((b - centre) ** 2) / np.float32(2 * sigma ** 2)).astype(np.float32)
            if normalize:
                label = label / np.float32(sigma * np.sqrt(np.pi * 2))
            pos = int((label > 0).sum())
        out[axis] = {"bins": bins, "positives": pos, "negatives": bins - pos,
                     "ratio": (bins - pos) / pos}
    return out


def imbalance_table(heatmap_size=(64, 48), sigma: float = 2.0, input_size=(256, 192),
                    split_ratio: float = 2.0, simcc_sigma: float = 6.0) -> list[dict]:
    """RSPose Table 1 recomputed from the codecs, one row per label type, beside the paper."""
    dot = heatmap_imbalance(heatmap_size, target="dot")
    gau = heatmap_imbalance(heatmap_size, sigma, target="gaussian")
    sd = simcc_imbalance(input_size, split_ratio, simcc_sigma, target="dot")
    sg = simcc_imbalance(input_size, split_ratio, simcc_sigma, target="gaussian", count="nonzero")
    s3 = simcc_imbalance(input_size, split_ratio, simcc_sigma, target="gaussian", count="3sigma")
    h, w = heatmap_size
    return [
        {"labels": f"2-D dot, {h}×{w}", "positives": dot["positives"], "ratio": dot["ratio"],
         "paper": PAPER_TABLE1["dot_2d"]},
        {"labels": f"2-D Gaussian σ={sigma:g}, (6σ+1)² window", "positives": gau["positives"],
         "ratio": gau["ratio"], "paper": PAPER_TABLE1["gaussian_2d"]},
        {"labels": "SimCC dot, x", "positives": 1, "ratio": sd["x"]["ratio"],
         "paper": PAPER_TABLE1["simcc_dot_x"]},
        {"labels": "SimCC dot, y", "positives": 1, "ratio": sd["y"]["ratio"],
         "paper": PAPER_TABLE1["simcc_dot_y"]},
        {"labels": f"SimCC Gaussian σ={simcc_sigma:g}, float32 label > 0, x",
         "positives": sg["x"]["positives"], "ratio": sg["x"]["ratio"],
         "paper": PAPER_TABLE1["simcc_gaussian_x"]},
        {"labels": f"SimCC Gaussian σ={simcc_sigma:g}, float32 label > 0, y",
         "positives": sg["y"]["positives"], "ratio": sg["y"]["ratio"],
         "paper": PAPER_TABLE1["simcc_gaussian_y"]},
        {"labels": f"SimCC Gaussian σ={simcc_sigma:g}, within 3σ, x",
         "positives": s3["x"]["positives"], "ratio": s3["x"]["ratio"], "paper": None},
        {"labels": f"SimCC Gaussian σ={simcc_sigma:g}, within 3σ, y",
         "positives": s3["y"]["positives"], "ratio": s3["y"]["ratio"], "paper": None},
    ]


# ----------------------------------------------------------------------------- gradients
def gradient_split(grad, positives) -> dict:
    """Total gradient on positive vs negative pixels (RSPose Fig. 3).

    Returns ``pos_abs = Σ_P |g|``, ``neg_abs = Σ_N |g|``, the signed sums ``pos_sum``, ``neg_sum``,
    ``neg_share = neg_abs / (pos_abs + neg_abs)`` and ``balance_error = |pos_sum + neg_sum| /
    pos_abs`` (0 for a perfectly balanced update; NaN when ``pos_abs`` is 0).
    """
    g = torch.as_tensor(grad).detach().double()
    p = torch.as_tensor(positives).to(torch.bool)
    if p.shape != g.shape:
        raise ValueError(f"positives must have the gradient's shape {tuple(g.shape)}, got {tuple(p.shape)}")
    if not bool(torch.isfinite(g).all()):
        raise ValueError("grad contains NaN or Inf: a diverged loss has no positive / negative split")
    pos_abs, neg_abs = float(g[p].abs().sum()), float(g[~p].abs().sum())
    pos_sum, neg_sum = float(g[p].sum()), float(g[~p].sum())
    total = pos_abs + neg_abs
    return {"pos_abs": pos_abs, "neg_abs": neg_abs, "pos_sum": pos_sum, "neg_sum": neg_sum,
            "neg_share": neg_abs / total if total > 0 else float("nan"),
            "balance_error": abs(pos_sum + neg_sum) / pos_abs if pos_abs > 0 else float("nan")}


LOSS_NAMES = ("mse", "spatial_rank", "spatial_rs")


def loss_gradient(loss: str, heatmaps, labels, visible=None) -> torch.Tensor:
    """Gradient (or error-driven update) of ``loss`` w.r.t. ``heatmaps (B, K, H, W)``.

    ``loss``: ``"mse"`` (:func:`poselab.losses.heatmap_mse_loss`), ``"spatial_rank"`` (δ 0.4) or
    ``"spatial_rs"`` (rank + 2·sort, δ 0.4 / 1.5).
    """
    x = torch.as_tensor(heatmaps).detach().clone().requires_grad_(True)
    y = torch.as_tensor(labels).to(x.dtype)
    vis = None if visible is None else torch.as_tensor(visible).to(x.dtype)
    if loss == "mse":
        value = heatmap_mse_loss(x, y, vis)
    elif loss == "spatial_rank":
        value = spatial_rank_loss(x, y, vis)
    elif loss == "spatial_rs":
        value = spatial_rank_sort_loss(x, y, vis)
    else:
        raise ValueError(f"loss must be one of {LOSS_NAMES}, got {loss!r}")
    value.backward()
    return x.grad


PEAK = " (peak pixel)"


def peak_pixels(labels, visible=None) -> torch.Tensor:
    """The paper's dot framing (§4: "a single positive pixel"): a bool map with only each visible
    map's label maximum (the joint's rounded pixel) set; maps without positives stay empty."""
    y = torch.as_tensor(labels)
    B, K = y.shape[:2]
    flat = y.reshape(B * K, -1)
    out = torch.zeros_like(flat, dtype=torch.bool)
    has = flat.amax(1) > 0
    if visible is not None:
        has &= torch.as_tensor(visible).reshape(-1) > 0
    out[torch.arange(B * K)[has], flat.argmax(1)[has]] = True
    return out.reshape(y.shape)


def model_gradient_split(model, images, labels, visible, losses=LOSS_NAMES, peak: bool = False) -> dict:
    """:func:`gradient_split` of each loss on the heatmaps ``model(images)`` (no parameter
    update). Positives: ``labels > 0`` of the visible joints (the Gaussian window); with
    ``peak=True`` also ``"<loss> (peak pixel)"``: the same update split with the label's peak
    pixel as the only positive (:func:`peak_pixels`, the paper's dot framing of Fig. 3)."""
    was = model.training
    model.eval()
    with torch.no_grad():
        out = model(images).double()  # the loss's own update, not float32 rounding
    model.train(was)
    pos = (labels > 0) & (visible > 0)[..., None, None]
    dot = peak_pixels(labels, visible) if peak else None
    split = {}
    for name in losses:
        grad = loss_gradient(name, out, labels, visible)
        split[name] = gradient_split(grad, pos)
        if peak:
            split[name + PEAK] = gradient_split(grad, dot)
    return split


def share_over_training(records, key: str = "mse", skip_initial: bool = True) -> float:
    """Mean negatives' share of Σ|g| over the probes of one run (:class:`GradientBalanceProbe`
    records; ``key`` e.g. ``"mse"`` or ``"mse (peak pixel)"``), the initial probe (step 0) left out
    by default: Fig. 3 is about training, not the untrained head."""
    if any(not isinstance(r, dict) or "step" not in r or key not in r for r in records):
        raise ValueError(f"records must be GradientBalanceProbe records, each with 'step' and {key!r}")
    vals = [r[key]["neg_share"] for r in records if not (skip_initial and r["step"] == 0)]
    if not vals:
        raise ValueError(f"no probe of {key!r} after step 0: probe more often or train longer")
    return float(np.mean(vals))


def _span(values) -> str:
    v = np.asarray(values, dtype=np.float64)
    return f"{v.min():.2f}" if np.isclose(v.min(), v.max(), atol=5e-3) else f"{v.min():.2f}–{v.max():.2f}"


def gradient_share_sentence(shares: dict, initial=None) -> str:
    """One sentence on where MSE's gradient goes, from the numbers: ``shares`` maps a framing
    (e.g. "peak pixel", "window") to per-seed negatives' shares over training; ``initial`` the
    per-seed shares of untrained models with the window as positives (optional)."""
    parts = []
    for framing, vals in shares.items():
        v = np.asarray(vals, dtype=np.float64)
        side = ("the negatives dominate" if v.min() > 0.5 else
                "the positives dominate" if v.max() < 0.5 else "neither side dominates on every seed")
        only = "the only positive" if framing == "peak pixel" else "positives"
        parts.append(f"with the {framing} as {only} the negatives carry {_span(v)} of MSE's Σ|g| over "
                     f"training ({side})")
    text = "; ".join(parts)
    if initial is not None:
        text += f"; the untrained head at the paper's 64×48 maps gives {_span(initial)} with the window"
    return (text[0].upper() + text[1:] + ". Spatial Rank's update sums to zero on every map whatever "
            "N/P is: what it takes from a positive it hands to the negatives above it.")


class GradientBalanceProbe(Callback):
    """Training callback: every ``every`` steps, :func:`model_gradient_split` of each loss on a
    fixed probe batch (heatmap models). ``records``: list of ``{"step", loss: split}`` (and
    ``"<loss> (peak pixel)"`` splits with ``peak=True``)."""

    def __init__(self, images, labels, visible, every: int = 10, losses=LOSS_NAMES, peak: bool = False):
        self.images, self.labels, self.visible = images, labels, visible
        self.every, self.losses, self.peak = max(1, int(every)), tuple(losses), bool(peak)
        self.records: list[dict] = []

    def _probe(self, state) -> None:
        dev = next(state.model.parameters()).device
        split = model_gradient_split(state.model, self.images.to(dev), self.labels.to(dev),
                                     self.visible.to(dev), self.losses, self.peak)
        self.records.append({"step": int(state.step), **split})

    def on_fit_start(self, state) -> None:
        self._probe(state)

    def on_step_end(self, state) -> None:
        if state.step % self.every == 0:
            self._probe(state)


def _probe_path(run, probe: GradientBalanceProbe) -> Path:
    """Where the records of ``probe`` watching ``run`` are kept: beside the run cache (never in a
    cache entry's folder, whose files are checksummed), keyed by the run's cache key and the
    probe's batch (bytes) and settings."""
    h = hashlib.sha256()
    for t in (probe.images, probe.labels, probe.visible):
        a = torch.as_tensor(t).detach().cpu().contiguous()
        h.update(f"{a.dtype}{tuple(a.shape)}".encode())
        h.update(a.numpy().tobytes())
    h.update(json.dumps([probe.every, list(probe.losses), probe.peak]).encode())
    return cache_root() / "_tracks" / "gradient_balance" / f"{run.key[:32]}-{h.hexdigest()[:16]}.json"


def probed_run(recipe, probe: GradientBalanceProbe, *, data="synth", preset="default", seed: int = 0,
               device="auto"):
    """:func:`poselab.experiments.run_recipe` with ``probe`` watching the training, sharing the
    run cache with the plain run.

    The probe only reads the model (evaluation mode, no gradient to the weights, no random
    numbers), so the run trains exactly as it does without it (tested: the same losses and
    weights) and is cached as the plain run, which the chapter's comparison then reuses. The
    probe's records are kept beside the cache (:func:`_probe_path`). A cached run whose records
    are kept trains nothing (a re-opened chapter); a cached run without them trains once more,
    with the probe, at the cached run's thread count; a run not cached trains with the probe and
    is cached. Returns the :class:`~poselab.experiments.runner.RunResult`; ``probe.records``
    are filled either way."""
    hit = cached_result(recipe, data=data, preset=preset, seed=seed, device=device)
    if hit is not None:
        path = _probe_path(hit, probe)
        try:
            records = json.loads(path.read_text())
        except (OSError, ValueError):
            records = None
        if isinstance(records, list) and records and all(
                isinstance(r, dict) and "step" in r and all(name in r for name in probe.losses) for r in records):
            probe.records = records
            return hit
        probe.records = []
        res = run_recipe(recipe, data=data, preset=preset, seed=seed, device=device, callbacks=[probe],
                         cache=False, threads=hit.threads)
    else:
        probe.records = []
        res = run_recipe(recipe, data=data, preset=preset, seed=seed, device=device, callbacks=[probe])
    path = _probe_path(res, probe)
    writable_folder(path.parent, "the gradient-balance records beside the run cache")
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(probe.records))
    os.replace(tmp, path)
    return res


# ----------------------------------------------------------------------------- the updates
def reference_rank_sort_loop(scores, labels, visible=None, rank_delta: float = 0.4,
                             sort_delta: float = 1.5, positive_threshold: float = 0.0,
                             eps: float = 1e-10) -> dict:
    """RSPose App. A update by the RS reference's loop (Oksuz et al., ``RankSort``): one problem and one positive at a
    time, torch ops over that problem's pixels. Slow on purpose — the independent reference of
    :mod:`poselab.losses.ranking` (chapter claim, benchmark).

    Returns ``{"rank", "sort"}`` (means over problems with positives) and ``{"grad_rank",
    "grad_sort"}`` shaped like ``scores`` (divided by |P| and by the number of problems).
    """
    s_all = torch.as_tensor(scores).detach()
    B, K = s_all.shape[:2]
    s_all = s_all.reshape(B * K, -1)
    y_all = torch.as_tensor(labels).detach().reshape(B * K, -1).to(s_all.dtype)
    vis = (torch.ones(B * K) if visible is None else torch.as_tensor(visible).reshape(-1)) > 0
    g_r, g_s = torch.zeros_like(s_all), torch.zeros_like(s_all)
    lr, ls = [], []
    for r in range(B * K):
        pos = (y_all[r] > positive_threshold) & vis[r]
        if not bool(pos.any()):
            continue
        fg, fy, bg = s_all[r][pos], y_all[r][pos], s_all[r][~pos]
        fg_r, fg_s = torch.zeros_like(fg), torch.zeros_like(fg)
        bg_r = torch.zeros_like(bg)
        rank_err, sort_err = torch.zeros_like(fg), torch.zeros_like(fg)
        for ii in torch.argsort(fg).tolist():
            hb = torch.clamp((bg - fg[ii]) / (2 * rank_delta) + 0.5, 0, 1)
            fp = hb.sum()
            rank_pos = torch.clamp((fg - fg[ii]) / (2 * rank_delta) + 0.5, 0, 1).sum()
            rank_err[ii] = fp / (rank_pos + fp)
            hs = torch.clamp((fg - fg[ii]) / (2 * sort_delta) + 0.5, 0, 1)
            ge = fy >= fy[ii]
            cur = (hs * (1 - fy)).sum() / hs.sum()
            tgt = (hs * ge * (1 - fy)).sum() / (hs * ge).sum()
            sort_err[ii] = cur - tgt
            if fp > eps:
                fg_r[ii] -= rank_err[ii]
                bg_r += hb * (rank_err[ii] / fp)
            missorted = hs * (~ge)
            den = missorted.sum()
            if den > eps:
                fg_s[ii] -= sort_err[ii]
                fg_s += missorted * (sort_err[ii] / den)
        n = float(pos.sum())
        g_r[r, pos], g_r[r, ~pos], g_s[r, pos] = fg_r / n, bg_r / n, fg_s / n
        lr.append(float(rank_err.mean()))
        ls.append(float(sort_err.mean()))
    m = max(len(lr), 1)
    shape = torch.as_tensor(scores).shape
    return {"rank": sum(lr) / m, "sort": sum(ls) / m, "grad_rank": (g_r / m).reshape(shape),
            "grad_sort": (g_s / m).reshape(shape), "problems": len(lr)}


def updates_on_one_heatmap(size=(32, 24), sigma: float = 2.0, shift=(2.0, 1.0),
                           persons: int = 4, noise: float = 0.1, seed: int = 0) -> dict:
    """How MSE and the three losses update one predicted heatmap (RSPose §5, App. A; float64).

    ``persons`` copies of one joint, each predicted as a Gaussian blob displaced by
    ``shift · b`` px (person ``b = 0`` exact) with peak ``1 − 0.1·b`` plus noise — so the most
    confident heatmap is the best localised except for persons 1 and 2, whose peaks are swapped:
    person 1 is under-confident for its localisation, and Instance-Sort raises its maximum.
    Returns the maps of person 1: ``target``,
    ``prediction`` and the updates ``mse``, ``spatial_rank``, ``spatial_sort``,
    ``instance_sort`` (each ``(H, W)``), plus ``confidence`` and ``ks`` of all persons.
    """
    H, W = size
    g = torch.Generator().manual_seed(seed)
    kp = torch.tensor([[[W / 2.0 - 0.3, H / 2.0 + 0.2]]], dtype=torch.float64).repeat(persons, 1, 1)
    labels, vis = encode_gaussian(kp, None, size, sigma=sigma, dtype=torch.float64)
    if not (len(shift) == 2 and all(math.isfinite(float(v)) for v in shift)):
        raise ValueError(f"shift must be two finite numbers (dx, dy) px, got {shift!r}")
    off = torch.tensor(shift, dtype=torch.float64) * torch.arange(persons, dtype=torch.float64)[:, None, None]
    blob, _ = encode_gaussian(kp + off, None, size, sigma=sigma, unbiased=True, dtype=torch.float64)
    peak = 1.0 - 0.1 * torch.arange(persons, dtype=torch.float64)
    if persons > 2:
        peak[1], peak[2] = peak[2].clone(), peak[1].clone()
    pred = blob * peak[:, None, None, None] + noise * torch.randn(blob.shape, generator=g,
                                                                  dtype=torch.float64)
    areas = torch.full((persons,), H * W / 2.0, dtype=torch.float64)
    sig = [0.079]  # a wrist's COCO sigma
    maps = {}
    for name, fn in (("mse", lambda x: heatmap_mse_loss(x, labels, vis)),
                     ("spatial_rank", lambda x: spatial_rank_loss(x, labels, vis)),
                     ("spatial_sort", lambda x: spatial_sort_loss(x, labels, vis)),
                     ("instance_sort", lambda x: instance_sort_loss(x, kp, vis, areas, sigmas=sig))):
        x = pred.clone().requires_grad_(True)
        fn(x).backward()
        maps[name] = x.grad[1, 0].numpy()
    conf, ks = instance_keypoint_similarity(pred, kp, areas, sig)
    return {"target": labels[1, 0].numpy(), "prediction": pred[1, 0].numpy(),
            "keypoint": kp[1, 0].numpy(), "confidence": conf[:, 0].numpy(), "ks": ks[:, 0].numpy(),
            **maps}


def single_map_updates(size=(32, 24), sigma: float = 2.0, offset=(0.0, 0.0), sharpness: float = 1.0,
                       rank_delta: float = 0.4, sort_delta: float = 1.5, noise: float = 0.05,
                       seed: int = 0) -> dict:
    """MSE's gradient and the Spatial Rank / Spatial Sort updates on one predicted map (float64),
    for :func:`poselab.chapters.rspose.widgets.update_explorer`.

    The target is the MSRA Gaussian (σ) of a joint at the map centre; the prediction a Gaussian
    blob of width ``σ / sharpness`` (peak 1) displaced by ``offset = (dx, dy)`` px, plus
    ``noise``·N(0, 1) (fixed ``seed``). δ's in score units (the blob's peak is 1).

    Returns ``{"target", "prediction", "mse", "spatial_rank", "spatial_sort"}`` ``(H, W)`` arrays,
    ``"keypoint"`` (x, y) and ``"loss"`` ``{name: value}``.
    """
    H, W = int(size[0]), int(size[1])
    if not (np.isfinite(sharpness) and sharpness > 0):
        raise ValueError(f"sharpness must be a finite number > 0, got {sharpness!r}")
    dx, dy = (float(v) for v in offset)
    if not (math.isfinite(dx) and math.isfinite(dy)):
        raise ValueError(f"offset must be two finite numbers (dx, dy) px, got {offset!r}")
    kp = torch.tensor([[[(W - 1) / 2.0, (H - 1) / 2.0]]], dtype=torch.float64)
    labels, vis = encode_gaussian(kp, None, (H, W), sigma=sigma, dtype=torch.float64)
    if float(vis.sum()) == 0:
        raise ValueError(f"a {H}x{W} map has no target for σ = {sigma}")
    blob, _ = encode_gaussian(kp + torch.tensor([dx, dy], dtype=torch.float64), None, (H, W),
                              sigma=sigma / float(sharpness), unbiased=True, dtype=torch.float64)
    g = torch.Generator().manual_seed(int(seed))
    pred = blob + float(noise) * torch.randn(blob.shape, generator=g, dtype=torch.float64)
    out = {"target": labels[0, 0].numpy(), "prediction": pred[0, 0].numpy(), "keypoint": tuple(kp[0, 0].tolist()),
           "loss": {}}
    for name, fn in (("mse", lambda x: heatmap_mse_loss(x, labels, vis)),
                     ("spatial_rank", lambda x: spatial_rank_loss(x, labels, vis, rank_delta)),
                     ("spatial_sort", lambda x: spatial_sort_loss(x, labels, vis, sort_delta))):
        x = pred.clone().requires_grad_(True)
        loss = fn(x)
        loss.backward()
        out[name] = x.grad[0, 0].numpy()
        out["loss"][name] = float(loss.detach())
    return out


# ----------------------------------------------------------------------------- Theorem 1
def theorem1_check(quality, confidence) -> dict:
    """RSPose Theorem 1 (App. B) on an ``(n, K)`` sample of keypoint localisation qualities L and
    confidences C, with OKS = mean_k L_k and Conf = mean_k C_k (the proof's Eq. B.2).

    - ``cov``: Cov(OKS, Conf) (population covariance, 1/n);
    - ``double_sum``: (1/K²) Σ_j Σ_m Cov(L_j, C_m) (Eq. B.4; equal to ``cov`` for every sample);
    - ``diagonal``: (1/K²) Σ_k Cov(L_k, C_k) — what B.4 becomes when the cross-covariances vanish;
    - ``paper_b5``: (1/K) Σ_k Cov(L_k, C_k) — Eq. B.5 as printed (a factor K off the line above);
    - ``identity_error``: |cov − double_sum|; ``cross_share``: the off-diagonal part / |cov|.
    """
    L = np.asarray(quality, dtype=np.float64)
    C = np.asarray(confidence, dtype=np.float64)
    if L.ndim != 2 or L.shape != C.shape or L.shape[0] < 2:
        raise ValueError(f"quality and confidence must be (n >= 2, K) arrays of one shape, got "
                         f"{L.shape} and {C.shape}")
    n, K = L.shape
    oks, conf = L.mean(1), C.mean(1)
    cov = float(((oks - oks.mean()) * (conf - conf.mean())).mean())
    cross = (L - L.mean(0)).T @ (C - C.mean(0)) / n        # (K, K): Cov(L_j, C_m)
    double_sum = float(cross.sum() / K ** 2)
    diag = float(np.trace(cross))
    return {"cov": cov, "double_sum": double_sum, "diagonal": diag / K ** 2,
            "paper_b5": diag / K, "identity_error": abs(cov - double_sum),
            "cross_share": abs(double_sum - diag / K ** 2) / abs(cov) if cov else float("nan")}


THEOREM1_FORMS = ("B.4", "B.5 corrected", "B.5 as printed")


def theorem1_identity(quality, confidence, form: str = "B.4", tol: float = 1e-9) -> dict:
    """Does one printed form of Cov(OKS, Conf) equal the covariance on this sample?

    - ``"B.4"``: (1/K²) Σ_j Σ_m Cov(L_j, C_m) — exact for every sample (bilinearity);
    - ``"B.5 corrected"``: (1/K²) Σ_k Cov(L_k, C_k) — exact only when the cross-covariances vanish;
    - ``"B.5 as printed"``: (1/K) Σ_k Cov(L_k, C_k) — K times the corrected form.

    Returns ``{"form", "value", "cov", "relative_error", "holds"}`` with ``holds`` =
    ``relative_error <= tol``: the check rejects B.5 on any sample with a nonzero diagonal, and the
    corrected B.5 on a sample whose keypoints covary across joints.
    """
    if form not in THEOREM1_FORMS:
        raise ValueError(f"form must be one of {THEOREM1_FORMS}, got {form!r}")
    c = theorem1_check(quality, confidence)
    value = {"B.4": c["double_sum"], "B.5 corrected": c["diagonal"], "B.5 as printed": c["paper_b5"]}[form]
    scale = max(abs(c["cov"]), 1e-300)
    rel = abs(value - c["cov"]) / scale
    return {"form": form, "value": value, "cov": c["cov"], "relative_error": rel, "holds": bool(rel <= tol)}


def theorem1_counterexample(n: int = 2000, seed: int = 0, cross: float = -3.0) -> dict:
    """Two 'models' on the same qualities (K = 2, L independent, equal variances): model A has
    C = L; model B has C₁ = 2L₁ + ``cross``·L₂, C₂ = L₂. With ``cross = −3`` B has the larger
    Σ_k Cov(L_k, C_k) but the smaller Cov(OKS, Conf) — Theorem 1's conclusion needs its
    independence assumption (Cov(L_j, C_m) = 0 for j ≠ m), which B breaks. ``holds``: the
    diagonal rises *and* the covariance falls (the conclusion fails); with ``cross = 0`` (B
    independent) the covariance rises with the diagonal and ``holds`` is False."""
    rng = np.random.default_rng(seed)
    L = rng.random((n, 2))
    a = theorem1_check(L, L)
    b = theorem1_check(L, np.stack([2 * L[:, 0] + float(cross) * L[:, 1], L[:, 1]], 1))
    up, down = b["diagonal"] > a["diagonal"], b["cov"] < a["cov"]
    return {"A": a, "B": b, "diagonal_increases": up, "cov_decreases": down, "holds": bool(up and down)}


def keypoint_quality(predictions: dict, ann_json) -> tuple[np.ndarray, np.ndarray]:
    """Per-keypoint KS (COCO, κ = 2σ, GT area from ``ann_json`` by ``ann_id``) and confidences of a
    run's predictions (:meth:`RunResult.predictions`). Unlabelled joints get the person's mean KS
    over labelled ones, so ``L.mean(1)`` is the person's OKS. Persons with no labelled joint are
    dropped. Returns ``(L (n, K), C (n, K))``."""
    anns = json.loads(Path(ann_json).read_text())["annotations"]
    area = {int(a["id"]): float(a["area"]) for a in anns}
    ids = np.asarray(predictions["ann_id"]).astype(int)
    areas = np.array([area[i] for i in ids])
    vis = np.asarray(predictions["visible"]) > 0
    ks = keypoint_similarity(np.asarray(predictions["coords"]), np.asarray(predictions["keypoints"]),
                             areas)
    keep = vis.any(1)
    mean = (ks * vis).sum(1) / np.maximum(vis.sum(1), 1)
    L = np.where(vis, ks, mean[:, None])
    return L[keep], np.asarray(predictions["scores"], dtype=np.float64)[keep]


# ----------------------------------------------------------------------------- App. C
def minmax_fit(keypoint_scores) -> tuple[np.ndarray, np.ndarray]:
    """Per-keypoint minima and maxima ``(K,)`` of ``(N, K)`` confidences (RSPose App. C; observed
    on the training set)."""
    s = np.asarray(keypoint_scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] == 0:
        raise ValueError(f"keypoint_scores must be a non-empty (N, K) array, got shape {s.shape}")
    return s.min(0), s.max(0)


def minmax_apply(keypoint_scores, lo, hi, clip: bool = True) -> np.ndarray:
    """``(s − lo_k)/(hi_k − lo_k)`` per keypoint (clipped to [0, 1] by default; a keypoint with
    ``hi = lo`` maps to 0.5)."""
    s = np.asarray(keypoint_scores, dtype=np.float64)
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    span = hi - lo
    if np.any(span < 0) or not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise ValueError("lo and hi must be finite with lo <= hi per keypoint (minmax_fit's output)")
    out = np.where(span > 0, (s - lo) / np.where(span > 0, span, 1.0), 0.5)
    return np.clip(out, 0.0, 1.0) if clip else out


def ap_with_keypoint_scores(predictions: dict, ann_json, keypoint_scores, score_fn=None) -> dict:
    """COCO keypoint AP/AR of a run's predictions with other keypoint confidences.

    The instance score is ``score_fn(keypoint_scores)`` (default MMPose ``bbox_keypoint``: mean of
    the keypoint scores above 0.2); coordinates are the run's. Returns pycocotools' AP, AP50, AP75,
    AR and the Spearman correlation of instance score with matched OKS.
    """
    s = np.asarray(keypoint_scores, dtype=np.float64)
    inst = instance_scores(s, 1.0, 0.2) if score_fn is None else np.asarray(score_fn(s), np.float64)
    coords = np.asarray(predictions["coords"], dtype=np.float64)
    ids = np.asarray(predictions["image_id"]).astype(int)
    results = [{"image_id": int(ids[i]), "category_id": 1,
                "keypoints": np.concatenate([coords[i], s[i][:, None]], 1).reshape(-1).tolist(),
                "score": float(inst[i])} for i in range(len(inst))]
    coco = coco_keypoint_eval(ann_json, results)
    oks = np.asarray(coco["matched_oks"], dtype=np.float64)
    rho = float(spearman(inst, oks)) if np.ptp(inst) > 0 and np.ptp(oks) > 0 else float("nan")
    return {**{k: float(coco[k]) for k in ("AP", "AP50", "AP75", "AR")}, "spearman": rho}


# ----------------------------------------------------------------------------- chapter helpers
def probe_batch(ann_json, input_size=(64, 48), sigma: float = 2.0, n: int = 16, heatmap_size=None):
    """A fixed batch of ``n`` evaluation crops with MSRA Gaussian targets for
    :class:`GradientBalanceProbe`: ``(images (n, 3, H, W), labels (n, K, h, w), weights (n, K))``.

    ``heatmap_size`` ``(h, w)``: the trained model's output size — pass the preset's
    ``heatmap_size`` (None: :data:`poselab.models.DEFAULT_HEATMAP_STRIDE`)."""
    s = DEFAULT_HEATMAP_STRIDE
    h, w = ((input_size[0] // s, input_size[1] // s) if heatmap_size is None
            else (int(heatmap_size[0]), int(heatmap_size[1])))
    if h < 1 or w < 1:
        raise ValueError(f"heatmap_size must be positive (h, w), got {heatmap_size!r}")
    ds = TopDownDataset(ann_json, input_size=input_size, train=False,
                        target_fn=HeatmapCodec(input_size, (h, w), sigma=sigma))
    items = [ds[i] for i in range(min(n, len(ds)))]
    return (torch.stack([it["image"] for it in items]), torch.stack([it["target"] for it in items]),
            torch.stack([it["weights"] for it in items]))


def train_score_range(run, train_json, n_persons: int = 256, device="cpu"):
    """Per-keypoint minima and maxima of a trained run's confidences on (up to ``n_persons``)
    training crops — RSPose App. C's statistics, "observed on the training set"."""
    recipe = run.recipe_object()
    geometry = run.geometry()
    ds = TopDownDataset(train_json, input_size=geometry.input_size, train=False)
    ds.persons = ds.persons[:n_persons]
    pred = predict_crops(run.model(device), ds, recipe.head, run.codec(), device=device)
    return minmax_fit(pred["scores"])


def equivalence_verdict(ours, theirs, *, margin: float, metric: str = "AP", preset=None,
                        evidence=None, paired: bool = False):
    """Verdict for "``ours`` and ``theirs`` agree within ``margin``" from two
    :func:`poselab.claims.compare_seeds` calls (each side "beats" the other by ≥ margin?):
    "reproduced" when both are "not reproduced" (the interval of the difference lies inside
    ±margin), "not reproduced" when either is "reproduced", else "inconclusive". ``paired=True``
    when the i-th values of both sides come from the same model (App. C: one model's AP with raw
    and with scaled confidences): the paired interval of the per-model differences."""
    up = claims.compare_seeds(ours, theirs, lower_is_better=False, min_effect=margin,
                              metric=metric, preset=preset, evidence=evidence, paired=paired)
    down = claims.compare_seeds(theirs, ours, lower_is_better=False, min_effect=margin,
                                metric=metric, preset=preset, evidence=evidence, paired=paired)
    summary = {"ours_higher": up.summary, "theirs_higher": down.summary, "margin": margin}
    if up.verdict == "not reproduced" and down.verdict == "not reproduced":
        return claims.Verdict("reproduced", f"{metric} differs by less than {margin:g} "
                              f"(interval {up.summary.get('interval')})", summary, up.evidence)
    if "reproduced" in (up.verdict, down.verdict):
        side = up if up.verdict == "reproduced" else down
        return claims.Verdict("not reproduced", f"{metric} changes by at least {margin:g}: "
                              f"{side.reason}", summary, up.evidence)
    return claims.Verdict("inconclusive", f"{up.reason}; {down.reason}", summary, up.evidence)


#: App. C's claim is judged on this recipe (Spatial RS + Instance-Sort: the model whose confidences
#: the paper rescales), live and on the recorded replication.
MINMAX_RECIPE = "spatial_rs_is"
#: |AP(min-max) − AP(raw)| below this counts as "unchanged" (the chapter's ``minmax_margin``).
MINMAX_MARGIN = 0.005


def minmax_scaling_aps(run, train_json, ann_json, *, score_persons: int = 256, set_name: str = GENERATED_VAL,
                       device="cpu") -> dict:
    """RSPose App. C on one trained run: COCO AP of its predictions on ``ann_json`` (the run's
    cached predictions of ``set_name``) with raw keypoint confidences and with confidences
    min-max scaled per keypoint by the minima and maxima the model gives on ``score_persons``
    training crops of ``train_json`` (:func:`train_score_range`, :func:`minmax_apply`); same
    coordinates, MMPose's instance score. Returns ``{"raw": AP, "min-max": AP}``: the per-run
    value the chapter's live cell and the replication's derived step share."""
    if isinstance(score_persons, bool) or not isinstance(score_persons, int) or score_persons < 1:
        raise ValueError(f"score_persons must be an int >= 1 (training crops for the min-max statistics), "
                         f"got {score_persons!r}")
    pred = run.predictions(set_name)
    lo, hi = train_score_range(run, train_json, score_persons, device)
    raw = ap_with_keypoint_scores(pred, ann_json, pred["scores"])["AP"]
    scaled = ap_with_keypoint_scores(pred, ann_json, minmax_apply(pred["scores"], lo, hi))["AP"]
    return {"raw": float(raw), "min-max": float(scaled)}


def _ap_values(values, name: str) -> list[float]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a list of AP values (one per seed), got {type(values).__name__}")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) \
                or not (math.isfinite(float(v)) and 0.0 <= float(v) <= 1.0):
            raise ValueError(f"{name}[{i}] must be an AP in [0, 1], got {v!r}")
        out.append(float(v))
    return out


def minmax_verdict(raw, scaled, *, seeds, margin: float = MINMAX_MARGIN, preset=None, data: str = "synth",
                   input_size=(0, 0), heatmap_size=(0, 0), recipe: str = MINMAX_RECIPE) -> claims.Verdict:
    """``rspose.scaling.minmax_keeps_ap`` (App. C: min-max scaling leaves AP unchanged, 79.9 →
    79.9): :func:`equivalence_verdict` of the per-seed APs with min-max scaled and with raw
    confidences, **paired** (the i-th values are one model scored two ways), within ``margin``.
    "reproduced" when the paired interval of the change lies inside ±margin, "not reproduced"
    when it is wholly beyond one side, else "inconclusive" (also under the ``fast`` preset or with
    fewer than 3 seeds). One rule for the live run and the recorded replication
    (:func:`poselab.chapters.rspose.replication.minmax_from_records`).

    ``raw``, ``scaled``: AP per seed in ``seeds``' order; bad values raise ValueError naming them.

    Example:
        >>> minmax_verdict([0.543, 0.513, 0.560], [0.542, 0.5128, 0.5591], seeds=[0, 1, 2]).verdict
        'reproduced'
        >>> minmax_verdict([0.543, 0.513, 0.560], [0.553, 0.522, 0.571], seeds=[0, 1, 2]).verdict
        'not reproduced'
    """
    raw, scaled = _ap_values(raw, "raw"), _ap_values(scaled, "scaled")
    seeds = [int(s) for s in seeds]
    if not (len(raw) == len(scaled) == len(seeds)) or not seeds:
        raise ValueError(f"raw, scaled and seeds must be non-empty and of one length (one per seed), got "
                         f"{len(raw)}, {len(scaled)} and {len(seeds)}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct (values are paired by seed), got {seeds}")
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"margin must be a finite AP difference > 0, got {margin!r}")
    ev = claims.evidence(preset=preset if preset is not None else "unknown", seeds=seeds, input_size=input_size,
                         heatmap_size=heatmap_size, data=data,
                         per_seed={f"{recipe} AP raw": raw, f"{recipe} AP min-max": scaled})
    return equivalence_verdict(scaled, raw, margin=float(margin), preset=getattr(preset, "name", preset),
                               evidence=ev, paired=True)  # the same model scored two ways


def init_gradient_shares(ann_json, input_size=(256, 192), seeds=(0, 1, 2), sigma: float = 2.0,
                         n: int = 8, losses=("mse", "spatial_rank")) -> dict:
    """:func:`model_gradient_split` of freshly initialised heatmap models (tiny backbone, one per
    seed) on ``n`` evaluation crops at ``input_size`` (256×192 → the paper's 64×48 heatmaps).
    Returns ``{seed: {loss: split}}`` — RSPose Fig. 3 at initialisation."""
    images, labels, weights = probe_batch(ann_json, input_size, sigma, n)
    return {int(s): model_gradient_split(build_model("heatmap", tuple(input_size), "tiny",
                                                     num_keypoints=labels.shape[1], seed=int(s)),
                                         images, labels, weights, losses) for s in seeds}


#: RSPose Table E.8 (COCO): δ and coefficient of each loss per model; None where the row has no
#: Instance-Sort. ``recipes``: the chapter's recipes that use the row.
TABLE_E8 = (
    {"model": "ViTPose ViT-B", "rank_delta": 0.4, "rank_weight": 1.0, "sort_delta": 1.5, "sort_weight": 2.0,
     "instance_delta": 3.0, "instance_weight": 0.25, "recipes": ("spatial_rank", "spatial_rs", "spatial_rs_is")},
    {"model": "ViTPose ViT-H", "rank_delta": 0.4, "rank_weight": 1.0, "sort_delta": 1.5, "sort_weight": 2.0,
     "instance_delta": 3.0, "instance_weight": 1.5, "recipes": ()},
    {"model": "SimCC ResNet-50", "rank_delta": 0.4, "rank_weight": 1.0, "sort_delta": 0.2, "sort_weight": 0.25,
     "instance_delta": None, "instance_weight": None, "recipes": ("simcc_rs",)},
    {"model": "SimCC HRNet-W48", "rank_delta": 0.3, "rank_weight": 1.0, "sort_delta": 1.2, "sort_weight": 0.5,
     "instance_delta": 0.5, "instance_weight": 0.1, "recipes": ()},
)


def recipe_loss_settings(name: str) -> dict:
    """The δ's and coefficients a registered recipe of the chapter trains with (its loss builder's
    defaults updated by the recipe's ``loss_params``), in Table E.8's names."""
    recipe = get_recipe(name)
    builder = LOSSES.lookup(recipe.loss, recipe.name)
    params = {k: v.default for k, v in inspect.signature(builder).parameters.items()
              if v.default is not inspect.Parameter.empty}
    params.update(dict(recipe.loss_params))
    keys = ("rank_delta", "rank_weight", "sort_delta", "sort_weight", "instance_delta", "instance_weight")
    return {k: params.get(k, 1.0 if k == "rank_weight" else None) for k in keys}


def table_e8_rows() -> list[dict]:
    """Table E.8 with, per row, the chapter's recipes that use it and whether each recipe's
    settings equal the row (spatial_rank / spatial_rs switch the later terms off: compared on the
    terms they train)."""
    rows = []
    for row in TABLE_E8:
        checks = []
        for r in row["recipes"]:
            got = recipe_loss_settings(r)
            on = [k for k in got if not (k.startswith(("sort", "instance")) and got[k.split("_")[0] + "_weight"] == 0)]
            checks.append(all(got[k] == row[k] for k in on if row[k] is not None))
        rows.append({**{k: v for k, v in row.items() if k != "recipes"},
                     "our recipes": ", ".join(row["recipes"]) or "—", "settings match": all(checks) if checks else None})
    return rows


#: RSPose Table 6 (ViT-B, COCO val AP): MSE 75.8, Spatial Rank 75.9, Spatial RS 76.4, + Instance-Sort
#: 76.6 — each link's effect in AP units.
ABLATION_LINKS = (("spatial_rank", "mse", 0.001), ("spatial_rs", "spatial_rank", 0.005),
                  ("spatial_rs_is", "spatial_rs", 0.002))


def blind_ap(ann_json) -> float:
    """COCO AP of the image-blind guess "every person's joints at the mean pose of its box":
    each labelled joint's position relative to its person's ``bbox`` (x, y, w, h), averaged over
    ``ann_json``'s persons, put back into every box, all scores 1. What a model that never looks
    at the image scores (the GUIDE's "blind baseline" for an AP floor)."""
    gt = json.loads(Path(ann_json).read_text())
    people = [a for a in gt["annotations"] if a.get("num_keypoints", 0) > 0 and a["bbox"][2] > 0 and a["bbox"][3] > 0]
    if not people:
        raise ValueError(f"{ann_json}: no person with labelled joints and a box")
    kps = np.array([a["keypoints"] for a in people], dtype=np.float64).reshape(len(people), -1, 3)
    box = np.array([a["bbox"] for a in people], dtype=np.float64)
    rel = (kps[..., :2] - box[:, None, :2]) / box[:, None, 2:]
    lab = kps[..., 2] > 0
    mean = (rel * lab[..., None]).sum(0) / np.maximum(lab.sum(0), 1)[:, None]
    guess = box[:, None, :2] + mean[None] * box[:, None, 2:]
    results = [{"image_id": int(a["image_id"]), "category_id": 1, "score": 1.0,
                "keypoints": np.concatenate([g, np.ones((len(g), 1))], 1).reshape(-1).tolist()}
               for a, g in zip(people, guess)]
    return float(coco_keypoint_eval(gt, results)["AP"])


#: RSPose Table 5 (ViT-H): Spearman(confidence, OKS) 49.9 with MSE -> 66.5 with S-RS + IS
PAPER_SPEARMAN = {"mse": 0.499, "spatial_rs_is": 0.665}
#: RSPose Tables 2/6 (SimCC-ResNet-50): KL 72.1 -> Spatial RS 73.6 AP
PAPER_SIMCC_AP = {"simcc_kl": 0.721, "simcc_rs": 0.736}


def spearman_verdict(table, *, min_effect: float = 0.02, floor: float = 0.3):
    """``rspose.training.spearman``: S-RS + IS raises Spearman(confidence, OKS) over MSE (the
    paper's +0.166; ``min_effect`` in Spearman units, at most half of it), MSE at the AP floor and
    both recipes learnt and converged — one rule for the live run and the recorded replication;
    paired by seed (one heatmap model trained from the same seeds; only the loss differs)."""
    effect = PAPER_SPEARMAN["spatial_rs_is"] - PAPER_SPEARMAN["mse"]
    return compare_recipes(table, "spatial_rs_is", "mse", metric="spearman", min_effect=min(min_effect, effect / 2),
                           paper_effect=effect, baseline="mse", floor=floor, paired=True)


def simcc_verdict(table, *, floor: float = 0.3):
    """``rspose.simcc.kl_vs_rs``: Spatial RS beats KL on SimCC outputs by the paper's +1.5 AP
    (minimum half of it), both recipes learnt and converged; paired by seed (one SimCC model;
    only the loss differs)."""
    effect = PAPER_SIMCC_AP["simcc_rs"] - PAPER_SIMCC_AP["simcc_kl"]
    return compare_recipes(table, "simcc_rs", "simcc_kl", metric="AP", min_effect=effect / 2, paper_effect=effect,
                           floor=floor, paired=True)


def ablation_chain_verdict(table, *, floor: float = 0.3, set_name: str = "generated val",
                           blind: float | None = None):
    """``rspose.training.ablation``: MSE < S-Rank < S-RS < S-RS+IS, every link judged on its own
    (:func:`poselab.experiments.compare_recipes` with the paper's effect of that link and a minimum
    of half of it; both recipes learnt and converged; paired by seed: one heatmap model trained
    from the same seeds, only the loss differs) and combined by
    :func:`poselab.claims.chain_verdict` — a broken link is "not reproduced" naming it.

    ``blind``: the AP of the image-blind guess (:func:`blind_ap`). Given, a ranking recipe has
    learnt when it beats that guess by 10 % (the GUIDE's "floor, or beating a blind baseline"),
    while MSE, the baseline, must still reach ``floor``. Spatial Rank alone cannot reach an AP
    floor set for MSE by training longer — its maps are flat inside the window (section 6 of
    the chapter) — so with the floor alone the first link could never be decided."""
    links = {}
    for a, b, effect in ABLATION_LINKS:
        if blind is None:
            links[f"{a} > {b}"] = compare_recipes(table, a, b, metric="AP", min_effect=effect / 2,
                                                  paper_effect=effect, baseline="mse", floor=floor,
                                                  set_name=set_name, paired=True)
            continue
        v = compare_recipes(table, a, b, metric="AP", min_effect=effect / 2, paper_effect=effect,
                            floor=None, converge_tolerance=None, set_name=set_name, paired=True)
        v = claims.apply_floor(v, table.values("mse", "AP", set_name), floor, name="mse AP")
        pairs, _ = paired_table(table, a, b)
        judged = table if pairs is None else pairs   # readiness read on the seeds the link compared
        checks = [claims.has_learnt(r, judged.values(r, "AP", set_name), blind=blind, metric="AP")
                  for r in (a, b) if r != "mse"]
        checks += [claims.has_converged(r, validation_curves(judged, r, "AP"), tolerance=DEFAULT_CONVERGE_TOLERANCE,
                                        relative=True, metric="AP") for r in (a, b)]
        links[f"{a} > {b}"] = claims.require_ready(v, checks)
    return claims.chain_verdict(links, order="mse < spatial_rank < spatial_rs < spatial_rs_is")


def combined_path_errors(scores, labels, visible, rank_delta: float = 0.4, sort_delta: float = 1.5,
                         sort_weight: float = 2.0) -> dict:
    """The combined path training uses — :func:`poselab.losses.spatial_rank_sort_loss` and
    :func:`poselab.losses.rspose_loss` (Instance-Sort off) — against the reference loop's
    ``rank + sort_weight · sort`` and its update, with **different** δ's for the two parts (a
    combined loss that sorted with the rank δ passed a check of the parts alone: off by 0.094).
    Returns ``{"spatial_rank_sort": {"loss", "update"}, "rspose": {...}}`` absolute errors."""
    ref = reference_rank_sort_loop(scores, labels, visible, rank_delta, sort_delta)
    want = ref["rank"] + sort_weight * ref["sort"]
    want_grad = ref["grad_rank"] + sort_weight * ref["grad_sort"]
    out = {}
    for name, fn in (("spatial_rank_sort", lambda x: spatial_rank_sort_loss(
                         x, labels, visible, rank_delta=rank_delta, sort_delta=sort_delta, sort_weight=sort_weight)),
                     ("rspose", lambda x: rspose_loss(x, labels, visible, rank_delta=rank_delta,
                                                      sort_delta=sort_delta, sort_weight=sort_weight,
                                                      instance_weight=0.0))):
        x = torch.as_tensor(scores).detach().clone().requires_grad_(True)
        loss = fn(x)
        loss.backward()
        out[name] = {"loss": abs(float(loss.detach()) - float(want)),
                     "update": float((x.grad - want_grad.reshape(x.shape)).abs().max())}
    return out


# ----------------------------------------------------------------------------- flat plateaus
def rank_blind_inside_window(heatmap_size=(64, 48), sigma: float = 2.0, rank_delta: float = 0.4,
                             sort_delta: float = 1.5, margin: float = 1.0, rank_fn=None,
                             sort_fn=None) -> dict:
    """Spatial Rank cannot tell *where* inside the positive window a map peaks (RSPose Eq. 5–6).

    One joint at the map centre, its MSRA window (label > 0) as positives. Two predictions, both
    with every positive at least ``margin`` (> δ) above every negative (0):

    - ``centred``: ``margin + 2·label`` — the maximum on the joint's pixel;
    - ``corner``: ``margin + 2·(1 − d/d_max)`` with ``d`` the distance from one corner of the
      window — the maximum on that corner, ``3σ·√2`` px from the joint.

    Spatial Rank (``rank_fn``, default :func:`poselab.losses.spatial_rank_loss`) gives both loss 0
    and a zero update; Spatial Sort (``sort_fn``, default :func:`poselab.losses.spatial_sort_loss`)
    penalises the corner map more. ``holds`` is that statement, computed: it fails for a "rank"
    loss that reads the labels inside the window, or a "sort" loss that does not.

    Returns ``{"rank": {"centred", "corner"}, "rank_update", "sort": {...}, "argmax_error_px":
    {...}, "maps": {"centred", "corner", "labels"} (H, W), "holds"}``.
    """
    rank_fn = spatial_rank_loss if rank_fn is None else rank_fn
    sort_fn = spatial_sort_loss if sort_fn is None else sort_fn
    if not margin > rank_delta:
        raise ValueError(f"margin must exceed rank_delta ({rank_delta}) so that the rank loss is 0, got {margin}")
    H, W = int(heatmap_size[0]), int(heatmap_size[1])
    kp = torch.tensor([[[(W - 1) // 2, (H - 1) // 2]]], dtype=torch.float64)
    labels, vis = encode_gaussian(kp, None, (H, W), sigma=sigma, dtype=torch.float64)
    window = labels > 0
    if float(vis.sum()) == 0 or int(window.sum()) < 2:
        raise ValueError(f"a {H}x{W} map with σ = {sigma} has no window of positives at its centre")
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64),
                            indexing="ij")
    rows, cols = window[0, 0].nonzero(as_tuple=True)
    cy, cx = float(rows.min()), float(cols.min())                     # the window's top-left corner
    d = torch.sqrt((xs - cx) ** 2 + (ys - cy) ** 2)
    d_max = float(d[window[0, 0]].max())
    maps = {"centred": (margin + 2.0 * labels) * window,
            "corner": ((margin + 2.0 * (1.0 - d / d_max)) * window[0, 0]).reshape(1, 1, H, W)}
    out = {"rank": {}, "rank_update": {}, "sort": {}, "argmax_error_px": {}}
    for name, m in maps.items():
        x = m.clone().requires_grad_(True)
        rank = rank_fn(x, labels, vis, rank_delta)
        rank.backward()
        out["rank"][name] = float(rank.detach())
        out["rank_update"][name] = float(x.grad.abs().max())
        out["sort"][name] = float(sort_fn(m, labels, vis, sort_delta))
        i = int(m.reshape(-1).argmax())
        out["argmax_error_px"][name] = float(np.hypot(i % W - float(kp[0, 0, 0]), i // W - float(kp[0, 0, 1])))
    out["maps"] = {"centred": maps["centred"][0, 0].numpy(), "corner": maps["corner"][0, 0].numpy(),
                   "labels": labels[0, 0].numpy()}
    blind = max(max(out["rank"].values()), max(out["rank_update"].values())) <= 1e-12
    out["holds"] = bool(blind and out["sort"]["corner"] > out["sort"]["centred"] + 1e-6
                        and out["argmax_error_px"]["corner"] > sigma)
    return out


def model_heatmaps(run, ann_json, n: int = 32, sigma: float = 2.0, device="cpu"):
    """A trained heatmap run's maps on the first ``n`` crops of ``ann_json`` (its own geometry),
    float32 forward: ``(heatmaps (n, K, h, w), labels (n, K, h, w), weights (n, K))``."""
    g = run.geometry()
    images, labels, weights = probe_batch(ann_json, g.input_size, sigma, n, heatmap_size=g.heatmap_size)
    model = run.model(device)
    model.autocast = None        # the maps as float32 (training used the preset's forward precision)
    with torch.no_grad():
        maps = model(images.to(device)).float().cpu()
    return maps, labels, weights


def plateau_statistics(heatmaps, labels, visible=None, delta: float = 0.4, blur_sigma: float = 2.0) -> dict:
    """How flat the top of predicted maps is, over the visible maps with a window of positives
    (labels > 0, the MSRA (6σ+1)² window):

    - ``near_top``: mean number of window pixels within ``2δ`` of the map's maximum (2δ: the
      width of Spatial Rank's smoothed step — inside it the loss cannot order two pixels);
    - ``window``: mean number of window pixels;
    - ``hit``: share of maps whose argmax is the label's peak pixel (the joint's rounded pixel);
    - ``error_px``: mean distance argmax → peak pixel (map px);
    - ``uniform_error_px``: the same mean for an argmax drawn uniformly from each window — what a
      top carrying no location inside the window gives;
    - ``blurred_error_px``: the mean distance for the argmax of the map blurred by a Gaussian of
      ``blur_sigma`` px (DARK's modulation, which ViTPose's UDP decoder applies before refining:
      an 11-px kernel, σ = 2) — whether the *centre* of a flat top still holds the joint;
    - ``maps``: the number of maps.
    """
    h = torch.as_tensor(heatmaps).detach().double()
    y = torch.as_tensor(labels).detach().double()
    if h.dim() != 4 or h.shape != y.shape:
        raise ValueError(f"heatmaps and labels must be (B, K, H, W) of one shape, got "
                         f"{tuple(h.shape)} and {tuple(y.shape)}")
    if not bool(torch.isfinite(h).all()):
        raise ValueError("heatmaps must be finite")
    delta = positive_number(delta, "delta")
    B, K, H, W = h.shape
    if h.numel() == 0:
        raise ValueError(f"no map to measure: heatmaps have shape {tuple(h.shape)}")
    vis = torch.ones(B, K, dtype=torch.bool) if visible is None else torch.as_tensor(visible).reshape(B, K) > 0
    flat, lab = h.reshape(B * K, -1), y.reshape(B * K, -1)
    win = lab > 0
    keep = vis.reshape(-1) & win.any(1)
    if not bool(keep.any()):
        raise ValueError("no visible map has positives (labels > 0)")
    flat, lab, win = flat[keep], lab[keep], win[keep]
    top = flat.amax(1, keepdim=True)
    near = ((flat >= top - 2.0 * delta) & win).sum(1).double()
    peak, arg = lab.argmax(1), flat.argmax(1)
    px = lambda i: torch.stack([(i % W).double(), torch.div(i, W, rounding_mode="floor").double()], -1)
    err = (px(arg) - px(peak)).norm(dim=-1)
    grid = px(torch.arange(H * W))
    to_peak = (grid[None, :, :] - px(peak)[:, None, :]).norm(dim=-1)
    uniform = (to_peak * win).sum(1) / win.sum(1)
    r = max(1, int(math.ceil(3 * blur_sigma)))
    g = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float64) ** 2 / (2 * blur_sigma ** 2))
    g = g / g.sum()
    blurred = torch.nn.functional.conv2d(flat.reshape(-1, 1, H, W), g.view(1, 1, 1, -1), padding=(0, r))
    blurred = torch.nn.functional.conv2d(blurred, g.view(1, 1, -1, 1), padding=(r, 0)).reshape(flat.shape)
    blurred_err = (px(blurred.argmax(1)) - px(peak)).norm(dim=-1)
    return {"near_top": float(near.mean()), "window": float(win.sum(1).double().mean()),
            "hit": float((arg == peak).double().mean()), "error_px": float(err.mean()),
            "uniform_error_px": float(uniform.mean()), "blurred_error_px": float(blurred_err.mean()),
            "maps": int(keep.sum())}


def example_maps(maps_by_model: dict, index: int = 0) -> dict:
    """One joint's maps from several models on the same crops (``{name: (heatmaps, labels,
    weights)}`` as :func:`model_heatmaps` returns them): the ``index``-th visible map whose
    positive window lies wholly inside the map. Returns ``{"maps": {name: (H, W)}, "labels"
    (H, W), "keypoint": (x, y) of the label peak, "person", "joint"}``."""
    if not maps_by_model:
        raise ValueError("maps_by_model is empty")
    _, labels, weights = next(iter(maps_by_model.values()))
    B, K = labels.shape[:2]
    win = (labels > 0).reshape(B * K, -1).sum(1)
    ok = ((weights.reshape(-1) > 0) & (win == win.max())).nonzero().flatten()
    if index < 0 or index >= len(ok):
        raise ValueError(f"index must be in [0, {len(ok)}): the number of visible maps with a whole window")
    b, k = divmod(int(ok[index]), K)
    lab = labels[b, k]
    i = int(lab.argmax())
    return {"maps": {name: m[0][b, k].numpy() for name, m in maps_by_model.items()},
            "labels": lab.numpy(), "keypoint": (i % lab.shape[1], i // lab.shape[1]), "person": b, "joint": k}


def plateau_sentence(stats: dict, link_verdict: str, rank: str = "spatial_rank",
                     baseline: str = "mse") -> str:
    """What :func:`plateau_statistics` of trained models says about the first link of Table 6
    (``baseline`` < ``rank``), in one sentence built from the numbers: "flat" when the rank
    model's argmax is no closer to the joint than a pixel drawn at random from the window (within
    20 %), else "peaked"."""
    r, b = stats[rank], stats[baseline]
    flat = r["error_px"] >= 0.8 * r["uniform_error_px"]
    shape = ("flat on top: its argmax is about as far from the joint as a pixel drawn at random "
             "from the window" if flat else "peaked: its argmax is much closer to the joint than a "
             "random pixel of the window")
    meaning = ("so Spatial Rank alone leaves the peak's place inside the window to chance, and the "
               "first link (MSE < Spatial Rank) compares a model that localises to the window with one "
               "that localises to the pixel" if flat else
               "so the first link (MSE < Spatial Rank) compares two models that both localise inside "
               "the window")
    return (f"Spatial Rank's trained maps are {shape} ({r['error_px']:.2f} px vs {r['uniform_error_px']:.2f} px; "
            f"{r['near_top']:.1f} of {r['window']:.0f} window pixels within 2δ of the maximum, the "
            f"joint's pixel hit {100 * r['hit']:.1f} % of the time; {baseline}: {b['error_px']:.2f} px, "
            f"{100 * b['hit']:.1f} %; a decoder that blurs the map first, as DARK does, lands "
            f"{r.get('blurred_error_px', float('nan')):.2f} px from it), {meaning}: its verdict here is "
            f"'{link_verdict}'.")


#: RSPose App. D: seconds per training iteration of ViTPose-H (2 H100 GPUs, batch 64 per GPU,
#: averaged over 1,000 iterations) with MSE and with Spatial RS + Instance-Sort.
PAPER_STEP_SECONDS = {"mse": 1.427, "spatial_rs_is": 1.520}
#: The paper's overhead as a ratio, 1.520 / 1.427 = 1.065 (+6.5 %).
PAPER_STEP_RATIO = PAPER_STEP_SECONDS["spatial_rs_is"] / PAPER_STEP_SECONDS["mse"]
#: The side-by-side benchmark that measures the same ratio on one fixed batch.
STEP_BENCHMARK = "benchmarks/train_step.py"


def run_step_seconds(run, skip: int = 2) -> float | None:
    """Median seconds of one training step of a trained run (forward + loss + backward + update,
    data loading included, the first ``skip`` steps left out as :class:`RunResult` does), from the
    run's history; the run's ``seconds_per_step`` when the history has no step times; None when
    neither holds a positive finite time."""
    history = getattr(run, "history", None) or {}
    steps = np.asarray(history.get("step_times") or [], dtype=float)
    data = np.asarray(history.get("data_times") or [], dtype=float)
    if steps.size:
        t = steps + data if data.size == steps.size else steps
        t = t[skip:] if t.size > 2 * skip else t
        t = t[np.isfinite(t)]
        value = float(np.median(t)) if t.size else float("nan")
    else:
        value = getattr(run, "seconds_per_step", None)
        value = float("nan") if value is None else float(value)
    return value if math.isfinite(value) and value > 0 else None


def step_cost_verdict(ours, theirs, *, margin: float = 1.3, paper_ratio: float = PAPER_STEP_RATIO,
                      alpha: float = 0.05, min_seeds: int = 3, preset=None, evidence=None,
                      seeds=None) -> claims.Verdict:
    """Verdict for App. D's "our losses add little to a training step" (1.520 s vs 1.427 s per
    iteration, ×1.065), from per-seed step times paired by seed.

    ``ours``: seconds per step of the ranking recipe, one per seed; ``theirs``: of MSE, the same
    seeds in the same order (None / NaN / ≤ 0 where a run has no step times). Per seed the ratio
    ``ours / theirs``; the ``1 − alpha`` t interval of the mean log ratio gives an interval of the
    ratio (geometric mean); ``summary["rows"]`` holds one row per seed. "reproduced" when the whole interval is ≤ ``margin`` (the overhead stays
    within the stated margin of the paper's, default 1.3×), "not reproduced" when the whole interval
    is above it, else "inconclusive"; also "inconclusive" with fewer than ``min_seeds`` pairs, a
    missing time, or the ``fast`` preset (the statistics are still computed). ``margin`` below the
    paper's own ratio is refused (the claim could never hold). The reason says that CPU timings
    under load are noisy and names :data:`STEP_BENCHMARK`, which measures the ratio side by side.

    Example:
        >>> step_cost_verdict([1.0, 1.02, 0.99], [1.0, 1.0, 1.0]).verdict
        'reproduced'
        >>> step_cost_verdict([1.8, 1.82, 1.79], [1.0, 1.0, 1.0]).verdict
        'not reproduced'
        >>> step_cost_verdict([1.0, None, 1.0], [1.0, 1.0, 1.0]).verdict
        'inconclusive'
    """
    if not (isinstance(margin, (int, float)) and math.isfinite(margin)) or isinstance(margin, bool):
        raise ValueError(f"margin must be a finite number (the largest step-time ratio the claim "
                         f"allows), got {margin!r}")
    if not (isinstance(paper_ratio, (int, float)) and math.isfinite(paper_ratio) and paper_ratio > 0):
        raise ValueError(f"paper_ratio must be a finite number > 0, got {paper_ratio!r}")
    if margin < paper_ratio:
        raise ValueError(f"margin {margin:g} is below the paper's own ratio {paper_ratio:.3f}: "
                         f"the claim could never hold")
    if not (0 < alpha < 0.5):
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha!r}")
    ours, theirs = list(ours), list(theirs)
    if len(ours) != len(theirs):
        raise ValueError(f"step times are paired by seed: got {len(ours)} ranking and "
                         f"{len(theirs)} MSE values")
    seeds = list(range(len(ours))) if seeds is None else [int(s) for s in seeds]
    if len(seeds) != len(ours):
        raise ValueError(f"seeds: {len(seeds)} given for {len(ours)} pairs of step times")

    def ok(v):
        return v is not None and not isinstance(v, bool) and math.isfinite(float(v)) and float(v) > 0

    missing = [s for s, a, b in zip(seeds, ours, theirs) if not (ok(a) and ok(b))]
    pairs = [(float(a), float(b)) for a, b in zip(ours, theirs) if ok(a) and ok(b)]
    ratios = [a / b for a, b in pairs]
    noise = (f"CPU step times under load are noisy (runs share the cores, cached runs were timed at "
             f"other moments); {STEP_BENCHMARK} measures the ratio side by side on one batch")
    rows = [{"seed": s, "ranking s/step": float(a) if ok(a) else None, "MSE s/step": float(b) if ok(b) else None,
             "ratio": float(a) / float(b) if ok(a) and ok(b) else None} for s, a, b in zip(seeds, ours, theirs)]
    summary = {"rows": rows, "ratios": ratios, "margin": float(margin), "paper_ratio": float(paper_ratio),
               "paper_seconds": dict(PAPER_STEP_SECONDS), "ours_seconds": [a for a, _ in pairs],
               "theirs_seconds": [b for _, b in pairs], "missing_seeds": missing, "alpha": alpha,
               "ratio": None, "interval": None}
    ev = dict(evidence or {})
    if missing:
        return claims.Verdict("inconclusive", f"no step times for seed(s) {missing}: the step-time "
                              f"ratio cannot be paired; {noise}", summary, ev)
    if len(ratios) < 2:
        summary.update(ratio=ratios[0] if ratios else None, n=len(ratios))
        return claims.Verdict("inconclusive", f"{len(ratios)} pair(s) of step times, a t interval "
                              f"needs at least 2 (min_seeds {min_seeds}); {noise}", summary, ev)
    logs = np.log(np.asarray(ratios))
    n = logs.size
    mean, sd = float(logs.mean()), float(logs.std(ddof=1))
    half = claims.t_critical(n - 1, alpha) * sd / math.sqrt(n)
    lo, hi = math.exp(mean - half), math.exp(mean + half)
    summary.update(ratio=math.exp(mean), interval=[lo, hi], n=n)
    said = (f"ranking / MSE step time {math.exp(mean):.3f}x (geometric mean of {n} seeds, "
            f"{100 * (1 - alpha):g} % interval {lo:.3f}-{hi:.3f}) against the paper's "
            f"{paper_ratio:.3f}x (+{100 * (paper_ratio - 1):.1f} %) and the margin {margin:g}x")
    if hi <= margin:
        verdict, why = "reproduced", f"{said}: the overhead stays within the margin"
    elif lo > margin:
        verdict, why = "not reproduced", f"{said}: the overhead is above the margin"
    else:
        verdict, why = "inconclusive", f"{said}: the interval straddles the margin"
    if n < min_seeds:
        verdict, why = "inconclusive", f"{why}; only {n} seed(s), the rule needs {min_seeds}"
    name = getattr(preset, "name", preset)
    if name == "fast" and verdict != "inconclusive":
        verdict, why = "inconclusive", f"fast preset (a smoke run; would be '{verdict}'): {why}"
    return claims.Verdict(verdict, f"{why}; {noise}", summary, ev)


def step_cost(table, ours: str = "spatial_rs_is", theirs: str = "mse", seeds=None, **kwargs) -> claims.Verdict:
    """:func:`step_cost_verdict` of two recipes of a trained comparison table: each run's
    :func:`run_step_seconds`, paired by seed (``seeds``: the table's seeds by default), with the
    evidence of the runs (per-seed seconds, preset, sizes)."""
    seeds = list(seeds) if seeds is not None else sorted({r.seed for r in table.results if r.recipe == ours})
    if not seeds:
        raise KeyError(f"no run of {ours!r} in this table")
    a = [run_step_seconds(table.result(ours, s)) for s in seeds]
    b = [run_step_seconds(table.result(theirs, s)) for s in seeds]
    first = table.result(ours, seeds[0])
    g = first.config.get("geometry", {})
    ev = claims.evidence(preset=first.preset, seeds=seeds,
                         per_seed={f"{ours} s/step": [float("nan") if v is None else v for v in a],
                                   f"{theirs} s/step": [float("nan") if v is None else v for v in b]},
                         input_size=g.get("input_size", (0, 0)), heatmap_size=g.get("heatmap_size", (0, 0)),
                         data=first.data, device=first.device)
    kwargs.setdefault("preset", first.preset)
    return step_cost_verdict(a, b, evidence=ev, seeds=seeds, **kwargs)

