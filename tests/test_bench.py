"""poselab bench: the runner reports every script (failures too) and each new benchmark runs --quick."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from poselab import bench

ROOT = Path(__file__).resolve().parent.parent


def test_runner_reports_ok_and_failed_scripts(tmp_path):
    (tmp_path / "good.py").write_text(
        "import argparse\np = argparse.ArgumentParser()\np.add_argument('--quick', action='store_true')\n"
        "a = p.parse_args()\nprint('| x | y |\\n| --- | --- |\\n| quick | %s |' % a.quick)\n")
    (tmp_path / "bad.py").write_text("print('partial table')\nraise SystemExit('boom: broken benchmark')\n")
    out = tmp_path / "results.md"
    code = bench.run_suite(tmp_path, out, quick=True, echo=False)
    assert code == 1
    text = out.read_text()
    assert "## good" in text and "| quick | True |" in text  # --quick passed, table captured
    assert "## bad" in text and "FAILED" in text and "boom: broken benchmark" in text
    assert "| good | ok |" in text and "| bad | FAILED |" in text
    assert "commit:" in text and "CPUs" in text and "torch" in text


def test_runner_all_ok_exits_zero_and_quick_flag_only_where_supported(tmp_path):
    (tmp_path / "plain.py").write_text("import sys\nprint('args', sys.argv[1:])\n")
    out = tmp_path / "r.md"
    assert bench.run_suite(tmp_path, out, quick=True, echo=False) == 0
    assert "args []" in out.read_text()  # no --quick for a script that does not define it


def test_runner_timeout_is_a_failure(tmp_path):
    (tmp_path / "slow.py").write_text("import time\ntime.sleep(30)\n")
    out = tmp_path / "r.md"
    assert bench.run_suite(tmp_path, out, timeout=1, echo=False) == 1
    assert "timed out" in out.read_text()


def test_runner_bad_folder_and_names(tmp_path):
    with pytest.raises(ValueError, match="folder"):
        bench.run_suite(tmp_path / "missing", echo=False)
    (tmp_path / "a.py").write_text("")
    with pytest.raises(ValueError, match="only"):
        bench.run_suite(tmp_path, only=["nope"], echo=False)


def _run_quick(name: str, budget_cpu: float = 20.0) -> str:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    start = os.times()
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), "--quick"],
                          capture_output=True, text=True, env=env, timeout=300)
    end = os.times()
    cpu = (end.children_user - start.children_user) + (end.children_system - start.children_system)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert cpu <= budget_cpu, f"{name} --quick took {cpu:.1f} s CPU"
    return proc.stdout
