#!/usr/bin/env python3
"""Generate a COCO-format folder of people (the same command as `poselab data generate`).

    python data_scripts/generate_synth.py --out data/mysynth --n-images 500 --seed 0 --split train
    python data_scripts/generate_synth.py --out data/mysynth --n-images 100 --seed 1 --split val \
        --occlusion-prob 0.3 --sigma-true 0.1

Writes <out>/<split>/*.jpg and <out>/annotations/person_keypoints_<split>.json; prints the json
path. Controls default to poselab.data.synth.DEFAULT_CONTROLS. The arguments live in
poselab.cli.data, the logic in poselab.data.synth.generate; this file is only the entry point.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a clone without install

from poselab.cli.data import generate_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(generate_main())
