"""Recipes of the BCIR chapter (06; Gu, Yang, Mi, Yao, TPAMI 2023), registered on import.

All share the tiny backbone, optimiser, data and the integral head (the heatmap head read as
soft-argmax logits); the detection baseline is the built-in ``mse`` (SimpleBaseline). Table 6's
rows are parameter choices of one loss, ``"bcir"`` (:func:`poselab.losses.bcir_loss`):

- ``ipr`` — integral pose regression: L1 on the soft-argmax (Eq. 3, 5), β = 10.
- ``ipr_reg`` — + the Laplacian shrinkage regulariser (Eq. 15) on h̃, τ = 0.02, weight 0.5 (the
  paper gives neither; τ lets a σ ≈ 2 px Gaussian pass unpenalised).
- ``ipr_prior`` — + the Gaussian prior λ(t)·L_de (Eq. 4, 21), σ = 2, λ = 1 before T_o.
- ``ipr_debias`` — L1 on the bias-compensated point (Eq. 18, 20) only ("+de-bias").
- ``bcir`` — compensation + prior (Eq. 21): the paper's method; ``bcir_beta1`` /
  ``bcir_beta20`` — the β ablation of Table 6.

Conditioning: a network at initialisation predicts logits ≈ 0, so ``C ≈ n`` and Eq. 38's gain
``C/(C − n)`` is in the hundreds (or the map falls back to the plain soft-argmax); chapter 06
measures it (:func:`poselab.chapters.bcir.analysis.compensation_conditioning`). The paper's remedy is
BCIR's prior λ(t)·L_de, which shapes the maps into blobs with ``C ≫ n``. The library has a guard
of ours, ``max_gain`` (:func:`poselab.codecs.integral.check_max_gain`; :data:`GUARD_GAIN` is the
cap the chapter shows), but the recipes train with Eq. 38 as derived: trained once each at the
default preset (seed 0, one thread), capping the gain at 10 lowered ``ipr_debias`` from AP 0.142
to 0.036 and ``bcir`` from 0.258 to 0.241.

Decoding matches the loss: soft-argmax with the recipe's β, compensated where the loss is.
T_o: the paper trains SimpleBaseline 140 epochs with T_o = 120 (6/7 of training);
:func:`for_preset` sets ``t_off_epochs`` to the same share of a preset's epochs (the registered
recipes use :data:`DEFAULT_T_OFF`, that share of the default preset's epochs).
"""
from __future__ import annotations

import math

from poselab._numbers import whole_number
from poselab.codecs import spatial_softmax
from poselab.experiments.presets import PRESETS, get_preset
from poselab.experiments.registry import (RECIPES, Recipe, adapt_to_preset, get_recipe, register_loss,
                                          register_preset_adapter, register_recipe)
from poselab.losses import bcir_loss, laplacian_shrinkage_regularizer, step_schedule

__all__ = ["GUARD_GAIN", "SIGMA_SWEEP", "SIGMA_RECIPES", "CHAPTER_RECIPES", "TRAINING_RECIPES", "ABLATION_RECIPES", "BETA_RECIPES", "for_preset",
           "T_OFF_SHARE", "DEFAULT_T_OFF", "t_off_for"]

PAPER = "BCIR (Gu, Yang, Mi, Yao, TPAMI 2023)"
#: the gain cap chapter 06's conditioning table applies beside Eq. 38 (ours; not used in training)
GUARD_GAIN = 10.0
#: T_o / total epochs in the paper (SimpleBaseline: 120 of 140)
T_OFF_SHARE = 120 / 140


def t_off_for(epochs: int) -> int:
    """T_o for a run of ``epochs`` epochs: the paper's share (6/7), rounded, and at most
    ``epochs - 1``, so the last epoch trains without the prior as in the paper (at least 1).

    Example:
        >>> [t_off_for(e) for e in (1, 2, 5, 8, 40, 140)]
        [1, 1, 4, 7, 34, 120]
    """
    epochs = whole_number(epochs, "epochs", 1)
    return max(1, min(round(T_OFF_SHARE * epochs), epochs - 1))


#: T_o of the registered recipes: the paper's share of the default preset's epochs
DEFAULT_T_OFF = t_off_for(PRESETS["default"].epochs)


@register_loss("bcir")
def bcir_loss_builder(geometry, beta: float = 10.0, compensate: bool = True, prior_weight: float = 1.0,
                      t_off_epochs: float | None = DEFAULT_T_OFF, sigma: float = 2.0, reg_weight: float = 0.0,
                      tau: float = 0.02, max_gain: float | None = None):
    """:func:`poselab.losses.bcir_loss` to ``batch["target"]`` (heatmap px) weighted by
    ``batch["weights"]``, with λ(t) = ``step_schedule(batch["epoch"], t_off_epochs,
    prior_weight)`` (``t_off_epochs=None``: λ constant), plus ``reg_weight`` × the Laplacian
    shrinkage regulariser (Eq. 15) of ``softmax(β·h)``; ``max_gain`` caps the compensation's gain
    (ours). Returns ``{"loss", "l1", "prior"[, "reg"]}``.
    """

    for name, v in (("beta", beta), ("prior_weight", prior_weight), ("sigma", sigma),
                    ("reg_weight", reg_weight), ("tau", tau)):
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"bcir loss: {name} must be a finite number, got {v!r}")

    def loss_fn(outputs, batch):
        lam = (float(prior_weight) if t_off_epochs is None
               else step_schedule(batch["epoch"], t_off_epochs, prior_weight))
        terms = bcir_loss(outputs, batch["target"], batch["weights"], beta=beta, prior_weight=lam,
                          sigma=sigma, compensate=compensate, return_terms=True, max_gain=max_gain)
        if reg_weight > 0:
            reg = laplacian_shrinkage_regularizer(spatial_softmax(outputs, beta), tau, batch["weights"])
            terms["loss"] = terms["loss"] + reg_weight * reg
            terms["reg"] = reg
        return terms
    return loss_fn


