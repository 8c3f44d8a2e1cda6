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

from poselab import codecs
from poselab.codecs import model_codec
from poselab.data import TopDownDataset, crop_to_image
from poselab.data.transforms import _size_hw
from poselab.metrics import coco_keypoint_eval, end_point_error, pck

from .._numbers import whole_number
from .loop import _finite, resolve_device

__all__ = ["evaluate", "Evaluator", "default_codec", "codec_for_model", "predict_crops", "instance_scores",
           "INFERRED_DECODERS"]


#: the decoder :func:`codec_for_model` infers for a head when the model carries no codec; the
#: integral head is read as plain integral regression (Sun et al.; :func:`poselab.losses.integral_l1_loss`
#: with its default β = 10, BCIR's value, no compensation). A model trained by a recipe carries the
#: recipe's own codec instead (:func:`poselab.codecs.attach_codec`).
INFERRED_DECODERS = {"heatmap": "argmax + quarter-pixel shift", "integral": "soft-argmax, β = 10, no compensation",
                     "simcc": "argmax per axis", "sar": "top-1 cell (SAR Eq. 11)"}


def default_codec(head: str, input_size: tuple[int, int], split_ratio: float = 2.0, *,
                  heatmap_size: tuple[int, int] | None = None):
    """The codec :func:`evaluate` infers for ``head`` (:data:`INFERRED_DECODERS`) at a geometry:
    heatmap → ``HeatmapCodec(decoder="quarter")``; integral → ``IntegralCodec(beta=10,
    compensate=False)``; simcc → ``SimCCCodec(split_ratio)``; sar → ``SARCodec()``.

    ``heatmap_size``: the model's output map ``(h, w)`` — required for the heatmap, integral and
    sar heads (there is no default stride: a stride-2 model decoded at stride 4 lands every
    keypoint at half its coordinates). :func:`codec_for_model` reads it from the model."""
    input_size = _size_hw(input_size, "input_size")
    if head == "simcc":
        return codecs.SimCCCodec(input_size, split_ratio=split_ratio)
    if head not in ("heatmap", "integral", "sar"):
        raise ValueError(f"unknown head {head!r}; choose heatmap, integral, simcc or sar")
    if heatmap_size is None:
        raise ValueError(f"default_codec({head!r}, input_size={input_size}) needs heatmap_size=(h, w), the "
                         "model's output map size (codec_for_model(model) reads it from the model)")
    heatmap_size = _size_hw(heatmap_size, "heatmap_size")
    if head == "heatmap":
        return codecs.HeatmapCodec(input_size, heatmap_size, decoder="quarter")
    if head == "integral":
        return codecs.IntegralCodec(input_size, heatmap_size, beta=10.0, compensate=False)
    return codecs.SARCodec(input_size, heatmap_size)


