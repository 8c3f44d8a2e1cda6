"""Chapter 06's two named analyses respond in a real browser: after the chapter runs (fast) in
JupyterLab / headless Chromium, moving the density-shrinkage explorer's σ_true slider and the
gradient-case explorer's step slider each changes that widget's readout, and a click on the
explorer's regression map draws a start of one's own. Skipped where
tests/test_browser.py is (no Chromium or Playwright)."""
from __future__ import annotations

import time

import pytest

from test_browser import _open, _run_all, lab, pytestmark  # noqa: F401

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


def _click_regression_map(page) -> bool:
    """Click the left (regression) map of the gradient-case explorer, the figure in the widget
    box holding the "clear the drawn map" button; True once a readout names the drawn start."""
    box = page.locator(".widget-vbox", has=page.locator("button", has_text="clear the drawn map")).last
    drag = box.locator(".js-plotly-plot .nsewdrag").first
    drag.scroll_into_view_if_needed()
    area = drag.bounding_box()
    page.mouse.click(area["x"] + 0.3 * area["width"], area["y"] + 0.3 * area["height"])
    deadline = time.time() + 30
    while time.time() < deadline:
        if "drawn start: 1 blob" in page.evaluate(_READOUTS):
            return True
        time.sleep(0.5)
    return False


def test_bcir_named_analyses_respond_in_the_browser(lab):  # noqa: F811
    page = lab["browser"].new_page(viewport={"width": 1280, "height": 800})
    try:
        _open(lab, page, "06_bcir.ipynb")
        _run_all(page, "06_bcir")
        # σ_true of the shrinkage explorer (section 4); the step of the gradient-case explorer
        # (section 5, the second "step" slider in the page)
        moved = {"shrinkage σ_true": _press(page, "σ_true", 0, "Home"),
                 "gradient cases step": _press(page, "step", 1, "End")}
        assert all(moved.values()), f"sliders whose widget did not respond: {moved}"
        # a click on the gradient-case explorer's regression map draws a start of one's own
        assert _click_regression_map(page), "a click on the regression map did not draw a start"
    finally:
        page.close()
