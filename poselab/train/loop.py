"""The one training loop: :func:`fit` (AdamW + warm-up, gradient clipping, seeded, resumable)."""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data import default_collate

from .._numbers import whole_number
from ..data.dataset import epoch_batches
from ..codecs.base import attach_codec, codec_from_spec, model_codec
from .callbacks import Callback
from .checkpoint import load_checkpoint, load_model_state, save_checkpoint
from .device import resolve_device, transfer_plan
from .history import History

__all__ = ["fit", "FitState", "resolve_device", "to_device", "lr_factor"]


def to_device(batch: Any, device: torch.device | str) -> Any:
    """Move every tensor in a (nested) dict/list/tuple to ``device``; other values unchanged.

    For a CUDA target, host tensors are pinned and copied with ``non_blocking=True`` (the copy
    overlaps the previous step's kernels); elsewhere both are off
    (:func:`poselab.train.device.transfer_plan`)."""
    device = torch.device(device)
    return _moved(batch, device, transfer_plan(device))


def _moved(batch: Any, device: torch.device, plan: dict[str, bool]) -> Any:
    if isinstance(batch, torch.Tensor):
        if plan["pin_memory"] and batch.device.type == "cpu" and not batch.is_pinned():
            batch = batch.pin_memory()
        return batch.to(device, non_blocking=plan["non_blocking"])
    if isinstance(batch, dict):
        return {k: _moved(v, device, plan) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_moved(v, device, plan) for v in batch)
    return batch


def lr_factor(step: int, warmup_steps: int, schedule: str, total_steps: int) -> float:
    """Learning-rate multiplier at 0-based ``step``: linear warm-up from 1/warmup to 1 over
    ``warmup_steps``, then constant (``schedule="constant"``) or cosine decay to 0 at
    ``total_steps`` (``"cosine"``)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "cosine" and total_steps > warmup_steps:
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


@dataclass
class FitState:
    """Everything a callback can read (and ``stop`` it can set)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    history: History
    device: torch.device
    settings: dict[str, Any]
    total_steps: int
    steps_per_epoch: int
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    epoch_finished: bool = False
    stop: bool = False
    last_loss: float = float("nan")
    last_outputs: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def checkpoint_payload(self) -> dict[str, Any]:
        epoch, batch = (self.epoch + 1, 0) if self.epoch_finished else (self.epoch, self.batch_in_epoch)
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "model_config": dict(getattr(self.model, "config", {}) or {}),
                "step": int(self.step), "epoch": int(epoch), "batch_in_epoch": int(batch),
                "history": self.history.to_dict(), "rng": torch.get_rng_state(),
                "settings": dict(self.settings)}

    def save_checkpoint(self, path: str | os.PathLike):
        return save_checkpoint(path, self.checkpoint_payload())


#: the batch order of one epoch (one formula, shared with the crop cache)
_epoch_batches = epoch_batches


class _DatasetBatches:
    """Batches of a map-style dataset with a (seed, epoch)-determined order (exact resume)."""

    def __init__(self, dataset, batch_size: int, seed: int, shuffle: bool, drop_last: bool,
                 collate: Callable):
        self.dataset, self.batch_size, self.seed = dataset, int(batch_size), int(seed)
        self.shuffle, self.drop_last, self.collate = shuffle, drop_last, collate

    def __len__(self) -> int:
        return len(_epoch_batches(len(self.dataset), self.batch_size, 0, 0, False, self.drop_last))

    def epoch(self, epoch: int, skip: int) -> Iterable:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        for idx in _epoch_batches(len(self.dataset), self.batch_size, self.seed, epoch,
                                  self.shuffle, self.drop_last)[skip:]:
            yield self.collate([self.dataset[i] for i in idx])


