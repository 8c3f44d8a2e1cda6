"""Training several runs at once on a multi-core CPU: one worker process per run, one thread each.

A tiny model's convolutions use a second CPU core poorly: on the 2-core reference machine a
default-preset ``mse`` step takes 105 ms on one thread and 74 ms on two (1.4×), so two one-thread
runs side by side train 1.4× as many runs per minute as two-thread runs one after the other.
:func:`poselab.experiments.compare` (and the arena) use this when more than one run must train.

Workers are fresh interpreters (no forked OpenMP state, the caller's script is not re-run) that import
:mod:`poselab.experiments`, so a recipe can go to a worker only when every part it names (codec,
loss, model, score rule) is defined in an importable module; recipes built from parts registered
in a notebook or script train in the calling process instead.
"""
from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .presets import Preset
from .registry import CODECS, LOSSES, MODELS, SCORES, Recipe

__all__ = ["resolve_jobs", "part_modules", "portable", "train_many", "MIN_PARALLEL_SAMPLES",
           "memory_available_mb", "WORKER_MEMORY_MB", "BackgroundRuns", "train_in_background"]

# a worker's start-up (fresh interpreter, torch and poselab imports: ~3-5 s) only pays for runs
# that train at least this many samples (the fast preset's 40 steps × 16 do not)
MIN_PARALLEL_SAMPLES = 5000
#: peak resident memory of one default-preset worker (the default arena measured 850-965 MiB a
#: run); automatic job counts keep this much free per worker, plus as much again for the caller
#: (a notebook kernel holds the data and figures). On Binder (2 GB) that means no workers at all.
WORKER_MEMORY_MB = 1000.0


def _env_number(name: str, kind, what: str):
    """The environment variable ``name`` as a positive ``kind`` (int or float), None when unset;
    anything else raises ``ValueError`` naming the variable."""
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not value > 0 or (kind is int and value < 1):
        raise ValueError(f"{name} must be {what}, got {text!r}")
    return value


def _read_number(path: str) -> float | None:
    try:
        text = open(path).read().strip()
    except OSError:
        return None
    try:
        return float(text)
    except ValueError:
        return None  # "max": no limit


def memory_available_mb() -> float | None:
    """Memory this process tree may still use (MiB): the smallest of the cgroup's limit minus
    its usage (v2 ``memory.max``/``memory.current``, v1 ``limit_in_bytes``/``usage_in_bytes`` —
    what a container such as Binder enforces) and ``MemAvailable`` of ``/proc/meminfo``; None
    where none is readable. ``POSELAB_MEMORY_MB`` overrides it (tests, odd systems)."""
    value = _env_number("POSELAB_MEMORY_MB", float, "a number of MiB > 0")
    if value is not None:
        return value
    mib = 1024.0 ** 2
    found = []
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                          "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        lim, use = _read_number(limit), _read_number(usage)
        if lim is not None and use is not None and lim < 2 ** 60:
            found.append(max(0.0, lim - use) / mib)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(float(line.split()[1]) / 1024.0)
    except (OSError, ValueError, IndexError):
        pass
    return min(found) if found else None


