"""A crop cache: the fast training-data path (each person cropped once, augmented per batch).

:class:`TopDownDataset` decodes an image and warps one crop per item with PIL (~1 ms per sample
at 64×48). :class:`CropCache` does that work once: every person is cropped a single time into a
square ``uint8`` tensor that covers every window the augmentation can ask for (largest scale
factor, any rotation), at ``resolution`` cache pixels per output pixel. A training batch is then
one gather + one batched bilinear warp (``F.affine_grid`` / ``F.grid_sample``) of the cached
crops, and its targets are encoded in one call of ``target_fn`` on ``(B, K, 2)`` keypoints.

The augmentation is TopDownDataset's, draw for draw: item ``i`` of epoch ``e`` uses
``TopDownDataset.augmentation`` with the same ``(seed, e, i)`` (scale factor, rotation, flip),
and the batch order is :func:`poselab.train.fit`'s (``randperm`` seeded by ``seed·1000003 + e``),
so a ``CropCache`` yields the same persons with the same augmentation in the same batches as
``fit(model, loss, TopDownDataset(...), seed=seed)``. Keypoints go through the same float64
affine maps as TopDownDataset's (equal to ~1e-6 px); pixels differ only by the second bilinear
interpolation (the cache's), a small blur.

Geometry: with the box window ``(w, h)`` (``bbox_to_center_scale``, ``w/h = W/H``), a window
scaled by ``f ≤ 1 + scale_jitter`` and rotated by any angle stays inside the square of side
``(1 + scale_jitter) · sqrt(w² + h²)`` around the box centre, so that square is what is cached.

Usage (a batch source of :func:`poselab.train.fit`: ``len(cache)`` batches per epoch,
``cache.epoch(epoch, skip)`` yields collated batch dicts)::

    codec = HeatmapCodec((64, 48), (32, 24))
    cache = CropCache(ann_json, input_size=(64, 48), target_fn=codec.encode, batch_size=32, seed=0)
    history = fit(model, loss_fn, cache, epochs=10, seed=0)
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from poselab.data.coco import load_persons, read_image
from poselab.data.dataset import IMAGENET_MEAN, IMAGENET_STD, TopDownDataset, epoch_batches
from poselab.data.transforms import BBOX_PADDING, affine_matrix, bbox_to_center_scale, warp_image
from poselab.skeleton import FLIP_INDEX

__all__ = ["CropCache", "batched_crop_matrices"]


def batched_crop_matrices(center: torch.Tensor, scale: torch.Tensor, rotation_deg: torch.Tensor,
                          flipped: torch.Tensor, image_width: torch.Tensor,
                          output_size: tuple[int, int]) -> torch.Tensor:
    """Image → crop matrices ``(B, 2, 3)`` float64 of TopDownDataset's augmented crops.

    Batched form of ``affine_matrix(center, scale, output_size, rotation)``; for a flipped item
    the window centre is mirrored (``x → width − 1 − x``) and the matrix is composed with the
    mirror, exactly as :meth:`TopDownDataset.__getitem__` does.

    Args:
        center: ``(B, 2)`` window centres ``(cx, cy)`` (image px, un-flipped image).
        scale: ``(B, 2)`` window sizes ``(w, h)`` (already multiplied by the scale factor).
        rotation_deg: ``(B,)`` rotations (degrees). flipped: ``(B,)`` bool.
        image_width: ``(B,)`` widths of the source images (px).
        output_size: ``(H, W)`` of the crop.
    """
    out_h, out_w = int(output_size[0]), int(output_size[1])
    c = center.to(torch.float64).clone()
    s = scale.to(torch.float64)
    flip = flipped.to(torch.bool)
    width = image_width.to(torch.float64)
    c[:, 0] = torch.where(flip, width - 1 - c[:, 0], c[:, 0])
    theta = torch.deg2rad(rotation_deg.to(torch.float64))
    cos, sin = torch.cos(theta), torch.sin(theta)
    dx, dy = out_w / s[:, 0], out_h / s[:, 1]
    a = torch.stack([torch.stack([dx * cos, -dx * sin], -1),
                     torch.stack([dy * sin, dy * cos], -1)], -2)          # (B, 2, 2) = D·R
    o = torch.tensor([(out_w - 1) / 2.0, (out_h - 1) / 2.0], dtype=torch.float64)
    t = o - (a @ c.unsqueeze(-1)).squeeze(-1)
    # flipped: crop(mirror(p)) with mirror(p) = (width - 1 - x, y): a·diag(-1, 1), t + a[:, 0]·(width-1)
    sign = torch.where(flip, -1.0, 1.0).to(torch.float64)
    a_flip = a.clone()
    a_flip[:, :, 0] = a[:, :, 0] * sign[:, None]
    t = t + a[:, :, 0] * (width - 1).unsqueeze(-1) * flip.to(torch.float64).unsqueeze(-1)
    return torch.cat([a_flip, t.unsqueeze(-1)], -1)


def _invert_affine(m: torch.Tensor) -> torch.Tensor:
    """Inverse of ``(B, 2, 3)`` affine maps."""
    a_inv = torch.linalg.inv(m[:, :, :2])
    t_inv = -(a_inv @ m[:, :, 2:]).squeeze(-1)
    return torch.cat([a_inv, t_inv.unsqueeze(-1)], -1)


def _compose(outer: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
    """``outer ∘ inner`` of ``(B, 2, 3)`` (or broadcastable ``(2, 3)``) affine maps."""
    a = outer[..., :2] @ inner[..., :2]
    t = (outer[..., :2] @ inner[..., 2:]).squeeze(-1) + outer[..., 2]
    return torch.cat([a, t.unsqueeze(-1)], -1)


def _to_normalised(size: tuple[int, int]) -> torch.Tensor:
    """Pixel-centre coords of a ``(H, W)`` grid → grid_sample coords (``align_corners=False``)."""
    h, w = size
    return torch.tensor([[2.0 / w, 0.0, 1.0 / w - 1.0], [0.0, 2.0 / h, 1.0 / h - 1.0]],
                        dtype=torch.float64)


class CropCache:
    """Person crops cached once as ``uint8``; augmented batches by one batched affine warp.

    Args:
        ann_json: COCO person-keypoints json (generated, the real sample, official).
        image_root: image folder (default as :class:`TopDownDataset`).
        input_size: output crop ``(H, W)``.
        target_fn: batched ``target_fn(keypoints (B, K, 2) float32 input px, visible (B, K)
            float32) -> dict`` (e.g. ``HeatmapCodec(...).encode``); entries are added to the batch.
        batch_size: persons per batch. shuffle, drop_last: as :func:`poselab.train.fit`'s.
        seed: augmentation and batch-order seed (the same ``(seed, epoch)`` → the same batches).
        train: augment (``False``: the plain evaluation crop of every person).
        flip_prob, scale_jitter, rotation, padding, min_keypoints: as :class:`TopDownDataset`
            (``flip_prob`` defaults to 0 here: a flip contradicts generated data's left/right cue,
            see DEVELOPERS.md; pass 0.5 for real photos).
        resolution: cache pixels per output pixel (1.0: the cache has the output's pixel size;
            higher is sharper under zoom-in augmentation and costs resolution² memory).
        memory_format: ``torch.channels_last`` to hand out images in that layout.

    Batch (dict): ``image`` float32 ``(B, 3, H, W)`` normalised with ImageNet mean/std (pixels
    outside the source image are black, as TopDownDataset's); ``keypoints`` float32 ``(B, K, 2)``
    crop px (0 where unlabelled); ``visible`` float32 ``(B, K)`` (v > 0 and inside the crop);
    ``v`` float32 ``(B, K)`` (after the flip's swap); ``index`` int64 ``(B,)``; ``scale_factor``,
    ``rotation`` float32 ``(B,)``; ``flipped`` bool ``(B,)``; ``area`` float32 ``(B,)`` (each
    person's COCO area, image px², the OKS scale²); ``scale`` float32 ``(B, 2)`` (the augmented
    crop window ``(w, h)`` in image px, as TopDownDataset's); ``keypoints_true`` when the file
    has rendered truth; and every entry of ``target_fn``.

    Raises:
        DatasetError: the file holds no person with ``min_keypoints`` labelled joints.
        ValueError: bad sizes or augmentation strengths (named).
    """

    def __init__(self, ann_json, image_root=None, input_size: tuple[int, int] = (64, 48), *,
                 target_fn: Callable | None = None, batch_size: int = 32, seed: int = 0,
                 train: bool = True, shuffle: bool = True, drop_last: bool = True,
                 flip_prob: float = 0.0, scale_jitter: float = 0.25, rotation: float = 30,
                 padding: float = BBOX_PADDING, min_keypoints: int = 1, resolution: float = 1.0,
                 memory_format: torch.memory_format = torch.contiguous_format):
        if int(batch_size) <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size}")
        if not (math.isfinite(resolution) and 0.25 <= resolution <= 8):
            raise ValueError(f"resolution must be in [0.25, 8] cache px per output px, got {resolution}")
        if target_fn is not None and not callable(target_fn):
            raise ValueError("target_fn must be callable: target_fn(keypoints (B, K, 2), visible (B, K)) -> dict")
        # The dataset checks the other arguments, reads the persons and owns the augmentation draw.
        self.dataset = TopDownDataset(ann_json, image_root, input_size=input_size, train=train,
                                      flip_prob=flip_prob, scale_jitter=scale_jitter,
                                      rotation=rotation, seed=seed, cache_images=False,
                                      min_keypoints=min_keypoints, padding=padding)
        self.input_size = self.dataset.input_size
        self.target_fn, self.batch_size, self.seed = target_fn, int(batch_size), int(seed)
        self.train, self.shuffle, self.drop_last = bool(train), bool(shuffle), bool(drop_last)
        self.resolution, self.memory_format = float(resolution), memory_format
        self._build()

    # ------------------------------------------------------------------ building the cache
    @property
    def persons(self):
        return self.dataset.persons

    def __len__(self) -> int:
        """Number of batches per epoch."""
        n, b = len(self.persons), self.batch_size
        full, rest = divmod(n, b)
        return full + (1 if rest and not (self.drop_last and full >= 1) else 0)

    @property
    def num_persons(self) -> int:
        return len(self.persons)

    def _build(self) -> None:
        H, W = self.input_size
        f = self.dataset.scale_jitter if self.train else 0.0
        # square side, in units of the window height h: (1 + f) * sqrt(1 + (W/H)^2)
        self.extent = (1.0 + f) * math.hypot(1.0, W / H)
        side = int(math.ceil(self.extent * H * self.resolution))
        self.cache_size = (side, side)
        n = len(self.persons)
        crops = torch.empty((n, 3, side, side), dtype=torch.uint8)
        centers, scales = np.empty((n, 2)), np.empty((n, 2))
        widths = np.empty(n)
        kp = np.empty((n, len(FLIP_INDEX), 3))
        has_true = all(p.keypoints_true is not None for p in self.persons)
        kp_true = np.empty((n, len(FLIP_INDEX), 2)) if has_true else None
        cache_maps = np.empty((n, 2, 3))
        by_image: dict[Path, list[int]] = {}
        for i, p in enumerate(self.persons):
            by_image.setdefault(p.image_path, []).append(i)
        for path, idx in by_image.items():
            img = read_image(path, expected_size=self.persons[idx[0]].image_size)
            for i in idx:
                p = self.persons[i]
                c, s = bbox_to_center_scale(p.bbox, self.input_size, self.dataset.padding)
                ext = self.extent * s[1]
                m = affine_matrix(c, (ext, ext), self.cache_size)     # image -> cache
                crops[i] = torch.from_numpy(np.ascontiguousarray(
                    warp_image(img, m, self.cache_size).transpose(2, 0, 1)))
                centers[i], scales[i], widths[i], cache_maps[i] = c, s, img.size[0], m
                kp[i] = p.keypoints
                if has_true:
                    kp_true[i] = p.keypoints_true[:, :2]
        self.crops = crops
        self.center = torch.from_numpy(centers)
        self.scale = torch.from_numpy(scales)
        self.image_width = torch.from_numpy(widths)
        self.cache_to_image = _invert_affine(torch.from_numpy(cache_maps))
        self.keypoints_image = torch.from_numpy(kp)
        self.area = torch.tensor([float(p.area) for p in self.persons], dtype=torch.float32)
        self.keypoints_true_image = None if kp_true is None else torch.from_numpy(kp_true)
        self._mean = torch.tensor(IMAGENET_MEAN * 255.0, dtype=torch.float32).view(1, 3, 1, 1)
        self._inv_std = torch.tensor(1.0 / (IMAGENET_STD * 255.0), dtype=torch.float32).view(1, 3, 1, 1)

    def to(self, device: str | torch.device) -> "CropCache":
        """Keep the cached crops on ``device`` (e.g. a CUDA GPU): each batch's warp (one batched
        ``grid_sample``) and normalisation then run there and ``image`` comes out on ``device``;
        keypoints and targets stay on the CPU (small). Returns ``self``. Memory: :attr:`nbytes`
        on the device."""
        dev = torch.device(device)
        self.crops = self.crops.to(dev)
        self._mean, self._inv_std = self._mean.to(dev), self._inv_std.to(dev)
        return self

    @property
    def device(self) -> torch.device:
        """Where the crops are kept and warped (:meth:`to`)."""
        return self.crops.device

    @property
    def nbytes(self) -> int:
        """Memory held by the cached crops (bytes)."""
        return self.crops.numel()

    # ------------------------------------------------------------------ epochs and batches
    def order(self, epoch: int) -> list[list[int]]:
        """Person indices of each batch of ``epoch`` (fit's order for a Dataset of this size)."""
        return epoch_batches(len(self.persons), self.batch_size, self.seed, epoch, self.shuffle,
                             self.drop_last)

    def augmentation(self, epoch: int, indices) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(scale factor (B,), rotation deg (B,), flipped (B,) bool)`` — TopDownDataset's draws."""
        self.dataset.set_epoch(epoch)
        draws = [self.dataset.augmentation(int(i)) for i in indices]
        factor = torch.tensor([d[0] for d in draws], dtype=torch.float64)
        rot = torch.tensor([d[1] for d in draws], dtype=torch.float64)
        flip = torch.tensor([d[2] for d in draws], dtype=torch.bool)
        return factor, rot, flip

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[dict]:
        """Yield the batches of ``epoch`` after the first ``skip`` (exact resume)."""
        for idx in self.order(epoch)[int(skip):]:
            yield self.batch(idx, epoch)

    def __iter__(self) -> Iterator[dict]:
        return self.epoch(0)

    def batch(self, indices, epoch: int = 0) -> dict:
        """The collated, augmented batch of persons ``indices`` in ``epoch``."""
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        if idx.numel() == 0:
            raise ValueError("indices must name at least one person")
        if int(idx.min()) < 0 or int(idx.max()) >= len(self.persons):
            raise IndexError(f"person indices must be in [0, {len(self.persons)}), got "
                             f"{idx.min().item()}..{idx.max().item()}")
        factor, rot, flip = self.augmentation(epoch, idx.tolist())
        H, W = self.input_size
        image_to_crop = batched_crop_matrices(self.center[idx], self.scale[idx] * factor[:, None],
                                              rot, flip, self.image_width[idx], self.input_size)
        # output pixel -> cache pixel, then both sides in grid_sample's normalised coordinates
        crop_to_cache = _invert_affine(_compose(image_to_crop, self.cache_to_image[idx]))
        theta = _compose(_to_normalised(self.cache_size), _compose(
            crop_to_cache, _invert_affine(_to_normalised(self.input_size).unsqueeze(0))))
        src = self.crops.index_select(0, idx.to(self.crops.device)).to(torch.float32)
        grid = F.affine_grid(theta.to(device=self.crops.device, dtype=torch.float32),
                             [len(idx), 3, H, W], align_corners=False)
        image = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        image = (image - self._mean) * self._inv_std
        if self.memory_format is not torch.contiguous_format:
            image = image.contiguous(memory_format=self.memory_format)

        swap = torch.as_tensor(FLIP_INDEX, dtype=torch.long)
        kp = self.keypoints_image[idx]
        kp = torch.where(flip[:, None, None], kp[:, swap], kp)
        xy = (kp[..., :2] @ image_to_crop[:, :, :2].transpose(1, 2)) + image_to_crop[:, None, :, 2]
        v = kp[..., 2]
        inside = (xy[..., 0] >= -0.5) & (xy[..., 0] < W - 0.5) & (xy[..., 1] >= -0.5) & (xy[..., 1] < H - 0.5)
        visible = (v > 0) & inside
        xy = xy * (v > 0).unsqueeze(-1)
        out = {"image": image, "keypoints": xy.to(torch.float32),
               "visible": visible.to(torch.float32), "v": v.to(torch.float32), "index": idx,
               "scale_factor": factor.to(torch.float32), "rotation": rot.to(torch.float32),
               "flipped": flip, "area": self.area.index_select(0, idx),
               "scale": (self.scale[idx] * factor[:, None]).to(torch.float32)}
        if self.keypoints_true_image is not None:
            kt = self.keypoints_true_image[idx]
            kt = torch.where(flip[:, None, None], kt[:, swap], kt)
            out["keypoints_true"] = ((kt @ image_to_crop[:, :, :2].transpose(1, 2))
                                     + image_to_crop[:, None, :, 2]).to(torch.float32)
        if self.target_fn is not None:
            extra = self.target_fn(out["keypoints"], out["visible"])
            if not isinstance(extra, dict):
                raise TypeError(f"target_fn must return a dict, got {type(extra).__name__}")
            clash = set(extra) & set(out)
            if clash:
                raise ValueError(f"target_fn returned keys that collide with batch keys: "
                                 f"{sorted(clash)}; rename them")
            out.update(extra)
        return out
