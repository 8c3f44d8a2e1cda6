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
- ``simcc_rs_is`` — ``simcc_rs`` + 0.1 · Instance-Sort on the 1-D outputs (δ 0.5: Table E.8's
  SimCC-HRNet-W48 row, the only SimCC row with Instance-Sort; the ResNet-50 row has none), read
  as SimCC's decoder reads a keypoint (:func:`poselab.losses.simcc_instance_sort_loss` on the
  softmax probabilities the codec scores with). Table 6: it costs SimCC-ResNet-50 0.4 AP.
- ``spatial_rs_dot`` — the ``spatial_rs`` loss to the **dot** target (Table 1's "dot
  annotation"): one positive pixel per joint, so Spatial Sort has nothing to sort and the loss
  is Spatial Rank with a single positive; its MSE twin is chapter 04's ``mse_dot`` (reused).
- ``spatial_rs_sort_d<δ>_w<λ₁>`` — Table 7's Spatial Sort grid: δ_sort ∈ {1, 1.5} × λ₁ ∈ {0.5,
  1, 2}, Spatial Rank δ 0.4 / 1; the cell (1.5, 2) is ``spatial_rs`` itself (:data:`TABLE7_CELLS`).

Positives of the 2-D recipes are the Gaussian's (6σ+1)² window (label > 0), as the MSRA codec
truncates it. Instance-Sort needs each person's area in heatmap px²: the batch's COCO ``area``
(image px²) mapped through the crop (``scale`` = crop window in image px) and the stride; every
batch path (crop cache and per-item) carries both.
"""
from __future__ import annotations

import torch

from poselab.codecs import POSITIVE_THRESHOLD_3SIGMA, input_to_heatmap
from poselab.experiments.registry import Recipe, register_loss, register_recipe
from poselab.losses import rspose_loss, simcc_instance_sort_loss, simcc_kl_loss, spatial_rank_sort_loss

__all__ = ["CHAPTER_RECIPES", "EXTRA_RECIPES", "TABLE7_CELLS", "crop_areas", "heatmap_areas",
           "table7_recipe_name"]

PAPER = "RSPose (Keles et al., 2025)"


def crop_areas(batch: dict, geometry) -> torch.Tensor:
    """Person areas ``(B,)`` in **input** (crop) px² from a training batch (RSPose Eq. 11's KS
    scale for SimCC, whose keypoints are in input px).

    ``area · (W_in / scale_w) · (H_in / scale_h)``: the batch's COCO ``area`` (image px², the OKS
    scale²) mapped through each person's crop window ``scale`` (image px, after augmentation) —
    both carried by :class:`poselab.data.TopDownDataset` items and
    :class:`poselab.data.crop_cache.CropCache` batches. A batch without them raises: a constant
    area (the whole box) would make the training KS far more lenient than the evaluated OKS.
    """
    H, W = geometry.input_size
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
    return area * (W / scale[:, 0]) * (H / scale[:, 1])


def heatmap_areas(batch: dict, geometry) -> torch.Tensor:
    """Person areas ``(B,)`` in heatmap px² from a training batch (RSPose Eq. 10's KS scale):
    :func:`crop_areas` divided by the stride² (``(h / H_in) · (w / W_in)``), at least 1."""
    H, W = geometry.input_size
    h, w = geometry.heatmap_size
    return (crop_areas(batch, geometry) * (h / H) * (w / W)).clamp_min(1.0)


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
             positive_threshold: float | None = None, instance_delta: float = 0.5,
             instance_weight: float = 0.0):
    """Spatial RS on each SimCC axis vector (one ranking problem per axis and joint), summed
    over x and y like the KL loss. ``positive_threshold`` None: the 3σ window
    (:data:`poselab.codecs.POSITIVE_THRESHOLD_3SIGMA`). ``instance_weight`` > 0 adds
    ``instance_weight`` · :func:`poselab.losses.simcc_instance_sort_loss` (RSPose Eq. 14 on 1-D
    outputs) on the softmax probabilities of each axis — the confidence the SimCC codec decodes
    with — keypoints in input px, areas in input px² (:func:`crop_areas`); the split ratio is read
    off the outputs (bins / input px)."""
    thr = POSITIVE_THRESHOLD_3SIGMA if positive_threshold is None else positive_threshold
    if isinstance(instance_weight, bool) or not isinstance(instance_weight, (int, float)) \
            or not 0 <= float(instance_weight) < float("inf"):
        raise ValueError(f"simcc_rs: instance_weight must be a finite number >= 0, got {instance_weight!r}")
    H, W = geometry.input_size

    def loss_fn(outputs, batch):
        terms = [spatial_rank_sort_loss(out, batch[name], batch["weights"], rank_delta,
                                        sort_delta, sort_weight, thr, return_terms=True)
                 for out, name in zip(outputs, ("target_x", "target_y"))]
        out = {"loss": terms[0]["loss"] + terms[1]["loss"],
               "spatial_rank": terms[0]["spatial_rank"] + terms[1]["spatial_rank"],
               "spatial_sort": terms[0]["spatial_sort"] + terms[1]["spatial_sort"]}
        if instance_weight:
            sx, sy = outputs
            split = sx.shape[-1] / W
            if abs(sy.shape[-1] / H - split) > 1e-6:
                raise ValueError(f"SimCC outputs {tuple(sx.shape)} / {tuple(sy.shape)} do not share one "
                                 f"split ratio over the input {geometry.input_size}")
            inst = simcc_instance_sort_loss(torch.softmax(sx, -1), torch.softmax(sy, -1),
                                            batch["keypoints"], batch["weights"], crop_areas(batch, geometry),
                                            delta=instance_delta, split_ratio=split)
            out["instance_sort"] = inst
            out["loss"] = out["loss"] + instance_weight * inst
        return out
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

SIMCC_RS_IS = register_recipe(Recipe(
    name="simcc_rs_is", head="simcc", codec="simcc", loss="simcc_rs",
    codec_params={"split_ratio": 2.0, "sigma": 6.0},
    loss_params={"instance_weight": 0.1, "instance_delta": 0.5},
    paper=f"{PAPER} Table 6 SimCC-ResNet-50 'Spatial RS + Instance-Sort' (IS δ 0.5 / 0.1: Table E.8 HRNet-W48 row)",
    description="SimCC head, simcc_rs + 0.1·Instance-Sort on the 1-D outputs (δ 0.5)"))
SPATIAL_RS_DOT = register_recipe(Recipe(
    name="spatial_rs_dot", head="heatmap", codec="dot", loss="rspose", codec_params={"decoder": "quarter"},
    loss_params={"sort_weight": 2.0, "instance_weight": 0.0},
    paper=f"{PAPER} Table 1 'Dot Annotation' under the Spatial RS loss (Table 1 itself: MSE / KL only)",
    description="heatmap, Spatial RS (δ 0.4 / 1.5) to the one-pixel dot target (Sort has one positive: zero)"))


def table7_recipe_name(sort_delta: float, sort_weight: float) -> str:
    """The recipe of Table 7's Spatial Sort cell (δ_sort, λ₁): ``spatial_rs`` for the paper's
    chosen (1.5, 2.0), else ``spatial_rs_sort_d<δ>_w<λ₁>`` with '.' written 'p'."""
    if (float(sort_delta), float(sort_weight)) == (1.5, 2.0):
        return "spatial_rs"
    return f"spatial_rs_sort_d{float(sort_delta):g}_w{float(sort_weight):g}".replace(".", "p")


#: Table 7's Spatial Sort grid (ViTPose-B, Spatial Rank δ 0.4 / 1.0): (δ_sort, λ₁) -> recipe
TABLE7_CELLS = {(d, w): table7_recipe_name(d, w) for d in (1.0, 1.5) for w in (0.5, 1.0, 2.0)}
for (_delta, _weight), _name in TABLE7_CELLS.items():
    if _name != "spatial_rs":
        register_recipe(Recipe(
            name=_name, head="heatmap", codec="gaussian", loss="rspose", codec_params=_GAUSS,
            loss_params={"sort_delta": _delta, "sort_weight": _weight, "instance_weight": 0.0},
            paper=f"{PAPER} Table 7: Spatial Sort δ {_delta:g}, coefficient {_weight:g} (Spatial Rank δ 0.4 / 1.0)",
            description=f"heatmap, Spatial Rank + {_weight:g}·Spatial Sort (δ 0.4 / {_delta:g})"))

CHAPTER_RECIPES = ("mse", "spatial_rank", "spatial_rs", "spatial_rs_is", "simcc_kl", "simcc_rs")
#: trained by ``poselab replicate 02`` (and live only when the chapter's ``train_extra`` is set):
#: Instance-Sort on SimCC, and Table 1's dot cells (``mse_dot`` is chapter 04's recipe)
EXTRA_RECIPES = ("simcc_rs_is", "mse_dot", "spatial_rs_dot")