def _recipe(name, description, beta=10.0, compensate=False, prior_weight=0.0, **loss):
    if prior_weight:
        loss.setdefault("t_off_epochs", DEFAULT_T_OFF)   # 6/7 of the default preset's epochs
    return register_recipe(Recipe(
        name=name, head="integral", codec="integral", loss="bcir",
        codec_params={"beta": beta, "compensate": compensate},
        loss_params={"beta": beta, "compensate": compensate, "prior_weight": prior_weight, **loss},
        paper=PAPER, description=description))


_recipe("ipr", "integral regression: L1 on the soft-argmax (Eq. 3, 5), β = 10")
_recipe("ipr_reg", "IPR + Laplacian shrinkage regulariser (Eq. 15, τ = 0.02, weight 0.5)",
        reg_weight=0.5, tau=0.02)
_recipe("ipr_prior", "IPR + Gaussian prior λ(t)·L_de (Eq. 21, σ = 2, step λ)", prior_weight=1.0)
_recipe("ipr_debias", "IPR on the bias-compensated soft-argmax (Eq. 18, 20)", compensate=True)
_recipe("bcir", "BCIR: compensated soft-argmax + λ(t)·L_de (Eq. 20, 21), β = 10",
        compensate=True, prior_weight=1.0)
_recipe("bcir_beta1", "BCIR with β = 1 (Table 6 ablation)", beta=1.0, compensate=True, prior_weight=1.0)
_recipe("bcir_beta20", "BCIR with β = 20 (Table 6 ablation)", beta=20.0, compensate=True, prior_weight=1.0)

#: Fig. 5(d) / §7.4: detection trained to Gaussian targets of several σ (heatmap px); σ = 2 is the
#: built-in ``mse``. Same model, decoder and budget; only the target's σ changes.
SIGMA_SWEEP = {0.5: "mse_sigma0_5", 1.0: "mse_sigma1", 2.0: "mse", 3.0: "mse_sigma3"}


def _sigma_recipe(sigma: float, name: str):
    base = get_recipe("mse")
    return register_recipe(base.replace(
        name=name, codec_params={**dict(base.codec_params), "sigma": float(sigma)}, paper=PAPER,
        description=f"detection (heatmap + MSE) to a σ = {sigma:g} Gaussian target (BCIR Fig. 5(d))"))


for _sigma, _name in SIGMA_SWEEP.items():
    if _name != "mse":
        _sigma_recipe(_sigma, _name)
#: the σ-sweep recipes beside ``mse`` (trained with the chapter's ``sigma_sweep=True``)
SIGMA_RECIPES = tuple(name for name in SIGMA_SWEEP.values() if name != "mse")

#: the chapter's main comparison (detection vs IPR vs BCIR), its ablations (Table 2, 6) and β
TRAINING_RECIPES = ("mse", "ipr", "bcir")
ABLATION_RECIPES = ("ipr_reg", "ipr_prior", "ipr_debias")
BETA_RECIPES = ("bcir_beta1", "bcir", "bcir_beta20")
CHAPTER_RECIPES = ("ipr", "ipr_reg", "ipr_prior", "ipr_debias", "bcir", "bcir_beta1", "bcir_beta20")


def for_preset(name: str, preset) -> Recipe:
    """The recipe ``name`` as it trains under ``preset`` (a Preset or its name): T_o at the
    paper's share (6/7) of the preset's epochs. The runner applies the same adapter to every run
    (:func:`poselab.experiments.registry.adapt_to_preset`), so this only shows what will train.

    Recipes without a prior term (and ``mse``) come back unchanged."""
    return adapt_to_preset(RECIPES[name], get_preset(preset))


@register_preset_adapter("bcir")
def _t_off_at_the_papers_share(recipe: Recipe, preset) -> Recipe:
    """BCIR's T_o follows the preset's epochs when the recipe keeps the registered T_o
    (:data:`DEFAULT_T_OFF`); a T_o chosen by hand (another number, or None for a constant λ) is
    kept as given."""
    params = dict(recipe.loss_params)
    if not params.get("prior_weight") or params.get("t_off_epochs") != DEFAULT_T_OFF:
        return recipe
    t_off = t_off_for(preset.epochs)
    if t_off == DEFAULT_T_OFF:
        return recipe
    params["t_off_epochs"] = t_off
    return recipe.replace(loss_params=params)