def _is_batch_source(obj) -> bool:
    """A batch source: ``len(obj)`` batches per epoch and ``obj.epoch(epoch, skip)`` yielding the
    collated batches of ``epoch`` after the first ``skip`` (a pure function of (its seed, epoch),
    so resume is exact), e.g. :class:`poselab.data.crop_cache.CropCache`."""
    return (not isinstance(obj, (Dataset, DataLoader)) and callable(getattr(obj, "epoch", None))
            and hasattr(obj, "__len__"))


class _LoaderBatches:
    """Batches of a user DataLoader (resume skips already-seen batches by iterating them)."""

    def __init__(self, loader: DataLoader):
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def epoch(self, epoch: int, skip: int) -> Iterable:
        ds = getattr(self.loader, "dataset", None)
        if hasattr(ds, "set_epoch"):
            ds.set_epoch(epoch)
        for i, batch in enumerate(self.loader):
            if i >= skip:
                yield batch


def _batch_size_of(batch: Any) -> int:
    if isinstance(batch, dict):
        for key in ("image", "images", "input"):
            if isinstance(batch.get(key), torch.Tensor):
                return int(batch[key].shape[0])
        batch = next((v for v in batch.values() if isinstance(v, torch.Tensor)), None)
    if isinstance(batch, (list, tuple)) and batch:
        batch = batch[0]
    return int(batch.shape[0]) if isinstance(batch, torch.Tensor) and batch.dim() else 0


def _model_input(batch: Any) -> torch.Tensor:
    if isinstance(batch, dict):
        if "image" not in batch:
            raise ValueError(f"a batch dict needs an 'image' entry (B, 3, H, W); got keys {sorted(batch)}")
        return batch["image"]
    if isinstance(batch, (list, tuple)):
        return batch[0]
    return batch


def _split_loss(value: Any) -> tuple[torch.Tensor, dict[str, float]]:
    if isinstance(value, dict):
        if "loss" not in value:
            raise ValueError("a loss_fn returning a dict must include the total under 'loss'")
        terms = {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v)
                 for k, v in value.items() if k != "loss"}
        value = value["loss"]
    else:
        terms = {}
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        raise ValueError(f"loss_fn must return a scalar tensor (or a dict with 'loss'), got "
                         f"{type(value).__name__} {getattr(value, 'shape', '')}")
    return value.reshape(()), terms


def _scalar_metrics(metrics: Any) -> dict[str, float]:
    if not isinstance(metrics, dict):
        raise ValueError(f"val callable must return a dict of metrics, got {type(metrics).__name__}")
    out = {}
    for k, v in metrics.items():
        if isinstance(v, torch.Tensor) and v.numel() == 1:
            v = v.item()
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[str(k)] = float(v)
        elif hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
            out[str(k)] = float(v.item())
    return out


def _validate(model, loss_fn, val, batches_fn, device) -> dict[str, float]:
    was_training = model.training
    model.eval()
    try:
        if callable(val) and not isinstance(val, (Dataset, DataLoader)):
            return _scalar_metrics(val(model))
        total, n = 0.0, 0
        with torch.no_grad():
            for batch in batches_fn():
                batch = to_device(batch, device)
                bs = _batch_size_of(batch)
                loss, _ = _split_loss(loss_fn(model(_model_input(batch)), batch))
                total += float(loss) * bs
                n += bs
        return {"val_loss": total / max(n, 1)}
    finally:
        model.train(was_training)


def _finite(value, name: str, minimum: float) -> float:
    """``value`` as a finite float >= ``minimum`` (bools and strings refused)."""
    try:
        ok = not isinstance(value, (bool, str)) and math.isfinite(float(value))
    except (TypeError, ValueError):
        ok = False
    if not ok or float(value) < minimum:
        raise ValueError(f"{name} must be a finite number >= {minimum:g}, got {value!r}")
    return float(value)


