"""The built-in parts every chapter shares, and the two base recipes.

Codecs ``gaussian``, ``dot``, ``four_pixel``, ``simcc``, ``integral``, ``sar``; losses ``mse``
and ``emd``; score rules ``bbox_keypoint`` and ``mean``; models ``standard`` and
``max_anchored``; recipes ``mse`` (SimpleBaseline: heatmap + MSE to an MSRA Gaussian, argmax +
quarter-pixel decoding) and ``emd`` (HDM: EMD to the dot annotation, four-pixel decoding, the
max-anchored head of chapter 04).
"""
from __future__ import annotations

import numpy as np
import torch

from poselab.codecs import HeatmapCodec, IntegralCodec, SARCodec, SimCCCodec
from poselab.codecs.hdm import FourPixelCodec
from poselab.losses import heatmap_mse_loss
from poselab.losses.emd_keypoints import emd_batch_loss
from poselab.models import build_model
from poselab.models.heads import MaxAnchor
from poselab.train.evaluate import instance_scores

from .registry import Recipe, register_codec, register_loss, register_model, register_recipe, register_score


@register_codec("gaussian")
def gaussian_codec(geometry, sigma: float = 2.0, decoder: str = "quarter", **kw):
    """MSRA / unbiased Gaussian heatmap target (:class:`poselab.codecs.HeatmapCodec`)."""
    return HeatmapCodec(geometry.input_size, geometry.heatmap_size, sigma=sigma, decoder=decoder, **kw)


@register_codec("dot")
def dot_codec(geometry, decoder: str = "argmax", **kw):
    """One-hot dot target at the rounded pixel (:class:`poselab.codecs.HeatmapCodec`)."""
    return HeatmapCodec(geometry.input_size, geometry.heatmap_size, target="dot", decoder=decoder, **kw)


@register_codec("four_pixel")
def four_pixel_codec(geometry, **kw):
    """Dot target, HDM four-pixel decoding (HDM §3.4)."""
    return FourPixelCodec(geometry.input_size, geometry.heatmap_size, **kw)


@register_codec("simcc")
def simcc_codec(geometry, split_ratio: float = 2.0, sigma: float = 6.0, **kw):
    """SimCC 1-D labels (:class:`poselab.codecs.SimCCCodec`)."""
    return SimCCCodec(geometry.input_size, split_ratio=split_ratio, sigma=sigma, **kw)


@register_codec("integral")
def integral_codec(geometry, beta: float = 10.0, compensate: bool = False, **kw):
    """Soft-argmax decoding (:class:`poselab.codecs.IntegralCodec`); β defaults to BCIR's 10, as
    :func:`poselab.losses.integral_l1_loss` and the codec class (every registered recipe names
    its β). ``compensate=False``: plain integral regression unless the recipe asks for Eq. 38."""
    return IntegralCodec(geometry.input_size, geometry.heatmap_size, beta=beta,
                         compensate=compensate, **kw)


@register_codec("sar")
def sar_codec(geometry, **kw):
    """SAR grid (:class:`poselab.codecs.SARCodec`)."""
    return SARCodec(geometry.input_size, geometry.heatmap_size, **kw)


@register_loss("mse")
def mse_loss(geometry, **params):
    """:func:`poselab.losses.heatmap_mse_loss` to ``batch["target"]``, weighted by ``batch["weights"]``."""

    def loss_fn(outputs, batch):
        return heatmap_mse_loss(outputs, batch["target"], batch["weights"], **params)
    return loss_fn


@register_loss("emd")
def emd_loss(geometry, reg: float = 1.0, n_iters: int = 1000, tol: float = 1e-6):
    """HDM Eq. 5: :func:`poselab.losses.emd_loss` from the raw maps to the keypoints."""
    return emd_batch_loss(geometry.input_size, reg=reg, n_iters=n_iters, tol=tol)


@register_score("bbox_keypoint")
def bbox_keypoint_score(keypoint_scores: np.ndarray) -> np.ndarray:
    """MMPose: mean of the keypoint scores above 0.2 (GT boxes: box score 1)."""
    return instance_scores(keypoint_scores, 1.0, 0.2)


@register_score("mean")
def mean_score(keypoint_scores: np.ndarray) -> np.ndarray:
    """Mean of all keypoint scores."""
    return np.asarray(keypoint_scores, dtype=np.float64).mean(-1)


def _build(recipe, geometry, seed):
    return build_model(recipe.head, geometry.input_size, recipe.backbone,
                       num_keypoints=geometry.num_keypoints, seed=seed,
                       heatmap_stride=int(round(geometry.stride)))


@register_model("standard")
def standard_model(recipe, geometry, seed):
    """:func:`poselab.models.build_model` with the recipe's head and backbone."""
    return _build(recipe, geometry, seed)


@register_model("max_anchored")
def max_anchored_model(recipe, geometry, seed):
    """The standard model whose heatmaps are shifted to ``H = z − max z + 1`` (HDM chapter:
    :class:`poselab.models.heads.MaxAnchor`)."""
    model = _build(recipe, geometry, seed)
    model.head = torch.nn.Sequential(model.head, MaxAnchor())
    return model


MSE = register_recipe(Recipe(
    name="mse", head="heatmap", codec="gaussian", loss="mse",
    codec_params={"sigma": 2.0, "decoder": "quarter"},
    paper="SimpleBaseline (Xiao et al., ECCV 2018): MSE to an MSRA Gaussian",
    description="heatmap + MSE to a σ=2 Gaussian; argmax + quarter-pixel decoding"))

EMD = register_recipe(Recipe(
    name="emd", head="heatmap", codec="four_pixel", loss="emd", model="max_anchored",
    loss_params={"reg": 1.0, "n_iters": 1000, "tol": 1e-6},
    paper="HDM (Qu et al., NeurIPS 2022) Eq. 2-5: EMD to the dot annotation",
    description="entropic EMD (reg 1) to the sub-pixel dot; four-pixel decoding; max-anchored head"))
