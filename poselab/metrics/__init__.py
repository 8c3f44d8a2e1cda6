"""poselab.metrics — how good are keypoint predictions and their confidence scores.

- OKS / KS (COCO): :func:`oks_matrix`, :func:`oks`, :func:`keypoint_similarity`
- COCO AP/AR via pycocotools, with per-detection matched OKS: :func:`coco_keypoint_eval`
- distance errors: :func:`end_point_error` (EPE), :func:`pck` (PCK@α, box-normalised)
- score quality: :func:`spearman`, :func:`ranking_accuracy`

All metrics compute in float64 numpy and accept numpy arrays, lists or torch tensors.
"""
from poselab.metrics.coco_eval import (STAT_NAMES, coco_keypoint_eval, ground_truth_as_results,
                                       load_coco, save_results)
from poselab.metrics.keypoint_errors import end_point_error, pck
from poselab.metrics.oks import keypoint_similarity, oks, oks_matrix
from poselab.metrics.ranking import average_ranks, ranking_accuracy, spearman

__all__ = [
    "STAT_NAMES", "average_ranks", "coco_keypoint_eval", "end_point_error",
    "ground_truth_as_results", "keypoint_similarity", "load_coco", "oks", "oks_matrix", "pck",
    "ranking_accuracy", "save_results", "spearman",
]
