"""A simulated person detector for top-down evaluation with false positives (RCNet chapter).

Top-down pose estimation evaluated on ground-truth boxes has exactly one prediction per person
and no false positives, so the order of the scores barely matters for AP. A real top-down
pipeline runs on a person detector's boxes: jittered true boxes, duplicates of the same person
and boxes on background, each with a detection score. This module simulates that, and forms the
instance score as MMPose does (``score_mode="bbox_keypoint"``: box score × mean of the joint
scores above 0.2 — :func:`poselab.train.evaluate.instance_scores`). No OKS-NMS is applied.

Pure numpy: boxes in, boxes out.
"""
from __future__ import annotations

import numpy as np

__all__ = ["simulate_detections", "DETECTION_KINDS"]

DETECTION_KINDS = ("true", "duplicate", "false")


def simulate_detections(gt_boxes, image_ids, image_sizes: dict, *, seed: int = 0,
                        jitter: float = 0.08, duplicate_prob: float = 0.4,
                        duplicate_jitter: float = 0.2, false_per_image: float = 0.6,
                        true_score=(8.0, 2.0), duplicate_score=(4.0, 3.0),
                        false_score=(2.0, 4.0)) -> dict[str, np.ndarray]:
    """Detections for the persons of a set: one jittered box per true person, duplicates,
    false boxes.

    Args:
        gt_boxes: (M, 4) true boxes ``[x, y, w, h]`` (image pixels).
        image_ids: (M,) the image of each box.
        image_sizes: ``{image_id: (H, W)}`` for every image in ``image_ids``.
        seed: random seed (same seed → same detections).
        jitter: box jitter of the true detections, as a fraction of the box size (σ of a normal
            on the centre and log-size).
        duplicate_prob: probability that a person gets one extra, more jittered box.
        duplicate_jitter: jitter of duplicates (fraction of the size).
        false_per_image: Poisson mean of background boxes per image (sizes drawn from the true
            boxes, positions uniform in the image).
        true_score, duplicate_score, false_score: Beta(a, b) of each kind's detection score.

    Returns ``{"bbox" (D, 4), "image_id" (D,), "det_score" (D,), "kind" (D,) int index into
    :data:`DETECTION_KINDS`, "source" (D,) index of the true box (−1 for false boxes)}``.

    Example:
        >>> d = simulate_detections([[10, 10, 20, 40]], [1], {1: (100, 100)}, seed=0)
        >>> d["bbox"].shape[1], int((d["kind"] == 0).sum())
        (4, 1)
    """
    boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    ids = np.asarray(image_ids).reshape(-1)
    if ids.shape[0] != boxes.shape[0]:
        raise ValueError(f"image_ids must have one id per box ({boxes.shape[0]}), got {ids.shape[0]}")
    if not np.all(np.isfinite(boxes)) or np.any(boxes[:, 2:] <= 0):
        raise ValueError("gt_boxes must be finite [x, y, w, h] with w, h > 0")
    missing = {int(i) for i in ids} - {int(k) for k in image_sizes}
    if missing:
        raise ValueError(f"image_sizes has no (H, W) for image ids {sorted(missing)[:5]}")
    rng = np.random.default_rng(seed)

    def jittered(b, sigma):
        centre = b[:, :2] + b[:, 2:] / 2 + rng.normal(0, sigma, (len(b), 2)) * b[:, 2:]
        size = b[:, 2:] * np.exp(rng.normal(0, sigma, (len(b), 2)))
        return np.concatenate([centre - size / 2, size], axis=1)

    out_boxes, out_ids, out_scores, out_kind, out_source = [], [], [], [], []
    m = len(boxes)
    out_boxes.append(jittered(boxes, jitter))
    out_ids.append(ids)
    out_scores.append(rng.beta(*true_score, m))
    out_kind.append(np.zeros(m, dtype=np.int64))
    out_source.append(np.arange(m))
    dup = np.flatnonzero(rng.random(m) < duplicate_prob)
    out_boxes.append(jittered(boxes[dup], duplicate_jitter))
    out_ids.append(ids[dup])
    out_scores.append(rng.beta(*duplicate_score, dup.size))
    out_kind.append(np.ones(dup.size, dtype=np.int64))
    out_source.append(dup)
    images = np.unique(ids)
    n_false = rng.poisson(false_per_image, images.size)
    false_ids = np.repeat(images, n_false)
    if false_ids.size:
        size = boxes[rng.integers(0, m, false_ids.size), 2:]
        hw = np.array([image_sizes[int(i)] for i in false_ids], dtype=np.float64)
        xy = rng.random((false_ids.size, 2)) * np.maximum(hw[:, ::-1] - size, 1.0)
        out_boxes.append(np.concatenate([xy, size], axis=1))
        out_ids.append(false_ids)
        out_scores.append(rng.beta(*false_score, false_ids.size))
        out_kind.append(np.full(false_ids.size, 2, dtype=np.int64))
        out_source.append(np.full(false_ids.size, -1, dtype=np.int64))
    return {"bbox": np.concatenate(out_boxes), "image_id": np.concatenate(out_ids),
            "det_score": np.concatenate(out_scores), "kind": np.concatenate(out_kind),
            "source": np.concatenate(out_source)}
