"""Where datasets live: ``"synth"``, ``"coco_sample"``, a COCO folder or a json file."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

from poselab.data.errors import DatasetNotFound, HOW_TO_GET_DATA
from poselab.data import synth

__all__ = ["find_coco_sample", "resolve_dataset"]

_SAMPLE_ENV = "POSELAB_COCO_SAMPLE"


def _is_coco_folder(path: Path) -> bool:
    return path.is_dir() and any((path / "annotations").glob("person_keypoints_*.json"))


def find_coco_sample() -> Path | None:
    """The real COCO sample folder, or ``None`` when there is none.

    Looks at ``$POSELAB_COCO_SAMPLE`` (a warning if it is set but holds no
    ``annotations/person_keypoints_*.json``), then ``../shared/coco_sample`` beside the repository
    checkout this package runs from, then ``shared/coco_sample`` in the current directory and
    each of its parents.
    """
    env = os.environ.get(_SAMPLE_ENV)
    if env:
        path = Path(env).expanduser()
        if _is_coco_folder(path):
            return path
        warnings.warn(f"{_SAMPLE_ENV}={env} holds no annotations/person_keypoints_*.json; "
                      "searching the default places", stacklevel=2)
    candidates = [Path(__file__).resolve().parents[3] / "shared" / "coco_sample"]
    cwd = Path.cwd().resolve()
    candidates += [p / "shared" / "coco_sample" for p in (cwd, *cwd.parents)]
    for path in candidates:
        if _is_coco_folder(path):
            return path
    return None


def _not_found(where: Path | str, extra: str = "") -> DatasetNotFound:
    return DatasetNotFound(f"no COCO annotations at {where}{extra}; {HOW_TO_GET_DATA}")


def resolve_dataset(data: str | os.PathLike, split: str = "val") -> Path:
    """The annotation json of a dataset name or path.

    Args:
        data: ``"synth"`` → :func:`poselab.data.synth.default_dataset` (generated and cached on
            first use); ``"coco_sample"`` → the real sample (:func:`find_coco_sample`), split
            ``"val"`` meaning ``val2017``; a folder → ``<folder>/annotations/
            person_keypoints_<split>.json`` (also tries ``<split>2017``); a ``.json`` file →
            itself.
        split: ``"train"`` or ``"val"`` (or any split name present in the folder).
    Raises:
        DatasetNotFound: nothing at that place; the message says how to get data.
    """
    if not isinstance(data, (str, os.PathLike)):
        raise TypeError(f"data must be 'synth', 'coco_sample', a COCO folder or a "
                        f"person_keypoints_*.json path, got {type(data).__name__} {data!r:.60}")
    if not isinstance(split, str) or not split or any(c in split for c in "/\\\0") or split in (".", ".."):
        raise ValueError(f"split must be a split name such as 'train', 'val' or 'val2017', got "
                         f"{split!r}")
    if isinstance(data, str) and data == "synth":
        return synth.default_dataset(split)
    if isinstance(data, str) and data == "coco_sample":
        folder = find_coco_sample()
        if folder is None:
            raise DatasetNotFound(
                f"the real COCO sample was not found (set {_SAMPLE_ENV} or put it at "
                f"../shared/coco_sample beside the checkout); {HOW_TO_GET_DATA}")
        return resolve_dataset(folder, split)
    path = Path(data).expanduser()
    if path.suffix == ".json":
        if not path.is_file():
            raise _not_found(path)
        return path
    if not path.is_dir():
        raise _not_found(path, " (no such folder; pass 'synth', 'coco_sample', a COCO folder "
                               "or a person_keypoints_*.json)")
    names = [split] if split.endswith("2017") else [split, f"{split}2017"]
    tried = [path / "annotations" / f"person_keypoints_{name}.json" for name in names]
    for candidate in tried:
        if candidate.is_file():
            return candidate
    raise _not_found(" or ".join(str(t) for t in tried))
