"""``evaluate``: predict on a COCO-format val set from ground-truth boxes and score it.

Pipeline: GT box → padded, aspect-fixed crop (:class:`poselab.data.TopDownDataset`, no
augmentation) → model → codec decode (crop px) → ``crop_to_image`` → COCO results → pycocotools
AP (:func:`poselab.metrics.coco_keypoint_eval`) + EPE/PCK.

Instance score (MMPose ``CocoMetric(score_mode="bbox_keypoint")``): bbox score (1 for GT boxes)
× mean of the keypoint scores above 0.2; 0 if no keypoint passes. Keypoint scores are what the
codec's ``decode`` returns: heatmap max (MSE heatmaps: ≈ peak height, may exceed 1), SimCC
softmax max, integral max softmax probability, SAR sigmoid selector. No OKS-NMS (one
prediction per GT box).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate

from .loop import resolve_device

__all__ = ["evaluate", "Evaluator", "default_codec", "predict_crops", "instance_scores"]


def default_codec(head: str, input_size: tuple[int, int], split_ratio: float = 2.0):
    """The codec :func:`evaluate` decodes with when none is given (settings in the docstring):
    heatmap → ``HeatmapCodec(decoder="quarter")``; integral → ``IntegralCodec(beta=1,
    compensate=False)`` (plain soft-argmax, β as in :func:`poselab.losses.integral_l1_loss`);
    simcc → ``SimCCCodec(split_ratio)``; sar → ``SARCodec()`` — all at stride 4."""
    from poselab import codecs
    from poselab.data.transforms import _size_hw
    input_size = _size_hw(input_size, "input_size")
    if min(input_size) < 8:
        raise ValueError(f"input_size must be at least 8 x 8 (the heatmap is input / 4), got "
                         f"{input_size}")
    hm = (input_size[0] // 4, input_size[1] // 4)
    if head == "heatmap":
        return codecs.HeatmapCodec(input_size, hm, decoder="quarter")
    if head == "integral":
        return codecs.IntegralCodec(input_size, hm, beta=1.0, compensate=False)
    if head == "simcc":
        return codecs.SimCCCodec(input_size, split_ratio=split_ratio)
    if head == "sar":
        return codecs.SARCodec(input_size, hm)
    raise ValueError(f"unknown head {head!r}; choose heatmap, integral, simcc or sar")


def decode_outputs(head: str, codec, outputs) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode a model output with ``codec`` → ``(coords (B, K, 2) crop px, scores (B, K))``."""
    if head == "simcc":
        return codec.decode(*outputs)
    if head == "sar":
        return codec.decode(outputs["selector"], outputs["offsets"])
    return codec.decode(outputs)


def instance_scores(keypoint_scores: np.ndarray, bbox_scores: np.ndarray | float = 1.0,
                    threshold: float = 0.2) -> np.ndarray:
    """MMPose "bbox_keypoint" instance score: ``bbox_score · mean(s_k | s_k > threshold)``.

    ``keypoint_scores (N, K)`` → ``(N,)``; 0 for a person with no keypoint above the threshold.
    """
    s = np.asarray(keypoint_scores, dtype=np.float64)
    keep = s > threshold
    n = keep.sum(-1)
    mean = np.where(n > 0, (s * keep).sum(-1) / np.maximum(n, 1), 0.0)
    return np.asarray(bbox_scores, dtype=np.float64) * mean


