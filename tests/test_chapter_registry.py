"""The chapter registry: a chapter registers itself once and `poselab list`, the scorecard, the
paper → code index and `poselab replicate` all see it; registrations that would collide or lie
are refused by name."""
from __future__ import annotations

import json
import sys
import textwrap

import pytest

from poselab import cli, index, scorecard
from poselab import chapters as chapters_pkg
from poselab.chapters import Chapter, chapters, get_chapter, register, unregister
from poselab.chapters.registry import replicating
from poselab.experiments import replicate


def _notebook(path):
    path.write_text(json.dumps({"cells": [], "metadata": {"kernelspec": {"name": "python3"}},
                                "nbformat": 4, "nbformat_minor": 5}))
    return path


@pytest.fixture
def dummy_chapter(tmp_path, monkeypatch):
    """A chapter from a package outside poselab (``dummy_lab``), registered by its own
    ``__init__`` exactly as a real chapter is: no shared file edited."""
    pkg = tmp_path / "dummy_lab"
    pkg.mkdir()
    notebook = _notebook(tmp_path / "99_dummy.ipynb")
    (pkg / "__init__.py").write_text(textwrap.dedent(f'''\
        """A dummy chapter."""
        from pathlib import Path
        from poselab.chapters.registry import Chapter, register, replicating

        CHAPTER = register(Chapter(
            number=99, name="dummy", stem="99_dummy", title="Dummy — a test paper",
            paper="dummy-test-paper.md", tag="DummyPaper", claim_prefixes=("dummy",),
            recipes=("mse",), expected_claims={{"dummy.loss.matches_formula"}},
            replication_recipes=replicating(("mse",)), notebook=Path({str(notebook)!r}),
            package=__name__))
        '''))
    (pkg / "analysis.py").write_text(textwrap.dedent('''\
        def dummy_loss(x):
            """The dummy loss (DummyPaper Eq. 3)."""
            return x
        '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    module = importlib.import_module("dummy_lab")
    yield module.CHAPTER
    unregister(module.CHAPTER)
    for name in [m for m in sys.modules if m == "dummy_lab" or m.startswith("dummy_lab.")]:
        del sys.modules[name]


def test_the_real_chapters_are_registered_in_course_order():
    stems = [c.stem for c in chapters()]
    assert stems == ["00_basics", "01_train_in_a_minute", "02_rspose", "03_rcnet", "04_hdm",
                     "05_sar", "06_bcir", "07_capstone"]
    assert get_chapter("4") is get_chapter("04_hdm") is get_chapter("hdm") is get_chapter("04_hdm.ipynb")
    assert get_chapter("hdm").package == "poselab.chapters.hdm"
    assert get_chapter("capstone").runs_last and not get_chapter("hdm").runs_last
    assert {"mse", "emd", "mse_dot"} <= set(get_chapter("hdm").recipes)
    with pytest.raises(KeyError, match="unknown chapter 'hdmm'"):
        get_chapter("hdmm")


def test_a_registered_dummy_chapter_is_seen_by_list_scorecard_index_and_replicate(dummy_chapter, capsys):
    # poselab list / run
    assert cli.main(["list"]) == 0
    listed = capsys.readouterr().out.split()
    assert "99_dummy" in listed and "04_hdm" in listed
    assert listed[-1] == "07_capstone"  # the capstone still runs last, after chapter 99
    assert [p.stem for p in cli.resolve_chapters(["dummy"])] == ["99_dummy"]
    assert [p.stem for p in cli.resolve_chapters(["99"])] == ["99_dummy"]
    # the scorecard groups its claims under its title
    assert scorecard.paper_of("dummy.loss.matches_formula") == "dummy"
    assert scorecard.PAPERS["dummy"] == "Dummy — a test paper (chapter 99)"
    card = scorecard.scorecard([{"id": "dummy.loss.matches_formula", "kind": "math", "holds": True,
                                 "verdict": "holds", "chapter": "99_dummy"}])
    assert [r["id"] for r in card["dummy"]] == ["dummy.loss.matches_formula"] and not card.get("other")
    assert "### Dummy — a test paper (chapter 99)" in scorecard.to_markdown(
        [{"id": "dummy.loss.matches_formula", "kind": "math", "holds": True, "verdict": "holds"}])
    # the index: its paper's tag, its tagged function and its row in the chapters table
    assert "DummyPaper" in index.paper_names()
    entries = [e for e in index.tagged_entries() if e.paper == "DummyPaper"]
    assert [(e.place, e.qualname) for e in entries] == [("Eq. 3", "dummy_lab.analysis.dummy_loss")]
    assert "| 99 Dummy — a test paper | `99_dummy.ipynb` | dummy-test-paper.md | `dummy_lab` | `mse` |" in (
        index.chapters_markdown())
    # poselab replicate
    assert [r.name for r in replicate.chapter_recipes("99")] == ["mse"]
    assert [r.name for r in replicate.chapter_recipes("dummy")] == ["mse"]


def test_unregistering_removes_the_dummy_everywhere(dummy_chapter, capsys):
    unregister(dummy_chapter)
    assert cli.main(["list"]) == 0
    assert "99_dummy" not in capsys.readouterr().out
    assert "dummy" not in scorecard.PAPERS and scorecard.paper_of("dummy.x") == "other"
    with pytest.raises(ValueError, match="no empirical training claims"):
        replicate.chapter_recipes("99")


def test_a_new_chapter_folder_is_discovered_without_editing_a_shared_file(tmp_path, monkeypatch):
    # a subpackage of poselab.chapters (here on an extra path entry, as a new folder would be)
    folder = tmp_path / "zz_dummy"
    folder.mkdir()
    (folder / "__init__.py").write_text(
        "from poselab.chapters.registry import Chapter, register\n"
        "CHAPTER = register(Chapter(number=98, name='zz_dummy', stem='98_zz_dummy', title='ZZ',\n"
        "                           package=__name__))\n")
    monkeypatch.setattr(chapters_pkg, "__path__", [*chapters_pkg.__path__, str(tmp_path)])
    try:
        assert "zz_dummy" in chapters_pkg.discover()
        assert get_chapter("98").package == "poselab.chapters.zz_dummy"
    finally:
        unregister("98_zz_dummy")
        sys.modules.pop("poselab.chapters.zz_dummy", None)
    with pytest.raises(KeyError):
        get_chapter("98")


def _chapter(**changes):
    fields = dict(number=97, name="tmp_chapter", stem="97_tmp_chapter", title="T")
    return Chapter(**{**fields, **changes})


def test_registrations_that_would_collide_or_lie_are_refused():
    with pytest.raises(ValueError, match="number 4 is already taken by chapter 04_hdm"):
        register(_chapter(number=4, stem="04_other"))
    with pytest.raises(ValueError, match="name 'hdm' is already taken"):
        register(_chapter(name="hdm"))
    with pytest.raises(ValueError, match=r"claim prefix \['sar'\] is already taken by chapter 05_sar"):
        register(_chapter(claim_prefixes=("sar",)))
    assert get_chapter("hdm").number == 4 and "97_tmp_chapter" not in [c.stem for c in chapters()]
    with pytest.raises(ValueError, match="stem must be '97_<name>'"):
        _chapter(stem="98_tmp_chapter")
    with pytest.raises(ValueError, match="stem must be"):
        _chapter(stem="tmp_chapter")
    with pytest.raises(ValueError, match="number must be an int in 0..99"):
        _chapter(number=100, stem="100_x")
    with pytest.raises(ValueError, match="name must be lower-case"):
        _chapter(name="Tmp-Chapter")
    with pytest.raises(ValueError, match=r"expected claims \['hdm.x'\] do not start with one of its"):
        _chapter(expected_claims={"hdm.x"})
    with pytest.raises(TypeError, match="recipes must be a collection of non-empty strings"):
        _chapter(recipes="mse")
    with pytest.raises(TypeError, match="replication_recipes must be callable"):
        _chapter(replication_recipes=("mse",))
    with pytest.raises(TypeError, match="register takes a Chapter"):
        register({"number": 97})
    assert _chapter().claim_prefixes == ("tmp_chapter",)  # the name, by default


def test_replicating_adapts_each_recipe_to_the_preset():
    from poselab.experiments import get_preset
    full = {r.name: r for r in replicating(("mse", "bcir"))(get_preset("full"))}
    default = {r.name: r for r in replicating(("mse", "bcir"))(get_preset("default"))}
    assert full["mse"] == default["mse"]
    assert full["bcir"].loss_params["t_off_epochs"] != default["bcir"].loss_params["t_off_epochs"]
    from poselab.experiments import RECIPES
    assert [r.name for r in replicating(None)(get_preset("fast"))] == sorted(RECIPES)


def test_each_chapter_names_the_recipes_its_module_registers():
    import importlib

    from poselab.experiments import RECIPES
    for chapter in chapters():
        assert set(chapter.recipes) <= set(RECIPES), chapter.stem
        try:
            module = importlib.import_module(f"{chapter.package}.recipes")
        except ModuleNotFoundError:
            continue
        if hasattr(module, "CHAPTER_RECIPES"):
            assert chapter.recipes == tuple(module.CHAPTER_RECIPES), chapter.stem


def _fresh(code: str) -> str:
    import os
    import subprocess
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_import_poselab_stays_light_and_the_engine_brings_every_chapters_recipes():
    # `poselab list` / `--help` import the CLI and the registry, not torch nor any recipe module
    out = _fresh("import sys, poselab.cli, poselab.scorecard, poselab.labs\n"
                 "print(sorted(m for m in sys.modules if m == 'torch' or m.endswith('.recipes')))")
    assert out == "[]"
    # a fresh process (as a training worker) that imports only the engine sees every chapter's recipes
    out = _fresh("from poselab.experiments import get_recipe, RECIPES\n"
                 "get_recipe('spatial_rs_is'); get_recipe('mse_dot'); get_recipe('sar_aux'); "
                 "get_recipe('bcir_beta20'); print(len(RECIPES))")
    from poselab.experiments import RECIPES
    assert int(out) == len(RECIPES) >= 24
    # ... whichever module comes first (a chapter's recipes module, importing the engine itself)
    assert _fresh("import poselab.chapters.sar.recipes\nfrom poselab.experiments import RECIPES\n"
                  "print('emd' in RECIPES and 'spatial_rank' in RECIPES)") == "True"


def test_the_hook_runs_callbacks_registered_before_and_after_the_engine_loaded(monkeypatch):
    from poselab import _hooks
    monkeypatch.setattr(_hooks, "_AFTER_EXPERIMENTS", [])
    monkeypatch.setattr(_hooks, "_fired", False)
    calls = []
    _hooks.after_experiments(lambda: calls.append("early"))
    assert calls == []                       # waits for the engine
    _hooks.experiments_loaded()
    assert calls == ["early"]
    _hooks.after_experiments(lambda: calls.append("late"))
    assert calls == ["early", "late"]        # the engine is there: runs at once
    with pytest.raises(TypeError, match="callable"):
        _hooks.after_experiments("poselab.chapters")
