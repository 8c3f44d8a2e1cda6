"""The preset reaches training by one route (architecture issue #22, item 4), checked where the
routes start: chapters 02 and 05 under ``preset="full"`` train the full preset's epochs (their own
budget applies under ``default`` only); ``compare``, the arena, ``run_recipe`` (the ``poselab
train`` route) and chapter 06's ``for_preset`` recipes train BCIR with one cache key.

Counter-cases: a chapter whose budget line applied ``epochs=3`` under every preset (the route of
before, ``preset.replace(epochs=epochs)``) trains 3 epochs under full and fails the first test; a
runner that did not adapt the recipe gives the CLI's BCIR T_o = 4 of 40 and another key.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from poselab.experiments import PRESETS, chapter_preset, compare
from poselab.experiments import runner
from poselab.experiments.arena import run_arena
from poselab.chapters.bcir import recipes as bcir

LABS = Path(__file__).resolve().parent.parent / "labs"


def _code_cells(stem: str) -> list[str]:
    nb = json.loads(next(LABS.glob(f"{stem}*.ipynb")).read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def _chapter_run_preset(stem: str, **params):
    """The chapter's ``run_preset`` as its parameter cell and budget line compute it, with the
    parameters overridden as papermill's ``-p`` would."""
    cells = _code_cells(stem)
    namespace: dict = {}
    exec(cells[0], namespace)                                   # the parameters cell
    namespace.update(params)
    line = next(ln for c in cells for ln in c.splitlines() if ln.startswith("run_preset = "))
    exec("from poselab.experiments import chapter_preset\n" + line, namespace)
    return namespace["run_preset"], namespace


@pytest.mark.parametrize("stem", ["02_rspose", "05_sar"])
def test_chapters_train_the_full_presets_epochs_under_full(stem):
    full, ns = _chapter_run_preset(stem, preset="full")
    assert full == PRESETS["full"] and full.epochs == 40
    default, ns = _chapter_run_preset(stem, preset="default")
    assert default.epochs == ns["epochs"] != PRESETS["default"].epochs  # the chapter's budget, default only
    assert default == chapter_preset("default", epochs=ns["epochs"], n_val=ns["n_val"])


@pytest.mark.parametrize("stem", ["02_rspose", "05_sar"])
def test_chapters_train_only_through_their_run_preset(stem):
    """Every training call of the chapter passes ``preset=run_preset`` (or a preset derived from
    it): none reaches the engine with the raw parameter."""
    calls = [m.group(0) for c in _code_cells(stem)
             for m in re.finditer(r"\b(compare|run_recipe)\((?:[^()]|\([^()]*\))*\)", c)]
    assert calls, "the chapter trains through compare / run_recipe"
    for call in calls:
        assert re.search(r"preset=preset\b", call) is None, call


def _fake_runs(monkeypatch):
    """Replace training by a record of the plan each route reaches (its cache key and T_o)."""
    seen = []

    def fake(recipe, data, preset, seed, device, callbacks, cache):
        plan = runner._plan(recipe, data, preset, seed, device)
        seen.append((plan["recipe"].name, plan["key"], plan["recipe"].loss_params.get("t_off_epochs")))
        return runner.RunResult(recipe=plan["recipe"].name, preset=plan["preset"].name, seed=seed, data=str(data),
                                metrics={"generated val": {"AP": 0.0}}, history={}, seconds_per_step=0.0,
                                train_seconds=0.0, peak_memory_mb=0.0, weights_path="/nowhere/weights.pt",
                                data_stream_sha256="", key=plan["key"], device="cpu", created="")
    monkeypatch.setattr(runner, "_run_recipe", fake)
    return seen


def test_compare_the_arena_the_cli_and_chapter_06_train_the_same_bcir(monkeypatch):
    seen = _fake_runs(monkeypatch)
    runner.run_recipe("bcir", preset="full", seed=0, device="cpu")                        # poselab train
    compare(["bcir"], seeds=[0], preset="full", device="cpu", cache=False, progress=False, jobs=1)
    run_arena(["bcir"], seeds=[0], preset="full", device="cpu", cache=False, progress=False, jobs=1)
    compare([bcir.for_preset("bcir", "full")], seeds=[0], preset="full", device="cpu",   # chapter 06
            cache=False, progress=False, jobs=1)
    assert len(seen) == 4 and len({key for _, key, _ in seen}) == 1, seen
    assert {t_off for _, _, t_off in seen} == {bcir.t_off_for(40)} == {34}
