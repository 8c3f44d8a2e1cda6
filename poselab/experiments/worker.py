"""A training worker: ``python -m poselab.experiments.worker SPEC`` trains one run (or finds it
cached) in a fresh interpreter and writes its cache folder's path beside the spec
(:func:`poselab.experiments.parallel.train_many` starts these and reads the progress files)."""
from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

import torch

from poselab.train.callbacks import Callback

from . import builtin, zoo  # noqa: F401  (register the built-in and zoo recipes in this fresh process)
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


def main(spec_path: str) -> None:
    """Worker entry point: train one run (or find it cached) and write its cache folder."""
    spec = json.loads(Path(spec_path).read_text())
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
