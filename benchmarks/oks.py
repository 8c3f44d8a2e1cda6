"""OKS: ``poselab.metrics.oks_matrix`` vs pycocotools' ``COCOeval.computeOks``, same inputs.

Inputs: the real COCO sample (``poselab.data.find_coco_sample()``), detections = every labelled
person's ground truth moved by Gaussian noise (σ = 4 px, seed 0); else the generated val set.
Both sides compute, for every image, the (detections × ground truths) OKS table; pycocotools after
its own ``_prepare`` (not timed), ours from arrays built once (not timed). The metrics compute in
float64 numpy only (no float32 path, torch threads do not apply). Times are CPU-time medians over
``--repeats`` after one warm-up pass; the ratio is pycocotools / ours (> 1: ours faster).

    python benchmarks/oks.py [--quick] [--repeats 5]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

import numpy as np

from _common import interleaved, ms


def load_ground_truth(quick: bool):
    from poselab.data import find_coco_sample
    sample = find_coco_sample()
    if sample is not None:
        files = sorted((Path(sample) / "annotations").glob("person_keypoints_*.json"))
        if files:
            return json.loads(files[0].read_text()), f"real COCO sample ({files[0].name})"
        print("no person_keypoints json in the COCO sample; using generated val")
    else:
        print("real COCO sample absent (find_coco_sample() is None); using generated val")
    from poselab.data import default_dataset
    path = Path(default_dataset("val"))  # the annotation json (a folder in older versions)
    files = [path] if path.is_file() else sorted(path.rglob("person_keypoints_*.json"))
    if not files:
        raise SystemExit(f"no generated val annotations at {path}; run: poselab data synth")
    return json.loads(files[0].read_text()), f"generated val ({files[0].name})"


def make_results(gt: dict, seed: int = 0, sigma: float = 4.0) -> list[dict]:
    rng = np.random.default_rng(seed)
    results = []
    for ann in gt["annotations"]:
        if ann.get("num_keypoints", 0) == 0 or ann.get("iscrowd", 0):
            continue
        kp = np.asarray(ann["keypoints"], float).reshape(-1, 3)
        xy = kp[:, :2] + rng.normal(0, sigma, (kp.shape[0], 2))
        flat = np.concatenate([xy, np.ones((kp.shape[0], 1))], 1).ravel().tolist()
        results.append({"image_id": ann["image_id"], "category_id": ann["category_id"],
                        "keypoints": flat, "score": float(rng.uniform(0.1, 1.0))})
    return results


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 repeats, at most 100 images")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from poselab.metrics import oks_matrix

    gt, source = load_ground_truth(args.quick)
    results = make_results(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        dets = coco.loadRes(results)
        ev = COCOeval(coco, dets, "keypoints")
        ev._prepare()
    cat = ev.params.catIds[0]
    img_ids = sorted({r["image_id"] for r in results})
    if args.quick:
        img_ids = img_ids[:100]
    repeats = 2 if args.quick else args.repeats
    max_dets = ev.params.maxDets[-1]
    cases = []
    for img in img_ids:
        gts, dts = ev._gts[img, cat], ev._dts[img, cat]
        order = np.argsort([-d["score"] for d in dts], kind="mergesort")
        dts = [dts[i] for i in order][:max_dets]
        if not gts or not dts:
            continue
        d = np.array([x["keypoints"] for x in dts], float).reshape(len(dts), -1, 3)[..., :2]
        g = np.array([x["keypoints"] for x in gts], float).reshape(len(gts), -1, 3)
        cases.append((img, d, g[..., :2], g[..., 2], np.array([x["area"] for x in gts], float),
                      np.array([x["bbox"] for x in gts], float)))

    def ours():
        return [oks_matrix(d, gxy, gv, area, gt_bbox=box) for _, d, gxy, gv, area, box in cases]

    def reference():
        return [np.asarray(ev.computeOks(img, cat)) for img, *_ in cases]

    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(ours(), reference()))
    t = interleaved({"ours": ours, "pycocotools": reference}, repeats)
    pairs = sum(c[1].shape[0] * c[2].shape[0] for c in cases)
    print(f"OKS tables on {source}: {len(cases)} images, {pairs} detection×GT pairs, float64 numpy; "
          f"CPU-time median of {repeats} after 1 warm-up (machine shared: CPU time, not wall)")
    print()
    print("| implementation | ms / all images (CPU) | ms (wall) | ratio pycocotools / ours | max abs diff | equal (≤ 1e-12) |")
    print("| --- | --- | --- | --- | --- | --- |")
    ratio = t["pycocotools"]["cpu"] / t["ours"]["cpu"]
    print(f"| poselab oks_matrix | {ms(t['ours']['cpu'])} | {ms(t['ours']['wall'])} | {ratio:.2f} | {diff:.1e} | {diff <= 1e-12} |")
    print(f"| pycocotools computeOks | {ms(t['pycocotools']['cpu'])} | {ms(t['pycocotools']['wall'])} | 1.00 | — | — |")
    if diff > 1e-12:
        raise SystemExit(f"oks_matrix differs from computeOks by {diff:.3g}")


if __name__ == "__main__":
    main()
