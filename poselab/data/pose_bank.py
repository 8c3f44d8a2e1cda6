"""A small bank of real human poses (COCO-17) that the generator perturbs.

:func:`build_pose_bank` reads official COCO annotations (the repository's table was built from
``../shared/coco_sample``, both splits) and keeps non-crowd persons with both shoulders and both
hips labelled and at least ``min_labelled`` labelled joints, the most complete first. Each pose is

1. completed: an unlabelled joint is placed at its kinematic parent plus the mean parent → child
   offset of the kept poses, measured in torso lengths (mid-shoulder to mid-hip) and with x
   signed by the facing direction (``sign(x_left_shoulder − x_right_shoulder)``), so a missing
   left elbow of a person facing the camera hangs on the correct side;
2. normalised: translated so the keypoint box centre is at 0 and divided by the torso length.

The table ships as :mod:`poselab.data._pose_bank_table` (numbers only, rounded to 3 decimals;
the COCO annotations are CC BY 4.0, no image is shipped). :func:`load_pose_bank` reads it.
Regenerate it with ``write_pose_bank_module(build_pose_bank(coco_dir))``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from poselab.data import _pose_bank_table as _table
from poselab.skeleton import NUM_KEYPOINTS

__all__ = ["build_pose_bank", "load_pose_bank", "write_pose_bank_module", "PARENT", "TABLE_PATH"]

TABLE_PATH = Path(__file__).with_name("_pose_bank_table.py")

# Kinematic parent of each joint; -1: torso joints; "neck" (= mid-shoulder) is coded as -2.
PARENT = (-2, 0, 0, 1, 2, -1, -1, 5, 6, 7, 8, -1, -1, 11, 12, 13, 14)
_TORSO = (5, 6, 11, 12)
# Completion order: every joint after its parent.
_ORDER = (0, 1, 2, 3, 4, 7, 8, 9, 10, 13, 14, 15, 16)


def _neck(p):
    return 0.5 * (p[..., 5, :] + p[..., 6, :])


def _torso_length(p):
    hip = 0.5 * (p[..., 11, :] + p[..., 12, :])
    return np.linalg.norm(_neck(p) - hip, axis=-1)


def build_pose_bank(coco_dir: str | Path, max_poses: int = 120, min_labelled: int = 12) -> dict:
    """Normalised, completed real poses from ``<coco_dir>/annotations/person_keypoints_*.json``.

    Returns:
        dict with ``poses`` ``(N, 17, 2)`` float64 (torso length 1, keypoint-box centre 0),
        ``visibility`` ``(N, 17)`` int (the original COCO flags; 0 marks a completed joint) and
        ``source`` list of ``"<file>:<annotation id>"``.
    """
    coco_dir = Path(coco_dir)
    files = sorted((coco_dir / "annotations").glob("person_keypoints_*.json"))
    if not files:
        raise FileNotFoundError(f"no person_keypoints_*.json under {coco_dir / 'annotations'}")
    rows = []
    for f in files:
        for ann in json.loads(f.read_text())["annotations"]:
            if ann.get("iscrowd", 0) or "keypoints" not in ann:
                continue
            kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(NUM_KEYPOINTS, 3)
            lab = kp[:, 2] > 0
            if not lab[list(_TORSO)].all() or lab.sum() < min_labelled:
                continue
            if _torso_length(kp[:, :2]) < 1e-6:
                continue
            rows.append((-int(lab.sum()), f.name, int(ann["id"]), kp))
    rows.sort(key=lambda r: r[:3])
    rows = rows[:max_poses]
    if not rows:
        raise ValueError(f"no pose in {coco_dir} has shoulders, hips and {min_labelled} joints")
    kps = np.stack([r[3] for r in rows])                       # (N, 17, 3)
    xy, lab = kps[:, :, :2].copy(), kps[:, :, 2] > 0
    torso = _torso_length(xy)[:, None, None]
    facing = np.where(xy[:, 5, 0] >= xy[:, 6, 0], 1.0, -1.0)[:, None]
    # Mean parent -> child offsets in facing-signed torso units.
    parent_xy = np.where(np.array(PARENT)[None, :, None] == -2, _neck(xy)[:, None, :],
                         xy[:, [max(p, 0) for p in PARENT], :])
    offset = (xy - parent_xy) / torso
    offset[..., 0] *= facing
    parent_lab = np.array([lab[:, p] if p >= 0 else np.ones(len(lab), bool) for p in PARENT]).T
    both = lab & parent_lab
    mean_offset = np.zeros((NUM_KEYPOINTS, 2))
    for k in _ORDER:
        mean_offset[k] = offset[both[:, k], k].mean(axis=0)
    for n in range(len(xy)):
        for k in _ORDER:
            if lab[n, k]:
                continue
            p = PARENT[k]
            base = _neck(xy[n]) if p == -2 else xy[n, p]
            step = mean_offset[k] * torso[n, 0, 0]
            xy[n, k] = base + np.array([step[0] * facing[n, 0], step[1]])
    centre = 0.5 * (xy.min(axis=1) + xy.max(axis=1))
    poses = (xy - centre[:, None, :]) / torso
    return {"poses": poses, "visibility": kps[:, :, 2].astype(int),
            "source": [f"{r[1]}:{r[2]}" for r in rows]}


def write_pose_bank_module(bank: dict, path: str | Path = TABLE_PATH) -> Path:
    """Write ``bank`` as a Python module of literals (rounded to 3 decimals)."""
    lines = ['"""Normalised real COCO poses for the generator (written by',
             'poselab.data.pose_bank.write_pose_bank_module; do not edit by hand).',
             "",
             "Each pose: 17 (x, y) in torso lengths around the keypoint-box centre; VISIBILITY holds",
             "the original COCO flags (0 = joint completed from mean offsets). Source: COCO 2017",
             'person_keypoints annotations (CC BY 4.0), annotation ids in SOURCE."""', "",
             "POSES = ("]
    for pose in np.asarray(bank["poses"]):
        flat = ", ".join(f"{v:.3f}" for v in np.round(pose.reshape(-1), 3) + 0.0)
        lines.append(f"    ({flat}),")
    lines.append(")")
    lines.append("VISIBILITY = (")
    for vis in np.asarray(bank["visibility"]):
        lines.append("    (" + ", ".join(str(int(v)) for v in vis) + "),")
    lines.append(")")
    lines.append("SOURCE = (")
    for s in bank["source"]:
        lines.append(f"    {s!r},")
    lines.append(")")
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


def load_pose_bank() -> tuple[np.ndarray, np.ndarray]:
    """The shipped bank: ``poses`` ``(N, 17, 2)`` float64 and ``visibility`` ``(N, 17)`` int."""
    poses = np.asarray(_table.POSES, dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 2)
    vis = np.asarray(_table.VISIBILITY, dtype=np.int64)
    return poses, vis