def cpu_cores() -> int:
    """CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def resolve_jobs(jobs: int | str | None, n_runs: int, preset: Preset, device: torch.device,
                 callbacks=()) -> int:
    """How many runs train at once.

    ``jobs=None`` / ``"auto"``: the environment variable ``POSELAB_JOBS`` if set, else on a CPU
    ``min(cores, torch threads, runs to train, 4)`` for runs of at least
    :data:`MIN_PARALLEL_SAMPLES` samples, capped by memory (:func:`memory_available_mb` must
    hold :data:`WORKER_MEMORY_MB` per worker plus one share for the caller), else 1. On a GPU, or with callbacks (live plots, which
    need the calling process), 1. An int is taken as given on any device (>= 1; at most the runs
    to train; > 1 is refused with callbacks): ``--device cuda --jobs 4`` trains four worker
    processes side by side on one GPU.
    """
    if jobs is None or jobs == "auto":
        jobs = _env_number("POSELAB_JOBS", int, "an integer >= 1")
        if jobs is not None and callbacks:
            return 1  # a default from the environment, not a demand: live plots need this process
        if jobs is None:
            if device.type != "cpu" or callbacks or n_runs < 2:
                return 1
            samples = (preset.max_steps * preset.batch_size if preset.max_steps is not None
                       else float("inf"))
            if samples < MIN_PARALLEL_SAMPLES:
                return 1
            jobs = max(1, min(cpu_cores(), torch.get_num_threads(), n_runs, 4))
            free = memory_available_mb()
            if free is not None:  # each worker needs its own memory, and the caller keeps its own
                jobs = min(jobs, int(free // WORKER_MEMORY_MB) - 1)
            return jobs if jobs >= 2 else 1
    if isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise ValueError(f"jobs must be None, 'auto' or an int >= 1, got {jobs!r}")
    if jobs > 1 and callbacks:
        raise ValueError("callbacks (live plots, progress bars) run in the calling process: "
                         "pass jobs=1 with callbacks, or drop the callbacks to train in parallel")
    return max(1, min(int(jobs), n_runs))  # on a GPU too: N processes share it (replicate --jobs N)


def part_modules(recipe: Recipe) -> list[str] | None:
    """The modules defining every part ``recipe`` names (codec, loss, model, score rule), or None
    when one is not importable by a spawned worker (defined in ``__main__`` or a notebook, or
    outside the ``poselab`` package)."""
    modules = []
    for registry, name in ((CODECS, recipe.codec), (LOSSES, recipe.loss), (MODELS, recipe.model),
                           (SCORES, recipe.score)):
        module = getattr(registry.get(name), "__module__", None)
        if not module or not module.startswith("poselab."):
            return None
        try:
            importlib.import_module(module)
        except ImportError:
            return None
        modules.append(module)
    return sorted(set(modules))


def portable(recipe: Recipe) -> bool:
    """True when a spawned worker can rebuild ``recipe`` (see :func:`part_modules`)."""
    return part_modules(recipe) is not None


#: the jobs folders of :func:`train_many` are ``<tmp>/poselab-jobs-<pid>-*``
JOBS_PREFIX = "poselab-jobs-"


def remove_stale_job_folders(root: str | os.PathLike | None = None) -> list[str]:
    """Remove the jobs folders left by callers that no longer run (``kill -9`` skips their
    clean-up; their workers stop themselves); return the names removed."""

    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(f"{JOBS_PREFIX}*"):
        m = re.fullmatch(rf"{JOBS_PREFIX}(\d+)-\w+", folder.name)
        if not m or not folder.is_dir() or _alive(int(m.group(1))):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder.name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def train_many(specs: list[dict[str, Any]], jobs: int, on_done=None, status=None,
               status_every: float = 30.0) -> list[str]:
    """Train each spec in its own worker process, ``jobs`` at a time; returns the cache folders.

    A spec holds ``recipe`` (``Recipe.to_dict()``), ``modules`` (:func:`part_modules`), ``data``,
    ``preset`` (``Preset.to_dict()``), ``seed``, ``device``, ``cache`` and ``threads``. Workers
    are fresh interpreters (``python -m poselab.experiments.worker SPEC``): nothing of the
    calling process (its ``__main__``, forked OpenMP state) is re-run or copied.
    ``on_done(index, folder)`` is called as each run finishes; ``status(line)`` (e.g. ``print``)
    gets a one-line progress report of the running workers every ``status_every`` seconds. A
    failing worker stops the others and raises RuntimeError with the end of its error output.
    """

    def label(i: int) -> str:
        return f"{specs[i]['recipe']['name']} seed {specs[i]['seed']}"

    def progress(i: int, spec_path: Path) -> str:
        try:
            step, total = spec_path.with_suffix(".progress").read_text().split()
            return f"{label(i)} step {int(step)}/{int(total)}"
        except (OSError, ValueError):
            return f"{label(i)} starting"

    folders: list[str | None] = [None] * len(specs)
    t_start = last_status = time.perf_counter()
    pending = list(range(len(specs)))
    running: dict[int, tuple[subprocess.Popen, Path, Any]] = {}
    remove_stale_job_folders()
    with tempfile.TemporaryDirectory(prefix=f"{JOBS_PREFIX}{os.getpid()}-") as tmp:
        try:
            while pending or running:
                while pending and len(running) < jobs:
                    i = pending.pop(0)
                    spec_path = Path(tmp) / f"spec{i}.json"
                    spec_path.write_text(json.dumps({**specs[i], "parent_pid": os.getpid()}))
                    err = open(Path(tmp) / f"stderr{i}.txt", "w+")
                    env = dict(os.environ, OMP_NUM_THREADS=str(specs[i]["threads"]))
                    proc = subprocess.Popen([sys.executable, "-m", "poselab.experiments.worker",
                                             str(spec_path)], stdout=subprocess.DEVNULL,
                                            stderr=err, env=env)
                    running[i] = (proc, spec_path, err)
                finished = [i for i, (proc, _, _) in running.items() if proc.poll() is not None]
                if not finished:
                    now = time.perf_counter()
                    if status is not None and now - last_status >= status_every:
                        last_status = now
                        done = sum(f is not None for f in folders)
                        status(f"  [{now - t_start:5.0f} s] {done}/{len(specs)} done; "
                               + "; ".join(progress(i, p) for i, (_, p, _) in running.items()))
                    time.sleep(0.2)
                    continue
                for i in finished:
                    proc, spec_path, err = running.pop(i)
                    err.seek(0)
                    message = err.read()
                    err.close()
                    out = spec_path.with_suffix(".out")
                    if proc.returncode != 0 or not out.is_file():
                        spec = specs[i]
                        tail = message.strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
                        raise RuntimeError(f"{spec['recipe']['name']} seed {spec['seed']} failed in a "
                                           f"worker process: {tail[0]}\n--- worker output ---\n"
                                           f"{message[-3000:]}")
                    folders[i] = out.read_text().strip()
                    if on_done is not None:
                        on_done(i, folders[i])
        finally:
            for proc, _, err in running.values():
                proc.kill()
                proc.wait()
                err.close()
    return folders  # type: ignore[return-value]


class BackgroundRuns:
    """Runs training in worker processes (:func:`train_many`) while the caller goes on; a daemon
    thread waits for them. :meth:`join` waits and returns ``{(recipe name, seed): cache folder}``,
    re-raising a worker's failure in the caller."""

    def __init__(self, specs: list[dict[str, Any]], jobs: int):
        self.keys = [(spec["recipe"]["name"], int(spec["seed"])) for spec in specs]
        self._out: dict[str, Any] = {}

        def work():
            try:
                self._out["folders"] = train_many(specs, jobs)
            except BaseException as exc:  # re-raised by join()
                self._out["error"] = exc

        self._thread = threading.Thread(target=work, daemon=True)
        self._thread.start()

    def join(self) -> dict[tuple[str, int], str]:
        self._thread.join()
        if "error" in self._out:
            raise self._out["error"]
        return dict(zip(self.keys, self._out["folders"]))


