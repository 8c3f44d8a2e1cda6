"""``python3 tasks.py test`` runs the suite as two pytest processes side by side: their ``-m``
expressions must split it, every test in exactly one half, whatever markers it carries."""
from __future__ import annotations

import importlib.util
import itertools
import subprocess
import sys
import types
from pathlib import Path

import pytest
from _pytest.mark.expression import Expression

ROOT = Path(__file__).resolve().parent.parent


def _tasks():
    spec = importlib.util.spec_from_file_location("poselab_tasks", ROOT / "tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _markers() -> list[str]:
    import tomllib
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    return [m.split(":")[0].strip() for m in conf["markers"]]


def test_the_two_halves_split_the_suite_for_every_set_of_markers():
    groups = _tasks().TEST_GROUPS
    assert len(groups) == 2
    names = _markers()
    assert {"chapters", "browser", "notebooks"} <= set(names)
    exprs = [Expression.compile(expr) for _, expr in groups]
    for k in range(len(names) + 1):
        for marks in itertools.combinations(names, k):
            hits = [e.evaluate(lambda name, **kw: name in marks) for e in exprs]
            assert sum(hits) == 1, f"markers {marks}: in {sum(hits)} halves"


def test_the_notebook_tests_are_in_the_notebook_half():
    exprs = dict(_tasks().TEST_GROUPS)
    notebook = Expression.compile(exprs["notebooks"])
    for marks in (("chapters",), ("browser",), ("notebooks",), ("browser", "slow")):
        assert notebook.evaluate(lambda name, **kw: name in marks)
    assert not notebook.evaluate(lambda name, **kw: name in ("slow",))


@pytest.mark.parametrize("codes, want", [((0, 0), 0), ((0, 5), 0), ((1, 0), 1), ((0, 2), 1)])
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
    assert tasks.test_side_by_side() == want
    out = capfd.readouterr().out
    assert "half 0" in out and "half 1" in out          # the buffered half is printed too