def _check_gradients(model: torch.nn.Module, grad_clip: float | None, step: int, epoch: int,
                     loss: float, lr_now: float, overflow_ok: bool = False) -> float:
    """Clip to ``grad_clip`` and raise before the optimiser step if a gradient is NaN/Inf;
    returns the global gradient norm before clipping (NaN when no parameter has a gradient; the
    non-finite norm itself when ``overflow_ok``, a float16 overflow the grad scaler skips).

    A finite loss can still have a NaN gradient (e.g. ``sqrt`` at 0, ``log`` of 0 behind a
    mask); stepping would write NaN weights (and a Checkpoint callback would save them over the
    last good file), and the next step would blame the targets.

    ``overflow_ok`` (float16 with a gradient scaler, whose scale is still >= 1): a non-finite
    gradient is the scaler's overflow, which skips the step and lowers the scale; returns False
    instead of raising. Returns True when the gradients are finite.
    """
    params = [p for p in model.parameters() if p.grad is not None]
    if not params:
        return float("nan")
    norm = torch.nn.utils.get_total_norm([p.grad for p in params])
    if not torch.isfinite(norm):
        if overflow_ok:
            return float(norm)
        bad = next(name for name, p in model.named_parameters()
                   if p.grad is not None and not bool(torch.isfinite(p.grad).all()))
        raise FloatingPointError(
            f"the gradient is {float(norm)} at step {step} (epoch {epoch}) although the loss is "
            f"finite ({loss:.6g}); first non-finite gradient: {bad}. The weights were not updated "
            f"(checkpoints keep the last good state). Check the loss for operations whose "
            f"derivative is infinite (sqrt or pow at 0, log of 0, division by a tiny norm), or "
            f"lower lr (now {lr_now:g})")
    if grad_clip is not None:
        torch.nn.utils.clip_grads_with_norm_(params, float(grad_clip), norm)
    return float(norm)


