"""Each chapter executed once per test session, in fast mode, for every test that checks it
(``tests/test_chapters.py``: the claims ledger; ``tests/test_browser.py``: what a student sees;
``tests/test_browser_bcir.py``: chapter 06's named analyses respond).

Where Chromium (Debian's binary) and Playwright are installed, a chapter runs in JupyterLab in
headless Chromium: "run all", then the browser checks, the screenshot and (chapter 06) the
named analyses' slider and click checks on the same page; its claims ledger is the one the run
wrote. Elsewhere it runs through papermill (``poselab run``). Either way the kernel imports only
what Binder installs (``tests/binder_env``). ``POSELAB_CHAPTER_RUNS=papermill`` forces papermill
(the browser tests then skip). Asking for the capstone first runs every earlier chapter: it
reads the ledgers they wrote into the shared folder.
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
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
RUN_TIMEOUT_S = 300
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]

sys.path.insert(0, str(Path(__file__).resolve().parent / "binder_env"))
import closure  # noqa: E402  (tests/binder_env: run kernels with only what Binder installs)


def browser_missing() -> str | None:
    """Why the browser cannot run here (None when it can)."""
    if CHROMIUM is None:
        return "Chromium is not installed (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    return None


def mode() -> str:
    """Which way the chapters run here: "browser" or "papermill" (see the module docstring)."""
    wanted = os.environ.get("POSELAB_CHAPTER_RUNS", "")
    if wanted not in ("", "browser", "papermill"):
        raise ValueError(f"POSELAB_CHAPTER_RUNS must be 'browser' or 'papermill', got {wanted!r}")
    if wanted == "papermill" or (not wanted and browser_missing()):
        return "papermill"
    if browser_missing():
        raise RuntimeError(f"POSELAB_CHAPTER_RUNS=browser, but {browser_missing()}")
    return "browser"


@dataclass
class ChapterRun:
    chapter: str                    # the file stem
    via: str                        # "browser" or "papermill"
    failure: str | None             # why the run did not complete (None: every cell ran)
    claims: list                    # the ledger the run wrote
    text: str                       # the executed notebook (papermill) or the page's text (browser)
    problems: list = field(default_factory=list)       # browser: what a student would see wrong
    interactions: dict = field(default_factory=dict)   # browser: named check -> it responded
    seconds: float = 0.0


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
# code cells whose prompt shows no execution count once "run all" has ended: a cell raised
_NOT_RUN = """() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')]
                 .filter(c => !/\\[\\d+\\]/.test((c.querySelector('.jp-InputPrompt') || {}).textContent || ''))
                 .length"""
_TEXT = "() => document.querySelector('.jp-Notebook').textContent"
_READOUTS = "() => [...document.querySelectorAll('.widget-html')].map(e => e.innerHTML).join('|')"


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


def _until(check, seconds: float) -> bool:
    """Poll ``check()`` every 0.5 s for up to ``seconds``; True once it holds."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False


def _move_a_slider(page) -> bool | None:
    """Press Home on the first slider handle; True if any figure/text output changed, None if
    the chapter has no slider."""
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
    return _until(lambda: page.evaluate(snapshot) != before, 15)


def _press(page, description: str, nth: int, key: str) -> bool:
    """``key`` on the handle of the ``nth`` slider labelled ``description``; True once a widget
    readout changed."""
    slider = page.locator(".widget-slider", has_text=description).nth(nth)
    slider.scroll_into_view_if_needed()
    before = page.evaluate(_READOUTS)
    slider.locator(".noUi-handle").first.focus()
    page.keyboard.press(key)
    return _until(lambda: page.evaluate(_READOUTS) != before, 30)


def _click_regression_map(page) -> bool:
    """Click the left (regression) map of the gradient-case explorer, the figure in the widget
    box holding the "clear the drawn map" button; True once a readout names the drawn start."""
    box = page.locator(".widget-vbox", has=page.locator("button", has_text="clear the drawn map")).last
    drag = box.locator(".js-plotly-plot .nsewdrag").first
    drag.scroll_into_view_if_needed()
    area = drag.bounding_box()
    page.mouse.click(area["x"] + 0.3 * area["width"], area["y"] + 0.3 * area["height"])
    return _until(lambda: "drawn start: 1 blob" in page.evaluate(_READOUTS), 30)


