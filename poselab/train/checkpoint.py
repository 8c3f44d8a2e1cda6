"""Checkpoint files of :func:`poselab.train.fit`: save, and load with ``weights_only=True``.

A checkpoint is a dict with the marker key ``"poselab_checkpoint"`` (format version), the model
and optimiser state dicts, the loop position (``step``, ``epoch``, ``batch_in_epoch``), the
:class:`History` as plain lists, the torch RNG state and the loop settings that shape the run
(seed, batch size, schedule). Everything is a tensor or a plain Python value, so it loads with
``torch.load(path, weights_only=True)`` (no arbitrary code is unpickled).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 1
MARKER = "poselab_checkpoint"
REQUIRED = ("model", "optimizer", "step", "epoch", "batch_in_epoch", "history", "rng", "settings")


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (see module docstring) atomically to ``path``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({MARKER: FORMAT_VERSION, **payload}, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``torch.load(weights_only=True)``).

    Raises FileNotFoundError (naming the path) if it does not exist, ValueError if the file is
    not a poselab checkpoint (unreadable, foreign format or missing entries).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path} (nothing to resume from; run fit "
                                f"without resume_from, or check the path)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path} is not a poselab checkpoint readable with "
                         f"torch.load(weights_only=True): {type(exc).__name__}: {exc}"[:600]) from exc
    if not isinstance(ckpt, dict) or MARKER not in ckpt:
        keys = sorted(map(str, ckpt))[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{path} is not a poselab training checkpoint (no {MARKER!r} entry; "
                         f"found {keys}). A bare state_dict can be loaded with "
                         f"model.load_state_dict(torch.load(path, weights_only=True)).")
    if ckpt[MARKER] != FORMAT_VERSION:
        raise ValueError(f"{path} has checkpoint format {ckpt[MARKER]!r}; this poselab reads "
                         f"format {FORMAT_VERSION}")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise ValueError(f"{path} is an incomplete poselab checkpoint (missing {missing})")
    return ckpt


def load_model_state(model: torch.nn.Module, state: dict, path: str | os.PathLike = "checkpoint") -> None:
    """``model.load_state_dict(state)`` with a ValueError that names the mismatch."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
             if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        raise ValueError(f"checkpoint {path} does not fit this model (was it trained with another "
                         f"head / backbone / input_size?): missing keys {missing[:5]}, unexpected "
                         f"keys {unexpected[:5]}, shape mismatches {wrong[:5]}")
    model.load_state_dict(state)
