"""Recipes that the paper chapters add to :data:`poselab.experiments.RECIPES`.

One module per paper; importing :mod:`poselab.experiments` imports them all, so ``poselab
recipes`` and the capstone arena see every registered recipe.
"""
from . import bcir, hdm, rcnet, rspose, sar  # noqa: F401