def _bcir_named_analyses(page) -> dict:
    """Chapter 06: σ_true of the density-shrinkage explorer (section 4; to its maximum: the
    generic check may have moved the first slider to its minimum), the step of the gradient-case
    explorer (section 5, the second "step" slider in the page), then a click on the explorer's
    regression map, which draws a start of one's own."""
    return {"shrinkage σ_true": _press(page, "σ_true", 0, "End"),
            "gradient cases step": _press(page, "step", 1, "End"),
            "a click on the regression map draws a start": _click_regression_map(page)}


#: checks run on a chapter's page after the generic ones (test_browser_bcir.py asserts them)
INTERACTIONS = {"06_bcir": _bcir_named_analyses}


class ChapterRuns:
    """Runs each chapter once (on first request) and keeps what the tests check."""

    def __init__(self, folder: Path, chapters: list[Path]):
        self.folder, self.chapters = Path(folder), {p.stem: p for p in chapters}
        self.stems = list(self.chapters)            # the real chapters, the capstone last
        self.mode = mode()
        self.ledger = self.folder / "ledger"       # every chapter's claims/<stem>.json
        self.runs: dict[str, ChapterRun] = {}
        self._env = closure.binder_env(dict(os.environ))
        self._lab = None

    def get(self, stem: str) -> ChapterRun:
        if stem not in self.runs:
            if self.stems and stem == self.stems[-1]:  # the capstone reads every earlier chapter's ledger
                for earlier in self.stems[:-1]:
                    self.get(earlier)
            run = self._browser if self.mode == "browser" else self.papermill
            t0 = time.time()
            try:
                self.runs[stem] = run(stem)
            except Exception as exc:  # kept, so that the chapter's other tests fail without a rerun
                why = f"{type(exc).__name__}: {exc}"
                self.runs[stem] = ChapterRun(stem, self.mode, why, [], "", [why])
            self.runs[stem].seconds = time.time() - t0
        return self.runs[stem]

    def add(self, notebook: Path) -> str:
        """Register a notebook that is not a chapter (browser mode: the tests' own broken
        notebooks); returns its stem for :meth:`get`."""
        if self.mode != "browser":
            raise RuntimeError("only the browser runs notebooks outside labs/")
        self.chapters[Path(notebook).stem] = Path(notebook)
        return Path(notebook).stem

    def _ledger_of(self, stem: str) -> list:
        path = self.ledger / "claims" / f"{stem}.json"
        return json.loads(path.read_text()) if path.exists() else []

    # -- papermill (poselab run) ------------------------------------------------------------
    def papermill(self, stem: str) -> ChapterRun:
        """``poselab run --fast`` of one chapter, with Binder's imports only."""
        from poselab import cli, chapters  # deferred: the unit half never runs chapters
        out = self.folder / "papermill" / stem
        capstone = chapters.get_chapter(stem).name == "capstone"
        params = {"ledger_dir": str(self.ledger)} if capstone else None
        with pytest.MonkeyPatch.context() as env:  # papermill's kernel takes this process's environment
            for key in ("PYTHONPATH", "POSELAB_BLOCKED_MODULES"):
                env.setenv(key, self._env[key])
            code = cli.run([stem], fast=True, out=out, parameters=params)
        if self.mode == "papermill":  # the shared ledgers are the session's runs'
            (self.ledger / "claims").mkdir(parents=True, exist_ok=True)
            for ledger in (out / "claims").glob("*.json"):
                (self.ledger / "claims" / ledger.name).write_text(ledger.read_text())
        timings = json.loads((out / "timings.json").read_text())
        executed = out / f"{stem}.ipynb"
        return ChapterRun(stem, "papermill", None if code == 0 and stem in timings else
                          f"poselab run exited {code} (see the output above)",
                          json.loads((out / "claims.json").read_text()),
                          executed.read_text() if executed.exists() else "")

    def kernel_finds(self, *modules: str) -> dict:
        """Which of ``modules`` a chapter's kernel, started as this session starts them, finds
        (a blocked module must not be found; ``json`` must)."""
        code = ("import importlib.util\n"
                f"for m in {list(modules)!r}: print(m, 'FOUND' if importlib.util.find_spec(m) else 'MISSING')")
        if self.mode == "papermill":  # papermill's kernels take this process's environment
            out = subprocess.run([sys.executable, "-c", code], env=self._env, capture_output=True,
                                 text=True, timeout=120).stdout
        else:
            if self._lab is None:
                self._lab = self._start_lab()
            nb = {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                             "source": code, "id": "probe"}],
                  "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
                  "nbformat": 4, "nbformat_minor": 5}
            (self._lab["root"] / "probe.ipynb").write_text(json.dumps(nb))
            page = self._lab["browser"].new_page(viewport={"width": 1280, "height": 800})
            try:
                self._open(page, "probe.ipynb")
                _run_all(page, "probe.ipynb")
                out = page.evaluate("() => document.querySelector('.jp-Notebook .jp-OutputArea').textContent")
            finally:
                page.close()
                self._shut_kernels()
        found = dict(line.split() for line in out.splitlines() if len(line.split()) == 2)
        if sorted(found) != sorted(modules):
            raise RuntimeError(f"the kernel probe for {modules} printed {out!r}")
        return {m: found[m] == "FOUND" for m in modules}

    # -- JupyterLab in Chromium ---------------------------------------------------------------
    def _start_lab(self) -> dict:
        from playwright.sync_api import sync_playwright  # deferred: only where the browser runs
        labs = self.folder / "browser-labs"   # each notebook's fast copy is written on its first run
        labs.mkdir()
        port, token = _free_port(), secrets.token_hex(16)
        # every cell in the DOM (no windowed rendering, so every output is checked); no news toasts
        settings = self.folder / "lab-settings"
        for ext, name, value in (("@jupyterlab/notebook-extension", "tracker", {"windowingMode": "none"}),
                                 ("@jupyterlab/apputils-extension", "notification", {"fetchNews": "false"})):
            (settings / ext).mkdir(parents=True, exist_ok=True)
            (settings / ext / f"{name}.jupyterlab-settings").write_text(json.dumps(value))
        env = {**self._env, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
               "JUPYTERLAB_SETTINGS_DIR": str(settings)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={labs}",
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
            raise RuntimeError("JupyterLab did not start within 60 s")
        shots = Path(os.environ.get("POSELAB_BROWSER_SHOTS", ROOT / "runs" / "browser"))
        shots.mkdir(parents=True, exist_ok=True)
        playwright = sync_playwright().start()
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        return {"base": base, "token": token, "proc": proc, "playwright": playwright,
                "browser": browser, "shots": shots, "root": labs}

    def _open(self, page, name: str) -> None:
        lab = self._lab
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

    def _shut_kernels(self) -> None:
        """Shut down the finished chapter's kernel (it would hold its memory to the end)."""
        lab = self._lab
        url = f"{lab['base']}/api/sessions?token={lab['token']}"
        try:
            sessions = json.loads(urllib.request.urlopen(url, timeout=10).read())
            for s in sessions:
                req = urllib.request.Request(f"{lab['base']}/api/sessions/{s['id']}?token={lab['token']}",
                                             method="DELETE")
                urllib.request.urlopen(req, timeout=10)
        except OSError:
            pass  # a kernel left running costs memory, not correctness

    def _browser(self, stem: str) -> ChapterRun:
        if self._lab is None:
            self._lab = self._start_lab()
        name = _fast_copy(self.chapters[stem], self._lab["root"], self.ledger).name
        page = self._lab["browser"].new_page(viewport={"width": 1280, "height": 800})
        try:
            self._open(page, name)
            _run_all(page, name)
            problems = []
            errors = page.evaluate(_ERRORS)
            if errors:
                problems.append(f"error/stderr outputs: {errors[:3]}")
            if page.locator(".jp-Notebook .js-plotly-plot").count() == 0:
                problems.append("no plotly figure rendered")
            wide = page.evaluate(_WIDE)
            if wide:
                problems.append(f"outputs wider than the notebook at 1280 px: {wide[:4]}")
            not_run = page.evaluate(_NOT_RUN)
            if _move_a_slider(page) is False:
                problems.append("moving a slider changed nothing")
            if stem in self.stems:
                page.screenshot(path=str(self._lab["shots"] / f"{stem}.png"), full_page=False)
            interactions = INTERACTIONS[stem](page) if stem in INTERACTIONS and not not_run else {}
            text = page.evaluate(_TEXT)
        finally:
            page.close()
            self._shut_kernels()
        raised = [e for e in errors if "Traceback (most recent call last)" in e]
        failure = (f"{not_run} code cell(s) did not run" if not_run else None) if not raised else \
            f"a cell raised: {raised[0]}" + (f"; {not_run} code cell(s) did not run" if not_run else "")
        return ChapterRun(stem, "browser", failure, self._ledger_of(stem), text, problems, interactions)

    def close(self) -> None:
        if self._lab is None:
            return
        lab, self._lab = self._lab, None
        try:
            lab["browser"].close()
            lab["playwright"].stop()
        finally:
            lab["proc"].terminate()
            try:
                lab["proc"].wait(timeout=20)
            except subprocess.TimeoutExpired:
                lab["proc"].kill()
