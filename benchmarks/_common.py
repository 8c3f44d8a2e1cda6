"""Shared timing helpers of the benchmark scripts (not a benchmark itself: the runner skips ``_*``)."""
from __future__ import annotations

import statistics
import time
from typing import Callable


def measure(fn: Callable[[], object], repeats: int, warmup: int = 1) -> dict:
    """Median CPU (``process_time``) and wall seconds of ``fn()`` over ``repeats`` after ``warmup``."""
    for _ in range(warmup):
        fn()
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return {"cpu": statistics.median(cpu), "wall": statistics.median(wall),
            "cpu_min": min(cpu), "wall_min": min(wall)}


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, dict]:
    """Like :func:`measure` for several functions, run round-robin so machine load hits them alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    cpu = {k: [] for k in fns}
    wall = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            c0, w0 = time.process_time(), time.perf_counter()
            fn()
            cpu[k].append(time.process_time() - c0)
            wall[k].append(time.perf_counter() - w0)
    return {k: {"cpu": statistics.median(cpu[k]), "wall": statistics.median(wall[k]),
                "cpu_min": min(cpu[k]), "wall_min": min(wall[k])} for k in fns}


def ms(seconds: float) -> str:
    return f"{1000 * seconds:.2f}"
