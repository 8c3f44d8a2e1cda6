"""A training worker: ``python -m poselab.experiments.worker SPEC`` trains one run (or finds it
cached) in a fresh interpreter and writes its cache folder's path beside the spec
(:func:`poselab.experiments.parallel.train_many` starts these and reads the progress files)."""
from __future__ import annotations

import _thread
import importlib
import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import torch

from poselab.train.callbacks import Callback

from . import builtin  # noqa: F401  (built-in recipes; the chapters' registered when poselab.experiments loaded)
from .presets import Preset
from .registry import Recipe
from .runner import run_recipe

__all__ = ["main"]


class _ProgressFile(Callback):
    """Worker-side callback: writes ``"step total"`` to a file about 50 times per run (it only
    reads the training state, so the run is the same with or without it)."""

    def __init__(self, path):
        self.path, self.every = path, 1

    def on_fit_start(self, state) -> None:
        self.every = max(1, int(state.total_steps) // 50)
        self._write(state)

    def on_step_end(self, state) -> None:
        if state.step % self.every == 0:
            self._write(state)

    def on_fit_end(self, state) -> None:
        self._write(state)

    def _write(self, state) -> None:
        tmp = self.path.with_suffix(".progress-tmp")
        tmp.write_text(f"{int(state.step)} {int(state.total_steps)}")
        os.replace(tmp, self.path)


ORPHAN_GRACE_S = 20.0  # after the interrupt, how long a worker may take to clean up


def _watch_parent(parent_pid: int, jobs_folder: Path, poll_s: float = 0.5) -> None:
    """Stop this worker when the process that started it is gone (killed with ``kill -9`` it can
    stop no one): a real SIGINT to itself (it also ends a blocking system call) raises
    KeyboardInterrupt in the main thread, so the run's own clean-up runs (no half-written cache
    entry); if that takes longer than ``ORPHAN_GRACE_S``, the watcher removes the jobs folder and
    exits hard."""
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except (OSError, ValueError):
            _thread.interrupt_main()
        time.sleep(ORPHAN_GRACE_S)
        shutil.rmtree(jobs_folder, ignore_errors=True)
        os._exit(3)
    threading.Thread(target=watch, name="poselab-parent-watch", daemon=True).start()


def main(spec_path: str) -> None:
    """Worker entry point: train one run (or find it cached) and write its cache folder."""
    spec = json.loads(Path(spec_path).read_text())
    parent = spec.get("parent_pid")
    parent = parent if isinstance(parent, int) and not isinstance(parent, bool) else None
    if parent is not None:  # interruptible even when started with SIGINT ignored (nohup, `cmd &`)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if parent is not None:
            _watch_parent(parent, Path(spec_path).parent)  # (may interrupt at once: the caller died meanwhile)
        _train(spec, spec_path)
    except KeyboardInterrupt:
        if parent is not None and os.getppid() != parent:  # orphaned: remove the jobs folder
            shutil.rmtree(Path(spec_path).parent, ignore_errors=True)
            os._exit(3)
        raise


def _train(spec: dict, spec_path: str) -> None:
    torch.set_num_threads(int(spec["threads"]))
    for module in spec["modules"]:  # and whatever else defines this recipe's parts
        importlib.import_module(module)
    result = run_recipe(Recipe(**spec["recipe"]), data=spec["data"], preset=Preset(**spec["preset"]),
                        seed=int(spec["seed"]), device=spec["device"], cache=bool(spec["cache"]),
                        threads=int(spec["threads"]),
                        callbacks=[_ProgressFile(Path(spec_path).with_suffix(".progress"))])
    Path(spec_path).with_suffix(".out").write_text(str(result.folder))


if __name__ == "__main__":
    main(sys.argv[1])
