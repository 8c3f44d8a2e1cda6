#!/usr/bin/env python3
"""Fetch a COCO 2017 person-keypoint subset in the standard COCO layout.

    python data_scripts/fetch_coco.py --split val2017 --max-images 500 --out data/coco
    python data_scripts/fetch_coco.py --split val2017 --max-images 50 --out data/coco_small \
        --from-dir data/coco          # same subset from a local COCO folder

Keeps the first N images (sorted by COCO image id) that have a person with keypoints, plus every
annotation of those images. Re-run the same command to resume after an interruption.
The same command as `poselab data fetch`: the arguments live in poselab.cli.data, the logic in
poselab.data.fetch (see its docstring); this file is only the entry point.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a clone without install

from poselab.cli.data import fetch_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(fetch_main())
