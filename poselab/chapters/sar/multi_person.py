"""Multi-keypoint localisation (SAR §4.3, Fig. 3): every instance of a joint on a whole image.

Bottom-up toy: whole generated images with several people (no person boxes), one output map per
joint type. Two tiny models on the same backbone, data, optimiser and steps (trained by
:func:`poselab.train.fit`):

- **SAR**: every cell regresses a point and a selector; the multi-target objective
  (:func:`poselab.losses.sar_multi_target_loss`: one Eq. 7 term per person, shared weights);
  decoding Eq. 11 — the top-m cells with ``c_t ≥ γ`` — then duplicates (points closer than
  ``nms_px``) merged, keeping the higher score.
- **heatmap**: MSE to the pixel-wise maximum of the persons' Gaussians (the usual bottom-up
  target); decoding: local maxima (3×3) with value ≥ τ, top-m.

Recall and precision count one-to-one matches within ``match_px`` input px
(:func:`poselab.chapters.sar.analysis.match_detections`), over all joint types and images.

One rule, live and recorded: the chapter's cell and the recorded replication (``poselab replicate
05``: :mod:`poselab.chapters.sar.replication`'s derived steps call :func:`bottom_up_record` once per
kind and seed) train and score each seed with :func:`train_and_evaluate` and judge the per-seed
evaluations with :func:`detection_verdict` (:func:`detection_from_records` rebuilds them from the
records). The bottom-up models are not recipes of the run cache (whole images, no crops): a
derived step trains them itself, with its base run's seed, at the budget :data:`BUDGETS` gives the
replication's preset.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from poselab import claims
from poselab.chapters.sar.analysis import match_detections
from poselab.codecs.heatmap import encode_gaussian, heatmap_to_input, input_to_heatmap
from poselab.codecs.sar import sar_flatten_outputs, sar_top_m
from poselab.data import synth
from poselab.data.coco import load_persons, read_image
from poselab.data.dataset import IMAGENET_MEAN, IMAGENET_STD, denormalize_image
from poselab.experiments.replicate import pair_by_seed
from poselab.losses.heatmap import heatmap_mse_loss
from poselab.losses.sar import sar_multi_target_loss
from poselab.models import build_model
from poselab.train import fit

__all__ = ["multi_person_data", "FullImageDataset", "bottom_up_loss", "train_bottom_up",
           "detect", "detection_scores", "evaluate_detections", "threshold_sweep", "at_threshold", "KINDS",
           "best_f1", "recall_at_precision", "threshold_free", "detection_verdict", "best_threshold",
           "image_detections", "THRESHOLDS", "MATCH_PX", "BUDGETS", "budget_for", "train_and_evaluate",
           "detection_evidence", "bottom_up_record", "multi_person_record", "detection_from_records"]

KINDS = ("sar", "heatmap")
#: the thresholds the chapter sweeps: γ on SAR's c_t, τ on the heatmap's values
THRESHOLDS = tuple(float(t) for t in np.round(np.linspace(0.05, 0.95, 19), 2))
#: a detection within this many input px of a labelled joint matches it
MATCH_PX = 4.0
#: the bottom-up toy's budget per preset: generated whole images for training / evaluation and
#: optimiser steps per model ("fast" and "default" are the chapter's own fast and default runs)
BUDGETS = {"fast": {"train_images": 40, "val_images": 12, "steps": 15},
           "default": {"train_images": 400, "val_images": 80, "steps": 300},
           "full": {"train_images": 1600, "val_images": 200, "steps": 2000}}
CONTROLS = {"image_size": (64, 80), "persons_per_image": (2, 4), "scale_range": (0.45, 0.85),
            "occlusion_prob": 0.1, "truncation_prob": 0.1}


def multi_person_data(split: str, n_images: int, seed: int | None = None, root=None) -> Path:
    """A generated COCO folder of whole images with 2–4 people each (:data:`CONTROLS`), cached
    under ``<default data root>/sar_multi_person``; returns the json path."""
    seed = {"train": 11, "val": 12}.get(split, 13) if seed is None else int(seed)
    out = Path(synth.default_root(root)) / "sar_multi_person" / f"{split}-n{int(n_images)}-s{seed}"
    js = out / "annotations" / f"person_keypoints_{split}.json"
    if js.is_file():
        try:
            info = json.loads(js.read_text())["info"]
            if info.get("version") == synth.GENERATOR_VERSION and info.get("n_images") == int(n_images):
                return js
        except (OSError, ValueError, KeyError):
            pass
    return synth.generate(out, int(n_images), seed, split=split, overwrite=True, **CONTROLS)


class FullImageDataset(Dataset):
    """Whole images with all their persons' keypoints (no crops, no augmentation).

    Items: ``image (3, H, W)`` normalised like :class:`poselab.data.TopDownDataset`,
    ``targets (K, P, 2)`` heatmap px, ``target_visible (K, P)``, ``heatmap (K, h, w)`` (max of the
    persons' MSRA Gaussians, σ heatmap px), ``weights (K,)`` ones, and ``keypoints (P, K, 2)``
    input px / ``visible (P, K)`` for evaluation (P = the most persons in an image, zero-padded).
    """

    def __init__(self, ann_json, stride: int = 4, sigma: float = 1.5):
        persons = load_persons(ann_json)
        by_image: dict = {}
        for p in sorted(persons, key=lambda q: (q.image_id, q.ann_id)):
            by_image.setdefault(p.image_path, []).append(p)
        if not by_image:
            raise ValueError(f"no persons in {ann_json}")
        self.paths = list(by_image)
        first = np.asarray(read_image(self.paths[0]))
        H, W = first.shape[:2]
        self.input_size, self.stride = (H, W), int(stride)
        self.heatmap_size = (H // self.stride, W // self.stride)
        P = max(len(v) for v in by_image.values())
        n, K = len(self.paths), 17
        self.images = np.empty((n, 3, H, W), dtype=np.float32)
        self.keypoints = np.zeros((n, P, K, 2), dtype=np.float32)
        self.visible = np.zeros((n, P, K), dtype=np.float32)
        for i, path in enumerate(self.paths):
            rgb = np.asarray(read_image(path), dtype=np.float32) / 255.0
            self.images[i] = ((rgb - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)
            for j, p in enumerate(by_image[path]):
                kp = np.asarray(p.keypoints, dtype=np.float32).reshape(K, 3)
                self.keypoints[i, j] = kp[:, :2]
                self.visible[i, j] = (kp[:, 2] > 0).astype(np.float32)
        kp_hm = input_to_heatmap(torch.from_numpy(self.keypoints), self.input_size, self.heatmap_size)
        self.targets = kp_hm.permute(0, 2, 1, 3).contiguous()                  # (n, K, P, 2)
        self.target_visible = torch.from_numpy(self.visible).permute(0, 2, 1).contiguous()
        hms, _ = encode_gaussian(kp_hm, torch.from_numpy(self.visible), self.heatmap_size, sigma)
        self.heatmaps = hms.amax(1)                                               # (n, K, h, w)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict:
        return {"image": torch.from_numpy(self.images[i]), "targets": self.targets[i],
                "target_visible": self.target_visible[i], "heatmap": self.heatmaps[i],
                "weights": torch.ones(self.targets.shape[1]),
                "keypoints": torch.from_numpy(self.keypoints[i]), "visible": torch.from_numpy(self.visible[i])}


def bottom_up_loss(kind: str, lam: float = 16.0):
    """``loss_fn(outputs, batch)``: SAR multi-target objective or heatmap MSE (module docstring)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")

    def sar_fn(outputs, batch):
        h, w = outputs["selector"].shape[-2:]
        coords, logits = sar_flatten_outputs(outputs["selector"], outputs["offsets"])
        return sar_multi_target_loss(coords, logits, batch["targets"], batch["target_visible"], lam, (w, h))

    def heatmap_fn(outputs, batch):
        return heatmap_mse_loss(outputs, batch["heatmap"], batch["weights"])
    return sar_fn if kind == "sar" else heatmap_fn


def train_bottom_up(kind: str, dataset: FullImageDataset, steps: int = 300, batch_size: int = 16,
                    lr: float = 2e-3, seed: int = 0, device="auto", callbacks: Sequence = ()):
    """A tiny model of ``kind`` trained on whole images with :func:`poselab.train.fit`
    (AdamW, 50-step warm-up, cosine). Returns ``(model in eval mode, History)``."""
    model = build_model("sar" if kind == "sar" else "heatmap", dataset.input_size, "tiny", seed=seed)
    hist = fit(model, bottom_up_loss(kind), dataset, max_steps=int(steps), epochs=10 ** 6,
               batch_size=batch_size, lr=lr, warmup_steps=min(50, int(steps) // 4), schedule="cosine",
               device=device, seed=seed, callbacks=list(callbacks))
    return model.eval(), hist


def _nms(points: np.ndarray, scores: np.ndarray, radius: float):
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    for i in order:
        if all(np.linalg.norm(points[i] - points[j]) > radius for j in kept):
            kept.append(i)
    return points[kept], scores[kept]


def detection_scores(kind: str, outputs, m: int = 8):
    """Candidate detections per (image, joint) *before* thresholding: ``(points (B, K, m, 2)
    heatmap px, scores (B, K, m))`` sorted by score — SAR: the top-m cells by ``c_t`` (Eq. 11);
    heatmap: the top-m local maxima (3×3) by value (non-maxima scored −inf)."""
    if kind == "sar":
        pts, c, _ = sar_top_m(outputs["selector"], outputs["offsets"], m=m, gamma=0.0)
        return pts, c
    hm = outputs
    B, K, h, w = hm.shape
    peak = hm == F.max_pool2d(hm, 3, stride=1, padding=1)
    val = torch.where(peak, hm, torch.full_like(hm, -float("inf"))).reshape(B, K, h * w)
    top, idx = val.topk(min(m, h * w), dim=-1)
    pts = torch.stack([idx % w, torch.div(idx, w, rounding_mode="floor")], -1).to(hm.dtype)
    return pts, top


def detect(kind: str, outputs, threshold: float, m: int = 8, nms_px: float = 1.0) -> list:
    """Eq. 11 (SAR) / thresholded local maxima (heatmap): ``[[points (n, 2) heatmap px per joint]
    per image]`` with score ≥ ``threshold``, duplicates within ``nms_px`` merged."""
    pts, sc = detection_scores(kind, outputs, m)
    pts, sc = pts.detach().cpu().numpy(), sc.detach().cpu().numpy()
    out = []
    for b in range(pts.shape[0]):
        per_joint = []
        for k in range(pts.shape[1]):
            keep = sc[b, k] >= threshold
            p, s = _nms(pts[b, k][keep], sc[b, k][keep], nms_px)
            per_joint.append(p)
        out.append(per_joint)
    return out


@torch.no_grad()
def evaluate_detections(model, kind: str, dataset: FullImageDataset, thresholds: Sequence[float],
                        match_px: float = 4.0, m: int = 8, nms_px: float = 1.0,
                        batch_size: int = 32) -> dict:
    """Recall and precision of ``model`` on ``dataset`` at each threshold (γ for SAR's ``c_t``,
    τ for heatmap values): matches within ``match_px`` input px, summed over images and joints.

    Returns ``{"thresholds", "recall", "precision", "tp", "fp", "fn"}`` arrays.
    """
    dev = next(model.parameters()).device
    outs = []
    for i in range(0, len(dataset), batch_size):
        imgs = torch.from_numpy(dataset.images[i:i + batch_size]).to(dev)
        o = model(imgs)
        outs.append({k: v.cpu() for k, v in o.items()} if isinstance(o, dict) else o.cpu())
    outputs = ({k: torch.cat([o[k] for o in outs]) for k in outs[0]} if isinstance(outs[0], dict)
               else torch.cat(outs))
    rows = {"tp": [], "fp": [], "fn": []}
    for t in thresholds:
        dets = detect(kind, outputs, float(t), m, nms_px)
        tp = fp = fn = 0
        for b, per_joint in enumerate(dets):
            for k, p in enumerate(per_joint):
                vis = dataset.visible[b, :, k] > 0
                truth = dataset.keypoints[b, vis, k]
                p_in = heatmap_to_input(torch.as_tensor(p, dtype=torch.float64).reshape(-1, 2),
                                        dataset.input_size, dataset.heatmap_size).numpy()
                r = match_detections(p_in, truth, match_px)
                tp, fp, fn = tp + r["tp"], fp + r["fp"], fn + r["fn"]
        rows["tp"].append(tp)
        rows["fp"].append(fp)
        rows["fn"].append(fn)
    tp, fp, fn = (np.array(rows[k], dtype=np.float64) for k in ("tp", "fp", "fn"))
    return {"thresholds": np.asarray(thresholds, dtype=np.float64), "tp": tp, "fp": fp, "fn": fn,
            "recall": tp / np.maximum(tp + fn, 1), "precision": np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 1.0)}


def threshold_sweep(evaluations: dict, thresholds) -> dict:
    """``{kind: [evaluate_detections result per seed]}`` → ``{"<kind> recall": {threshold:
    [per seed]}, "<kind> precision": {...}}`` (the input of :func:`poselab.chapters.sar.figures.sweep_figure`)."""
    out = {}
    for metric in ("recall", "precision"):
        for kind, evals in evaluations.items():
            out[f"{kind} {metric}"] = {float(t): [float(e[metric][i]) for e in evals]
                                       for i, t in enumerate(thresholds)}
    return out


def at_threshold(evaluations: dict, thresholds, chosen: dict, metric: str) -> dict:
    """Per-seed ``metric`` of each kind at its chosen threshold (the nearest evaluated one)."""
    t = np.asarray(thresholds, dtype=np.float64)
    return {kind: [float(e[metric][int(np.argmin(np.abs(t - chosen[kind])))]) for e in evals]
            for kind, evals in evaluations.items()}


def best_f1(evaluation: dict) -> float:
    """The best F1 = 2PR / (P + R) over the evaluated thresholds (threshold-free: each model at
    its own best operating point). ``evaluation``: one :func:`evaluate_detections` result."""
    r = np.asarray(evaluation["recall"], dtype=np.float64)
    p = np.asarray(evaluation["precision"], dtype=np.float64)
    if r.shape != p.shape or r.size == 0:
        raise ValueError("evaluation needs recall and precision arrays of one shape, at least one threshold")
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return float(f1.max())


def recall_at_precision(evaluation: dict, precision: float) -> float:
    """The highest recall among the evaluated thresholds whose precision is at least
    ``precision`` (0 when none reaches it): recall at a precision both models are held to."""
    if not 0.0 <= float(precision) <= 1.0:
        raise ValueError(f"precision must lie in [0, 1], got {precision!r}")
    r = np.asarray(evaluation["recall"], dtype=np.float64)
    p = np.asarray(evaluation["precision"], dtype=np.float64)
    ok = p >= float(precision)
    return float(r[ok].max()) if ok.any() else 0.0


def threshold_free(evaluations: dict, precision: float = 0.5) -> dict:
    """``{kind: [evaluate_detections result per seed]}`` → ``{"<kind> best F1": [per seed],
    "<kind> recall at precision <p>": [per seed]}``: the comparison that needs no hand-picked
    threshold (recall at two chosen thresholds can be bought with false positives)."""
    out = {}
    for kind, evals in evaluations.items():
        out[f"{kind} best F1"] = [best_f1(e) for e in evals]
        out[f"{kind} recall at precision {precision:g}"] = [recall_at_precision(e, precision) for e in evals]
    return out


def detection_verdict(evaluations: dict, precision: float = 0.5, min_effect: float = 0.02,
                      preset: str | None = None, evidence=None, ours: str = "sar", theirs: str = "heatmap",
                      floor: float | None = 0.1):
    """SAR §4.3 / Fig. 3 judged without a chosen threshold: ``ours`` beats ``theirs`` in best F1
    **and** in recall at matched precision (:func:`threshold_free`), each by ``min_effect``,
    per seed (unpaired: separate models), combined unanimously
    (:func:`poselab.claims.combine_verdicts`). Both detectors must have learnt: each one's mean
    best F1 reaches ``floor`` (None: no floor), else "inconclusive" naming it — two detectors that
    find nothing never make a "not reproduced". The chapter's live run and the recorded
    replication (:func:`detection_from_records`) use this one rule."""
    tf = threshold_free({k: evaluations[k] for k in (ours, theirs)}, precision)
    parts = {}
    for label, key in (("best F1", "best F1"), (f"recall at precision {precision:g}", f"recall at precision {precision:g}")):
        parts[label] = claims.compare_seeds(tf[f"{ours} {key}"], tf[f"{theirs} {key}"], lower_is_better=False,
                                            min_effect=min_effect, metric=f"{label} ({ours} vs {theirs})",
                                            preset=preset, evidence=evidence)
    v = claims.combine_verdicts(parts)
    if floor is not None:
        v = claims.require_ready(v, [claims.has_learnt(k, tf[f"{k} best F1"], floor=float(floor), metric="best F1")
                                     for k in (ours, theirs)])
    return v.replace(summary={**v.summary, "per_seed": tf})


def budget_for(preset) -> dict:
    """The bottom-up budget (:data:`BUDGETS`) of a preset (a name or a Preset)."""
    name = str(getattr(preset, "name", preset))
    if name not in BUDGETS:
        raise ValueError(f"no multi-person budget for preset {name!r}; one of {sorted(BUDGETS)}")
    return dict(BUDGETS[name])


def train_and_evaluate(kind: str, train: FullImageDataset, val: FullImageDataset, steps: int, seed: int,
                       thresholds: Sequence[float] = THRESHOLDS, match_px: float = MATCH_PX,
                       device="auto") -> dict:
    """One seed of the comparison, live and recorded alike: :func:`train_bottom_up` on ``train``,
    then :func:`evaluate_detections` on ``val``. Returns ``{"model", "evaluation", "history"}``."""
    model, hist = train_bottom_up(kind, train, steps, seed=seed, device=device)
    return {"model": model, "history": hist,
            "evaluation": evaluate_detections(model, kind, val, thresholds, match_px)}


def detection_evidence(evaluations: dict, seeds: Sequence[int], preset: str, input_size, heatmap_size,
                       steps: int, thresholds: Sequence[float], match_px: float, precision: float,
                       **extra) -> dict:
    """The provenance of ``sar.multi_person.recall`` (:func:`poselab.claims.evidence`): the
    threshold-free per-seed values (:func:`threshold_free`) and the toy's set-up."""
    return claims.evidence(preset=preset, seeds=list(seeds), per_seed=threshold_free(evaluations, precision),
                           input_size=input_size, heatmap_size=heatmap_size,
                           data="generated whole images, 2-4 persons", steps=int(steps),
                           thresholds=[float(t) for t in thresholds], match_px=float(match_px),
                           precision=float(precision), **extra)


def bottom_up_record(kind: str, seed: int, preset, device="cpu") -> dict:
    """The derived record of one kind and seed for ``poselab replicate 05``: the bottom-up toy at
    :func:`budget_for` ``(preset)`` trained and scored by :func:`train_and_evaluate` (on the CPU
    by default: one thread, reproducible) over :data:`THRESHOLDS` with :data:`MATCH_PX`; with the
    mean training loss of each fifth of the steps (``loss_by_fifth``: how far from converged)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    budget = budget_for(preset)
    train = FullImageDataset(multi_person_data("train", budget["train_images"]))
    val = FullImageDataset(multi_person_data("val", budget["val_images"]))
    out = train_and_evaluate(kind, train, val, budget["steps"], int(seed), THRESHOLDS, MATCH_PX, device)
    ev, losses = out["evaluation"], np.asarray(out["history"].losses, dtype=np.float64)
    return {"kind": kind, "seed": int(seed), "budget": budget, "thresholds": list(THRESHOLDS),
            "match_px": MATCH_PX, "input_size": list(train.input_size), "heatmap_size": list(train.heatmap_size),
            "evaluation": {k: np.asarray(ev[k], dtype=np.float64).tolist()
                           for k in ("thresholds", "tp", "fp", "fn", "recall", "precision")},
            "loss_by_fifth": [float(part.mean()) for part in np.array_split(losses, 5) if part.size],
            "note": "trained here from scratch with the base run's seed; the base run itself is not read"}


def multi_person_record(kind: str):
    """``compute(run, preset)`` of the derived step of ``kind``: :func:`bottom_up_record` with the
    base run's seed (the base run itself is not read: the bottom-up models are not recipes)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")

    def compute(run, preset):
        return bottom_up_record(kind, int(run.seed), preset)
    compute.__name__ = compute.__qualname__ = f"multi_person_{kind}_record"
    return compute


_RECORD_KEYS = {"kind", "seed", "budget", "thresholds", "match_px", "input_size", "heatmap_size", "evaluation"}


def _record_problem(r) -> str | None:
    """What makes ``r`` no derived record of :func:`bottom_up_record` (None: it is one)."""
    ok = isinstance(r, Mapping) and {"seed", "preset", "values"} <= set(r) and isinstance(r["values"], Mapping)
    vals = r["values"] if ok else {}
    ev = vals.get("evaluation")
    if not (ok and _RECORD_KEYS <= set(vals) and isinstance(ev, Mapping)
            and {"thresholds", "recall", "precision"} <= set(ev)):
        return (f"is not a multi-person record (needs seed, preset and values with {sorted(_RECORD_KEYS)}: "
                "multi_person.bottom_up_record)")
    if vals["seed"] != r["seed"]:
        return f"holds {vals['kind']} seed {vals['seed']}"
    return None


def _value(key: str):
    return key, lambda r: r["values"][key]


def detection_from_records(records: Mapping[str, Sequence[dict]], precision: float = 0.5, min_effect: float = 0.02,
                           floor: float | None = 0.1, ours: str = "sar", theirs: str = "heatmap"):
    """:func:`detection_verdict` on the recorded replication: ``records`` ``{kind: [derived records
    of :func:`bottom_up_record`, by seed]}``, judged at the seeds recorded for both kinds (those
    recorded for one only are named in the reason). KeyError when a kind has no record yet;
    ValueError when no seed has both, a record is not one of :func:`bottom_up_record` (naming the
    kind and seed), a kind holds a seed twice, or the paired records differ in preset, budget,
    thresholds, matching radius or input size (:func:`poselab.experiments.replicate.pair_by_seed`)."""
    for kind in (ours, theirs):
        if not records.get(kind):
            raise KeyError(f"no recorded multi-person evaluation of {kind!r} yet")
    pairs = pair_by_seed(records, (ours, theirs), check=_record_problem, side_of=lambda r: r["values"]["kind"],
                         same=[("preset", lambda r: r["preset"]),
                               *map(_value, ("budget", "thresholds", "match_px", "input_size"))])
    seeds, first = pairs.seeds, pairs.sides[ours][0]
    evaluations = {}
    for kind in (ours, theirs):
        evaluations[kind] = []
        for s, r in zip(seeds, pairs.sides[kind]):
            ev = r["values"]["evaluation"]
            arrays = {k: np.asarray([np.nan if x is None else x for x in ev[k]], dtype=np.float64)
                      for k in ("thresholds", "recall", "precision") if k in ev}
            if len({a.shape for a in arrays.values()}) != 1 or arrays["recall"].size == 0:
                raise ValueError(f"the {kind} record of seed {s} holds thresholds, recall and precision of "
                                 "different lengths")
            evaluations[kind].append(arrays)
    vals = first["values"]
    preset = str(first["preset"])
    evidence = detection_evidence(evaluations, seeds, preset, vals["input_size"], vals["heatmap_size"],
                                  vals["budget"]["steps"], vals["thresholds"], vals["match_px"], precision,
                                  budget=dict(vals["budget"]))
    v = detection_verdict(evaluations, precision, min_effect, preset=preset, evidence=evidence, ours=ours,
                          theirs=theirs, floor=floor)
    alone = pairs.unpaired
    if alone:
        v = v.replace(reason=f"{v.reason} (seeds {alone} recorded for one kind only are left out)",
                      summary={**v.summary, "seeds_one_side_only": alone})
    return v


def best_threshold(evaluation: dict) -> float:
    """The evaluated threshold with the best F1 (the operating point :func:`best_f1` reports)."""
    r = np.asarray(evaluation["recall"], dtype=np.float64)
    p = np.asarray(evaluation["precision"], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return float(np.asarray(evaluation["thresholds"], dtype=np.float64)[int(np.argmax(f1))])


@torch.no_grad()
def image_detections(models: dict, dataset: FullImageDataset, index: int, joint: int, thresholds: dict,
                     m: int = 8, nms_px: float = 1.0) -> dict:
    """One image's detections of one joint type by each model, for
    :func:`poselab.chapters.sar.figures.detections_figure`: ``{"image" (H, W, 3) uint8, "truths" (n, 2) input px
    (the labelled instances), "detections": {kind: (d, 2) input px}}``. ``models``: ``{kind:
    model}``; ``thresholds``: ``{kind: γ or τ}`` (e.g. each model's :func:`best_threshold`)."""
    if not 0 <= int(index) < len(dataset):
        raise ValueError(f"index must lie in [0, {len(dataset)}), got {index!r}")
    item = dataset[int(index)]
    dets = {}
    for kind, model in models.items():
        dev = next(model.parameters()).device
        out = model(item["image"][None].to(dev))
        out = {k: v.cpu() for k, v in out.items()} if isinstance(out, dict) else out.cpu()
        pts = detect(kind, out, float(thresholds[kind]), m, nms_px)[0][int(joint)]
        dets[kind] = heatmap_to_input(torch.as_tensor(pts, dtype=torch.float64).reshape(-1, 2),
                                      dataset.input_size, dataset.heatmap_size).numpy()
    vis = dataset.visible[int(index), :, int(joint)] > 0
    return {"image": denormalize_image(item["image"]), "truths": dataset.keypoints[int(index), vis, int(joint)],
            "detections": dets}
