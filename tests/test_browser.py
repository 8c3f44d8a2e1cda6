"""Every chapter in a real browser: JupyterLab in headless Chromium (Debian's binary, driven by
Playwright), each chapter run top to bottom in fast mode (the same run tests/test_chapters.py
checks the ledger of: tests/chapter_runner.py), then checked for what a student sees:

- no error and no stderr output (tracebacks, warnings, pink boxes);
- plotly figures rendered, and widgets rendered where the chapter has them;
- no output wider than the notebook at a 1280×800 window;
- in a chapter with sliders, moving one slider changes a figure or a text;
- a screenshot of each chapter (``runs/browser/<chapter>.png``, or ``$POSELAB_BROWSER_SHOTS``).

Skipped, with the reason, only where Chromium or Playwright is not installed (``.ci/run``
installs Chromium with apt when it is missing), or where ``POSELAB_CHAPTER_RUNS=papermill``.
"""
from __future__ import annotations

import pytest

import chapter_runner
from poselab import cli

CHAPTERS = [p.stem for p in cli.list_chapters()]

pytestmark = [pytest.mark.browser]
if chapter_runner.browser_missing():
    pytestmark.append(pytest.mark.skip(reason=chapter_runner.browser_missing()))
elif chapter_runner.mode() != "browser":
    pytestmark.append(pytest.mark.skip(reason="POSELAB_CHAPTER_RUNS=papermill: the chapters ran through papermill"))


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_runs_and_renders_in_the_browser(chapter_runs, chapter):
    run = chapter_runs.get(chapter)
    assert run.via == "browser"
    assert not run.problems, f"{chapter}: " + "; ".join(run.problems)
