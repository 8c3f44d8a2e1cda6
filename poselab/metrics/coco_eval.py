"""COCO keypoint AP/AR through the official evaluator (pycocotools ``COCOeval('keypoints')``).

The numbers are pycocotools' own; this module only validates inputs, silences its prints, maps
its "-1 = undefined" convention to documented finite values and exposes, per detection, the OKS
of the ground truth it was matched to (the "true quality" the ranking chapters compare scores
with).
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from poselab.metrics.oks import oks_matrix

STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def _quiet(verbose: bool):
    return contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())


def load_coco(gt_json, *, verbose: bool = False):
    """A pycocotools ``COCO`` object from a json path, a COCO-format dict or a ``COCO`` object."""

    if isinstance(gt_json, COCO):
        return gt_json
    if isinstance(gt_json, dict):
        dataset, source = copy.deepcopy(gt_json), "the ground-truth dict"
    elif isinstance(gt_json, (str, os.PathLike)):
        path = Path(gt_json)
        if not path.is_file():
            raise FileNotFoundError(f"no COCO annotation file at {path}; pass the path of a "
                                    f"person_keypoints_*.json (or the loaded dict)")
        try:
            with open(path, "rb") as f:
                dataset = json.loads(f.read())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path} is not valid json ({exc}); the file is malformed or "
                             "truncated — download or generate it again") from None
        source = str(path)
    else:
        raise ValueError(f"gt_json must be a path, a COCO-format dict or a pycocotools COCO object, "
                         f"got {type(gt_json).__name__}")
    _check_ground_truth(dataset, source)
    with _quiet(verbose):
        coco = COCO()
        coco.dataset = dataset
        coco.createIndex()
    return coco


def _integer(value) -> int | None:
    """An integral number as int (1.7, "1", True, NaN give None)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    if not math.isfinite(value) or int(value) != value:
        return None
    return int(value)


def _number(value) -> bool:
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            and math.isfinite(value))


