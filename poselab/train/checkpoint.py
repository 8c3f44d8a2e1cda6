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
#: the history lists fit extends by one entry at every optimiser step
PER_STEP = ("losses", "step_times", "data_times", "lrs", "epochs", "batch_sizes")
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
    _check_fields(ckpt, path)
    return ckpt


def _bad(path, what: str) -> ValueError:
    return ValueError(f"{path} is a damaged or hand-edited poselab checkpoint: {what}; resume from "
                      "another checkpoint or start a new run without resume_from")


def _check_fields(ckpt: dict, path) -> None:
    """Types and ranges of the entries :func:`poselab.train.fit` reads back (crafted files get a
    ValueError naming the entry instead of a raw error deep inside torch)."""
    for key in ("step", "epoch", "batch_in_epoch"):
        value = ckpt[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _bad(path, f"{key!r} must be an int >= 0, got {value!r:.60}")
    for key in ("model", "optimizer", "history", "settings"):
        if not isinstance(ckpt[key], dict):
            raise _bad(path, f"{key!r} must be a dict, got {type(ckpt[key]).__name__}")
    bad_state = [k for k, v in ckpt["model"].items() if not isinstance(v, torch.Tensor)]
    if bad_state:
        raise _bad(path, f"model entries {bad_state[:3]} are not tensors")
    rng = ckpt["rng"]
    expected = torch.get_rng_state()
    if (not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8
            or rng.shape != expected.shape):
        shape = tuple(rng.shape) if isinstance(rng, torch.Tensor) else type(rng).__name__
        raise _bad(path, f"'rng' must be a uint8 tensor of shape {tuple(expected.shape)} "
                         f"(torch.get_rng_state()), got {shape}")
    history, step = ckpt["history"], ckpt["step"]
    for key in PER_STEP:
        values = history.get(key, [])
        if not isinstance(values, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise _bad(path, f"history[{key!r}] must be a list of numbers")
    # fit appends one entry per optimiser step to each list: a history of another length would be
    # silently carried on (or reset) while the position says otherwise
    lengths = {key: len(history.get(key, [])) for key in PER_STEP}
    if any(n != step for n in lengths.values()):
        raise _bad(path, f"its history holds {lengths} entries, but it stopped at step {step} "
                         "(one entry per step)")
    terms, val = history.get("terms", {}), history.get("val", [])
    if not isinstance(terms, dict) or not all(
            isinstance(v, list) and all(isinstance(x, (int, float)) for x in v) for v in terms.values()):
        raise _bad(path, "history['terms'] must map names to lists of numbers")
    if not isinstance(val, list) or not all(
            isinstance(r, dict) and isinstance(r.get("step"), (int, float)) for r in val):
        raise _bad(path, "history['val'] must be a list of {'epoch', 'step', metric: value} dicts")
    if any(len(v) > step for v in terms.values()):
        raise _bad(path, f"history['terms'] holds more values than the {step} steps it stopped at")
    val_steps = [r["step"] for r in val]
    if any(not 0 <= s <= step for s in val_steps) or val_steps != sorted(val_steps):
        raise _bad(path, f"history['val'] steps {val_steps[:8]} are not increasing within 0..{step}")
    settings = ckpt["settings"]
    for key, minimum in (("seed", None), ("batch_size", 1), ("warmup_steps", 0), ("total_steps", 0)):
        value = settings.get(key, minimum or 0)
        if isinstance(value, bool) or not isinstance(value, int) or (
                minimum is not None and value < minimum):
            floor = "" if minimum is None else f" >= {minimum}"
            raise _bad(path, f"settings[{key!r}] must be an int{floor}, got {value!r:.60}")
    if settings.get("schedule", "constant") not in ("constant", "cosine"):
        raise _bad(path, f"settings['schedule'] must be 'constant' or 'cosine', got "
                         f"{settings.get('schedule')!r:.60}")


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
