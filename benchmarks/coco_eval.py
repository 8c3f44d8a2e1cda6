"""End-to-end COCO keypoint evaluation: ``poselab.metrics.coco_keypoint_eval`` vs raw pycocotools.

Same ground-truth json (the real COCO sample, else generated val) and the same results (every
labelled person's ground truth moved by Gaussian noise, σ = 4 px, seed 0). Reference: ``COCO(path)``
+ ``loadRes`` + ``COCOeval.evaluate/accumulate/summarize`` (stdout silenced). Ours adds input
checks and the per-detection matched / max OKS. Both float64 numpy (no torch, no float32 path).
CPU-time medians over ``--repeats`` after one warm-up; ratio = ours / pycocotools (overhead).

    python benchmarks/coco_eval.py [--quick] [--repeats 5]
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import tempfile
from pathlib import Path

import numpy as np

from _common import interleaved, ms
from oks import load_ground_truth, make_results


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 repeats")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from poselab.metrics import coco_keypoint_eval

    gt, source = load_ground_truth(args.quick)
    results = make_results(gt)
    repeats = 2 if args.quick else args.repeats
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gt.json"
        path.write_text(json.dumps(gt))

        def ours():
            return coco_keypoint_eval(path, results)["stats"]

        def reference():
            with contextlib.redirect_stdout(io.StringIO()):
                coco = COCO(str(path))
                ev = COCOeval(coco, coco.loadRes(copy.deepcopy(results)), "keypoints")
                ev.evaluate()
                ev.accumulate()
                ev.summarize()
            return ev.stats

        a, b = np.asarray(ours(), float), np.asarray(reference(), float)
        t = interleaved({"ours": ours, "pycocotools": reference}, repeats)
    diff = float(np.max(np.abs(a - b)))
    n_img = len({r["image_id"] for r in results})
    print(f"COCO keypoint eval on {source}: {len(results)} detections in {n_img} images, "
          f"AP {a[0]:.4f}; CPU-time median of {repeats} after 1 warm-up (machine shared)")
    print()
    print("| implementation | ms end-to-end (CPU) | ms (wall) | ratio to pycocotools | AP | max abs diff of the 10 stats | equal |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    ratio = t["ours"]["cpu"] / t["pycocotools"]["cpu"]
    print(f"| poselab coco_keypoint_eval | {ms(t['ours']['cpu'])} | {ms(t['ours']['wall'])} | {ratio:.2f} | {a[0]:.6f} | {diff:.1e} | {diff == 0.0} |")
    print(f"| pycocotools COCOeval | {ms(t['pycocotools']['cpu'])} | {ms(t['pycocotools']['wall'])} | 1.00 | {b[0]:.6f} | — | — |")
    if diff != 0.0:
        raise SystemExit(f"coco_keypoint_eval stats differ from pycocotools by {diff:.3g}")


if __name__ == "__main__":
    main()
