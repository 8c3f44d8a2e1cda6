"""A preset reaches a recipe by one route (architecture issue, item 4): the runner adapts every
run to its preset, so ``poselab train bcir --preset full``, ``compare``, the arena and chapter 06
train the same recipe (one cache key); a chapter's own budget applies under ``default`` only."""
from __future__ import annotations

import pytest

from poselab.experiments import PRESETS, RECIPES, Recipe, chapter_preset
from poselab.experiments.registry import adapt_to_preset, register_preset_adapter, PRESET_ADAPTERS
from poselab.experiments.runner import _plan
from poselab.chapters.bcir import recipes as bcir


def _t_off(plan):
    return plan["recipe"].loss_params["t_off_epochs"]


@pytest.mark.parametrize("preset", ["default", "full"])
def test_the_cli_route_and_the_chapter_route_train_the_same_bcir(preset):
    cli = _plan("bcir", "synth", preset, 0, "cpu")                       # poselab train bcir --preset P
    chapter = _plan(bcir.for_preset("bcir", preset), "synth", preset, 0, "cpu")  # chapter 06
    assert cli["key"] == chapter["key"]
    assert _t_off(cli) == bcir.t_off_for(PRESETS[preset].epochs)


def test_full_switches_the_prior_off_at_the_papers_share_not_after_epoch_4():
    assert _t_off(_plan("bcir", "synth", "full", 0, "cpu")) == 34  # 6/7 of 40 epochs (was 4)
    assert _plan("ipr", "synth", "full", 0, "cpu")["recipe"] == RECIPES["ipr"]  # no prior: unchanged


def test_a_hand_chosen_t_off_is_kept():
    mine = RECIPES["bcir"].replace(loss_params={**RECIPES["bcir"].loss_params, "t_off_epochs": 2})
    assert _t_off(_plan(mine, "synth", "full", 0, "cpu")) == 2
    constant = RECIPES["bcir"].replace(loss_params={**RECIPES["bcir"].loss_params, "t_off_epochs": None})
    assert _t_off(_plan(constant, "synth", "full", 0, "cpu")) is None


def test_adapting_twice_changes_nothing_more_and_a_bad_adapter_is_named():
    once = adapt_to_preset(RECIPES["bcir"], PRESETS["full"])
    assert adapt_to_preset(once, PRESETS["full"]) == once
    try:
        register_preset_adapter("mse-probe-loss", lambda r, p: "not a recipe")
        probe = Recipe(name="probe", head="heatmap", codec="heatmap", loss="mse-probe-loss")
        with pytest.raises(TypeError, match="mse-probe-loss"):
            adapt_to_preset(probe, PRESETS["full"])
    finally:
        PRESET_ADAPTERS.pop("mse-probe-loss", None)


def test_a_chapters_budget_applies_under_default_only():
    assert chapter_preset("default", epochs=3, n_val=40).epochs == 3
    assert chapter_preset("full", epochs=3, n_val=40) == PRESETS["full"]
    assert chapter_preset("fast", epochs=3) == PRESETS["fast"]
    assert chapter_preset("default", epochs=None) == PRESETS["default"]
    mine = PRESETS["default"].replace(name="mine", epochs=9)
    assert chapter_preset(mine, epochs=3).epochs == 9