def predict_crops(model, dataset, head: str, codec, batch_size: int = 64,
                  device: str | torch.device = "auto") -> dict[str, np.ndarray]:
    """Run ``model`` over every crop of ``dataset`` (eval mode, no grad).

    Returns numpy arrays: ``coords_crop (N, K, 2)``, ``scores (N, K)``, ``keypoints_crop`` (GT,
    crop px), ``visible (N, K)``, ``center (N, 2)``, ``scale (N, 2)``, ``image_id``, ``ann_id``,
    ``bbox (N, 4)``.
    """
    from .loop import _whole
    batch_size = _whole(batch_size, "batch_size", 1)
    dev = resolve_device(device)
    was_training = model.training
    model.eval()
    model.to(dev)
    keys = ("keypoints", "visible", "center", "scale", "image_id", "ann_id", "bbox")
    out: dict[str, list] = {k: [] for k in ("coords_crop", "scores", *keys)}
    try:
        with torch.no_grad():
            for start in range(0, len(dataset), int(batch_size)):
                items = [dataset[i] for i in range(start, min(len(dataset), start + int(batch_size)))]
                batch = default_collate(items)
                coords, scores = decode_outputs(head, codec, model(batch["image"].to(dev)))
                out["coords_crop"].append(coords.detach().float().cpu().numpy())
                out["scores"].append(scores.detach().float().cpu().numpy())
                for k in keys:
                    v = batch[k]
                    out[k].append(v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v))
    finally:
        model.train(was_training)
    res = {k: np.concatenate(v) for k, v in out.items()}
    res["keypoints_crop"] = res.pop("keypoints")
    return res


class Evaluator:
    """A reusable :func:`evaluate` (the val crops are built and their images decoded once).

    ``Evaluator(ann_json, ...)(model) -> dict``; pass it as ``fit(..., val=evaluator)``.
    ``score_fn(keypoint_scores (N, K)) -> (N,)`` replaces the default instance-score rule.
    """

    def __init__(self, ann_json, image_root=None, head: str | None = None, codec=None,
                 input_size: tuple[int, int] | None = None, batch_size: int = 64,
                 device: str | torch.device = "auto", score_threshold: float = 0.2,
                 results_json: str | os.PathLike | None = None, return_predictions: bool = True,
                 max_persons: int | None = None, score_fn=None):
        from .loop import _finite, _whole
        batch_size = _whole(batch_size, "batch_size", 1)
        score_threshold = _finite(score_threshold, "score_threshold", -float("inf"))
        if max_persons is not None:
            max_persons = _whole(max_persons, "max_persons", 1)
        if score_fn is not None and not callable(score_fn):
            raise ValueError(f"score_fn must be callable: (N, K) keypoint scores -> (N,), got "
                             f"{type(score_fn).__name__}")
        self.ann_json, self.image_root = Path(ann_json), image_root
        self.score_fn = score_fn  # instance-score rule: (N, K) keypoint scores -> (N,)
        self.head, self.codec, self.input_size = head, codec, input_size
        self.batch_size, self.device, self.score_threshold = batch_size, device, score_threshold
        self.results_json, self.return_predictions = results_json, return_predictions
        self.max_persons = max_persons
        self._datasets: dict[tuple[int, int], Any] = {}

    def dataset(self, input_size: tuple[int, int]):
        if input_size not in self._datasets:
            from poselab.data import TopDownDataset
            ds = TopDownDataset(self.ann_json, self.image_root, input_size=input_size, train=False)
            if self.max_persons is not None:
                ds.persons = ds.persons[: int(self.max_persons)]
            self._datasets[input_size] = ds
        return self._datasets[input_size]

    def __call__(self, model) -> dict[str, Any]:
        from poselab.data import crop_to_image
        from poselab.metrics import coco_keypoint_eval, end_point_error, pck
        head = self.head or getattr(model, "head_type", None)
        if head is None:
            raise ValueError("give head=... (the model has no head_type attribute)")
        input_size = tuple(self.input_size or getattr(model, "input_size", (64, 48)))
        codec = self.codec or default_codec(head, input_size,
                                            getattr(model, "config", {}).get("simcc_split_ratio", 2.0))
        ds = self.dataset(input_size)
        p = predict_crops(model, ds, head, codec, self.batch_size, self.device)
        coords_img = np.asarray(crop_to_image(p["coords_crop"].astype(np.float64), p["center"],
                                              p["scale"], input_size))
        gt_img = np.asarray(crop_to_image(p["keypoints_crop"].astype(np.float64), p["center"],
                                          p["scale"], input_size))
        kscores = p["scores"].astype(np.float64)
        if self.score_fn is None:
            inst = instance_scores(kscores, 1.0, self.score_threshold)
        else:
            inst = np.asarray(self.score_fn(kscores), dtype=np.float64)
            if inst.shape != (len(kscores),) or not np.all(np.isfinite(inst)):
                raise ValueError(f"score_fn must return {len(kscores)} finite instance scores (one "
                                 f"per person), got shape {inst.shape} with "
                                 f"{int(np.size(inst) - np.isfinite(inst).sum())} NaN/inf")
        results = []
        for i in range(len(inst)):
            kp = np.concatenate([coords_img[i], kscores[i][:, None]], axis=1).reshape(-1)
            results.append({"image_id": int(p["image_id"][i]), "category_id": 1,
                            "keypoints": [float(v) for v in kp], "score": float(inst[i])})
        if self.results_json is not None:
            Path(self.results_json).parent.mkdir(parents=True, exist_ok=True)
            Path(self.results_json).write_text(json.dumps(results))
        coco = coco_keypoint_eval(self.ann_json, results)
        metrics: dict[str, Any] = {k: float(coco[k]) for k in
                                   ("AP", "AP50", "AP75", "APm", "APl", "AR") if k in coco}
        vis = p["visible"] > 0
        if vis.any():
            metrics["EPE"] = end_point_error(coords_img, gt_img, vis)
            metrics["EPE_crop"] = end_point_error(p["coords_crop"], p["keypoints_crop"], vis)
            bbox_size = np.maximum(p["bbox"][:, 2], p["bbox"][:, 3])
            metrics["PCK@0.2"] = pck(coords_img, gt_img, vis, bbox_size, alpha=0.2)
        else:
            metrics["EPE"] = metrics["EPE_crop"] = metrics["PCK@0.2"] = float("nan")
        metrics["n_persons"] = int(len(inst))
        if self.return_predictions:
            metrics["predictions"] = {
                "coords": coords_img, "scores": kscores, "instance_scores": inst,
                "coords_crop": p["coords_crop"], "keypoints_crop": p["keypoints_crop"],
                "keypoints": gt_img, "visible": p["visible"], "image_id": p["image_id"],
                "ann_id": p["ann_id"], "bbox": p["bbox"], "results": results,
                "matched_oks": coco.get("matched_oks")}
        return metrics


