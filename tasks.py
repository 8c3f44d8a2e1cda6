#!/usr/bin/env python3
"""Set up poselab in a project-local virtual environment and open the lab or run the tests.

    python3 tasks.py lab      set up (if needed), make the default data, open JupyterLab on labs/
    python3 tasks.py test     set up (if needed), run unit tests + every chapter (fast mode): the
                              chapters in one process, the other tests in pytest-xdist workers
                              beside it (one thread each);
                              python3 tasks.py test ARGS... runs one pytest with ARGS
    python3 tasks.py setup    only set up .venv
    python3 tasks.py strip    remove outputs from labs/*.ipynb (before committing)

Standard library only, Python >= 3.10. Torch is installed before the project: on the team's
machines ``pip install torch==2.13.0`` takes the CPU wheel lying on disk, whereas a torch range
installed first would pull a multi-GB CUDA build. Override with POSELAB_TORCH_SPEC (e.g.
"torch==2.5.1") and POSELAB_TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".poselab-installed"
TORCH_SPEC = os.environ.get("POSELAB_TORCH_SPEC", "torch==2.13.0")


def sh(*cmd: str | Path, **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def venv_has(module: str) -> bool:
    """Whether the venv's Python imports ``module``."""
    return subprocess.run([str(PY), "-c", f"import {module}"], capture_output=True).returncode == 0


def has_torch() -> bool:
    return venv_has("torch")


def setup() -> None:
    if sys.version_info < (3, 10):
        sys.exit(f"poselab needs Python >= 3.10 (this is {sys.version.split()[0]})")
    if not PY.exists():
        print(f"creating virtual environment {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == want and has_torch():
        return
    if not has_torch():
        index = os.environ.get("POSELAB_TORCH_INDEX_URL")
        sh(PY, "-m", "pip", "install", "--quiet", TORCH_SPEC, *(["--index-url", index] if index else []))
    sh(PY, "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[test]")
    STAMP.write_text(want)


def strip() -> None:
    for nb_path in sorted((ROOT / "labs").glob("*.ipynb")):
        nb = json.loads(nb_path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                cell["outputs"], cell["execution_count"] = [], None
            cell.get("metadata", {}).pop("execution", None)
            cell.get("metadata", {}).pop("papermill", None)
        nb.get("metadata", {}).pop("widgets", None)
        nb.get("metadata", {}).pop("papermill", None)
        nb_path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


#: the test files that check the chapters, in one pytest process: each chapter runs once, in
#: JupyterLab in Chromium where they are installed, else through papermill (the capstone last:
#: it reads the others' ledgers), and every test of that chapter checks that one run
#: (tests/chapter_runner.py)
NOTEBOOK_TESTS = ("tests/test_chapters.py", "tests/test_browser.py", "tests/test_browser_bcir.py")

#: each half names its slowest tests (pytest's ``--durations``) at the end of its output
SLOWEST = 12

#: the niceness of the other half's processes: the chapters' chain waits on kernels and a browser
#: and cannot be split, so it gets a core whenever it needs one and the other tests fill the rest
OTHERS_NICENESS = 5


def has_xdist() -> bool:
    return venv_has("xdist")


def other_workers() -> int:
    """pytest-xdist workers for the test files outside :data:`NOTEBOOK_TESTS`: one fewer than the
    CPUs (the chapters' chain holds one), at least 2 and at most 4, or ``$POSELAB_TEST_WORKERS``;
    0 (one plain process) where pytest-xdist is not installed or the variable says 0."""
    wanted = os.environ.get("POSELAB_TEST_WORKERS")
    if wanted is not None:
        if not wanted.isdigit():
            sys.exit(f"POSELAB_TEST_WORKERS must be a whole number >= 0, got {wanted!r}")
        n = int(wanted)
    else:
        n = max(2, min(4, (os.cpu_count() or 2) - 1))
    return n if n and has_xdist() else 0


def _nicer() -> None:  # runs in the child before it starts (POSIX only)
    os.nice(OTHERS_NICENESS)


def test_side_by_side() -> int:
    """The suite as two pytest runs at once, one torch thread a process (OMP_NUM_THREADS=1 unless
    set): the chapters' chain (:data:`NOTEBOOK_TESTS`) in one process, and ``tests`` without them,
    spread over :func:`other_workers` pytest-xdist workers at a lower priority (a whole file to a
    worker, handed out as workers free up, so a module's fixtures are built once) — every test in
    exactly one half. Each half collects (imports, rewrites) only its own files. The other tests
    print as they run; the chain's output follows when it ends; each half ends with its
    :data:`SLOWEST` slowest tests. Returns 0 when both passed."""
    import shlex
    import tempfile
    import threading
    import time

    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    workers = other_workers()
    start = time.monotonic()
    with tempfile.TemporaryFile("w+") as buffered:
        cmds = [[str(PY), "-m", "pytest", "-q", f"--durations={SLOWEST}", *NOTEBOOK_TESTS],
                [str(PY), "-m", "pytest", "-q", f"--durations={SLOWEST}", "tests",
                 *(f"--ignore={path}" for path in NOTEBOOK_TESTS),
                 *(["-n", str(workers), "--dist", "loadfile"] if workers else [])]]
        for cmd in cmds:
            print("+", shlex.join(cmd), flush=True)
        notebooks = subprocess.Popen(cmds[0], cwd=ROOT, env=env, stdout=buffered, stderr=subprocess.STDOUT)
        ended = {}       # the notebook half's exit code and time, taken when it ends, not after the other half
        waiter = threading.Thread(target=lambda: ended.update(code=notebooks.wait(), at=time.monotonic() - start),
                                  daemon=True)
        waiter.start()
        try:
            unit = subprocess.run(cmds[1], cwd=ROOT, env=env,
                                  **({"preexec_fn": _nicer} if os.name == "posix" else {})).returncode
            unit_s = time.monotonic() - start
            waiter.join()
        finally:
            if notebooks.poll() is None:
                notebooks.kill()
        nb, nb_s = ended["code"], ended["at"]
        buffered.seek(0)
        print("\n----- the notebook tests -----", flush=True)
        sys.stdout.write(buffered.read())
    print(f"\nunit tests ({workers or 1} process{'es' if workers > 1 else ''}): exit {unit} in {unit_s:.0f} s; "
          f"notebook tests: exit {nb} in {nb_s:.0f} s", flush=True)
    return 0 if unit == 0 and nb == 0 else 1


def main(argv: list[str]) -> int:
    task = argv[1] if len(argv) > 1 else "help"
    if task == "setup":
        setup()
    elif task == "lab":
        setup()
        sh(BIN / "poselab", "data", "synth")
        sh(BIN / "poselab", "lab", *argv[2:])
    elif task == "test":
        setup()
        if argv[2:]:  # a selection or options of one's own: one pytest process, as given
            sh(PY, "-m", "pytest", "-q", "tests", *argv[2:], cwd=ROOT)
        else:
            return test_side_by_side()
    elif task == "strip":
        strip()
    else:
        print(__doc__)
        return 0 if task == "help" else 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode or 1)
