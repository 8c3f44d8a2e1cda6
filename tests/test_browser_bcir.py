"""Chapter 06's two named analyses respond in a real browser: after the chapter runs (fast) in
JupyterLab / headless Chromium, moving the density-shrinkage explorer's σ_true slider and the
gradient-case explorer's step slider each changes that widget's readout. Skipped where
tests/test_browser.py is (no Chromium or Playwright)."""
from __future__ import annotations

import time

import pytest

from test_browser import _BUSY, _START_ALL, RUN_TIMEOUT_S, _open, lab, pytestmark  # noqa: F401

_READOUTS = "() => [...document.querySelectorAll('.widget-html')].map(e => e.innerHTML).join('|')"


def _press(page, description: str, nth: int, key: str) -> bool:
    """``key`` on the handle of the ``nth`` slider labelled ``description``; True once a readout
    changed."""
    slider = page.locator(".widget-slider", has_text=description).nth(nth)
    slider.scroll_into_view_if_needed()
    before = page.evaluate(_READOUTS)
    slider.locator(".noUi-handle").first.focus()
    page.keyboard.press(key)
    deadline = time.time() + 30
    while time.time() < deadline:
        if page.evaluate(_READOUTS) != before:
            return True
        time.sleep(0.5)
    return False


def test_bcir_named_analyses_respond_in_the_browser(lab):  # noqa: F811
    page = lab["browser"].new_page(viewport={"width": 1280, "height": 800})
    try:
        _open(lab, page, "06_bcir.ipynb")
        t0 = time.time()
        page.evaluate(_START_ALL)
        time.sleep(2)
        while page.evaluate(_BUSY):
            assert time.time() - t0 < RUN_TIMEOUT_S, f"06_bcir still running after {RUN_TIMEOUT_S} s"
            time.sleep(1)
        time.sleep(2)
        # σ_true of the shrinkage explorer (section 4); the step of the gradient-case explorer
        # (section 5, the second "step" slider in the page)
        moved = {"shrinkage σ_true": _press(page, "σ_true", 0, "Home"),
                 "gradient cases step": _press(page, "step", 1, "End")}
        assert all(moved.values()), f"sliders whose widget did not respond: {moved}"
    finally:
        page.close()
