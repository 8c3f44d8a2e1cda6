"""Pure functions behind chapter 00 "pose basics" (arrays in, numbers out).

- how fast keypoint similarity falls with distance (:func:`ks_versus_distance`),
- the per-joint breakdown of one OKS (:func:`oks_breakdown`, used by the OKS widget),
- a person crop with its Gaussian heatmap targets (:func:`person_crop_and_heatmaps`),
- AP of a ranked list of perturbed ground truths (:func:`perturb_ground_truth`,
  :func:`ap_by_ranking`),
- our OKS against pycocotools' on a whole annotation file (:func:`max_oks_difference`),
- byte comparison of two generated dataset folders (:func:`compare_folders`) and the generator's
  digest computed in separate processes with different ``PYTHONHASHSEED`` (:func:`digest_across_processes`),
- AP of the ground truth fed back as predictions, with constant and random scores
  (:func:`ground_truth_ap`),
- a dataset's summary as a table row (:func:`dataset_summary`).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from pycocotools.cocoeval import COCOeval

from poselab.codecs.heatmap import encode_gaussian, input_to_heatmap
from poselab.data.transforms import affine_matrix, bbox_to_center_scale, image_to_crop, warp_image
from poselab.metrics import (coco_keypoint_eval, ground_truth_as_results, keypoint_similarity, load_coco, oks,
                             oks_matrix)
from poselab.skeleton import KEYPOINT_NAMES, NUM_KEYPOINTS, OKS_SIGMAS

ORDERINGS = ("good", "random", "reversed")


def ks_versus_distance(distances, area: float, sigmas=None) -> np.ndarray:
    """KS_k(d) = exp(-d² / (2 s² κ_k²)) for every joint k and distance d (pixels).

    Args:
        distances: (D,) pixel distances ≥ 0. area: object area s² (pixels²).
    Returns:
        (K, D) float64.
    """
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 1:
        raise ValueError(f"distances must be 1-D, got shape {d.shape}")
    k = NUM_KEYPOINTS if sigmas is None else len(sigmas)
    pred = np.zeros((d.size, k, 2))
    pred[:, :, 0] = d[:, None]
    ks = keypoint_similarity(pred, np.zeros((1, k, 2)), np.full(d.size, float(area)), sigmas)
    return ks.T


def oks_breakdown(pred_xy, gt_keypoints, area: float) -> dict:
    """Per-joint KS and the OKS of one prediction against one ground-truth person.

    Args:
        pred_xy: (K, 2) predicted (x, y). gt_keypoints: (K, 3) COCO (x, y, v). area: s².
    Returns:
        ``{"ks": (K,) float64 (computed for every joint), "visible": (K,) bool (v > 0, the
        joints that count), "oks": float}`` (OKS 0.0 when no joint is visible).
    """
    gt = np.asarray(gt_keypoints, dtype=np.float64)
    if gt.ndim != 2 or gt.shape[1] != 3:
        raise ValueError(f"gt_keypoints must have shape (K, 3) = (x, y, v), got {gt.shape}")
    ks = keypoint_similarity(pred_xy, gt[:, :2], float(area))
    value = float(oks(pred_xy, gt[:, :2], gt[:, 2], float(area)))
    return {"ks": ks, "visible": gt[:, 2] > 0, "oks": value}


def person_crop_and_heatmaps(image, bbox, keypoints, input_size=(256, 192),
                             heatmap_size=(64, 48), sigma: float = 2.0) -> dict:
    """Top-down crop of one person and its Gaussian heatmap targets (MSRA encoding).

    Args:
        image: (H, W, 3) uint8 array or PIL image. bbox: (4,) [x, y, w, h].
        keypoints: (K, 3) COCO (x, y, v) in image pixels.
        input_size, heatmap_size: (H, W) of the crop and of the heatmaps.
        sigma: Gaussian standard deviation in heatmap pixels.
    Returns:
        ``{"crop": (h, w, 3) uint8, "keypoints": (K, 3) in crop pixels (v kept),
        "heatmaps": (K, Hh, Wh) float32 numpy, "weights": (K,)}``.
    """

    kp = np.asarray(keypoints, dtype=np.float64)
    center, scale = bbox_to_center_scale(bbox, input_size)
    crop = warp_image(image, affine_matrix(center, scale, input_size), input_size)
    kp_crop = kp.copy()
    kp_crop[:, :2] = image_to_crop(kp[:, :2], center, scale, input_size)
    xy_heat = input_to_heatmap(kp_crop[:, :2], input_size, heatmap_size)
    heat, weights = encode_gaussian(xy_heat, kp_crop[:, 2], heatmap_size, sigma=sigma)
    return {"crop": crop, "keypoints": kp_crop, "heatmaps": heat.numpy(),
            "weights": weights.numpy()}


def perturb_ground_truth(gt_json, noise: float = 0.1, seed: int = 0) -> tuple[list[dict], np.ndarray]:
    """Noisy copies of every ground-truth person, as COCO results, and each copy's true OKS.

    Each person i (non-crowd, ≥ 1 labelled joint) gets one prediction: every joint moved by
    N(0, σ_i²) per axis with σ_i = noise · sqrt(area_i) · u_i, u_i ~ U(0.1, 2.5), so the copies
    span good and bad predictions. Scores are left at 1.0 (see :func:`ap_by_ranking`).

    Returns:
        ``(results, quality)``: list of result dicts and (n,) OKS of each copy with its source.
    """
    coco = load_coco(gt_json)
    rng = np.random.default_rng(seed)
    anns = [a for a in coco.loadAnns(coco.getAnnIds())
            if not a.get("iscrowd", 0) and a.get("num_keypoints", 0) > 0]
    if not anns:
        raise ValueError("the ground truth has no person with labelled keypoints")
    gt = np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(len(anns), -1, 3)
    area = np.array([a["area"] for a in anns], dtype=np.float64)
    std = noise * np.sqrt(area) * rng.uniform(0.1, 2.5, size=len(anns))
    pred = gt[..., :2] + rng.normal(size=gt[..., :2].shape) * std[:, None, None]
    quality = oks(pred, gt[..., :2], gt[..., 2], area)
    results = []
    for a, p in zip(anns, pred):
        kp = np.concatenate([p, np.ones((p.shape[0], 1))], axis=1)
        results.append({"image_id": a["image_id"], "category_id": a["category_id"],
                        "keypoints": kp.ravel().tolist(), "score": 1.0})
    return results, quality


def ap_by_ranking(gt_json, results: list[dict], quality, seed: int = 0,
                  orderings=ORDERINGS) -> dict[str, dict]:
    """COCO AP of the same detections under different confidence scores.

    ``"good"``: score = quality (the detections ranked by their true OKS); ``"reversed"``:
    score = 1 − quality (the worst first); ``"random"``: scores uniform in [0, 1). The keypoints
    do not change, only the order COCOeval sees them in.

    Returns:
        ``{ordering: coco_keypoint_eval(...) dict}``.
    """
    q = np.asarray(quality, dtype=np.float64)
    if q.shape != (len(results),):
        raise ValueError(f"quality must have one value per result ({len(results)}), got {q.shape}")
    rng = np.random.default_rng(seed)
    scores = {"good": q, "reversed": 1.0 - q, "random": rng.random(q.size)}
    out = {}
    for name in orderings:
        if name not in scores:
            raise ValueError(f"unknown ordering {name!r}; choose from {ORDERINGS}")
        scored = [{**r, "score": float(s)} for r, s in zip(results, scores[name])]
        out[name] = coco_keypoint_eval(gt_json, scored)
    return out


def max_oks_difference(gt_json, results: list[dict]) -> dict:
    """Largest |oks_matrix − pycocotools computeOks| over every image of ``gt_json``.

    Runs ``COCOeval(..., 'keypoints').evaluate()`` (which fills ``COCOeval.ious`` with
    ``computeOks``) and recomputes each image's table with :func:`oks_matrix` (``gt_bbox`` given,
    so ground truths without labelled joints use the same box rule).

    Returns:
        ``{"max_abs_diff": float, "pairs": int (OKS values compared), "images": int}``.
    """

    coco = load_coco(gt_json)
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(coco, coco.loadRes([dict(r) for r in results]), "keypoints")
        ev.evaluate()
    worst, pairs, images = 0.0, 0, 0
    for (img, cat), table in ev.ious.items():
        if len(table) == 0:
            continue
        dts = ev._dts[img, cat]
        order = np.argsort([-d["score"] for d in dts], kind="mergesort")[: ev.params.maxDets[-1]]
        pred = np.array([dts[i]["keypoints"] for i in order], dtype=np.float64)
        pred = pred.reshape(len(order), -1, 3)[..., :2]
        gts = ev._gts[img, cat]
        g = np.array([a["keypoints"] for a in gts], dtype=np.float64).reshape(len(gts), -1, 3)
        ours = oks_matrix(pred, g[..., :2], g[..., 2], np.array([a["area"] for a in gts]),
                          gt_bbox=np.array([a["bbox"] for a in gts], dtype=np.float64))
        worst = max(worst, float(np.abs(ours - np.asarray(table)).max()))
        pairs += ours.size
        images += 1
    return {"max_abs_diff": worst, "pairs": pairs, "images": images}


def compare_folders(a, b) -> dict:
    """Compare two folders file by file (relative paths and bytes).

    Returns:
        ``{"files": int (in a), "identical": bool, "differing": [relative paths that differ or
        exist on one side only], "digest": sha256 over a's files}``.
    """
    a, b = Path(a), Path(b)
    for p in (a, b):
        if not p.is_dir():
            raise FileNotFoundError(f"{p} is not a folder")
    files_a = {p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file()}
    files_b = {p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file()}
    differing = sorted(files_a ^ files_b)
    digest = hashlib.sha256()
    for rel in sorted(files_a & files_b):
        data = (a / rel).read_bytes()
        digest.update(rel.encode() + b"\0" + data)
        if data != (b / rel).read_bytes():
            differing.append(rel)
    return {"files": len(files_a), "identical": not differing and bool(files_a),
            "differing": sorted(differing), "digest": digest.hexdigest()}


def ground_truth_ap(gt_json, scores: str = "one", seed: int = 0, perturb_px: float = 0.0) -> dict:
    """COCO AP of the ground truth fed back as predictions.

    ``scores``: ``"one"`` (every score 1) or ``"random"`` (uniform in [0, 1): exact keypoints must
    score AP 1 in any order). ``perturb_px`` moves every labelled joint of the first prediction by
    that many px in x (a constructed imperfect predictor: AP must then fall below 1).
    Returns the :func:`poselab.metrics.coco_keypoint_eval` dict.
    """
    if scores not in ("one", "random"):
        raise ValueError(f"scores must be 'one' or 'random', got {scores!r}")
    results = ground_truth_as_results(gt_json)
    if not results:
        raise ValueError(f"{gt_json} has no person with labelled keypoints")
    if scores == "random":
        rng = np.random.default_rng(seed)
        results = [{**r, "score": float(v)} for r, v in zip(results, rng.random(len(results)))]
    if perturb_px:
        kp = np.asarray(results[0]["keypoints"], dtype=np.float64).reshape(-1, 3)
        kp[kp[:, 2] > 0, 0] += float(perturb_px)
        results[0] = {**results[0], "keypoints": kp.ravel().tolist()}
    return coco_keypoint_eval(gt_json, results)


_DIGEST_SCRIPT = """
import hashlib, importlib, sys, tempfile
from pathlib import Path
module, _, func = sys.argv[1].partition(":")
generate = getattr(importlib.import_module(module), func)
with tempfile.TemporaryDirectory() as tmp:
    generate(Path(tmp) / "d", n_images=int(sys.argv[2]), seed=int(sys.argv[3]), split="val")
    digest = hashlib.sha256()
    root = Path(tmp) / "d"
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        digest.update(p.relative_to(root).as_posix().encode() + b"\\0" + p.read_bytes())
    print(digest.hexdigest())
"""


def digest_across_processes(n_images: int = 3, seed: int = 0, hash_seeds=(0, 12345),
                            generator: str = "poselab.data.synth:generate", timeout: float = 300) -> dict:
    """Generate the same dataset in separate Python processes, each with its own
    ``PYTHONHASHSEED``, and compare the sha256 digests of the files.

    A generator that seeded anything from ``hash()`` of a string (salted per process) passes a
    same-process comparison but fails here. ``generator`` is ``"module:function"`` with
    ``generate(out_dir, n_images=, seed=, split=)``. Returns ``{"digests": {hash_seed: hex},
    "identical": bool}``.
    """
    digests = {}
    for hs in hash_seeds:
        env = dict(os.environ, PYTHONHASHSEED=str(hs), OMP_NUM_THREADS="1")
        done = subprocess.run([sys.executable, "-c", _DIGEST_SCRIPT, generator, str(int(n_images)),
                               str(int(seed))], capture_output=True, text=True, env=env,
                              timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"generating in a subprocess failed:\n{done.stderr[-2000:]}")
        digests[str(hs)] = done.stdout.strip().splitlines()[-1]
    return {"digests": digests, "identical": len(set(digests.values())) == 1}


def dataset_summary(ann_json) -> dict:
    """Images, persons (non-crowd, ≥ 1 labelled joint) and labelled joints of a COCO json."""
    d = json.loads(Path(ann_json).read_text())
    persons = [a for a in d["annotations"] if not a.get("iscrowd", 0) and a.get("num_keypoints", 0) > 0]
    return {"images": len(d["images"]), "persons": len(persons),
            "labelled joints": int(sum(a["num_keypoints"] for a in persons))}


def busiest_image(persons) -> tuple[int, list]:
    """``(image_id, persons of that image)`` for the image with the most labelled joints in total
    (ties: the smallest id) — several people and many joints, a good first picture."""
    by_image: dict[int, list] = {}
    for p in persons:
        by_image.setdefault(p.image_id, []).append(p)
    if not by_image:
        raise ValueError("no persons given")
    image_id = max(by_image, key=lambda i: (sum(p.num_keypoints for p in by_image[i]), -i))
    return image_id, by_image[image_id]


def joint_rows(keypoints) -> list[dict]:
    """One row per joint of a COCO ``(K, 3)`` label: name, x, y, v and what v means."""
    meaning = {0: "not labelled", 1: "labelled, occluded", 2: "visible"}
    kp = np.asarray(keypoints, dtype=np.float64)
    return [{"joint": KEYPOINT_NAMES[j], "x": round(float(x), 1), "y": round(float(y), 1), "v": int(v),
             "meaning": meaning.get(int(v), "?")} for j, (x, y, v) in enumerate(kp)]


def half_ks_distance(area: float, joints=(1, 9, 11), sigmas=None) -> list[dict]:
    """The pixel error at which each joint's KS is 0.5: ``d = sqrt(2 ln 2) · κ · s`` (κ = 2σ)."""
    sig = np.asarray(OKS_SIGMAS if sigmas is None else sigmas, dtype=np.float64)
    s = math.sqrt(float(area))
    return [{"joint": KEYPOINT_NAMES[j], "σ": float(sig[j]),
             "error (px) at KS = 0.5": float(np.sqrt(2 * np.log(2)) * 2 * sig[j] * s)} for j in joints]
