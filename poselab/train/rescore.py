"""Post-hoc training of a pose rescorer (RCNet, ScoreNet) on arrays of predicted poses.

The keypoints are fixed; only the score changes. Poses are grouped into sequences by image
(RCNet attends over one image's detections); a batch holds whole images, about ``batch_poses``
poses, padded to the longest image. The loss sees the batch's poses as one list
(``groups=None``): COCO AP ranks the detections of all images together.

Schedule as RCNet §5: linear warm-up over ``warmup_steps`` to ``lr``, then constant; Adam.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch

from poselab._numbers import whole_number
from poselab.losses.confidence_ranking import CONFIDENCE_RANKING_LOSSES, laplacian_rank_loss
from poselab.metrics import ranking_accuracy

__all__ = ["PoseSequences", "fit_rescorer", "rescore", "target_dtype"]


def target_dtype(device) -> torch.dtype:
    """The dtype of the OKS targets a re-scoring fit moves to ``device``: float64 (the exact OKS)
    everywhere but Apple's MPS, which has no float64 and gets float32 (OKS in [0, 1]: float32
    keeps ~7 digits, far below any OKS difference a ranking depends on)."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


class PoseSequences:
    """Poses packed per group (image): ``features (G, L, F)``, ``target (G, L)``, ``mask (G, L)``
    (True at padding) and ``index (G, L)`` back into the flat arrays (−1 at padding)."""

    def __init__(self, features, target, groups):
        feats = np.asarray(features, dtype=np.float32)
        if feats.ndim != 2:
            raise ValueError(f"features must be (N, F), got shape {feats.shape}")
        n = feats.shape[0]
        tgt = np.zeros(n) if target is None else np.asarray(target, dtype=np.float64).reshape(-1)
        grp = np.asarray(groups).reshape(-1)
        if tgt.shape[0] != n or grp.shape[0] != n:
            raise ValueError(f"target and groups need one value per pose ({n}), got "
                             f"{tgt.shape[0]} and {grp.shape[0]}")
        if not (np.all(np.isfinite(feats)) and np.all(np.isfinite(tgt))):
            raise ValueError("features and target must be finite (no NaN/Inf)")
        self.n = n
        _, inverse, counts = np.unique(grp, return_inverse=True, return_counts=True)
        order = np.argsort(inverse, kind="stable")
        starts = np.cumsum(counts) - counts
        pos = np.arange(n) - starts[inverse[order]]
        length = int(counts.max()) if n else 0
        index = np.full((counts.size, length), -1, dtype=np.int64)
        index[inverse[order], pos] = order
        self.index = torch.from_numpy(index)
        self.mask = self.index < 0
        safe = self.index.clamp_min(0)
        self.features = torch.from_numpy(feats)[safe] * (~self.mask)[..., None]
        self.target = torch.from_numpy(tgt)[safe] * (~self.mask)
        self.sizes = counts

    def __len__(self) -> int:
        return self.index.shape[0]

    def batches(self, batch_poses: int, rng: np.random.Generator | None):
        """Lists of group indices holding about ``batch_poses`` poses (shuffled when rng given)."""
        order = np.arange(len(self)) if rng is None else rng.permutation(len(self))
        batch, count = [], 0
        for g in order:
            batch.append(g)
            count += int(self.sizes[g])
            if count >= batch_poses:
                yield np.asarray(batch)
                batch, count = [], 0
        if batch:
            yield np.asarray(batch)


def _run(model, seqs: PoseSequences, groups: np.ndarray, device) -> torch.Tensor:
    out = model(seqs.features[groups].to(device), seqs.mask[groups].to(device))
    valid = ~seqs.mask[groups].to(device)
    return out[valid]


@torch.no_grad()
def rescore(model, features, groups, *, batch_poses: int = 1024, device="cpu") -> np.ndarray:
    """Refined scores (N,) of a trained rescorer (eval mode), in the order of ``features``."""
    seqs = PoseSequences(features, None, groups)
    was = model.training
    model.eval()
    out = np.zeros(seqs.n)
    try:
        for g in seqs.batches(batch_poses, None):
            scores = _run(model, seqs, g, device).double().cpu().numpy()
            idx = seqs.index[g][~seqs.mask[g]].numpy()
            out[idx] = scores
    finally:
        model.train(was)
    return out