def evaluate(model, ann_json, image_root=None, head: str | None = None, codec=None,
             input_size: tuple[int, int] | None = None, batch_size: int = 64,
             device: str | torch.device = "auto", score_threshold: float = 0.2,
             results_json: str | os.PathLike | None = None, return_predictions: bool = True,
             max_persons: int | None = None) -> dict[str, Any]:
    """Predict on a COCO-format val set from GT boxes and score it.

    Args:
        model: a pose model (eval mode is set for the call and restored after).
        ann_json: COCO person-keypoints json (generated, the real sample, or official).
        image_root: image folder (default: beside the json, see ``TopDownDataset``).
        head: "heatmap" | "integral" | "simcc" | "sar" (default ``model.head_type``).
        codec: decoder (default :func:`default_codec`); its input size must match the crops.
        input_size: crop (H, W) (default ``model.input_size``).
        batch_size, device: inference batching and device ("auto": cuda → cpu).
        score_threshold: keypoint-score threshold of the instance score (module docstring).
        results_json: also write the COCO results list there.
        return_predictions: include ``"predictions"`` (arrays for plotting).
        max_persons: evaluate only the first N persons (quick looks; AP then counts the other
            GT persons as misses).

    Returns:
        ``{"AP", "AP50", "AP75", "APm", "APl", "AR"}`` (pycocotools; undefined → 0.0), ``"EPE"``
        (image px, over joints labelled and inside the crop), ``"EPE_crop"`` (input px),
        ``"PCK@0.2"`` (of max(bbox w, h)), ``"n_persons"`` and, optionally, ``"predictions"``.
    """
    return Evaluator(ann_json, image_root, head, codec, input_size, batch_size, device,
                     score_threshold, results_json, return_predictions, max_persons)(model)
