"""COCO-17 person skeleton: the one source of truth for keypoint names, OKS sigmas,
left/right flip pairs and the limbs drawn between joints.

Everything in poselab that needs to know "which joint is which" imports from here.
"""
from __future__ import annotations

import numpy as np

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye", "right_eye",
    "left_ear", "right_ear",
    "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow",
    "left_wrist", "right_wrist",
    "left_hip", "right_hip",
    "left_knee", "right_knee",
    "left_ankle", "right_ankle",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)

# Per-keypoint OKS sigmas of the official COCO evaluation (pycocotools COCOeval,
# Params.kpt_oks_sigmas). The per-joint tolerance used in OKS is kappa = 2 * sigma.
OKS_SIGMAS = np.array(
    [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72,
     0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89], dtype=np.float64) / 10.0
OKS_SIGMAS.setflags(write=False)

# Left/right pairs (0-based). A horizontal flip swaps the two joints of each pair.
FLIP_PAIRS: tuple[tuple[int, int], ...] = (
    (1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))


def _flip_index() -> tuple[int, ...]:
    index = list(range(NUM_KEYPOINTS))
    for a, b in FLIP_PAIRS:
        index[a], index[b] = b, a
    return tuple(index)


# FLIP_INDEX[k] is the joint that joint k becomes after a horizontal flip.
FLIP_INDEX: tuple[int, ...] = _flip_index()

# The COCO annotation file's "skeleton" (1-based there), converted to 0-based limbs.
LIMBS: tuple[tuple[int, int], ...] = tuple(
    (a - 1, b - 1) for a, b in (
        (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7),
        (6, 8), (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7)))

# Category record written into generated COCO-format json files.
PERSON_CATEGORY = {
    "supercategory": "person",
    "id": 1,
    "name": "person",
    "keypoints": list(KEYPOINT_NAMES),
    "skeleton": [[a + 1, b + 1] for a, b in LIMBS],
}