def train_in_background(runs: Sequence[tuple[Recipe, int]], *, data: str, preset: Preset,
                        device: str = "cpu", cache: bool = True, jobs: int | None = None,
                        threads: int = 1) -> BackgroundRuns | None:
    """Start training ``runs`` (``(recipe, seed)`` pairs the caller knows are not cached) in
    ``threads``-thread worker processes, ``jobs`` at a time (default: :func:`resolve_jobs`, which
    weighs cores and memory), while the caller trains something else in its own process. None
    when nothing goes to a worker: no runs, a device other than the CPU, a recipe a worker cannot
    rebuild (:func:`part_modules`), or one job only (the caller then trains them itself)."""
    runs = list(runs)
    if not runs or torch.device(device if device != "auto" else "cpu").type != "cpu" \
            or (device == "auto" and torch.cuda.is_available()):
        return None
    modules = [part_modules(recipe) for recipe, _ in runs]
    if any(m is None for m in modules):
        return None
    if jobs is None or jobs == "auto":
        # the caller's own run counts: run it beside one worker or more only where the machine
        # (cores, memory, the preset's size) would train two runs at once
        jobs = resolve_jobs(jobs, len(runs) + 1, preset, torch.device("cpu"))
        if jobs < 2:
            return None
    jobs = resolve_jobs(int(jobs), len(runs), preset, torch.device("cpu"))
    specs = [dict(recipe=recipe.to_dict(), modules=m, data=str(data), preset=preset.to_dict(), seed=int(seed),
                  device="cpu", cache=cache, threads=int(threads)) for (recipe, seed), m in zip(runs, modules)]
    return BackgroundRuns(specs, jobs)
