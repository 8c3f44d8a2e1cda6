"""Recipes of the RSPose chapter (02; Keles et al., 2025), registered on import.

All on the same tiny backbone, optimiser, data and seeds as the ``mse`` baseline (heatmap head,
MSRA Gaussian σ = 2 heatmap px, argmax + quarter-pixel decoding); only the loss changes.
Deltas and coefficients: Table E.8 (ViTPose-B row for 2-D, SimCC-ResNet-50 row for 1-D).

- ``spatial_rank`` — Spatial Rank only (Eq. 5–6), δ 0.4.
- ``spatial_rs`` — Spatial Rank + 2.0 · Spatial Sort (δ 0.4 / 1.5).
- ``spatial_rs_is`` — + 0.25 · Instance-Sort (δ 3.0; Eq. 10–14) over the persons of the batch.
- ``simcc_kl`` — SimCC head (split 2, σ = 6 bins), KL divergence (the SimCC baseline).
- ``simcc_rs`` — SimCC head, Spatial RS on each axis vector (δ 0.4 / 0.2, sort coefficient
  0.25), positives = bins within 3σ of the centre (MMPose SimCC labels are untruncated; see the
  chapter's imbalance section).

Positives of the 2-D recipes are the Gaussian's (6σ+1)² window (label > 0), as the MSRA codec
truncates it. Instance-Sort needs each person's area in heatmap px²: the batch's COCO ``area``
(image px²) mapped through the crop (``scale`` = crop window in image px) and the stride; every
batch path (crop cache and per-item) carries both.
"""
from __future__ import annotations

import torch

from poselab.codecs import POSITIVE_THRESHOLD_3SIGMA, input_to_heatmap
from poselab.experiments.registry import Recipe, register_loss, register_recipe
from poselab.losses import rspose_loss, simcc_kl_loss, spatial_rank_sort_loss

__all__ = ["CHAPTER_RECIPES", "heatmap_areas"]

PAPER = "RSPose (Keles et al., 2025)"


def heatmap_areas(batch: dict, geometry) -> torch.Tensor:
    """Person areas ``(B,)`` in heatmap px² from a training batch (RSPose Eq. 10's KS scale).

    ``area · (W_in / scale_w) · (H_in / scale_h) / stride²``: the batch's COCO ``area`` (image
    px², the OKS scale²) mapped through each person's crop window ``scale`` (image px, after
    augmentation) — both carried by :class:`poselab.data.TopDownDataset` items and
    :class:`poselab.data.crop_cache.CropCache` batches. A batch without them raises: a constant
    area (the whole box) would make the training KS far more lenient than the evaluated OKS.
    """
    H, W = geometry.input_size
    h, w = geometry.heatmap_size
    missing = [k for k in ("area", "scale") if k not in batch]
    if missing:
        raise ValueError(f"Instance-Sort needs each person's area: the batch has no {missing} "
                         "(COCO area in image px² and the crop window (w, h) in image px, as "
                         "TopDownDataset items and CropCache batches carry them)")
    image = batch["keypoints"]
    area = torch.as_tensor(batch["area"], dtype=torch.float32, device=image.device).reshape(-1)
    scale = torch.as_tensor(batch["scale"], dtype=torch.float32, device=image.device).reshape(-1, 2)
    if area.shape[0] != image.shape[0] or scale.shape[0] != image.shape[0]:
        raise ValueError(f"area {tuple(area.shape)} and scale {tuple(scale.shape)} must have one entry "
                         f"per person of the batch ({image.shape[0]})")
    crop = area * (W / scale[:, 0]) * (H / scale[:, 1])
    return (crop * (h / H) * (w / W)).clamp_min(1.0)


@register_loss("rspose")
def rspose_heatmap_loss(geometry, rank_delta: float = 0.4, sort_delta: float = 1.5,
                        instance_delta: float = 3.0, rank_weight: float = 1.0,
                        sort_weight: float = 2.0, instance_weight: float = 0.25,
                        positive_threshold: float = 0.0):
    """RSPose Eq. 14 on 2-D heatmaps: :func:`poselab.losses.rspose_loss` with the Gaussian
    target's window as positives; returns ``{"loss", "spatial_rank", "spatial_sort",
    "instance_sort"}``."""

    def loss_fn(outputs, batch):
        vis = batch["weights"]
        kp = None
        areas = None
        if instance_weight:
            kp = input_to_heatmap(batch["keypoints"], geometry.input_size, geometry.heatmap_size)
            areas = heatmap_areas(batch, geometry)
        return rspose_loss(outputs, batch["target"], vis, kp, areas, rank_delta=rank_delta,
                           sort_delta=sort_delta, instance_delta=instance_delta,
                           rank_weight=rank_weight, sort_weight=sort_weight,
                           instance_weight=instance_weight,
                           positive_threshold=positive_threshold, return_terms=True)
    return loss_fn