def fit(model: torch.nn.Module, loss_fn: Callable[[Any, dict], Any], train, val=None, *,
        epochs: int | None = None, max_steps: int | None = None, batch_size: int = 32,
        lr: float = 1e-3, weight_decay: float = 1e-4, warmup_steps: int = 50,
        schedule: str = "constant", grad_clip: float | None = 1.0,
        callbacks: Sequence[Callback] = (), device: str | torch.device = "auto", seed: int = 0,
        resume_from: str | os.PathLike | None = None, val_every: int = 1, shuffle: bool = True,
        drop_last: bool = True, collate_fn: Callable | None = None) -> History:
    """Train ``model`` with AdamW; returns a :class:`History`.

    Args:
        model: any ``nn.Module`` taking ``batch["image"]`` (e.g. :func:`poselab.models.build_model`).
        loss_fn: ``loss_fn(outputs, batch) -> scalar tensor`` (or ``{"loss": total, name: term}``
            to log extra terms). ``batch`` is the collated dict already on the device, plus
            ``batch["step"]`` and ``batch["epoch"]`` (ints) for schedules such as BCIR's λ(t).
        train: a map-style ``Dataset`` (fit batches it; order = f(seed, epoch), resume is exact) or
            a ``DataLoader`` (used as is; resume re-iterates the seen batches of the current epoch,
            exact only if the loader's order depends on the epoch alone), or a batch source (an
            object with ``__len__`` = batches per epoch and ``epoch(epoch, skip)`` yielding collated
            batches, e.g. :class:`poselab.data.crop_cache.CropCache`; it owns its batch size,
            order and seed, resume is exact).
        val: None; a callable ``val(model) -> dict`` of metrics (e.g. a
            :func:`poselab.train.evaluate` closure); or a Dataset/DataLoader → mean ``val_loss``.
            Run every ``val_every`` epochs and at the end of training.
        epochs, max_steps: stop after ``epochs`` epochs or ``max_steps`` optimiser steps,
            whichever comes first (at least one must be given).
        batch_size, shuffle, drop_last, collate_fn: batching of a Dataset ``train``.
        lr, weight_decay: AdamW (β = 0.9, 0.999).
        warmup_steps: linear warm-up length (a fixed number, so a resumed run follows the same
            schedule); ``schedule`` = "constant" after warm-up or "cosine" (decays to 0 at the
            planned total of steps; resume with the same epochs/max_steps).
        grad_clip: max global gradient norm, > 0 (None = no clipping). Every step checks the
            gradient norm: a NaN/Inf gradient raises FloatingPointError (naming the step and the
            parameter) before the optimiser step, so no NaN weight is written.
        callbacks: e.g. ``[ProgressBar(), Checkpoint("ckpt.pt"), LiveCurves()]``.
        device: "auto" (cuda → cpu; MPS only when asked for) or a device string. A model whose
            ``autocast`` is "float16" trains with a ``torch.amp.GradScaler`` (a step whose
            scaled gradient overflows is skipped and the scale lowered; a non-finite gradient
            at a scale below 1 raises as in float32). Batches are pinned and copied without
            blocking only on CUDA.
        seed: ``torch.manual_seed(seed)`` at the start and the batch order; the same seed and the
            same initial weights give identical losses on CPU. Thread count is left to the caller.
        resume_from: a checkpoint written by :class:`~poselab.train.callbacks.Checkpoint`; the
            model's and optimiser's states, position, history and RNG are restored and training
            continues to ``epochs``/``max_steps``. Missing file → FileNotFoundError; a file that is
            not a poselab checkpoint or does not fit the model → ValueError. Settings that shape
            the run (seed, warmup_steps, schedule and, for a Dataset, batch_size) must equal the
            checkpoint's: a different value raises ValueError naming both (it is not silently
            replaced).

    Counts (epochs, max_steps, batch_size, warmup_steps, val_every) must be whole numbers
    (``epochs=1.7`` raises, it is not truncated); lr and weight_decay finite and >= 0.

    Raises FloatingPointError when the loss becomes NaN/Inf (with the step; lower ``lr``).
    """
    if epochs is None and max_steps is None:
        raise ValueError("give epochs=..., max_steps=... or both")
    epochs = None if epochs is None else whole_number(epochs, "epochs", 0)
    seed = whole_number(seed, "seed", 0)
    max_steps = None if max_steps is None else whole_number(max_steps, "max_steps", 0)
    warmup_steps = whole_number(warmup_steps, "warmup_steps", 0)
    val_every = whole_number(val_every, "val_every", 1)
    lr = _finite(lr, "lr", 0.0)
    weight_decay = _finite(weight_decay, "weight_decay", 0.0)
    if grad_clip is not None and not _finite(grad_clip, "grad_clip", 0.0) > 0:
        raise ValueError(f"grad_clip must be a positive max gradient norm or None (no clipping), "
                         f"got {grad_clip!r}: 0 would stop learning and a negative value flips "
                         "the gradients")
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule must be 'constant' or 'cosine', got {schedule!r}")
    if not callable(loss_fn):
        raise ValueError("loss_fn must be callable: loss_fn(outputs, batch) -> scalar tensor")
    hooks = ("on_fit_start", "on_step_end", "on_validation_end", "on_epoch_end", "on_fit_end")
    for cb in callbacks:
        if not all(callable(getattr(cb, hook, None)) for hook in hooks):
            raise ValueError(f"callbacks must be poselab.train.Callback objects (e.g. ProgressBar(), "
                             f"Checkpoint(path)), got {cb!r:.60}")
    dev = resolve_device(device)
    collate = collate_fn or default_collate
    if isinstance(train, DataLoader):
        batches = _LoaderBatches(train)
    elif _is_batch_source(train):
        batches = train  # e.g. poselab.data.crop_cache.CropCache: it batches (and seeds) itself
    elif isinstance(train, Dataset) or (hasattr(train, "__getitem__") and hasattr(train, "__len__")):
        batch_size = whole_number(batch_size, "batch_size", 1)
        batches = _DatasetBatches(train, batch_size, seed, shuffle, drop_last, collate)
    else:
        raise ValueError(f"train must be a Dataset or a DataLoader, got {type(train).__name__}")
    steps_per_epoch = len(batches)
    if steps_per_epoch == 0:
        raise ValueError("the training set yields no batch (empty dataset?)")
    if val is not None and not callable(val) and isinstance(val, Dataset):
        val_batches = _DatasetBatches(val, batch_size, seed, False, False, collate)
        val_iter = lambda: val_batches.epoch(0, 0)  # noqa: E731
    elif isinstance(val, DataLoader):
        val_iter = lambda: iter(val)  # noqa: E731
    else:
        val_iter = None
    if epochs is None:
        epochs = math.ceil(int(max_steps) / steps_per_epoch)
    total_steps = int(epochs) * steps_per_epoch
    if max_steps is not None:
        total_steps = min(total_steps, int(max_steps))

    torch.manual_seed(int(seed))
    model.to(dev)
    model.train()
    # float16 autocast (a preset's "auto" on a CUDA GPU without bfloat16, or asked for): scale
    # the loss (poselab.train.device.autocast_plan); bfloat16 has float32's range and needs none
    scaler = torch.amp.GradScaler(dev.type) if getattr(model, "autocast", None) == "float16" else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=float(lr), weight_decay=float(weight_decay))
    settings = {"seed": int(seed), "batch_size": int(batch_size), "lr": float(lr),
                "weight_decay": float(weight_decay), "warmup_steps": int(warmup_steps),
                "schedule": schedule, "total_steps": int(total_steps),
                "grad_clip": None if grad_clip is None else float(grad_clip)}
    history = History()
    state = FitState(model=model, optimizer=optimizer, history=history, device=dev,
                     settings=settings, total_steps=total_steps, steps_per_epoch=steps_per_epoch)
    if resume_from is not None:
        ckpt = load_checkpoint(resume_from)
        load_model_state(model, ckpt["model"], resume_from)
        spec = (ckpt.get("model_config") or {}).get("codec")
        if spec is not None and model_codec(model) is None:  # the codec travels with the weights
            attach_codec(model, codec_from_spec(spec))
        try:
            optimizer.load_state_dict(ckpt["optimizer"])
        except (ValueError, KeyError, RuntimeError) as exc:
            raise ValueError(f"optimizer state in {resume_from} does not fit this model: {exc}") from exc
        saved = ckpt["settings"]
        # Refuse (not silently override) settings that shape the run: the batch order, the
        # position inside an epoch and the lr schedule depend on them, so a resume with other
        # values would be neither the old run nor a fresh one.
        shaping = ("warmup_steps", "schedule", "seed")
        shaping += ("batch_size",) if isinstance(batches, _DatasetBatches) else ()
        differ = [f"{key}={saved[key]!r} (this call: {settings[key]!r})" for key in shaping
                  if key in saved and saved[key] != settings[key]]
        if differ:
            raise ValueError(f"checkpoint {resume_from} was written with " + ", ".join(differ)
                             + "; resume with the same values to continue that run exactly, or "
                             "start a new run without resume_from")
        if int(ckpt["batch_in_epoch"]) > steps_per_epoch:
            raise ValueError(f"checkpoint {resume_from} stopped at batch {ckpt['batch_in_epoch']} "
                             f"of an epoch, but this training set has {steps_per_epoch} batches per "
                             "epoch; resume with the dataset (and batch size) it was written with")
        if schedule == "cosine" and "total_steps" in saved:
            settings["total_steps"] = saved["total_steps"]
        state.history = history = History.from_dict(ckpt["history"])
        state.step, state.epoch = int(ckpt["step"]), int(ckpt["epoch"])
        state.batch_in_epoch = int(ckpt["batch_in_epoch"])
        torch.set_rng_state(ckpt["rng"])
        if isinstance(batches, _DatasetBatches):
            batches.seed, batches.batch_size = int(settings["seed"]), int(settings["batch_size"])
        model.to(dev)
        model.train()

    sched_total = int(settings["total_steps"]) if settings["schedule"] == "cosine" else total_steps
    for cb in callbacks:
        cb.on_fit_start(state)

    def run_validation() -> None:
        if val is None:
            return
        metrics = _validate(model, loss_fn, val, val_iter, dev)
        history.val.append({"epoch": state.epoch, "step": state.step, **metrics})
        for cb in callbacks:
            cb.on_validation_end(state)

    last_val_step = history.val[-1]["step"] if history.val else -1
    start_epoch, skip = state.epoch, state.batch_in_epoch
    for epoch in range(start_epoch, int(epochs)):
        if state.step >= total_steps or state.stop:
            break
        state.epoch, state.epoch_finished = epoch, False
        state.batch_in_epoch = skip if epoch == start_epoch else 0
        t_data = time.perf_counter()
        for batch in batches.epoch(epoch, state.batch_in_epoch):
            if state.step >= total_steps or state.stop:
                break
            batch = to_device(batch, dev)
            if isinstance(batch, dict):
                batch["step"], batch["epoch"] = state.step, epoch
            data_time = time.perf_counter() - t_data
            t0 = time.perf_counter()
            lr_now = float(lr) * lr_factor(state.step, int(settings["warmup_steps"]),
                                           settings["schedule"], sched_total)
            for group in optimizer.param_groups:
                group["lr"] = lr_now
            outputs = model(_model_input(batch))
            loss, terms = _split_loss(loss_fn(outputs, batch))
            if not loss.requires_grad:
                raise ValueError(
                    f"loss_fn returned a loss with no gradient at step {state.step} (epoch {epoch}): "
                    "it is not connected to the model's outputs (a constant, .item(), .detach() or "
                    "a no-grad branch, e.g. a batch with every joint invisible). Return a tensor "
                    "computed from outputs; for 'nothing to learn' return outputs.sum() * 0")
            if not torch.isfinite(loss.detach()):
                raise FloatingPointError(f"loss is {float(loss.detach())} at step {state.step} (epoch {epoch}); "
                                         f"lower lr (now {lr_now:g}) or check the targets")
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                grad_norm = _check_gradients(model, grad_clip, state.step, epoch, float(loss.detach()),
                                             lr_now)
                optimizer.step()
            else:  # float16: scale the loss so small gradients survive, unscale before clipping
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                grad_norm = _check_gradients(model, grad_clip, state.step, epoch, float(loss.detach()),
                                             lr_now, overflow_ok=scaler.get_scale() >= 1.0)
                scaler.step(optimizer)  # skipped by the scaler after an overflow
                scaler.update()
                state.extra["grad_scale"] = float(scaler.get_scale())
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            step_time = time.perf_counter() - t0
            state.step += 1
            state.batch_in_epoch += 1
            state.last_loss = float(loss.detach())
            state.last_outputs = outputs
            history.losses.append(state.last_loss)
            history.step_times.append(step_time)
            history.data_times.append(data_time)
            history.lrs.append(lr_now)
            history.grad_norms.append(grad_norm)
            history.epochs.append(epoch)
            history.batch_sizes.append(_batch_size_of(batch))
            for k, v in terms.items():
                history.terms.setdefault(k, []).append(v)
            for cb in callbacks:
                cb.on_step_end(state)
            t_data = time.perf_counter()
        else:
            # the epoch ran to completion
            if (epoch + 1) % max(1, int(val_every)) == 0 or state.step >= total_steps:
                run_validation()
                last_val_step = state.step
            state.epoch_finished = True
            for cb in callbacks:
                cb.on_epoch_end(state)
            continue
        break  # stopped inside the epoch (max_steps or a callback)
    if last_val_step != state.step and val is not None and state.step > 0:
        if not history.val or history.val[-1]["step"] != state.step:
            run_validation()
    state.last_outputs = None
    for cb in callbacks:
        cb.on_fit_end(state)
    model.eval()
    return history
