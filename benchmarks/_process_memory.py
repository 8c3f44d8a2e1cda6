"""Memory of a whole process tree (a ``poselab run`` process, its papermill kernel and the
kernel's training workers), sampled while it runs. Not a benchmark itself (the runner skips ``_*``);
``benchmarks/chapter_memory.py`` uses it and ``tests/test_bench_memory.py`` tests it.

The tree is the root process and every descendant alive at a sample. Each sample sums, over the
tree, the resident set (RSS: shared library pages counted once per process, so an over-count)
and the proportional set (PSS: a page shared by n processes counts 1/n, so the tree's sum counts
it once — closer to what a container's memory limit charges). The peak is the largest **sum at
one instant**, never a sum of per-process peaks that did not coincide. Sampling misses a spike
shorter than the interval; the sampled peak is a lower bound.

psutil is used when installed (process tree, RSS); PSS is read from ``/proc/<pid>/smaps_rollup``
(Linux ≥ 4.14) when it exists, else it is unknown (``None``). Without psutil the tree and RSS come
from ``/proc`` directly, so this works on Linux without extra packages.
"""
from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

try:  # optional: a benchmark helper, not a runtime dependency of poselab
    import psutil
except ImportError:  # pragma: no cover - exercised where psutil is absent
    psutil = None

MIB = 1024 * 1024
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _children_from_proc() -> dict[int, list[int]]:
    """``{parent pid: [child pids]}`` of every process in ``/proc``."""
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        # the command name (field 2) may hold spaces and parentheses: split after the last ')'
        fields = stat[stat.rindex(")") + 2:].split()
        kids.setdefault(int(fields[1]), []).append(int(entry.name))
    return kids


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants alive now (``root`` first; empty if ``root`` has ended)."""
    if psutil is not None:
        try:
            proc = psutil.Process(root)
            return [root, *(p.pid for p in proc.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []
    if not Path("/proc", str(root)).exists():
        return []
    kids, out, todo = _children_from_proc(), [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def _rss(pid: int) -> int | None:
    if psutil is not None:
        try:
            return psutil.Process(pid).memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
    try:
        return int(Path("/proc", str(pid), "statm").read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


def _pss(pid: int) -> int | None:
    try:
        text = Path("/proc", str(pid), "smaps_rollup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return None


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie — ended, not yet reaped — holds no memory)."""
    try:
        stat = Path("/proc", str(pid), "stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] not in ("Z", "X")


def tree_memory(root: int) -> dict:
    """One sample: ``{"rss": bytes, "pss": bytes or None, "processes": n}`` summed over the tree of
    ``root``. A process that ends while it is read (or is a zombie) is left out; PSS is ``None``
    only when a live process's PSS cannot be read (no smaps_rollup, or no permission)."""
    rss, pss, n = 0, 0, 0
    for pid in tree_pids(root):
        r, p = _rss(pid), _pss(pid)
        if r is None or p is None and Path("/proc").is_dir() and not _alive(pid):
            continue  # ended between listing and reading
        rss += r
        pss = None if pss is None or p is None else pss + p
        n += 1
    return {"rss": rss, "pss": pss, "processes": n}


@dataclass
class TreePeak:
    """The largest tree-wide sums seen (bytes) and how they were sampled."""
    rss: int = 0
    pss: int | None = None   # the largest over the samples whose PSS could be read
    pss_missed: int = 0      # samples whose PSS could not be read (reported beside the peak)
    processes: int = 0       # most processes alive in one sample
    samples: int = 0
    interval_s: float = 0.0
    trace: list = field(default_factory=list)  # (seconds since start, rss, pss) per sample

    @property
    def rss_mib(self) -> float:
        return self.rss / MIB

    @property
    def pss_mib(self) -> float | None:
        return None if self.pss is None else self.pss / MIB

    def add(self, t: float, sample: dict) -> None:
        self.samples += 1
        self.rss = max(self.rss, sample["rss"])
        if sample["pss"] is None:
            self.pss_missed += 1  # e.g. a process leaving while read: counted and shown, never hidden
        else:
            self.pss = max(self.pss or 0, sample["pss"])
        self.processes = max(self.processes, sample["processes"])
        self.trace.append((round(t, 3), sample["rss"], sample["pss"]))


class TreeSampler:
    """Samples the memory of ``root``'s process tree every ``interval`` seconds in a thread.

        with TreeSampler(proc.pid) as sampler:
            proc.wait()
        sampler.peak.rss_mib
    """

    def __init__(self, root: int, interval: float = 0.2):
        if not (isinstance(interval, (int, float)) and 0 < interval <= 60):
            raise ValueError(f"interval must be seconds in (0, 60], got {interval!r}")
        self.root, self.interval = int(root), float(interval)
        self.peak = TreePeak(interval_s=self.interval)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        t0 = time.perf_counter()
        while True:
            sample = tree_memory(self.root)
            if sample["processes"]:
                self.peak.add(time.perf_counter() - t0, sample)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> "TreeSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_sampled(command: Sequence[str], interval: float = 0.2, **popen) -> tuple[int, TreePeak, str]:
    """Run ``command`` to the end while sampling its tree; ``(return code, peak, stderr tail)``."""
    proc = subprocess.Popen(list(command), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, **popen)
    with TreeSampler(proc.pid, interval) as sampler:
        _, err = proc.communicate()
    return proc.returncode, sampler.peak, "\n".join((err or "").strip().splitlines()[-5:])
