"""Pure functions behind the SAR chapter (Spatial-Aware Regression, Wang & Zhang, CVPR 2024).

Arrays in, numbers out:

- :func:`cell_field` — one joint's grid: every cell's prior ``p_t``, regressed point ``K_t``
  (Eq. 5), score ``c_t`` and weight ``w_t`` (Eq. 6, 9) — Fig. 1–2 on one image.
- :func:`fit_toy` / :func:`optimum_cases` — the two optimum cases of §3.2 (Eq. 10) on a toy grid
  of free parameters whose cells can move their point by at most ``reach`` px; with the closed-form
  loss floor when the selector is frozen.
- :func:`normalization_study` — one-step softmax vs two-step (Eq. 9) when the number of targets
  on the map varies: the scores a fixed threshold γ (Eq. 11) sees.
- :func:`degenerate_check` — a 1×1 map is global regression (§3.3).
- :func:`quantization_floor` — decoding error of exact targets per output stride: heatmap argmax
  (+ quarter shift) vs SAR's continuous output (Fig. 4's mechanism, without training).
- :func:`match_detections` — recall/precision of multi-instance detections (§4.3).

Coordinates: ``(x, y)`` in heatmap px, pixel centres at integers (DEVELOPERS.md).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from poselab import claims
from poselab._numbers import positive_number, whole_number
from poselab.chapters.sar import recipes as sar_recipes
from poselab.codecs.heatmap import HeatmapCodec, heatmap_to_input
from poselab.codecs.sar import SARCodec, decode_sar, sar_cell_centres
from poselab.data import TopDownDataset
from poselab.data.dataset import denormalize_image
from poselab.experiments import compare_recipes, resolve_run_data
from poselab.experiments.presets import Preset, get_preset
from poselab.experiments.replicate import recorded_verdict
from poselab.losses.sar import sar_log_weights, sar_loss, sar_multi_target_loss

__all__ = ["cell_field", "fit_toy", "reach_floor", "optimum_cases", "DEFAULT_TARGETS", "direct_formula_check",
           "example_outputs", "three_ways_inputs", "pair_verdict", "ordering_verdict", "stride_verdict", "stride_name", "relative_drops", "shift_invariance",
           "TABLE2", "TABLE1", "paper_table2_size", "table2_verdict", "mean_pose_epe", "fg_fc_verdict",
           "aux_ablation_verdict", "heatmap_offset_verdict", "recorded_verdicts", "verdict_sentence",
           "normalization_study", "degenerate_check", "quantization_floor", "match_detections"]


def cell_field(selector_logits, offsets, input_size: Sequence[int] | None = None) -> dict:
    """One joint's SAR grid as flat arrays (SAR Eq. 5, 6, 9).

    Args:
        selector_logits: ``(h, w)`` logits ``s_t``; offsets: ``(2, h, w)`` heatmap px.
        input_size: ``(H, W)``; if given, ``centres`` and ``points`` are converted to input px.
    Returns:
        ``{"centres" (T, 2), "points" (T, 2), "c" (T,) = σ(s), "w" (T,) = c/Σc,
        "best" (index of the max-c cell)}`` as float64 numpy, ``T = h·w`` row-major.
    """
    s = torch.as_tensor(np.asarray(selector_logits, dtype=np.float64))
    o = torch.as_tensor(np.asarray(offsets, dtype=np.float64))
    if s.ndim != 2 or tuple(o.shape) != (2,) + tuple(s.shape):
        raise ValueError(f"selector_logits must be (h, w) and offsets (2, h, w); got "
                         f"{tuple(s.shape)} and {tuple(o.shape)}")
    h, w = s.shape
    centres = sar_cell_centres((h, w), dtype=torch.float64)
    points = centres + o.permute(1, 2, 0)
    if input_size is not None:
        centres = heatmap_to_input(centres, input_size, (h, w))
        points = heatmap_to_input(points, input_size, (h, w))
    c = torch.sigmoid(s).reshape(-1)
    return {"centres": centres.reshape(-1, 2).numpy(), "points": points.reshape(-1, 2).numpy(),
            "c": c.numpy(), "w": (c / c.sum()).numpy(), "best": int(torch.argmax(c))}


def _as_targets(targets) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(targets, dtype=np.float64))
    if t.ndim == 1:
        t = t[None]
    if t.ndim != 2 or t.shape[-1] != 2 or t.shape[0] == 0 or not bool(torch.isfinite(t).all()):
        raise ValueError(f"targets must be finite (x, y) points, shape (N, 2), got {tuple(t.shape)}")
    return t


def fit_toy(targets, grid: Sequence[int] = (8, 8), reach: float = 0.5, steps: int = 400,
            lr: float = 0.3, lam: float = 16.0, normalization: str = "two_step",
            freeze_selector: bool = False, prior: float = 0.01) -> dict:
    """Minimise the SAR objective over free per-cell parameters (SAR Eq. 7–10 on a toy).

    Cell ``t`` outputs ``K_t = p_t + reach · tanh(u_t / reach)`` (per axis: it can move its point at most
    ``reach`` heatmap px from its centre — a regressor of limited range) and a free logit ``s_t``
    (initialised at the official prior: ``σ(s) = prior``). Adam with a cosine-decayed ``lr``,
    float64, deterministic (``u = 0`` at the start). With several targets the loss is
    :func:`poselab.losses.sar_multi_target_loss` (``eps = 0``: the pure Eq. 7).

    Returns ``{"loss" (steps,), "points" (T, 2), "c" (T,), "w" (T,), "r" (N, T),
    "final_loss", "grid", "reach", "targets" (N, 2), "normalization"}`` (numpy).
    """
    tg = _as_targets(targets)
    h, w = (whole_number(grid[0], "grid h", 1), whole_number(grid[1], "grid w", 1))
    if h < 1 or w < 1:
        raise ValueError(f"grid must be (h, w) >= 1, got {grid!r}")
    if not (reach > 0 and math.isfinite(reach)):
        raise ValueError(f"reach must be a positive number of heatmap px, got {reach!r}")
    steps = whole_number(steps, "steps", 1)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    T = h * w
    centres = sar_cell_centres((h, w), dtype=torch.float64).reshape(T, 2)
    u = torch.zeros(T, 2, dtype=torch.float64, requires_grad=True)
    s = torch.full((T,), math.log(prior / (1 - prior)), dtype=torch.float64, requires_grad=True)
    params = [u] if freeze_selector else [u, s]
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * i / steps)))
    losses = np.empty(steps)

    def objective():
        pts = centres + reach * torch.tanh(u / reach)
        return sar_multi_target_loss(pts[None, None], s[None, None], tg[None, None], None, lam,
                                     (w, h), normalization=normalization, eps=0.0), pts

    for i in range(steps):
        opt.zero_grad()
        loss, _ = objective()
        loss.backward()
        opt.step()
        sched.step()
        losses[i] = float(loss.detach())
    with torch.no_grad():
        loss, pts = objective()
        lw = sar_log_weights(s, normalization)
        d = ((pts[None] - tg[:, None]).abs() / torch.tensor([w, h], dtype=torch.float64)).sum(-1)
    return {"loss": losses, "final_loss": float(loss), "points": pts.numpy(),
            "c": torch.sigmoid(s).detach().numpy() if normalization == "two_step" else lw.exp().numpy(),
            "w": lw.exp().numpy(), "r": torch.exp(-lam * d).numpy(), "grid": (h, w), "reach": reach,
            "targets": tg.numpy(), "normalization": normalization}


def reach_floor(target, grid: Sequence[int] = (8, 8), reach: float = 0.5, lam: float = 16.0) -> float:
    """Closed form: the SAR loss infimum with a *uniform* selector (w_t = 1/T) and cells of limited
    reach: every cell moves as close as it can, ``r_t = exp(−λ Σ_axis max(0, |Δ| − reach)/size)``,
    and ``L = −log(mean_t r_t)``. Positive unless every cell can reach the target."""
    tg = _as_targets(target)[0].numpy()
    positive_number(lam, "lam")
    positive_number(reach, "reach", allow_zero=True)
    h, w = grid
    c = sar_cell_centres((h, w), dtype=torch.float64).reshape(-1, 2).numpy()
    gap = np.maximum(0.0, np.abs(c - tg) - reach) / np.array([w, h], dtype=np.float64)
    return float(-np.log(np.mean(np.exp(-lam * gap.sum(-1)))))


def optimum_cases(target=(3.3, 4.2), grid: Sequence[int] = (8, 8), few_reach: float = 0.5,
                  steps: int = 400, lam: float = 16.0) -> dict:
    """The two optimum cases of SAR §3.2 (Eq. 10) on one toy target.

    - ``"all"``: every cell can reach the target (reach = the map's size) → all ``r_t → 1``,
      the loss → 0 whatever the weights — shown with the selector frozen at its uniform prior
      (with a free selector the optimiser also concentrates w on the first cells to arrive, and
      the others stop being pulled: then only a few cells end at r ≈ 1);
    - ``"few"``: cells move at most ``few_reach`` px → only the cells near the target can reach
      it; the loss → 0 only because the selector puts its weight on them (``w_s → 0`` elsewhere);
    - ``"few_frozen"``: the same with the selector frozen at its uniform prior: the loss stops at
      the closed-form floor :func:`reach_floor` — the counter-case that shows the selector is
      what makes case 2 work.

    Returns ``{case: fit_toy(...) result + "reachable" (cells that can reach), "weight_on_reachable"
    (Σ w over them), "cells_r_gt_0.99"}`` and ``"floor"`` (closed form for ``few_frozen``).
    """
    h, w = grid
    tg = _as_targets(target)
    out = {}
    for name, reach, frozen in (("all", float(max(h, w)), True), ("few", few_reach, False),
                                ("few_frozen", few_reach, True)):
        res = fit_toy(tg, grid, reach, steps, lam=lam, freeze_selector=frozen)
        centres = sar_cell_centres((h, w), dtype=torch.float64).reshape(-1, 2).numpy()
        reachable = np.all(np.abs(centres - tg.numpy()[0]) < reach, axis=-1)
        res.update(reachable=reachable, weight_on_reachable=float(res["w"][reachable].sum()),
                   cells_r_gt_099=int((res["r"][0] > 0.99).sum()))
        out[name] = res
    out["floor"] = reach_floor(tg, grid, few_reach, lam)
    return out


# well-separated sub-pixel targets on a 12×12 grid, each within 0.3 px (per axis) of one cell
# centre, so with reach 0.5 exactly one cell can reach each of them
DEFAULT_TARGETS = ((2.2, 2.3), (8.8, 2.8), (2.7, 8.8), (8.3, 8.2), (5.8, 5.3), (10.2, 5.7))


def normalization_study(counts: Sequence[int] = (1, 2, 3, 4, 5), gamma: float = 0.3,
                        grid: Sequence[int] = (12, 12), reach: float = 0.5, steps: int = 400,
                        targets=DEFAULT_TARGETS, lam: float = 16.0, match_px: float = 0.5) -> dict:
    """One-step softmax vs two-step normalisation as the number of targets grows (SAR §3.2, Eq. 9, 11).

    For each ``n`` in ``counts`` the first ``n`` of ``targets`` share the map; :func:`fit_toy`
    minimises the multi-target objective under each normalisation. Then, per target, the score a
    decoder thresholds at the cell that reaches it (the cell whose point is nearest): the
    sigmoid ``c_t`` (two-step) or the weight ``w_t`` (softmax; for two-step ``w_t`` is reported
    too). Eq. 11 with a fixed γ then keeps the cells with score ≥ γ; recall = share of targets
    with a kept point within ``match_px``.

    Returns ``{"counts", "gamma", "log_n" (the loss infimum log n),
    "<normalization>": {"score" (len(counts),) mean over targets, "score_min", "weight" (mean
    w_t), "recall", "final_loss"}}``.
    """
    counts = [int(n) for n in counts]
    tg_all = _as_targets(targets)
    if not counts or min(counts) < 1 or max(counts) > tg_all.shape[0]:
        raise ValueError(f"counts must lie in [1, {tg_all.shape[0]}] (number of targets given)")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {gamma!r}")
    out = {"counts": np.array(counts), "gamma": float(gamma), "log_n": np.log(counts)}
    for norm in ("two_step", "softmax"):
        rows = {"score": [], "score_min": [], "weight": [], "recall": [], "final_loss": []}
        for n in counts:
            tg = tg_all[:n]
            res = fit_toy(tg, grid, reach, steps, lam=lam, normalization=norm)
            pts = res["points"]
            d = np.abs(pts[None] - tg.numpy()[:, None]).max(-1)       # (n, T) L∞ px
            nearest = d.argmin(-1)
            score = res["c"][nearest]
            kept = res["c"] >= gamma
            hit = np.array([np.any(kept & (d[i] <= match_px)) for i in range(n)])
            rows["score"].append(float(score.mean()))
            rows["score_min"].append(float(score.min()))
            rows["weight"].append(float(res["w"][nearest].mean()))
            rows["recall"].append(float(hit.mean()))
            rows["final_loss"].append(res["final_loss"])
        out[norm] = {k: np.array(v) for k, v in rows.items()}
    return out


def degenerate_check(n: int = 512, map_size: Sequence[int] = (1, 1), lam: float = 16.0,
                     seed: int = 0) -> dict:
    """SAR on a 1×1 map is global regression (SAR §3.3).

    With one cell the weight is 1 whatever the selector says, so (``eps = 0``) the loss is
    ``λ · (|Δx|/W + |Δy|/H)`` — λ times the normalised L1 regression loss — with the same gradient,
    and decoding returns ``p + offset``, the regressed point. ``map_size=(h, w)`` other than 1×1
    is the counter-case (the weights then matter and the equality breaks).

    Returns ``{"loss_max_abs_diff", "grad_max_abs_diff", "decode_max_abs_diff"}`` over ``n``
    random joints (float64; the 1×1 "map" covers a W×H = 48×64 px region).
    """
    g = torch.Generator().manual_seed(int(seed))
    n = whole_number(n, "n", 1)
    h, w = (whole_number(map_size[0], "map_size h", 1), whole_number(map_size[1], "map_size w", 1))
    W, H = 48.0, 64.0
    T = h * w
    coords = (torch.rand(n, 1, T, 2, generator=g, dtype=torch.float64) * torch.tensor([W, H])
              ).requires_grad_(True)
    logits = torch.randn(n, 1, T, generator=g, dtype=torch.float64) * 4
    target = torch.rand(n, 1, 2, generator=g, dtype=torch.float64) * torch.tensor([W, H])
    sar = sar_loss(coords, logits, target, None, lam, (W, H), reduction="none", eps=0.0)
    (g_sar,) = torch.autograd.grad(sar.sum(), coords)
    point = coords.mean(2)    # the regression output: the cell's point (T = 1), else the mean
    reg = lam * ((point - target).abs() / torch.tensor([W, H], dtype=torch.float64)).sum(-1)
    (g_reg,) = torch.autograd.grad(reg.sum(), coords)
    # decoding: offsets relative to the cell centre(s) of an h×w grid
    centres = sar_cell_centres((h, w), dtype=torch.float64).reshape(T, 2)
    offsets = (coords.detach()[:, 0] - centres).reshape(n, 1, h, w, 2).permute(0, 1, 4, 2, 3)
    dec, _ = decode_sar(logits.reshape(n, 1, h, w), offsets)
    return {"loss_max_abs_diff": float((sar - reg).detach().abs().max()),
            "grad_max_abs_diff": float((g_sar - g_reg).abs().max()),
            "decode_max_abs_diff": float((dec - point.detach()).abs().max())}


def quantization_floor(strides: Sequence[int] = (1, 2, 4, 8, 16), input_size: Sequence[int] = (64, 48),
                       n: int = 2000, seed: int = 0, sigma_input_px: float = 8.0) -> dict:
    """Decoding error of *exact* targets per output stride, in input px (the mechanism of SAR
    Fig. 4 and Table 2, without any training).

    Heatmap: the MSRA Gaussian target (σ = ``sigma_input_px``/stride heatmap px, at least 1)
    decoded by argmax + quarter-pixel shift. SAR: ideal outputs (selector peaked at the nearest
    cell, offset = keypoint − cell centre) decoded by Eq. 11 with m = 1 — continuous, so its error
    is float round-off at every stride.

    Returns ``{"strides", "heatmap_epe" (mean Euclidean error), "heatmap_max", "sar_epe", "sar_max"}``.
    """
    rng = np.random.default_rng(int(seed))
    H, W = (int(input_size[0]), int(input_size[1]))
    kp = torch.as_tensor(rng.uniform([0, 0], [W - 1, H - 1], size=(n, 1, 2)), dtype=torch.float32)
    rows = {"heatmap_epe": [], "heatmap_max": [], "sar_epe": [], "sar_max": []}
    for s in strides:
        s = whole_number(s, "stride", 1)
        if H % s or W % s:
            raise ValueError(f"stride {s} does not divide input_size {(H, W)}")
        hm = (H // s, W // s)
        codec = HeatmapCodec((H, W), hm, sigma=max(1.0, sigma_input_px / s), decoder="quarter")
        got, _ = codec.decode(codec.encode(kp)["target"])
        e = (got.double() - kp.double()).norm(dim=-1)
        rows["heatmap_epe"].append(float(e.mean()))
        rows["heatmap_max"].append(float(e.max()))
        sar = SARCodec((H, W), hm)
        t = sar.encode(kp)["target"]                                   # heatmap px
        centres = sar_cell_centres(hm, dtype=torch.float32)
        offsets = (t[..., None, None, :] - centres).movedim(-1, -3)   # (n, 1, 2, h, w)
        near = torch.floor(t + 0.5).long().clamp_min(0)
        near[..., 0].clamp_(max=hm[1] - 1)
        near[..., 1].clamp_(max=hm[0] - 1)
        logits = torch.full((n, 1) + hm, -10.0)
        logits.view(n, -1)[torch.arange(n), near[:, 0, 1] * hm[1] + near[:, 0, 0]] = 10.0
        got_s, _ = sar.decode(logits, offsets)
        e_s = (got_s.double() - kp.double()).norm(dim=-1)
        rows["sar_epe"].append(float(e_s.mean()))
        rows["sar_max"].append(float(e_s.max()))
    return {"strides": np.array(list(strides)), **{k: np.array(v) for k, v in rows.items()}}


def match_detections(detections, truths, radius: float) -> dict:
    """Greedy one-to-one matching of detected points to true points within ``radius`` px.

    Args: detections ``(D, 2)`` sorted by decreasing score (earlier ones match first); truths
    ``(G, 2)``. Returns ``{"tp", "fp", "fn", "recall", "precision"}`` (recall 1 and precision 1
    by convention when there is nothing to find / nothing was found).
    """
    det = np.asarray(detections, dtype=np.float64).reshape(-1, 2)
    gt = np.asarray(truths, dtype=np.float64).reshape(-1, 2)
    radius = positive_number(radius, "radius")
    if not (np.isfinite(det).all() and np.isfinite(gt).all()):
        raise ValueError("detections and truths must be finite (x, y) points")
    free = np.ones(len(gt), dtype=bool)
    tp = 0
    for p in det:
        if not free.any():
            break
        d = np.where(free, np.linalg.norm(gt - p, axis=-1), np.inf)
        j = int(np.argmin(d))
        if d[j] <= radius:
            free[j] = False
            tp += 1
    fp, fn = len(det) - tp, len(gt) - tp
    return {"tp": tp, "fp": fp, "fn": fn, "recall": tp / len(gt) if len(gt) else 1.0,
            "precision": tp / len(det) if len(det) else 1.0}


def direct_formula_check(n_joints: int = 64, grid: Sequence[int] = (16, 12), seed: int = 0) -> dict:
    """:func:`poselab.losses.sar_loss` against a direct float64 numpy evaluation of Eq. 7–9,
    ``−log(Σ_t σ(s_t)/Σ_u σ(s_u) · exp(−16(|Δx|/W + |Δy|/H)) + 1e-6)`` averaged over visible joints,
    on random outputs (targets partly outside the map, logits around the 0.01 prior).

    Returns ``{"float64_abs_error", "float32_rel_error", "value"}``.
    """
    rng = np.random.default_rng(int(seed))
    n_joints = whole_number(n_joints, "n_joints", 1)
    h, w = (whole_number(grid[0], "grid h", 1), whole_number(grid[1], "grid w", 1))
    T = h * w
    coords = rng.uniform(-3, [w + 3, h + 3], size=(1, n_joints, T, 2))
    logits = rng.normal(-4.6, 3.0, size=(1, n_joints, T))
    target = rng.uniform(-2, [w + 2, h + 2], size=(1, n_joints, 2))
    vis = (rng.random((1, n_joints)) > 0.2).astype(np.float64)
    c = 1.0 / (1.0 + np.exp(-logits))
    wts = c / c.sum(-1, keepdims=True)
    d = np.abs(coords - target[:, :, None]) / np.array([w, h], dtype=np.float64)
    r = np.exp(-16.0 * d.sum(-1))
    per = -np.log((wts * r).sum(-1) + 1e-6)
    ref = float((per * vis).sum() / vis.sum())
    args = [torch.as_tensor(a) for a in (coords, logits, target, vis)]
    ours64 = float(sar_loss(*args, 16.0, (w, h)))
    ours32 = float(sar_loss(*[a.float() for a in args], 16.0, (w, h)))
    return {"float64_abs_error": abs(ours64 - ref), "float32_rel_error": abs(ours32 - ref) / abs(ref),
            "value": ref}


def example_outputs(result, index: int = 0, set_name: str = "generated val") -> dict:
    """One evaluation crop and a trained run's raw outputs on it (for SAR Fig. 1-style figures).

    Args: result: a :class:`poselab.experiments.RunResult`; index: the person's index in the
    evaluation set (the order of :class:`poselab.data.TopDownDataset`); set_name: which set.
    Returns ``{"image" (H, W, 3) uint8, "keypoints" (K, 2) crop px, "visible" (K,), "outputs"
    (the model's output for the crop, batch dimension removed: tensors), "codec"}``.
    """
    preset = Preset(**{k: tuple(v) if isinstance(v, list) else v
                       for k, v in result.config["preset"].items()})
    _, sets = resolve_run_data(result.data, preset)
    if set_name not in sets:
        raise KeyError(f"no evaluation set {set_name!r}; sets: {sorted(sets)}")
    ds = TopDownDataset(sets[set_name], input_size=preset.input_size, train=False)
    item = ds[int(index)]
    model = result.model()
    with torch.no_grad():
        out = model(item["image"][None])
    out = {k: v[0] for k, v in out.items()} if isinstance(out, dict) else (
        tuple(v[0] for v in out) if isinstance(out, tuple) else out[0])
    return {"image": denormalize_image(item["image"]), "keypoints": item["keypoints"].numpy(),
            "visible": item["visible"].numpy(), "outputs": out, "codec": result.codec()}


def three_ways_inputs(examples: dict, joint: int, input_size: Sequence[int]) -> dict:
    """Arguments of :func:`poselab.chapters.sar.figures.three_ways_figure` for one joint from
    :func:`example_outputs` of the ``sar_regression``, ``mse`` and ``sar`` runs (input px)."""
    k = int(joint)
    reg = examples["sar_regression"]
    reg_pt, _ = reg["codec"].decode({key: v[None] for key, v in reg["outputs"].items()})
    hm = examples["mse"]["outputs"]
    hm_pt, _ = examples["mse"]["codec"].decode(hm[None])
    sar = examples["sar"]["outputs"]
    field = cell_field(sar["selector"][k].numpy(), sar["offsets"][k].numpy(), input_size)
    return {"image": examples["sar"]["image"], "target": examples["sar"]["keypoints"][k],
            "regression_point": reg_pt[0, k].numpy(), "heatmap": hm[k].numpy(),
            "heatmap_point": hm_pt[0, k].numpy(), "field": field, "input_size": tuple(input_size)}


def _evidence(table, preset, data, recipes, metric, set_name):
    p = preset
    seeds = sorted({r.seed for r in table.results})
    return claims.evidence(preset=p, seeds=seeds, input_size=p.input_size, heatmap_size=p.heatmap_size,
                           data=data, per_seed={r: table.values(r, metric, set_name) for r in recipes},
                           metric=metric, set=set_name)


def pair_verdict(table, ours: str, theirs: str, preset, data="synth", metric: str = "AP",
                 min_effect: float = 0.02, floor: float | None = None, baseline: str = "mse",
                 set_name: str = "generated val"):
    """``claims.compare_seeds`` of ``ours`` vs ``theirs`` on ``metric`` from a
    :class:`poselab.experiments.ComparisonTable`, with the baseline floor (``claims.apply_floor``
    on ``baseline``'s AP) when ``floor`` is given. Returns a :class:`poselab.claims.Verdict`."""
    lower = metric.startswith("EPE")
    ev = _evidence(table, preset, data, [ours, theirs], metric, set_name)
    v = claims.compare_seeds(table.values(ours, metric, set_name), table.values(theirs, metric, set_name),
                             lower_is_better=lower, min_effect=min_effect, metric=f"{metric} {ours} vs {theirs}",
                             preset=getattr(preset, "name", preset), evidence=ev)
    if floor is not None:
        v = claims.apply_floor(v, table.values(baseline, "AP", set_name), floor, name=f"{baseline} AP")
    return v


def ordering_verdict(tables: dict, order: Sequence[str], preset_for, data="synth", metric: str = "AP",
                     min_effect: float = 0.02, floor: float | None = None, baseline: str = "mse"):
    """SAR Table 2's ordering (``order`` from worst to best) at every input size: each consecutive
    pair compared with :func:`pair_verdict`, all combined with ``claims.combine_verdicts``
    (unanimous). ``tables``: ``{input size: ComparisonTable}``; ``preset_for(size)`` → Preset."""
    parts = {}
    for size, table in tables.items():
        for lo, hi in zip(order[:-1], order[1:]):
            parts[f"{size[0]}x{size[1]} {hi}>{lo}"] = pair_verdict(
                table, hi, lo, preset_for(size), data, metric, min_effect, floor, baseline)
    return claims.combine_verdicts(parts)


def stride_name(recipe: str, stride: int, base_stride: int) -> str:
    """The recipe name at an output ``stride``: the recipe itself at the preset's own stride
    (``base_stride``: 2 at the default preset, 4 at fast), else ``<recipe>-s<stride>``
    (:func:`poselab.chapters.sar.recipes.at_stride`)."""
    return recipe if int(stride) == int(base_stride) else f"{recipe}-s{int(stride)}"


def relative_drops(table, recipe: str, fine: int, coarse: int, base_stride: int, metric: str = "AP",
                   set_name: str = "generated val") -> list[float]:
    """Per seed, the share of ``metric`` lost from the ``fine`` to the ``coarse`` stride:
    ``(fine − coarse) / fine`` (0 = stable, 0.35 = a third lost); NaN where the fine value is 0."""
    hi = np.asarray(table.values(stride_name(recipe, fine, base_stride), metric, set_name), dtype=np.float64)
    lo = np.asarray(table.values(stride_name(recipe, coarse, base_stride), metric, set_name), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(hi > 0, (hi - lo) / hi, np.nan).tolist()


def stride_verdict(table, heatmap: str, sar: str, strides: Sequence[int], preset, data="synth",
                   metric: str = "AP", min_effect: float = 0.02, floor: float | None = None,
                   base_stride: int | None = None, min_drop_gap: float = 0.1):
    """SAR Fig. 4 as two links, each with its own verdict (:func:`poselab.claims.chain_verdict`):

    - *stability*: SAR loses a smaller share of ``metric`` than the heatmap from the finest to the
      coarsest stride (:func:`relative_drops`, paired by seed, by at least ``min_drop_gap``);
    - *above*: at the coarsest stride SAR beats the heatmap by ``min_effect``.

    The old rule only asked whether the heatmap dropped and SAR was above it at the coarse stride,
    so a SAR that itself fell by a third read "stable". ``base_stride``: the stride the preset's
    own recipes train at (default: ``preset.heatmap_stride``); other strides are ``<name>-s<s>``.
    """
    base = int(base_stride if base_stride is not None else getattr(preset, "heatmap_stride", 4))
    fine, coarse = min(strides), max(strides)
    if fine == coarse:
        raise ValueError(f"strides must hold at least two different strides, got {strides}")
    drops = {r: relative_drops(table, r, fine, coarse, base, metric) for r in (heatmap, sar)}
    ev = _evidence(table, preset, data, [stride_name(r, s, base) for r in (heatmap, sar) for s in (fine, coarse)],
                   metric, "generated val")
    ev["per_seed"].update({f"{r} share of {metric} lost s{fine}->s{coarse}": v for r, v in drops.items()})
    stable = claims.compare_seeds(drops[sar], drops[heatmap], lower_is_better=True, min_effect=min_drop_gap,
                                  metric=f"share of {metric} lost s{fine}->s{coarse}", paired=True,
                                  preset=getattr(preset, "name", preset), evidence=ev)
    above = pair_verdict(table, stride_name(sar, coarse, base), stride_name(heatmap, coarse, base), preset, data,
                         metric, min_effect, None)
    checks = []
    if floor is not None:
        checks = [claims.has_learnt(stride_name(r, s, base), table.values(stride_name(r, s, base), "AP"),
                                    floor=floor) for r in (heatmap, sar) for s in (fine, coarse)]
    links = {f"{sar} loses less than {heatmap} from s{fine} to s{coarse}": claims.require_ready(stable, checks),
             f"{sar} > {heatmap} at s{coarse}": claims.require_ready(above, checks)}
    return claims.chain_verdict(links, order=f"stability and rank at strides {fine}..{coarse}")


def shift_invariance(shift: float = 3.0, cells: int = 48, seed: int = 0) -> dict:
    """Why the two normalisations differ (§3.2): the softmax is exactly shift-invariant — adding
    one constant to every selector logit leaves ``w_t`` and the loss unchanged — while the
    two-step ``σ(s_t)/Σσ(s)`` is not (each σ saturates on its own). Random cells, targets and
    logits (float64); returns ``{normalization: |L(s + shift) − L(s)|}``. A "two-step" that were
    secretly a softmax would show 0 here."""
    g = torch.Generator().manual_seed(int(seed))
    coords = torch.rand(2, 3, cells, 2, generator=g, dtype=torch.float64) * 12
    logits = torch.randn(2, 3, cells, generator=g, dtype=torch.float64)
    target = torch.rand(2, 3, 2, generator=g, dtype=torch.float64) * 12
    out = {}
    for norm in ("softmax", "two_step"):
        base = sar_loss(coords, logits, target, map_size=(12, 12), normalization=norm, eps=0.0)
        moved = sar_loss(coords, logits + float(shift), target, map_size=(12, 12), normalization=norm, eps=0.0)
        out[norm] = abs(float(moved - base))
    return out


# ----------------------------------------------------------------------------- the paper's numbers
#: SAR Table 2 (COCO val AP as a fraction), per the paper's input size, in our recipe names
TABLE2 = {(64, 64): {"sar_regression": 0.227, "mse": 0.332, "sar_simcc": 0.375, "sar": 0.392},
          (128, 128): {"sar_regression": 0.431, "mse": 0.600, "sar_simcc": 0.619, "sar": 0.625},
          (256, 192): {"sar_regression": 0.538, "mse": 0.707, "sar_simcc": 0.712, "sar": 0.725}}
#: SAR Table 1 (COCO val AP, ResNet-50, 256x192): regression, SAR and SAR (f^g + FC) without
#: deconvolutions (4.0 / 5.3 GFLOPs); heatmap, heatmap + offset and SAR with them (9.7 GFLOPs)
TABLE1 = {"sar_regression": 0.538, "sar": 0.713, "sar_fg_fc": 0.711,
          "mse": 0.707, "heatmap_offset": 0.709, "sar_deconv": 0.725}


def paper_table2_size(input_size: Sequence[int]) -> tuple[int, int]:
    """The row of SAR Table 2 an input size is set against: the paper's size nearest in pixel
    count (on a log scale): 64×48 → 64×64, 128×96 → 128×128, 256×192 → 256×192."""
    H, W = (int(input_size[0]), int(input_size[1]))
    if H < 1 or W < 1:
        raise ValueError(f"input_size must be (H, W) >= 1, got {input_size!r}")
    return min(TABLE2, key=lambda k: abs(math.log(k[0] * k[1] / (H * W))))


def table2_verdict(tables: dict, sar: str = "sar", floor: float | None = 0.05, min_share: float = 0.5,
                   converge_tolerance: float | None = 0.05, metric: str = "AP"):
    """SAR Table 2 as a chain of links, each with its own verdict
    (:func:`poselab.experiments.compare_recipes`, unpaired: different models) and its own minimum
    effect: ``min_share`` × the paper's gap for that link at the paper's nearest input size
    (:func:`paper_table2_size`), with the gap given as ``paper_effect``. Links at every size:
    regression < heatmap < SimCC < SAR, **and SAR > heatmap directly** (the comparison the
    ordering hid: SAR below the heatmap breaks the chain whatever SimCC does). Both sides of each
    link must have learnt (``floor``) and converged (``converge_tolerance``), else that link is
    "inconclusive". ``tables``: ``{input size: ComparisonTable}``; ``sar``: the SAR recipe judged.
    Returns :func:`poselab.claims.chain_verdict` (the per-link verdicts in ``summary["links"]``).
    """
    if not tables:
        raise ValueError("tables must hold at least one input size")
    if not 0 < float(min_share) <= 1:
        raise ValueError(f"min_share must lie in (0, 1], got {min_share!r}")
    names = {"sar_regression": "sar_regression", "mse": "mse", "sar_simcc": "sar_simcc", "sar": sar}
    pairs = (("sar_regression", "mse"), ("mse", "sar_simcc"), ("sar_simcc", "sar"), ("mse", "sar"))
    links = {}
    for size, table in tables.items():
        row = TABLE2[paper_table2_size(size)]
        for lo, hi in pairs:
            gap = row[hi] - row[lo]
            links[f"{size[0]}x{size[1]} {names[hi]} > {names[lo]}"] = compare_recipes(
                table, names[hi], names[lo], metric=metric, min_effect=min_share * gap, paper_effect=gap,
                floor=floor, converge_tolerance=converge_tolerance)
    return claims.chain_verdict(links, order="Table 2: regression < heatmap < SimCC < SAR, and SAR > heatmap, "
                                             "at each input size")


def mean_pose_epe(preset, data="synth", set_name: str = "generated val") -> float:
    """EPE (crop px) of the image-blind predictor "every person gets the mean pose": each joint
    at its mean crop position over the evaluation set's labelled joints (the set's own mean, a
    slightly better guess than any model could learn from the training set). A model whose
    EPE_crop is not clearly below this has not learnt to localise (:func:`fg_fc_verdict`)."""
    p = get_preset(preset)
    _, sets = resolve_run_data(data, p)
    if set_name not in sets:
        raise KeyError(f"no evaluation set {set_name!r}; sets: {sorted(sets)}")
    ds = TopDownDataset(sets[set_name], input_size=p.input_size, train=False)
    kps, vis = [], []
    for i in range(len(ds)):
        item = ds[i]
        kps.append(np.asarray(item["keypoints"], dtype=np.float64))
        vis.append(np.asarray(item["visible"]) > 0)
    kp, v = np.stack(kps), np.stack(vis)
    if not v.any():
        raise ValueError(f"{set_name} has no labelled joint")
    mean = np.nansum(kp * v[..., None], 0) / np.maximum(v.sum(0), 1)[:, None]
    return float(np.linalg.norm(kp - mean[None], axis=-1)[v].mean())


def fg_fc_verdict(table, floor: float | None = 0.05, blind_epe: float | None = None, min_share: float = 0.5,
                  converge_tolerance: float | None = 0.05, ours: str = "sar_fg_fc", theirs: str = "sar_regression"):
    """SAR Table 1's last row: f^g + FC beats conventional regression (paper: 71.1 vs 53.8 AP),
    judged only when **both** have learnt: each side's AP reaches ``floor`` and, with
    ``blind_epe`` (:func:`mean_pose_epe`), each side's EPE_crop is at least 10 % below the
    constant mean pose's. Two models that learnt nothing (AP 0.007 vs 0.006; EPE 13.27 / 12.95
    px vs 13.28 for the mean pose) give "inconclusive", never "not reproduced". Minimum effect:
    ``min_share`` × the paper's gap."""
    gap = TABLE1[ours] - TABLE1[theirs]
    v = compare_recipes(table, ours, theirs, metric="AP", min_effect=min_share * gap, paper_effect=gap,
                        floor=floor, converge_tolerance=converge_tolerance)
    if blind_epe is None:
        return v
    checks = [claims.has_learnt(r, table.values(r, "EPE_crop"), blind=float(blind_epe), metric="EPE_crop",
                                lower_is_better=True) for r in (ours, theirs)]
    out = claims.require_ready(v, checks)
    return out.replace(summary={**out.summary, "mean_pose_epe": float(blind_epe)})


def heatmap_offset_verdict(table, sar: str = "sar", floor: float | None = 0.05, min_share: float = 0.5,
                           converge_tolerance: float | None = 0.05, baseline: str = "heatmap_offset"):
    """SAR Table 1: SAR beats the heatmap + offset baseline at the same cost (72.5 vs 70.9 AP with
    deconvolutions): :func:`poselab.experiments.compare_recipes` with ``min_share`` × that gap as
    the minimum effect and the gap as ``paper_effect``; both sides must have learnt and converged."""
    gap = TABLE1["sar_deconv"] - TABLE1["heatmap_offset"]
    return compare_recipes(table, sar, baseline, metric="AP", min_effect=min_share * gap, paper_effect=gap,
                           floor=floor, converge_tolerance=converge_tolerance)


def aux_ablation_verdict(table, with_aux: str = "sar_aux", without: str = "sar", floor: float | None = 0.05,
                         min_effect: float = 0.02, converge_tolerance: float | None = 0.05):
    """Does the official code's auxiliary heatmap loss change SAR's AP? Two-sided: "reproduced"
    reads "the auxiliary loss helps by ≥ ``min_effect``" (the paper reports no such ablation:
    no paper effect); "not reproduced" when the runs rule that out. Both sides must have learnt
    and converged."""
    return compare_recipes(table, with_aux, without, metric="AP", min_effect=min_effect, floor=floor,
                           converge_tolerance=converge_tolerance)


def recorded_verdicts(floor: float | None = 0.05, min_share: float = 0.5, min_effect: float = 0.02,
                      preset: str = "full", root=None) -> dict:
    """The chapter's empirical training claims judged by the same functions on the recorded
    replication (``poselab replicate 05``; :func:`poselab.experiments.replicate.recorded_verdict`):
    ``{claim id: {recorded, verdict, reason, preset, seeds, ...}}`` — "no recorded replication
    yet" (with the command) where there is none. The replication trains one input size, the
    preset's; its coarse stride is :data:`poselab.chapters.sar.recipes.REPLICATION_STRIDE`. The
    claims computed on the models: :func:`poselab.chapters.sar.replication.recorded_verdicts`."""
    p = get_preset(preset)
    h = sar_recipes.HEADLINE_SAR
    judges = {
        "sar.input_size.table": lambda t: table2_verdict({tuple(p.input_size): t}, sar=h, floor=floor,
                                                         min_share=min_share),
        "sar.quantization.stride_robustness": lambda t: stride_verdict(
            t, "mse", h, (p.heatmap_stride, sar_recipes.REPLICATION_STRIDE), p, "synth", "AP", min_effect, floor),
        "sar.fg_fc_variant": lambda t: fg_fc_verdict(t, floor=floor, min_share=min_share),
        "sar.heatmap_offset": lambda t: heatmap_offset_verdict(t, h, floor=floor, min_share=min_share),
        "sar.training.auxiliary_heatmap": lambda t: aux_ablation_verdict(t, *sar_recipes.AUX_HEATMAP, floor=floor,
                                                                         min_effect=min_effect)}
    return {claim: recorded_verdict("05_sar", judge, preset=preset, root=root) for claim, judge in judges.items()}


def verdict_sentence(what: str, verdict, recorded=None) -> str:
    """One sentence for a section's close, from the run: ``"<what>: <verdict> — <reason>."``; with
    ``recorded`` (a recorded verdict, :func:`poselab.experiments.replicate.recorded_verdict`'s
    shape) the recorded replication's verdict follows it."""
    v = getattr(verdict, "verdict", None) or verdict.get("verdict")
    reason = getattr(verdict, "reason", None) or verdict.get("reason", "")
    tail = f" On the recorded replication: {claims.recorded_text(recorded).rstrip('.')}." if recorded is not None else ""
    return f"{what}: **{v}** — {str(reason).rstrip('.')}.{tail}"
