"""The process-tree memory sampler behind benchmarks/chapter_memory.py (issue 31: a chapter's peak
over the kernel and its workers, against Binder's budget).

A spawned child allocates a known amount and starts a grandchild that allocates another: the tree's
sampled peak must hold both (sampling the root alone would miss the grandchild — the counter-case),
and the /proc fallback (no psutil) must agree with psutil."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import _process_memory as memory  # noqa: E402  (benchmarks/_process_memory.py)

CHILD_MIB, GRANDCHILD_MIB = 120, 80
# each process fills its bytes (so the pages are resident, not lazily mapped zeros), says "ready"
# and waits for stdin to close; the child starts the grandchild first and waits for it to be ready
_GRANDCHILD = (f"import sys; block = b'\\x01' * ({GRANDCHILD_MIB} * 1024 * 1024); "
               "print('ready', flush=True); sys.stdin.read()")
_CHILD = f"""
import subprocess, sys
kid = subprocess.Popen([sys.executable, "-c", {_GRANDCHILD!r}], stdin=subprocess.PIPE,
                       stdout=subprocess.PIPE, text=True)
assert kid.stdout.readline().strip() == "ready"
block = b"\\x02" * ({CHILD_MIB} * 1024 * 1024)
print("ready", flush=True)
sys.stdin.read()
kid.stdin.close()
kid.wait()
"""


def _python_baseline_mib() -> float:
    """RSS of an idle interpreter (what each process holds besides its block)."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; print('ready', flush=True); sys.stdin.read()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        proc.stdout.readline()
        return memory.tree_memory(proc.pid)["rss"] / memory.MIB
    finally:
        proc.stdin.close()
        proc.wait()


@pytest.fixture
def allocating_tree():
    proc = subprocess.Popen([sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)


def test_tree_peak_holds_child_and_grandchild(allocating_tree):
    base = _python_baseline_mib()
    with memory.TreeSampler(allocating_tree.pid, interval=0.05) as sampler:
        time.sleep(0.4)
    peak = sampler.peak
    assert peak.samples >= 2 and peak.processes == 2
    want = CHILD_MIB + GRANDCHILD_MIB
    assert want + base <= peak.rss_mib <= want + 2 * base + 20, (peak.rss_mib, base)
    if peak.pss_mib is not None:  # Linux with smaps_rollup
        assert want * 0.95 <= peak.pss_mib <= peak.rss_mib + 1
    # the counter-case: the root alone misses the grandchild's block
    root_only = memory._rss(allocating_tree.pid) / memory.MIB
    assert root_only < CHILD_MIB + base + 20 < peak.rss_mib


def test_proc_fallback_agrees_with_psutil(allocating_tree, monkeypatch):
    if memory.psutil is None:
        pytest.skip("psutil not installed: only the /proc path exists here")
    with_psutil = memory.tree_memory(allocating_tree.pid)
    pids = memory.tree_pids(allocating_tree.pid)
    monkeypatch.setattr(memory, "psutil", None)
    without = memory.tree_memory(allocating_tree.pid)
    assert sorted(memory.tree_pids(allocating_tree.pid)) == sorted(pids) and len(pids) == 2
    assert abs(with_psutil["rss"] - without["rss"]) / memory.MIB < 5


def test_peak_is_the_largest_sum_at_one_instant_not_a_sum_of_peaks():
    peak = memory.TreePeak()
    peak.add(0.0, {"rss": 100 * memory.MIB, "pss": 90 * memory.MIB, "processes": 2})
    peak.add(0.1, {"rss": 150 * memory.MIB, "pss": 60 * memory.MIB, "processes": 1})
    assert peak.rss_mib == 150 and peak.pss_mib == 90 and peak.processes == 2
    peak.add(0.2, {"rss": 10, "pss": None, "processes": 1})
    # one unreadable sample (a process leaving while read) no longer voids the whole run's peak:
    # the peak is over the readable samples, and the unreadable ones are counted for the report
    assert peak.pss_mib == 90 and peak.pss_missed == 1 and peak.samples == 3
    unread = memory.TreePeak()
    unread.add(0.0, {"rss": 10, "pss": None, "processes": 1})
    assert unread.pss is None and unread.pss_missed == 1  # never read at all: unknown, not 0


def test_run_sampled_reports_the_exit_code_and_an_ended_root():
    code, peak, _ = memory.run_sampled([sys.executable, "-c", "raise SystemExit(3)"], interval=0.05)
    assert code == 3 and peak.samples >= 0
    assert memory.tree_pids(2 ** 22 + 12345) == [] and memory.tree_memory(2 ** 22 + 12345)["processes"] == 0
    with pytest.raises(ValueError, match="interval"):
        memory.TreeSampler(1, interval=0)


def test_a_process_ending_while_it_is_read_is_left_out_not_an_unknown_pss(monkeypatch):
    """Chapter 04's first measurement lost its PSS: a short-lived process ended between the RSS
    and the PSS read and made the whole peak unknown."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; print('ready', flush=True); sys.stdin.read()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        proc.stdout.readline()
        if memory._pss(proc.pid) is None:
            pytest.skip("no /proc/<pid>/smaps_rollup here")
        real_pss = memory._pss
        monkeypatch.setattr(memory, "_pss", lambda pid: None if pid == 2 ** 22 + 7 else real_pss(pid))
        monkeypatch.setattr(memory, "tree_pids", lambda root: [root, 2 ** 22 + 7])
        monkeypatch.setattr(memory, "_rss", lambda pid: 10 * memory.MIB)
        sample = memory.tree_memory(proc.pid)
        assert sample["processes"] == 1 and sample["pss"] is not None and sample["rss"] == 10 * memory.MIB
        # a live process whose PSS cannot be read makes the PSS unknown
        monkeypatch.setattr(memory, "_pss", lambda pid: None)
        assert memory.tree_memory(proc.pid)["pss"] is None
    finally:
        proc.stdin.close()
        proc.wait()


def test_chapter_memory_quick_lists_every_chapter_and_the_budget():
    from poselab.labs import list_chapters
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "chapter_memory.py"), "--quick"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "budget 1.6 GB = 1526 MiB" in proc.stdout
    for path in list_chapters():
        assert path.stem in proc.stdout
