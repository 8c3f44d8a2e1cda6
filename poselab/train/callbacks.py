"""Callbacks of :func:`poselab.train.fit`: progress bar, checkpoints, early stop.

A callback subclasses :class:`Callback` and overrides any of the hooks; each hook receives the
:class:`~poselab.train.loop.FitState` (``state.model``, ``state.optimizer``, ``state.history``,
``state.step``, ``state.epoch``, ``state.total_steps``, ...). Setting ``state.stop = True`` ends
training after the current step. The live plotly view lives in :mod:`poselab.viz.training`
(``LiveCurves``), since viz sits below train in the package layers.
"""
from __future__ import annotations

import os
from pathlib import Path

from tqdm.auto import tqdm

from .._numbers import whole_number


class Callback:
    """Base class: every hook is a no-op."""

    def on_fit_start(self, state) -> None: ...
    def on_step_end(self, state) -> None: ...
    def on_validation_end(self, state) -> None: ...
    def on_epoch_end(self, state) -> None: ...
    def on_fit_end(self, state) -> None: ...


class ProgressBar(Callback):
    """A ``tqdm.auto`` bar over optimiser steps showing the smoothed loss and the last val metric.

    Args:
        every: refresh the postfix every ``every`` steps (the bar itself is throttled by tqdm).
        window: smoothing window of the displayed loss.
    """

    def __init__(self, every: int = 5, window: int = 10, **tqdm_kwargs):
        self.every, self.window, self.kwargs = max(1, int(every)), int(window), tqdm_kwargs
        self.bar = None

    def on_fit_start(self, state) -> None:
        self.bar = tqdm(total=state.total_steps, initial=state.step, desc="train", unit="step",
                        **self.kwargs)

    def on_step_end(self, state) -> None:
        self.bar.update(1)
        if state.step % self.every == 0:
            post = {"loss": f"{state.history.final_loss(self.window):.4g}"}
            if state.history.val:
                last = {k: v for k, v in state.history.val[-1].items() if k not in ("epoch", "step")}
                post.update({k: f"{v:.4g}" for k, v in list(last.items())[:2]})
            self.bar.set_postfix(post, refresh=False)

    def on_fit_end(self, state) -> None:
        if self.bar is not None:
            self.bar.close()


class Checkpoint(Callback):
    """Save a resumable checkpoint to ``path`` (overwritten each time).

    Args:
        path: file to write (``torch.save``; read back with ``fit(..., resume_from=path)``).
        every_steps: also save every this many optimiser steps (None = only at epoch ends/end).
        every_epochs: save after every this many epochs (after validation); None = never.
        at_end: save when training ends.
    """

    def __init__(self, path: str | os.PathLike, every_steps: int | None = None,
                 every_epochs: int | None = 1, at_end: bool = True):
        for name, value in (("every_steps", every_steps), ("every_epochs", every_epochs)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ValueError(f"Checkpoint {name} must be a positive int or None, got {value!r}")
        self.path = Path(path)
        if self.path.is_dir():
            raise ValueError(f"Checkpoint path {self.path} is a folder; pass a file name such as "
                             f"{self.path / 'checkpoint.pt'}")
        self.every_steps = every_steps
        self.every_epochs = every_epochs
        self.at_end = at_end
        self.saved_at: list[int] = []

    def _save(self, state) -> None:
        if self.saved_at and self.saved_at[-1] == state.step and self.path.exists():
            return
        state.save_checkpoint(self.path)
        self.saved_at.append(state.step)

    def on_step_end(self, state) -> None:
        if self.every_steps and state.step % int(self.every_steps) == 0:
            self._save(state)

    def on_epoch_end(self, state) -> None:
        if self.every_epochs and (state.epoch + 1) % int(self.every_epochs) == 0:
            self._save(state)

    def on_fit_end(self, state) -> None:
        if self.at_end:
            self._save(state)


class StopAfter(Callback):
    """Stop training after ``steps`` optimiser steps in total (simulates an interruption)."""

    def __init__(self, steps: int):
        self.steps = whole_number(steps, "steps", 1)

    def on_step_end(self, state) -> None:
        if state.step >= self.steps:
            state.stop = True