@register_loss("simcc_kl")
def simcc_kl(geometry, beta: float = 1.0):
    """:func:`poselab.losses.simcc_kl_loss` to the SimCC labels (SimCC Eq. 2–3 / RSPose Eq. 3)."""

    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 < float(beta) < float("inf"):
        raise ValueError(f"simcc_kl: beta must be a finite number > 0, got {beta!r}")

    def loss_fn(outputs, batch):
        return simcc_kl_loss(outputs, (batch["target_x"], batch["target_y"]), batch["weights"],
                             beta=beta)
    return loss_fn


@register_loss("simcc_rs")
def simcc_rs(geometry, rank_delta: float = 0.4, sort_delta: float = 0.2, sort_weight: float = 0.25,
             positive_threshold: float | None = None):
    """Spatial RS on each SimCC axis vector (one ranking problem per axis and joint), summed
    over x and y like the KL loss. ``positive_threshold`` None: the 3σ window
    (:data:`poselab.codecs.POSITIVE_THRESHOLD_3SIGMA`)."""
    thr = POSITIVE_THRESHOLD_3SIGMA if positive_threshold is None else positive_threshold

    def loss_fn(outputs, batch):
        terms = [spatial_rank_sort_loss(out, batch[name], batch["weights"], rank_delta,
                                        sort_delta, sort_weight, thr, return_terms=True)
                 for out, name in zip(outputs, ("target_x", "target_y"))]
        return {"loss": terms[0]["loss"] + terms[1]["loss"],
                "spatial_rank": terms[0]["spatial_rank"] + terms[1]["spatial_rank"],
                "spatial_sort": terms[0]["spatial_sort"] + terms[1]["spatial_sort"]}
    return loss_fn


_GAUSS = {"sigma": 2.0, "decoder": "quarter"}
SPATIAL_RANK = register_recipe(Recipe(
    name="spatial_rank", head="heatmap", codec="gaussian", loss="rspose", codec_params=_GAUSS,
    loss_params={"sort_weight": 0.0, "instance_weight": 0.0},
    paper=f"{PAPER} Eq. 5-6, Table 6 'Spatial Rank'",
    description="heatmap, Spatial Rank (δ 0.4) with the σ=2 Gaussian window as positives"))
SPATIAL_RS = register_recipe(Recipe(
    name="spatial_rs", head="heatmap", codec="gaussian", loss="rspose", codec_params=_GAUSS,
    loss_params={"sort_weight": 2.0, "instance_weight": 0.0},
    paper=f"{PAPER} Eq. 5-9, Table 6 'Spatial Rank & Sort'",
    description="heatmap, Spatial Rank + 2·Spatial Sort (δ 0.4 / 1.5, Table E.8 ViTPose-B)"))
SPATIAL_RS_IS = register_recipe(Recipe(
    name="spatial_rs_is", head="heatmap", codec="gaussian", loss="rspose", codec_params=_GAUSS,
    loss_params={"sort_weight": 2.0, "instance_weight": 0.25},
    paper=f"{PAPER} Eq. 14, Table 6 'Spatial RS + Instance-Sort'",
    description="heatmap, Spatial RS + 0.25·Instance-Sort (δ 0.4 / 1.5 / 3.0, Table E.8)"))
SIMCC_KL = register_recipe(Recipe(
    name="simcc_kl", head="simcc", codec="simcc", loss="simcc_kl",
    codec_params={"split_ratio": 2.0, "sigma": 6.0},
    paper="SimCC (Li et al., ECCV 2022) / RSPose Table 6 'KL Div.'",
    description="SimCC head (split 2, σ 6 bins), KL divergence"))
SIMCC_RS = register_recipe(Recipe(
    name="simcc_rs", head="simcc", codec="simcc", loss="simcc_rs",
    codec_params={"split_ratio": 2.0, "sigma": 6.0},
    paper=f"{PAPER} Table 6 SimCC 'Spatial Rank & Sort' (Table E.8 ResNet-50 row)",
    description="SimCC head, Spatial RS per axis (δ 0.4 / 0.2, sort 0.25), 3σ bins positive"))

CHAPTER_RECIPES = ("mse", "spatial_rank", "spatial_rs", "spatial_rs_is", "simcc_kl", "simcc_rs")
