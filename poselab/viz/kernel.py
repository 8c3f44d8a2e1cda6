"""The notebook kernel's memory: freed memory given back to the system after every cell.

glibc's allocator keeps memory a process has freed: the crops, maps and activations of a training
run or an analysis are freed when a cell ends, yet the kernel's resident memory stays near the
cell's peak (chapter 01 at the ``default`` preset: 622 MiB after training three 12-step runs, 361
MiB once released; 1001 vs 408 MiB after its blind baseline). Binder charges resident memory
against its 2 GB, and the next cell's worker processes come on top, so a chapter's kernel gives
freed memory back after each cell: :func:`claims.start <poselab.claims.start>` (every chapter's
first call) registers :func:`release_memory` as an IPython ``post_run_cell`` hook. Nothing is
computed differently; where the C library is not glibc (macOS, Windows, musl) both are no-ops.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = ["release_memory", "release_memory_after_each_cell"]


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's ``malloc_trim``, or None where the C library has none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_memory() -> bool:
    """Give the C heap's free pages back to the operating system (glibc ``malloc_trim(0)``; a few
    milliseconds). True when the C library did so, False where it cannot (not glibc)."""
    trim = _malloc_trim()
    return bool(trim is not None and trim(0) in (0, 1))


def _after_cell(*_args) -> None:
    release_memory()


def release_memory_after_each_cell(shell=None) -> bool:
    """Register :func:`release_memory` to run after every cell of the IPython ``shell`` (the
    running one by default); once per shell. True when registered (or already), False outside
    IPython (a script, the CLI, a training worker)."""
    if shell is None:
        try:
            from IPython import get_ipython  # deferred: only a kernel has IPython loaded
        except ImportError:
            return False
        shell = get_ipython()
    if shell is None:
        return False
    events = getattr(shell, "events", None)
    if events is None or not hasattr(events, "register"):
        return False
    callbacks = getattr(events, "callbacks", {}).get("post_run_cell", [])
    if _after_cell not in callbacks:
        events.register("post_run_cell", _after_cell)
    return True
