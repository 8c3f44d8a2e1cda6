"""Chapter 06's two named analyses respond in a real browser: after the chapter runs (fast) in
JupyterLab / headless Chromium, moving the density-shrinkage explorer's σ_true slider and the
gradient-case explorer's step slider each changes that widget's readout, and a click on the
explorer's regression map draws a start of one's own (``chapter_runner._bcir_named_analyses``, on
the page of the chapter's browser run). Skipped where tests/test_browser.py is."""
from __future__ import annotations

from test_browser import pytestmark  # noqa: F401


def test_bcir_named_analyses_respond_in_the_browser(chapter_runs):
    run = chapter_runs.get("06_bcir")
    assert run.failure is None, run.failure
    assert run.interactions and all(run.interactions.values()), \
        f"named analyses whose widget did not respond: {run.interactions}"
