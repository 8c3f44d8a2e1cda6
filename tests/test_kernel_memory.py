"""poselab.viz.kernel: a chapter's kernel gives freed memory back to the system after each cell."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from poselab import claims
from poselab.viz import kernel

GLIBC = kernel._malloc_trim() is not None

# Freed heap memory that glibc keeps: one big block freed (glibc then raises its mmap threshold),
# 300 blocks of 1 MiB on the heap, all freed but the last (which pins the heap's top). Prints the
# resident MiB after the frees, then after release_memory() (or after nothing).
_PROBE = r"""
import ctypes, sys
from poselab.viz import kernel
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2 ** 20
libc.free(libc.malloc(4 << 20))
blocks = [libc.malloc(1 << 20) for _ in range(300)]
for b in blocks:
    ctypes.memset(b, 1, 1 << 20)
for b in blocks[:-1]:
    libc.free(b)
before = rss()
if sys.argv[1] == "release":
    assert kernel.release_memory()
print(before, rss())
"""


@pytest.mark.skipif(not (GLIBC and sys.platform.startswith("linux")), reason="glibc's malloc_trim only")
def test_release_memory_gives_freed_heap_back_and_doing_nothing_does_not():
    def probe(mode):
        out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True,
                             env=dict(os.environ, MALLOC_ARENA_MAX="1"))
        return [float(x) for x in out.stdout.split()]
    before, after = probe("release")
    assert before - after > 200, (before, after)          # ~299 MiB of freed blocks returned
    kept_before, kept_after = probe("nothing")            # counter-case: without it glibc keeps them
    assert kept_before - kept_after < 50, (kept_before, kept_after)


class _Events:
    def __init__(self):
        self.callbacks = {"post_run_cell": []}

    def register(self, name, fn):
        self.callbacks[name].append(fn)


class _Shell:
    def __init__(self):
        self.events = _Events()


def test_the_hook_is_registered_once_per_shell_and_never_outside_ipython():
    shell = _Shell()
    assert kernel.release_memory_after_each_cell(shell) is True
    assert kernel.release_memory_after_each_cell(shell) is True
    assert shell.events.callbacks["post_run_cell"] == [kernel._after_cell]
    shell.events.callbacks["post_run_cell"][0](None)      # runs like IPython calls it (with a result)
    assert kernel.release_memory_after_each_cell(object()) is False   # no events: not IPython
    assert kernel.release_memory_after_each_cell() is False          # pytest is no IPython kernel


def test_claims_start_registers_the_hook_in_a_kernel(monkeypatch):
    shell = _Shell()
    import IPython
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    claims.start("00_test_chapter")
    assert kernel._after_cell in shell.events.callbacks["post_run_cell"]
