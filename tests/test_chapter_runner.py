"""tests/chapter_runner.py's bookkeeping, without running a chapter: which way chapters run, each
chapter once however many tests check it, the capstone after every other chapter."""
from __future__ import annotations

import json

import pytest

import chapter_runner as cr


def test_the_switch_is_checked(monkeypatch):
    monkeypatch.setenv("POSELAB_CHAPTER_RUNS", "papermill")
    assert cr.mode() == "papermill"
    monkeypatch.setenv("POSELAB_CHAPTER_RUNS", "chrome")
    with pytest.raises(ValueError, match="POSELAB_CHAPTER_RUNS"):
        cr.mode()
    monkeypatch.delenv("POSELAB_CHAPTER_RUNS")
    assert cr.mode() == ("papermill" if cr.browser_missing() else "browser")
    monkeypatch.setattr(cr, "browser_missing", lambda: "no Chromium")
    assert cr.mode() == "papermill"
    monkeypatch.setenv("POSELAB_CHAPTER_RUNS", "browser")
    with pytest.raises(RuntimeError, match="no Chromium"):
        cr.mode()


def test_each_chapter_runs_once_and_the_capstone_after_the_others(monkeypatch, tmp_path):
    monkeypatch.setenv("POSELAB_CHAPTER_RUNS", "papermill")
    stems = ["00_a", "01_b", "02_c", "07_capstone"]
    runs = cr.ChapterRuns(tmp_path, [tmp_path / f"{s}.ipynb" for s in stems])
    order = []
    monkeypatch.setattr(runs, "papermill", lambda stem: order.append(stem) or cr.ChapterRun(
        stem, "papermill", None, [{"id": f"{stem}.x"}], ""))
    assert runs.get("01_b").claims == [{"id": "01_b.x"}]
    assert runs.get("01_b") is runs.get("01_b") and order == ["01_b"]
    runs.get("07_capstone")  # the earlier chapters not yet run run first
    assert order == ["01_b", "00_a", "02_c", "07_capstone"]
    runs.get("00_a")
    assert len(order) == 4


def test_the_fast_copy_sets_fast_mode_after_the_parameters_cell(tmp_path):
    nb = {"cells": [{"cell_type": "markdown", "source": "# t", "metadata": {}},
                    {"cell_type": "code", "source": "fast = False", "outputs": [],
                     "metadata": {"tags": ["parameters"]}},
                    {"cell_type": "code", "source": "print(fast)", "outputs": [], "metadata": {}}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    src = tmp_path / "src" / "00_t.ipynb"
    src.parent.mkdir()
    src.write_text(json.dumps(nb))
    out = json.loads(cr._fast_copy(src, tmp_path, tmp_path / "ledger").read_text())
    assert [c["source"] for c in out["cells"]][1:3] == ["fast = False", f"fast = True\nout_dir = {str(tmp_path / 'ledger')!r}"]
    assert out["cells"][2]["metadata"]["tags"] == ["injected-parameters"]