def _probe_outputs(model, input_size, device):
    """The model's outputs for one blank crop (eval mode, no grad; the mode is restored)."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(torch.zeros(1, 3, *input_size, device=device))
    finally:
        model.train(was)


def codec_for_model(model, outputs=None, input_size: tuple[int, int] | None = None,
                    head: str | None = None, device: str | torch.device = "cpu"):
    """The codec that decodes ``model``: the one it carries (:func:`poselab.codecs.model_codec`:
    ``model.codec``, or the spec in ``model.config["codec"]`` a checkpoint restored), else the
    :func:`default_codec` of its head (``head`` or ``model.head_type``) sized from its **actual**
    outputs (``outputs``, or one forward pass of a blank ``input_size`` crop), never from a
    default stride.

    Raises ValueError naming what is missing (no head type, outputs of an unknown shape)."""
    codec = model_codec(model)
    if codec is not None:
        return codec
    head = head or getattr(model, "head_type", None)
    if head is None:
        raise ValueError("the model carries no codec (poselab.codecs.attach_codec) and has no head_type; "
                         "pass codec=... or head=...")
    size = input_size if input_size is not None else getattr(model, "input_size", None)
    if size is None:
        raise ValueError("give input_size=(H, W): the model has no input_size attribute")
    size = _size_hw(size, "input_size")
    if outputs is None:
        outputs = _probe_outputs(model, size, resolve_device(device))
    if head == "simcc":
        if not (isinstance(outputs, (tuple, list)) and len(outputs) == 2):
            raise ValueError(f"a SimCC head returns (x_logits, y_logits); this model returned {type(outputs).__name__}")
        k = outputs[0].shape[-1] / size[1]
        if round(outputs[1].shape[-1] / k) != size[0]:
            raise ValueError(f"SimCC outputs of {outputs[0].shape[-1]} x-bins and {outputs[1].shape[-1]} y-bins do "
                             f"not fit input {size} with one split ratio; pass codec=...")
        return default_codec(head, size, k)
    maps = outputs.get("selector") if head == "sar" and isinstance(outputs, dict) else outputs
    if not isinstance(maps, torch.Tensor) or maps.ndim < 3:
        raise ValueError(f"cannot infer a codec for a {head!r} head returning {type(outputs).__name__}; give the "
                         "model its codec (poselab.codecs.attach_codec) or pass codec=...")
    return default_codec(head, size, heatmap_size=tuple(int(v) for v in maps.shape[-2:]))


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


def predict_crops(model, dataset, head: str | None = None, codec=None, batch_size: int = 64,
                  device: str | torch.device = "auto") -> dict[str, np.ndarray]:
    """Run ``model`` over every crop of ``dataset`` (eval mode, no grad) and decode the outputs
    with ``codec.decode(outputs)`` (None: :func:`codec_for_model` of the first batch's outputs;
    ``head`` only serves that inference).

    Returns numpy arrays: ``coords_crop (N, K, 2)``, ``scores (N, K)``, ``keypoints_crop`` (GT,
    crop px), ``visible (N, K)``, ``center (N, 2)``, ``scale (N, 2)``, ``image_id``, ``ann_id``,
    ``bbox (N, 4)``.
    """
    batch_size = whole_number(batch_size, "batch_size", 1)
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
                outputs = model(batch["image"].to(dev))
                if codec is None:
                    codec = codec_for_model(model, outputs, tuple(batch["image"].shape[-2:]), head)
                coords, scores = codec.decode(outputs)
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
        batch_size = whole_number(batch_size, "batch_size", 1)
        score_threshold = _finite(score_threshold, "score_threshold", -float("inf"))
        if max_persons is not None:
            max_persons = whole_number(max_persons, "max_persons", 1)
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
            ds = TopDownDataset(self.ann_json, self.image_root, input_size=input_size, train=False)
            if self.max_persons is not None:
                ds.persons = ds.persons[: int(self.max_persons)]
            self._datasets[input_size] = ds
        return self._datasets[input_size]

    def __call__(self, model) -> dict[str, Any]:
        codec = self.codec if self.codec is not None else model_codec(model)
        size = self.input_size or getattr(model, "input_size", None) or (
            codec.input_size if codec is not None else None)
        if size is None:
            raise ValueError("give input_size=(H, W) (the model has no input_size attribute)")
        input_size = tuple(int(v) for v in size)
        if codec is not None and tuple(codec.input_size) != input_size:
            raise ValueError(f"the codec decodes {tuple(codec.input_size)} crops but the model's crops are "
                             f"{input_size}; build the codec (or give input_size) for the model's crops")
        if codec is None and (self.head or getattr(model, "head_type", None)) is None:
            raise ValueError("give head=... or codec=... (the model has no head_type attribute and carries "
                             "no codec)")
        ds = self.dataset(input_size)
        p = predict_crops(model, ds, self.head, codec, self.batch_size, self.device)
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
        head: "heatmap" | "integral" | "simcc" | "sar" (default ``model.head_type``); used only
            when neither ``codec`` is given nor the model carries one.
        codec: decoder (default: the model's own codec — :func:`poselab.codecs.attach_codec`, which
            :func:`poselab.experiments.run_recipe` and ``RunResult.model()`` attach — else
            :func:`codec_for_model`: the head's :func:`default_codec` at the model's actual output
            size); its input size must match the crops.
        input_size: crop (H, W) (default ``model.input_size``, else the codec's).
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
