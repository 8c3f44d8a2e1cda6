"""Top-down torch Dataset over COCO-format person keypoints, and a seeded DataLoader.

Each item is one person: the padded, aspect-fixed box is cropped by an affine warp to
``input_size`` (see :mod:`poselab.data.transforms` for the geometry). Training augmentation
(``train=True``) follows SimpleBaseline/HRNet: scale ``s · clip(1 + N(0,1)·f, 1 − f, 1 + f)``
with ``f = scale_jitter``; with probability 0.6 a rotation ``clip(N(0,1)·r, −2r, 2r)`` degrees
with ``r = rotation``; a horizontal flip with probability ``flip_prob`` (left/right joints
swapped). The random numbers come from ``numpy.random.default_rng([seed, epoch, index])``, so an
item is a pure function of ``(seed, epoch, index)`` — independent of workers and batch order.

Decoded images are kept in a per-process cache (``cache_images=True``): an image is decoded once,
crops are made on the fly.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .._numbers import whole_number
from poselab.data.coco import PersonInstance, load_persons, read_image
from poselab.data.errors import DatasetError
from poselab.data.transforms import (BBOX_PADDING, _compose, _size_hw, affine_matrix,
                                     apply_affine, bbox_to_center_scale, flip_matrix, warp_image)
from poselab.skeleton import FLIP_INDEX

__all__ = ["TopDownDataset", "make_loader", "epoch_batches", "IMAGENET_MEAN", "IMAGENET_STD",
           "denormalize_image"]

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_ROTATION_PROB = 0.6


def denormalize_image(image) -> np.ndarray:
    """Inverse of the item normalisation: ``(3, H, W)`` float → ``(H, W, 3)`` uint8 for display."""
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    rgb = arr.transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


class TopDownDataset(Dataset):
    """Person crops with keypoints in crop coordinates.

    Args:
        ann_json: a ``person_keypoints_<split>.json`` (official COCO, the sample, or generated).
        image_root: image folder; default ``<json>/../../<split>``.
        input_size: crop size ``(H, W)``.
        train: enable augmentation (scale, rotation, flip); evaluation crops are deterministic.
        flip_prob, scale_jitter, rotation: augmentation strengths (see module docstring).
        target_fn: optional ``target_fn(keypoints (17, 2) float32 tensor, visible (17,) float32
            tensor) -> dict``; its entries are added to the item (codecs plug in here).
        seed: augmentation seed.
        cache_images: keep decoded images in memory (decode once).
        min_keypoints: persons with fewer labelled joints are excluded (see ``load_persons``).
        padding: box enlargement (1.25).

    Item (dict): ``image`` float32 ``(3, H, W)`` normalised with ImageNet mean/std;
    ``keypoints`` float32 ``(17, 2)`` crop pixels (0 for unlabelled joints); ``visible`` float32
    ``(17,)`` = 1 where v > 0 and the joint lies inside the crop
    (``-0.5 <= x < W - 0.5`` and ``-0.5 <= y < H - 0.5``); ``v`` float32 ``(17,)`` raw COCO flags
    (after the flip's left/right swap); ``center``/``scale`` float32 ``(2,)`` crop window in image
    pixels (of the flipped image when ``flipped``); ``rotation`` float (degrees); ``flipped`` bool;
    ``image_id``, ``ann_id`` int; ``area`` float; ``bbox`` float32 ``(4,)``; ``index`` int; and
    ``keypoints_true`` float32 ``(17, 2)`` crop pixels when the file has rendered truth.
    For evaluation (``train=False``) ``crop_to_image(pred, center, scale, input_size)`` maps
    predictions back to image coordinates.

    Raises:
        DatasetError: the file holds no person with ``min_keypoints`` labelled joints.
    """

    def __init__(self, ann_json, image_root=None, input_size=(64, 48), train: bool = False,
                 flip_prob: float = 0.5, scale_jitter: float = 0.25, rotation: float = 30,
                 target_fn: Callable | None = None, seed: int = 0, cache_images: bool = True,
                 min_keypoints: int = 1, padding: float = BBOX_PADDING):
        h, w = _size_hw(input_size, "input_size")
        flip_prob = _number(flip_prob, "flip_prob")
        scale_jitter = _number(scale_jitter, "scale_jitter")
        rotation = _number(rotation, "rotation")
        padding = _number(padding, "padding")
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"flip_prob must be in [0, 1], got {flip_prob}")
        if not 0.0 <= scale_jitter < 1.0:
            raise ValueError(f"scale_jitter must be in [0, 1), got {scale_jitter}")
        if not 0.0 <= rotation <= 180.0:
            raise ValueError(f"rotation must be in [0, 180] degrees, got {rotation}")
        if not 0.0 < padding <= 10.0:
            raise ValueError(f"padding must be in (0, 10] (box enlargement, 1.25 by default), "
                             f"got {padding}")
        if target_fn is not None and not callable(target_fn):
            raise ValueError(f"target_fn must be callable (e.g. a codec), got "
                             f"{type(target_fn).__name__}")
        self.ann_json = Path(ann_json)
        self.persons: list[PersonInstance] = load_persons(ann_json, image_root, min_keypoints)
        if not self.persons:
            raise DatasetError(f"{self.ann_json} holds no person with at least {min_keypoints} "
                               "labelled keypoint(s) and a non-empty box; nothing to crop")
        self.input_size = (h, w)
        self.train = bool(train)
        self.flip_prob = float(flip_prob)
        self.scale_jitter = float(scale_jitter)
        self.rotation = float(rotation)
        self.target_fn = target_fn
        self.seed = whole_number(seed, "seed", 0)
        self.cache_images = bool(cache_images)
        self.padding = float(padding)
        self.epoch = 0
        self._cache: dict[Path, object] = {}

    def __len__(self) -> int:
        return len(self.persons)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draw of this epoch (call before iterating a loader)."""
        self.epoch = whole_number(epoch, "epoch", 0)

    def image(self, index: int):
        """The decoded RGB image of item ``index`` (cached when ``cache_images``)."""
        person = self.persons[index]
        path = person.image_path
        img = self._cache.get(path)
        if img is None:
            img = read_image(path, expected_size=person.image_size)
            if self.cache_images:
                self._cache[path] = img
        return img

    def preload(self) -> None:
        """Decode every image now (otherwise they are decoded on first use)."""
        for i in range(len(self)):
            self.image(i)

    def augmentation(self, index: int) -> tuple[float, float, bool]:
        """``(scale factor, rotation degrees, flipped)`` of item ``index`` in the current epoch."""
        if not self.train:
            return 1.0, 0.0, False
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        z = rng.standard_normal(2)
        u = rng.random(2)
        f = self.scale_jitter
        factor = float(np.clip(1.0 + z[0] * f, 1.0 - f, 1.0 + f))
        rot = float(np.clip(z[1] * self.rotation, -2 * self.rotation, 2 * self.rotation))
        rot = rot if u[0] < _ROTATION_PROB else 0.0
        flipped = bool(u[1] < self.flip_prob)
        return factor, rot, flipped

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self.persons):
            raise IndexError(f"index {index} out of range for {len(self.persons)} persons")
        p = self.persons[index]
        img = self.image(index)
        h, w = self.input_size
        center, scale = bbox_to_center_scale(p.bbox, self.input_size, self.padding)
        factor, rot, flipped = self.augmentation(index)
        scale = scale * factor
        kp = p.keypoints.copy()
        kp_true = None if p.keypoints_true is None else p.keypoints_true.copy()
        width = img.size[0]
        m = affine_matrix(center, scale, self.input_size, rot)  # image -> crop
        if flipped:
            # Crop the mirrored image: mirror the window centre, swap left/right joints.
            center = np.array([width - 1 - center[0], center[1]])
            m_crop = affine_matrix(center, scale, self.input_size, rot)
            m = _compose(m_crop, flip_matrix(width))  # original image -> crop of the mirror
            index_swap = list(FLIP_INDEX)
            kp = kp[index_swap]
            kp_true = None if kp_true is None else kp_true[index_swap]
        crop = warp_image(img, m, self.input_size)
        xy = apply_affine(kp[:, :2], m)
        v = kp[:, 2]
        inside = (xy[:, 0] >= -0.5) & (xy[:, 0] < w - 0.5) & (xy[:, 1] >= -0.5) & (xy[:, 1] < h - 0.5)
        visible = (v > 0) & inside
        xy[v <= 0] = 0.0
        image = (crop.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
        item = {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "keypoints": torch.from_numpy(xy.astype(np.float32)),
            "visible": torch.from_numpy(visible.astype(np.float32)),
            "v": torch.from_numpy(v.astype(np.float32)),
            "center": torch.from_numpy(center.astype(np.float32)),
            "scale": torch.from_numpy(np.asarray(scale, dtype=np.float32)),
            "rotation": float(rot),
            "flipped": flipped,
            "image_id": int(p.image_id),
            "ann_id": int(p.ann_id),
            "area": float(p.area),
            "bbox": torch.from_numpy(p.bbox.astype(np.float32)),
            "index": int(index),
        }
        if kp_true is not None:
            item["keypoints_true"] = torch.from_numpy(
                apply_affine(kp_true[:, :2], m).astype(np.float32))
        if self.target_fn is not None:
            extra = self.target_fn(item["keypoints"], item["visible"])
            if not isinstance(extra, dict):
                raise TypeError(f"target_fn must return a dict, got {type(extra).__name__}")
            clash = set(extra) & set(item)
            if clash:
                raise ValueError(f"target_fn returned keys that collide with item keys: "
                                 f"{sorted(clash)}; rename them")
            item.update(extra)
        return item


def _number(value, name: str) -> float:
    """``value`` as a finite float (bools and strings refused), else a ValueError naming it."""
    try:
        ok = not isinstance(value, (bool, str)) and math.isfinite(float(value))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, shuffle: bool = True,
                  drop_last: bool = False) -> list[list[int]]:
    """Index batches of one epoch over ``n`` items: the batch order of :func:`poselab.train.fit`
    and of :class:`poselab.data.crop_cache.CropCache` (one formula, so both see the same order).

    With ``shuffle`` the order is ``randperm(n)`` of a generator seeded by ``seed·1000003 +
    epoch``, a pure function of (seed, epoch); ``drop_last`` drops a short last batch (unless it
    is the only one).

    Example:
        >>> epoch_batches(5, 2, seed=0, epoch=0, shuffle=False)
        [[0, 1], [2, 3], [4]]
    """
    if shuffle:
        g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
        order = torch.randperm(n, generator=g).tolist()
    else:
        order = list(range(n))
    batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    if drop_last and len(batches) > 1 and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


def _worker_init(worker_id: int) -> None:
    # Items draw their own random numbers from (seed, epoch, index); nothing to reseed except
    # torch's per-worker thread count (avoid oversubscribing the 2-core baseline).
    torch.set_num_threads(1)


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int,
                num_workers: int = 0, drop_last: bool = False) -> DataLoader:
    """A ``DataLoader`` whose shuffling order is a function of ``seed`` (``torch.Generator``).

    Call ``dataset.set_epoch(e)`` before each epoch for fresh augmentation; the shuffle order
    advances with the generator, so the same seed reproduces the whole run.
    """
    batch_size = whole_number(batch_size, "batch_size", 1)
    num_workers = whole_number(num_workers, "num_workers", 0)
    gen = torch.Generator()
    gen.manual_seed(whole_number(seed, "seed", 0))
    return DataLoader(dataset, batch_size=batch_size, shuffle=bool(shuffle), generator=gen,
                      num_workers=num_workers, drop_last=drop_last,
                      worker_init_fn=_worker_init if num_workers else None)
