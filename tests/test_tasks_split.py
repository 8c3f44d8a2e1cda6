"""``python3 tasks.py test`` runs the suite as two pytest runs side by side: the chapters' test
files in one process, every other test file in pytest-xdist workers (one plain process without
pytest-xdist) — each test in exactly one half."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tasks():
    spec = importlib.util.spec_from_file_location("poselab_tasks", ROOT / "tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_notebook_half_names_real_test_files():
    files = _tasks().NOTEBOOK_TESTS
    assert len(set(files)) == len(files)
    for name in files:
        assert (ROOT / name).is_file() and re.fullmatch(r"tests/test_\w+\.py", name), name


def test_every_notebook_marked_test_file_is_in_the_notebook_half():
    """A test that executes notebooks carries the ``chapters`` or ``browser`` mark or asks for the
    ``chapter_runs`` fixture; its file belongs with the notebooks (else the halves drift apart in
    time, and a chapter would run once in each)."""
    files = set(_tasks().NOTEBOOK_TESTS)
    marked = {f"tests/{p.name}" for p in (ROOT / "tests").glob("test_*.py") if p.name != Path(__file__).name
              and re.search(r"mark\.(chapters|browser)\b|from test_browser import|\bchapter_runs\b", p.read_text())}
    assert marked and marked <= files, sorted(marked - files)


@pytest.mark.parametrize("xdist, workers_env, workers", [(True, None, None), (False, None, 0),
                                                         (True, "3", 3), (True, "0", 0)])
def test_the_two_commands_split_the_suite(monkeypatch, xdist, workers_env, workers):
    tasks = _tasks()
    seen, kwargs = [], []
    fake = types.SimpleNamespace(STDOUT=subprocess.STDOUT,
                                 Popen=lambda cmd, **kw: seen.append(cmd) or types.SimpleNamespace(
                                     wait=lambda: 0, poll=lambda: 0),
                                 run=lambda cmd, **kw: seen.append(cmd) or kwargs.append(kw)
                                 or types.SimpleNamespace(returncode=0))
    monkeypatch.setattr(tasks, "subprocess", fake)
    monkeypatch.setattr(tasks, "has_xdist", lambda: xdist)
    if workers_env is None:
        monkeypatch.delenv("POSELAB_TEST_WORKERS", raising=False)
    else:
        monkeypatch.setenv("POSELAB_TEST_WORKERS", workers_env)
    assert tasks.test_side_by_side() == 0
    notebooks, unit = seen
    assert notebooks[-len(tasks.NOTEBOOK_TESTS):] == list(tasks.NOTEBOOK_TESTS)
    assert "tests" in unit and {f"--ignore={f}" for f in tasks.NOTEBOOK_TESTS} <= set(unit)
    assert f"--durations={tasks.SLOWEST}" in notebooks and f"--durations={tasks.SLOWEST}" in unit
    assert "-n" not in notebooks      # the chapters' chain shares its ledgers and run cache: one process
    if workers is None:               # the CPUs less one, 2 to 4
        workers = int(unit[unit.index("-n") + 1])
        assert 2 <= workers <= 4
    if workers:
        assert unit[unit.index("-n"):] == ["-n", str(workers), "--dist", "loadfile"]
    else:
        assert "-n" not in unit
    if os.name == "posix":            # the other half yields the CPU to the chain
        assert kwargs[0]["preexec_fn"] is tasks._nicer


def test_a_bad_worker_count_is_refused(monkeypatch):
    tasks = _tasks()
    monkeypatch.setenv("POSELAB_TEST_WORKERS", "two")
    with pytest.raises(SystemExit, match="POSELAB_TEST_WORKERS"):
        tasks.other_workers()


@pytest.mark.parametrize("codes, want", [((0, 0), 0), ((1, 0), 1), ((0, 2), 1), ((5, 0), 1)])
def test_exit_code_is_zero_only_when_both_halves_pass(monkeypatch, tmp_path, capfd, codes, want):
    tasks = _tasks()
    scripts = []
    for code in codes:   # stand-ins for the two pytest processes, exiting with the given code
        script = tmp_path / f"exit{len(scripts)}.py"
        script.write_text(f"import sys; print('half {len(scripts)}'); sys.exit({code})\n")
        scripts.append(script)
    calls = iter(scripts)
    fake = types.SimpleNamespace(
        STDOUT=subprocess.STDOUT,
        Popen=lambda cmd, **kw: subprocess.Popen([sys.executable, str(next(calls))], **kw),
        run=lambda cmd, **kw: subprocess.run([sys.executable, str(next(calls))], **kw))
    monkeypatch.setattr(tasks, "subprocess", fake)
    monkeypatch.setattr(tasks, "has_xdist", lambda: False)
    assert tasks.test_side_by_side() == want
    out = capfd.readouterr().out
    assert "half 0" in out and "half 1" in out          # the buffered half is printed too


def test_each_half_reports_its_own_time(monkeypatch, tmp_path, capfd):
    """The notebook half ends first here (at once; the unit half sleeps 3 s): its time is taken
    when it ends, not when the unit half has ended too."""
    tasks = _tasks()
    quick, slow = tmp_path / "quick.py", tmp_path / "slow.py"
    quick.write_text("print('notebooks')\n")
    slow.write_text("import time; time.sleep(3); print('units')\n")
    fake = types.SimpleNamespace(
        STDOUT=subprocess.STDOUT,
        Popen=lambda cmd, **kw: subprocess.Popen([sys.executable, str(quick)], **kw),
        run=lambda cmd, **kw: subprocess.run([sys.executable, str(slow)], **kw))
    monkeypatch.setattr(tasks, "subprocess", fake)
    monkeypatch.setattr(tasks, "has_xdist", lambda: False)
    assert tasks.test_side_by_side() == 0
    line = capfd.readouterr().out.strip().splitlines()[-1]
    unit_s, nb_s = (float(x) for x in re.findall(r"in (\d+) s", line))
    assert unit_s >= 3 and nb_s < unit_s, line


def test_venv_has_asks_the_venvs_python():
    tasks = _tasks()
    assert tasks.venv_has("json") and not tasks.venv_has("no_such_module_poselab_xyz")