def fit_rescorer(model: torch.nn.Module, features, target, groups, *,
                 loss: str | Callable = "laplacian", loss_params: dict | None = None,
                 epochs: int = 50, batch_poses: int = 128, lr: float = 1e-3,
                 warmup_steps: int = 250, seed: int = 0, val: tuple | None = None,
                 track_max_poses: int = 3000, track_every: int = 1, device="cpu",
                 callback: Callable | None = None) -> dict:
    """Train ``model`` (RCNet / ScoreNet) to rescore poses; returns the per-epoch history.

    Args:
        model: maps (B, L, F) features + padding mask to (B, L) scores in (0, 1).
        features: (N, F) pose features; target: (N,) OKS with the matched person; groups: (N,)
            image ids.
        loss: a name of :data:`poselab.losses.CONFIDENCE_RANKING_LOSSES` or a callable
            ``loss(pred, target) -> scalar``; loss_params: its keyword arguments.
        epochs, batch_poses, lr, warmup_steps: schedule (RCNet §5: 50 epochs, batch 128,
            warm-up 250 steps, lr 1e-4 on COCO's ~150 k poses; our sets are ~100× smaller,
            hence the larger default lr).
        seed: initial shuffling seed (the model's weights are initialised by its builder).
        val: optional ``(features, target, groups)`` evaluated every epoch.
        track_max_poses: the epoch-end ranking accuracy and rank loss are computed on at most
            this many poses of each set (a fixed random subset; O(n²) pairs).
        track_every: measure every this many epochs (0: only before and after training; a
            negative value: never — the per-epoch rank loss and accuracy are NaN, which saves two
            O(n²) passes per fit where nobody reads them, e.g. the rivals of Tables 8/10).
        callback: ``callback(epoch, record)`` after every measured epoch (progress display).

    Returns ``{"epoch", "train_loss"`` (mean batch loss), ``"train_rank_loss", "train_accuracy",
    "val_rank_loss", "val_accuracy"`` (Laplacian rank loss with b′ = 2, c = 1 and pairwise
    accuracy of the refined scores at the epoch's end, epoch 0 = before training),
    ``"seconds"}``.
    """
    loss_fn = CONFIDENCE_RANKING_LOSSES[loss] if isinstance(loss, str) else loss
    params = dict(loss_params or {})
    epochs = whole_number(epochs, "epochs", 0)
    batch_poses = whole_number(batch_poses, "batch_poses", 1)
    warmup_steps = whole_number(warmup_steps, "warmup_steps", 0)
    track_every = whole_number(track_every, "track_every", -1)
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if len(np.asarray(target).reshape(-1)) == 0:
        raise ValueError("fit_rescorer needs at least one pose to train on, got 0 (no detection was "
                         "made or matched on this set: check the pose model and the data)")
    train = PoseSequences(features, target, groups)
    rng = np.random.default_rng(seed)
    sets = {"train": (np.asarray(features), np.asarray(target, dtype=np.float64), np.asarray(groups))}
    if val is not None:
        sets["val"] = tuple(np.asarray(v) for v in val)
    subsets = {}
    for name, (f, t, g) in sets.items():
        keep = np.sort(rng.choice(len(t), min(len(t), int(track_max_poses)), replace=False))
        subsets[name] = (f, t, g, keep)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: min(1.0, (step + 1) / max(1, int(warmup_steps))))
    history: dict[str, list] = {k: [] for k in ("epoch", "train_loss", "train_rank_loss",
                                                "train_accuracy", "val_rank_loss", "val_accuracy",
                                                "seconds")}

    def track(epoch, batch_losses, seconds):
        history["epoch"].append(epoch)
        history["train_loss"].append(float(np.mean(batch_losses)) if batch_losses else float("nan"))
        history["seconds"].append(seconds)
        for name in ("train", "val"):
            if name not in subsets or int(track_every) < 0:
                history[f"{name}_rank_loss"].append(float("nan"))
                history[f"{name}_accuracy"].append(float("nan"))
                continue
            f, t, g, keep = subsets[name]
            s = rescore(model, f, g, device=device)[keep]
            history[f"{name}_rank_loss"].append(float(laplacian_rank_loss(
                torch.from_numpy(s), torch.from_numpy(t[keep].astype(np.float64)))))
            distinct = np.ptp(t[keep]) > 0
            history[f"{name}_accuracy"].append(float(ranking_accuracy(s, t[keep])) if distinct
                                               else float("nan"))
        if callback is not None:
            callback(epoch, {k: v[-1] for k, v in history.items()})

    start = time.perf_counter()
    track(0, [], 0.0)
    for epoch in range(1, int(epochs) + 1):
        model.train()
        losses = []
        for g in train.batches(int(batch_poses), rng):
            pred = _run(model, train, g, device)
            tgt = train.target[g][~train.mask[g]].to(device, dtype=target_dtype(device))
            value = loss_fn(pred, tgt, **params)
            opt.zero_grad()
            value.backward()
            opt.step()
            sched.step()
            losses.append(float(value.detach()))
        every = int(track_every)
        if epoch == int(epochs) or (every > 0 and epoch % every == 0):
            track(epoch, losses, time.perf_counter() - start)
    model.eval()
    return history
