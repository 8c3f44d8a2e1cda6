"""Recipes of the HDM chapter (04; Qu et al., NeurIPS 2022) beyond the built-in ``mse`` and ``emd``,
registered on import.

- ``mse_dot`` — the paper's second straw man (§1, Fig. 1a): pixel-wise MSE to the **dot**
  heatmap (one-hot at the pixel holding the joint, no Gaussian), the same network, optimiser and
  decoding (argmax + quarter-pixel shift) as ``mse``. HDM argues that this sparse target makes
  training hard; the chapter's replication (`poselab replicate 04`) trains it beside ``mse`` and
  ``emd``.
"""
from __future__ import annotations

from poselab.experiments.registry import Recipe, register_recipe

__all__ = ["CHAPTER_RECIPES", "MSE_DOT"]

MSE_DOT = register_recipe(Recipe(
    name="mse_dot", head="heatmap", codec="dot", loss="mse",
    codec_params={"decoder": "quarter"},
    paper="HDM (Qu et al., NeurIPS 2022) §1, Fig. 1a: MSE to the dot-annotated heatmap (the straw man)",
    description="heatmap + MSE to a one-hot dot at the rounded pixel; argmax + quarter-pixel decoding"))

#: what chapter 04's replication trains: the two base recipes and the dot straw man
CHAPTER_RECIPES = ("mse", "emd", "mse_dot")
