#!/usr/bin/env python3
"""Generate a COCO-format folder of people (thin wrapper over poselab.data.synth.generate).

    python data_scripts/generate_synth.py --out data/mysynth --n-images 500 --seed 0 --split train
    python data_scripts/generate_synth.py --out data/mysynth --n-images 100 --seed 1 --split val \
        --occlusion-prob 0.3 --sigma-true 0.1

Writes <out>/<split>/*.jpg and <out>/annotations/person_keypoints_<split>.json; prints the json
path. Controls default to poselab.data.synth.DEFAULT_CONTROLS.
"""
from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str] | None = None) -> int:
    from poselab.data.synth import DEFAULT_CONTROLS, generate

    d = DEFAULT_CONTROLS
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="dataset folder")
    p.add_argument("--n-images", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="train", help="split name (train, val, ...)")
    p.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), default=d["image_size"])
    p.add_argument("--persons-per-image", type=int, nargs=2, metavar=("MIN", "MAX"),
                   default=d["persons_per_image"])
    p.add_argument("--scale-range", type=float, nargs=2, metavar=("MIN", "MAX"),
                   default=d["scale_range"], help="body height / image height")
    p.add_argument("--occlusion-prob", type=float, default=d["occlusion_prob"])
    p.add_argument("--truncation-prob", type=float, default=d["truncation_prob"])
    p.add_argument("--sigma-true", type=float, default=d["sigma_true"],
                   help="label noise in OKS-sigma units")
    p.add_argument("--pose-jitter-deg", type=float, default=d["pose_jitter_deg"])
    p.add_argument("--background-clutter", type=int, nargs=2, metavar=("MIN", "MAX"),
                   default=d["background_clutter"])
    p.add_argument("--noise-std", type=float, nargs=2, metavar=("MIN", "MAX"),
                   default=d["noise_std"])
    p.add_argument("--workers", type=int, default=1, help="rendering processes")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a split this script wrote before (only its own files "
                        "are deleted; a folder holding anything else is refused)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    start = time.perf_counter()
    try:
        path = generate(a.out, a.n_images, a.seed, split=a.split, progress=not a.quiet,
                        workers=a.workers, overwrite=a.overwrite,
                        image_size=tuple(a.image_size),
                        persons_per_image=tuple(a.persons_per_image),
                        scale_range=tuple(a.scale_range), occlusion_prob=a.occlusion_prob,
                        truncation_prob=a.truncation_prob, sigma_true=a.sigma_true,
                        pose_jitter_deg=a.pose_jitter_deg,
                        background_clutter=tuple(a.background_clutter),
                        noise_std=tuple(a.noise_std))
    except (ValueError, OSError) as e:  # bad controls, refusing to replace files, disk errors
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{path}  ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