def _scalar(value):
    """0-d numpy / torch values as Python numbers (other values unchanged)."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    return value


def _duplicates(ids: list) -> list:
    seen, dup = set(), []
    for i in ids:
        if i in seen and i not in dup:
            dup.append(i)
        seen.add(i)
    return dup


def _check_ground_truth(dataset, source: str) -> None:
    """Structure of a COCO keypoint ground truth, checked before pycocotools sees it.

    Raises ValueError naming ``source`` and the offending entries for: a non-dict top level,
    missing ``images``/``annotations`` lists, non-integer or duplicate image / annotation ids
    (pycocotools would silently keep only the last of a duplicate), annotations without a
    numeric ``area`` (the OKS scale) or ``bbox``, keypoints that are not 3·K numbers, categories
    naming K ≠ 17 keypoints (pycocotools has OKS sigmas for COCO's 17 joints only). Missing
    ``iscrowd`` (0), ``num_keypoints`` (counted from the flags) and ``categories`` (person) are
    filled in, as pycocotools needs them.
    """
    def fail(what: str) -> ValueError:
        return ValueError(f"{source}: {what}; fix the ground truth (it is not a valid COCO keypoint "
                          "file) or pass the right one")

    if not isinstance(dataset, dict):
        raise fail(f"top level must be a json object with 'images' and 'annotations', got "
                   f"{type(dataset).__name__}")
    for key in ("images", "annotations"):
        if not isinstance(dataset.get(key), list):
            raise fail(f"missing or non-list '{key}'")
    cats = dataset.setdefault("categories", [{"id": 1, "name": "person"}])
    if not isinstance(cats, list) or not all(isinstance(c, dict) and "id" in c for c in cats):
        raise fail("'categories' must be a list of {id, name, keypoints} objects")
    named = [len(c["keypoints"]) for c in cats if isinstance(c.get("keypoints"), list)]
    num_kpts = max(named, default=17)
    if num_kpts != 17:  # pycocotools' OKS has one sigma per COCO joint, and only 17 of them
        raise fail(f"its categories name {num_kpts} keypoints; COCO keypoint AP (pycocotools) is "
                   "defined for the 17 COCO joints only (one OKS sigma each)")
    unnamed = "" if named else " (no category names its keypoints, so the 17 COCO joints are assumed)"
    for i, img in enumerate(dataset["images"]):
        if not isinstance(img, dict) or _integer(img.get("id")) is None:
            raise fail(f"images[{i}] needs an integer 'id', got {img!r:.100}")
    for i, ann in enumerate(dataset["annotations"]):
        if not isinstance(ann, dict):
            raise fail(f"annotations[{i}] must be an object, got {ann!r:.100}")
        for key in ("id", "image_id", "category_id"):
            if _integer(ann.get(key)) is None:
                raise fail(f"annotations[{i}] needs an integer '{key}', got {ann.get(key)!r:.60}")
        aid = ann["id"]
        if "area" not in ann or not _number(ann["area"]):
            raise fail(f"annotation {aid} has no finite numeric 'area' (the OKS scale; COCO uses the "
                       f"segment area, e.g. set it to the box area w·h), got {ann.get('area')!r:.60}")
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(map(_number, bbox))):
            raise fail(f"annotation {aid} needs a 'bbox' of 4 numbers [x, y, w, h], got {bbox!r:.60}")
        kp = ann.get("keypoints")
        if kp is None:
            raise fail(f"annotation {aid} has no 'keypoints' (is this an instances_*.json rather "
                       "than person_keypoints_*.json?)")
        if not (isinstance(kp, list) and len(kp) == 3 * num_kpts and all(map(_number, kp))):
            shown = len(kp) if isinstance(kp, list) else type(kp).__name__
            raise fail(f"annotation {aid} 'keypoints' must be {3 * num_kpts} finite numbers "
                       f"(x, y, v per joint), got {shown}{unnamed}")
        ann.setdefault("num_keypoints", sum(1 for v in kp[2::3] if v > 0))
        ann.setdefault("iscrowd", 0)
    for kind, items in (("image", dataset["images"]), ("annotation", dataset["annotations"])):
        dup = _duplicates([item["id"] for item in items])
        if dup:
            raise fail(f"duplicate {kind} id(s) {dup[:10]} ({len(dup)} used more than once; "
                       "pycocotools would keep only the last of each)")


def _clean_results(coco, results) -> list[dict]:
    if not isinstance(results, (list, tuple)):
        raise ValueError(f"results must be a list of dicts {{image_id, category_id, keypoints, "
                         f"score}}, got {type(results).__name__}")
    image_ids = set(coco.getImgIds())
    cat_ids = set(coco.getCatIds())
    num_kpts = None
    for cat in coco.loadCats(sorted(cat_ids)):
        if "keypoints" in cat:
            num_kpts = len(cat["keypoints"])
    clean, unknown = [], []
    for i, r in enumerate(results):
        if not isinstance(r, dict) or not {"image_id", "category_id", "keypoints", "score"} <= set(r):
            raise ValueError(f"results[{i}] must be a dict with keys image_id, category_id, "
                             f"keypoints, score; got {r!r:.120}")
        kp = r["keypoints"]
        if hasattr(kp, "detach"):
            kp = kp.detach().cpu().numpy()
        try:
            kp = np.asarray(kp, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            raise ValueError(f"results[{i}]['keypoints'] must be numbers [x1, y1, v1, ...], got "
                             f"{r['keypoints']!r:.80}") from None
        if num_kpts is not None and kp.size != 3 * num_kpts:
            raise ValueError(f"results[{i}]['keypoints'] has {kp.size} numbers; expected "
                             f"3 × {num_kpts} (x, y, v per joint, flat)")
        if not np.all(np.isfinite(kp)):
            raise ValueError(f"results[{i}]['keypoints'] contains NaN/inf; give every joint a "
                             f"finite (x, y) (COCO scores all 17 predicted joints)")
        r = {k: _scalar(v) for k, v in r.items()}
        if not _number(r["score"]):
            raise ValueError(f"results[{i}]['score'] must be a finite number (the detection's "
                             f"confidence), got {r['score']!r:.60}")
        score = float(r["score"])
        for key in ("image_id", "category_id"):
            if _integer(r[key]) is None:
                raise ValueError(f"results[{i}]['{key}'] must be an integer id, got {r[key]!r:.60} "
                                 "(COCO ids are integers; 1.7 is not image 1)")
        image_id = int(r["image_id"])
        if image_id not in image_ids:
            unknown.append(image_id)
        if int(r["category_id"]) not in cat_ids:
            raise ValueError(f"results[{i}] has category_id {r['category_id']}, not among the "
                             f"ground truth's categories {sorted(cat_ids)}")
        item = {k: v for k, v in r.items() if k not in ("id", "bbox", "area")}
        item.update(image_id=image_id, category_id=int(r["category_id"]),
                    keypoints=kp.tolist(), score=score)
        clean.append(item)
    if unknown:
        shown = sorted(set(unknown))[:5]
        raise ValueError(f"{len(unknown)} result(s) refer to image ids not in the ground truth "
                         f"(e.g. {shown}); evaluate predictions against the annotation file of "
                         f"the split they were made on")
    return clean


def coco_keypoint_eval(gt_json, results, *, verbose: bool = False) -> dict[str, Any]:
    """COCO keypoint AP/AR of ``results`` against ``gt_json`` with pycocotools.

    Args:
        gt_json: path of a COCO person-keypoints json, the loaded dict, or a ``COCO`` object.
        results: list of ``{"image_id", "category_id", "keypoints": [x1, y1, v1, ...] (3K),
            "score"}`` — the standard COCO results format (not modified).
        verbose: print pycocotools' loading messages and summary table (silenced by default).

    Returns:
        dict with
        - ``"AP", "AP50", "AP75", "APm", "APl", "AR"`` (and ``"AR50", "AR75", "ARm", "ARl"``):
          pycocotools' ``stats`` as floats. pycocotools reports -1 when a value is undefined
          (no non-ignored ground truth in that area range); it is mapped to **0.0** and the
          names are listed in ``"undefined"``. Empty ``results`` give 0.0 everywhere (what
          pycocotools computes for zero detections; it cannot load an empty list itself).
        - ``"stats"``: the raw 10 pycocotools numbers (-1 kept).
        - ``"matched_oks"``: list aligned with ``results``: the OKS between each detection and
          the ground truth COCOeval matched it to at the **loosest threshold, OKS 0.50**, area
          range "all", maxDets 20 (greedy by descending score, as COCO does). 0.0 when the
          detection is unmatched at 0.50 (a duplicate, a miss, or beyond the image's top-20
          scores), and 0.0 when it was matched only to an ignored ground truth (crowd or no
          labelled keypoints). Values come from COCOeval's own OKS table (``COCOeval.ious``).
        - ``"matched_gt_id"``: aligned list of the matched annotation id (-1 when none).
        - ``"ignored"``: aligned list of bools, True when COCOeval ignores the detection at
          OKS 0.50 (matched to a crowd / keypoint-less ground truth, or outside the top 20).
        - ``"max_oks"``: aligned list, max OKS over the image's non-ignored ground truths
          (``iscrowd`` 0 and ``num_keypoints`` > 0), 0.0 if there are none; unlike
          ``matched_oks`` a duplicate detection still gets the OKS of the person it covers.
        - ``"precision"``: (10, 101) array, precision at each OKS threshold (0.50:0.05:0.95)
          and recall (0:0.01:1), area "all", maxDets 20 (-1 mapped to 0.0);
          ``"recall_thresholds"``, ``"oks_thresholds"``: the grids.

    Raises:
        ValueError: results not in the format above, NaN/inf keypoints or scores, image ids not
            in the ground truth, unknown category ids.
    """

    coco = load_coco(gt_json, verbose=verbose)
    clean = _clean_results(coco, results)
    recall_thresholds = np.linspace(0.0, 1.0, 101)
    oks_thresholds = np.linspace(0.5, 0.95, 10)
    if not clean:
        out = {name: 0.0 for name in STAT_NAMES}
        out.update(stats=[0.0] * len(STAT_NAMES), undefined=[], matched_oks=[], matched_gt_id=[],
                   ignored=[], max_oks=[], precision=np.zeros((10, 101)),
                   recall_thresholds=recall_thresholds, oks_thresholds=oks_thresholds)
        return out
    with _quiet(verbose):
        dt = coco.loadRes(clean)
        ev = COCOeval(coco, dt, "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = [float(s) for s in ev.stats]
    out: dict[str, Any] = {name: (s if s >= 0 else 0.0) for name, s in zip(STAT_NAMES, stats)}
    out["stats"] = stats
    out["undefined"] = [name for name, s in zip(STAT_NAMES, stats) if s < 0]
    p = ev.params
    out["recall_thresholds"] = np.asarray(p.recThrs, dtype=np.float64)
    out["oks_thresholds"] = np.asarray(p.iouThrs, dtype=np.float64)
    precision = np.asarray(ev.eval["precision"][:, :, 0, 0, -1], dtype=np.float64)
    out["precision"] = np.where(precision < 0, 0.0, precision)

    # Per-detection matching at OKS 0.50, area "all", the largest maxDets. loadRes numbered the
    # detections 1..n in the order of ``clean`` (= results).
    n = len(clean)
    matched_oks = np.zeros(n)
    matched_gt = np.full(n, -1, dtype=np.int64)
    ignored = np.zeros(n, dtype=bool)
    in_top = np.zeros(n, dtype=bool)
    max_det = p.maxDets[-1]
    for e in ev.evalImgs:
        if e is None or e["aRng"] != p.areaRng[0] or e["maxDet"] != max_det:
            continue
        img, cat = e["image_id"], e["category_id"]
        table = ev.ious[(img, cat)]
        dts = ev._dts[img, cat]
        order = np.argsort([-d["score"] for d in dts], kind="mergesort")[:max_det]
        row = {dts[i]["id"]: r for r, i in enumerate(order)}
        col = {g["id"]: c for c, g in enumerate(ev._gts[img, cat])}
        gt_ignore = dict(zip(e["gtIds"], e["gtIgnore"]))
        for d_id, g_id, d_ig in zip(e["dtIds"], e["dtMatches"][0], e["dtIgnore"][0]):
            idx = int(d_id) - 1
            in_top[idx] = True
            ignored[idx] = bool(d_ig)
            if g_id > 0:
                matched_gt[idx] = int(g_id)
                if not gt_ignore[int(g_id)]:
                    matched_oks[idx] = float(table[row[d_id], col[int(g_id)]])
    ignored |= ~in_top
    out["matched_oks"] = matched_oks.tolist()
    out["matched_gt_id"] = matched_gt.tolist()
    out["ignored"] = ignored.tolist()
    out["max_oks"] = _max_oks(coco, clean).tolist()
    return out


def _max_oks(coco, clean: list[dict]) -> np.ndarray:
    by_image: dict[int, list[int]] = {}
    for i, r in enumerate(clean):
        by_image.setdefault(r["image_id"], []).append(i)
    best = np.zeros(len(clean))
    for img, idx in by_image.items():
        cats = {clean[i]["category_id"] for i in idx}
        for cat in cats:
            rows = [i for i in idx if clean[i]["category_id"] == cat]
            gts = [g for g in coco.loadAnns(coco.getAnnIds(imgIds=[img], catIds=[cat]))
                   if not g.get("iscrowd", 0) and g.get("num_keypoints", 0) > 0]
            if not gts:
                continue
            pred = np.array([clean[i]["keypoints"] for i in rows]).reshape(len(rows), -1, 3)
            g = np.array([a["keypoints"] for a in gts], dtype=np.float64).reshape(len(gts), -1, 3)
            area = np.array([a["area"] for a in gts], dtype=np.float64)
            table = oks_matrix(pred[..., :2], g[..., :2], g[..., 2], area)
            best[rows] = table.max(axis=1)
    return best


def ground_truth_as_results(gt_json, *, score: float = 1.0) -> list[dict]:
    """The ground truth's persons with labelled keypoints as COCO results (a perfect predictor).

    Crowd regions and persons without labelled keypoints are skipped (COCO ignores them).
    """
    coco = load_coco(gt_json)
    out = []
    for ann in coco.loadAnns(coco.getAnnIds()):
        if ann.get("iscrowd", 0) or ann.get("num_keypoints", 0) <= 0:
            continue
        out.append({"image_id": ann["image_id"], "category_id": ann["category_id"],
                    "keypoints": list(map(float, ann["keypoints"])), "score": float(score)})
    return out


def save_results(results: list[dict], path) -> Path:
    """Write results as the COCO results json (lists of floats)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([{**r, "keypoints": list(map(float, r["keypoints"]))} for r in results]))
    return path
