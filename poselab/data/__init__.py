"""poselab.data — COCO-format person keypoints: reading, top-down crops, generated people.

    from poselab import data
    ann = data.resolve_dataset("synth", split="val")       # or "coco_sample", a folder, a json
    persons = data.load_persons(ann)                        # list[PersonInstance]
    ds = data.TopDownDataset(ann, input_size=(64, 48), train=True)
    loader = data.make_loader(ds, batch_size=32, shuffle=True, seed=0)

Modules: :mod:`~poselab.data.coco` (reading), :mod:`~poselab.data.transforms` (crop geometry,
flips), :mod:`~poselab.data.dataset` (torch Dataset/DataLoader), :mod:`~poselab.data.synth`
(generated people), :mod:`~poselab.data.pose_bank` (the real poses they start from),
:mod:`~poselab.data.registry` (dataset names and paths).
The torch parts are imported on first use, so ``poselab.data.synth`` works without torch.
"""
from __future__ import annotations

import importlib

from poselab.data.coco import PersonInstance, load_persons, read_image
from poselab.data.errors import DatasetError, DatasetNotFound
from poselab.data.registry import find_coco_sample, resolve_dataset
from poselab.data.chapter_data import ChapterData, resolve_chapter_data  # noqa: E402
from poselab.data.transforms import (affine_matrix, apply_affine, bbox_to_center_scale,
                                     crop_to_image, flip_keypoints, image_to_crop, warp_image)

__all__ = [
    "PersonInstance", "load_persons", "read_image", "DatasetError", "DatasetNotFound",
    "find_coco_sample", "resolve_dataset", "affine_matrix", "apply_affine",
    "bbox_to_center_scale", "crop_to_image", "flip_keypoints", "image_to_crop", "warp_image",
    "TopDownDataset", "make_loader", "default_dataset", "generate",
    "ChapterData", "resolve_chapter_data",
]

_LAZY = {"TopDownDataset": "dataset", "make_loader": "dataset", "default_dataset": "synth",
         "generate": "synth"}


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f"poselab.data.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'poselab.data' has no attribute {name!r}")
