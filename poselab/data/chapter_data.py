"""The data of a chapter from its two parameters, resolved the same way in every chapter.

    from poselab.data import resolve_chapter_data
    chosen = resolve_chapter_data("auto", real_data="auto", split="val", n_images=60)
    chosen.ann_json, chosen.name, chosen.real_json

``data``: ``"auto"`` (the real COCO sample when it is found, else generated people),
``"synth"`` (generated people: the cached default split, or ``n_images`` of it),
``"coco_sample"`` (the real sample; an error naming the fix if it is absent) or a COCO folder /
annotation json. ``real_data``: the extra set of real photos a chapter evaluates on —
``"auto"`` (the sample if present, else None), ``""``/None (none), or a folder / json.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import DatasetNotFound
from .registry import find_coco_sample, resolve_dataset
from . import synth

__all__ = ["ChapterData", "resolve_chapter_data"]


@dataclass(frozen=True)
class ChapterData:
    """What :func:`resolve_chapter_data` chose.

    Attributes: ``name`` ("synth", "coco_sample" or the path given), ``ann_json`` (the split's
    annotation file), ``real_json`` (the real-photo set, or None), ``note`` (one line saying what
    was chosen and why, for the chapter to print).
    """

    name: str
    ann_json: Path
    real_json: Path | None
    note: str


def resolve_chapter_data(data: str | os.PathLike = "auto", real_data: str | os.PathLike | None = "auto",
                         split: str = "val", n_images: int | None = None,
                         progress: bool = False) -> ChapterData:
    """Resolve a chapter's ``data`` and ``real_data`` parameters (see the module docstring).

    ``n_images`` limits generated data (fast runs); it is ignored for real folders.
    Raises :class:`~poselab.data.errors.DatasetNotFound` with the fix when a named set is missing,
    and ValueError for a ``data`` that is neither a name nor a path.
    """
    if data is None or (isinstance(data, str) and data.strip() == ""):
        raise ValueError("data must be 'auto', 'synth', 'coco_sample' or a COCO folder/json path, got "
                         f"{data!r}")
    sample = find_coco_sample()
    name = str(data)
    if name == "auto":
        name = "coco_sample" if sample is not None else "synth"
        why = ("the real COCO sample was found" if sample is not None else
               "no real COCO sample found (set POSELAB_COCO_SAMPLE or pass data=<folder>)")
    else:
        why = "as requested"
    if name == "synth":
        ann = synth.default_dataset(split, n_images=n_images, progress=progress)
    elif name == "coco_sample":
        if sample is None:
            raise DatasetNotFound("data='coco_sample' but the real COCO sample was not found; set "
                                  "POSELAB_COCO_SAMPLE=<folder> or pass data='synth'")
        ann = resolve_dataset(sample, split)
    else:
        ann = resolve_dataset(data, split)
    if real_data is None or str(real_data) == "":
        real = None
    elif str(real_data) == "auto":
        real = resolve_dataset(sample, "val") if sample is not None else None
    else:
        real = resolve_dataset(real_data, "val")
    note = f"data: {name} ({why}) -> {ann}" + (f"; real photos: {real}" if real is not None else
                                              "; no real-photo set")
    return ChapterData(name=name, ann_json=Path(ann), real_json=None if real is None else Path(real),
                       note=note)
