"""Every chapter in a real browser: JupyterLab in headless Chromium (Debian's binary, driven by
Playwright), each chapter run top to bottom in fast mode, then checked for what a student sees:

- no error and no stderr output (tracebacks, warnings, pink boxes);
- plotly figures rendered, and widgets rendered where the chapter has them;
- no output wider than the notebook at a 1280×800 window;
- in a chapter with sliders, moving one slider changes a figure or a text;
- a screenshot of each chapter (``runs/browser/<chapter>.png``, or ``$POSELAB_BROWSER_SHOTS``).

Skipped, with the reason, only where Chromium or Playwright is not installed (``.ci/run``
installs Chromium with apt when it is missing). Runs after tests/test_chapters.py in the same
session, so the experiments cache is warm and the browser run mostly re-uses trained runs.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from poselab import cli

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = [p for p in cli.list_chapters()]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
RUN_TIMEOUT_S = 300
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]

pytestmark = [pytest.mark.browser]
if CHROMIUM is None:
    pytestmark.append(pytest.mark.skip(reason="Chromium is not installed (apt-get install chromium)"))
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover
    pytestmark.append(pytest.mark.skip(reason="playwright is not installed (pip install playwright)"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fast_copy(chapter: Path, folder: Path, ledger: Path) -> Path:
    """The chapter with a cell after its parameters cell that sets fast mode (as papermill would)."""
    nb = json.loads(chapter.read_text())
    idx = next(i for i, c in enumerate(nb["cells"]) if "parameters" in c.get("metadata", {}).get("tags", []))
    nb["cells"].insert(idx + 1, {"cell_type": "code", "metadata": {"tags": ["injected-parameters"]},
                                 "execution_count": None, "outputs": [], "id": "injected-fast",
                                 "source": f"fast = True\nout_dir = {str(ledger)!r}"})
    out = folder / chapter.name
    out.write_text(json.dumps(nb))
    return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser-labs")
    ledger = folder / "ledger"
    for chapter in CHAPTERS:
        _fast_copy(chapter, folder, ledger)
    port, token = _free_port(), secrets.token_hex(16)
    # every cell in the DOM (no windowed rendering, so every output is checked); no news toasts
    settings = folder / "lab-settings"
    for ext, name, value in (("@jupyterlab/notebook-extension", "tracker", {"windowingMode": "none"}),
                             ("@jupyterlab/apputils-extension", "notification", {"fetchNews": "false"})):
        (settings / ext).mkdir(parents=True, exist_ok=True)
        (settings / ext / f"{name}.jupyterlab-settings").write_text(json.dumps(value))
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "JUPYTERLAB_SETTINGS_DIR": str(settings)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}",
         "--LabApp.expose_app_in_browser=True", "--allow-root",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.terminate()
        pytest.fail("JupyterLab did not start within 60 s")
    shots = Path(os.environ.get("POSELAB_BROWSER_SHOTS", ROOT / "runs" / "browser"))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield {"base": base, "token": token, "browser": browser, "shots": shots, "ledger": ledger}
        finally:
            browser.close()
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


# start "run all" without awaiting it; then poll the prompts ([*] = queued or running) and the kernel
_START_ALL = "() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }"
_BUSY = """() => [...document.querySelectorAll('.jp-Notebook .jp-InputPrompt')]
                 .some(e => e.textContent.includes('*'))
               || window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status !== 'idle'"""
_WIDE = """() => [...document.querySelectorAll('.jp-Notebook .jp-OutputArea-output')]
                 .filter(e => e.scrollWidth > e.clientWidth + 2)
                 .map(e => e.scrollWidth + '>' + e.clientWidth + ' px: ' + e.textContent.slice(0, 80))"""
_ERRORS = """() => [...document.querySelectorAll(
                 '.jp-Notebook [data-mime-type="application/vnd.jupyter.stderr"]')]
                 .map(e => e.textContent.slice(0, 300))"""


def _run_all(page, name: str) -> None:
    """Run every cell and return when the kernel is idle again and the outputs had 2 s to render.
    The run counts as started once a prompt shows [*] or the kernel is busy (polled for up to
    10 s: a loaded machine can take a while to queue the cells)."""
    t0 = time.time()
    page.evaluate(_START_ALL)
    while not page.evaluate(_BUSY) and time.time() - t0 < 10:
        time.sleep(0.1)
    while page.evaluate(_BUSY):
        assert time.time() - t0 < RUN_TIMEOUT_S, f"{name} still running after {RUN_TIMEOUT_S} s"
        time.sleep(0.25)
    time.sleep(2)  # let the last outputs and widgets render


def _open(lab, page, name: str):
    # a fresh workspace per chapter: no tab or kernel of an earlier chapter comes back
    page.goto(f"{lab['base']}/lab/workspaces/w-{Path(name).stem}/tree/{name}?reset&token={lab['token']}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext.session "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext.session.kernel "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'",
                           timeout=90_000)
    for sel in (".jp-Dialog button.jp-mod-accept",):  # e.g. a kernel chooser: accept the default
        if page.locator(sel).count():
            page.locator(sel).first.click()


def _move_a_slider(page) -> bool | None:
    """Press → on the first slider handle; True if any figure/text output changed, None if the
    chapter has no slider."""
    handles = page.locator(".widget-slider .noUi-handle, .widget-slider .ui-slider-handle")
    if handles.count() == 0:
        return None
    snapshot = "() => [...document.querySelectorAll('.jp-OutputArea-output')].map(e => e.innerHTML).join('|').length + ':' + [...document.querySelectorAll('.js-plotly-plot .main-svg, .widget-html, .widget-label')].map(e => e.innerHTML).join('|')"
    handle = handles.first
    handle.scroll_into_view_if_needed()
    before = page.evaluate(snapshot)
    handle.focus()
    # to the slider's minimum (a few steps to the right may leave an ordering, and so the
    # figure, unchanged); noUiSlider's keyboard support takes Home / End
    page.keyboard.press("Home")
    deadline = time.time() + 15
    while time.time() < deadline:
        if page.evaluate(snapshot) != before:
            return True
        time.sleep(0.5)
    return False


@pytest.mark.parametrize("chapter", [c.name for c in CHAPTERS])
def test_chapter_runs_and_renders_in_the_browser(lab, chapter):
    page = lab["browser"].new_page(viewport={"width": 1280, "height": 800})
    try:
        _open(lab, page, chapter)
        _run_all(page, chapter)
        problems = []
        errors = page.evaluate(_ERRORS)
        if errors:
            problems.append(f"error/stderr outputs: {errors[:3]}")
        if page.locator(".jp-Notebook .js-plotly-plot").count() == 0:
            problems.append("no plotly figure rendered")
        wide = page.evaluate(_WIDE)
        if wide:
            problems.append(f"outputs wider than the notebook at 1280 px: {wide[:4]}")
        if _move_a_slider(page) is False:
            problems.append("moving a slider changed nothing")
        page.screenshot(path=str(lab["shots"] / f"{Path(chapter).stem}.png"), full_page=False)
        assert not problems, f"{chapter}: " + "; ".join(problems)
    finally:
        page.close()
