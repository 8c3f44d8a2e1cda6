"""Reading COCO-format person-keypoint files (official COCO, the real sample, generated data).

:func:`load_persons` turns ``person_keypoints_<split>.json`` into a list of
:class:`PersonInstance` records, indexing the file with pycocotools.

Which annotations become persons (documented rules):

* only ``category_id == 1`` (person) and ``iscrowd == 0``;
* ``num_keypoints`` is recounted from the flags (number of joints with v > 0) and annotations
  with fewer than ``min_keypoints`` labelled joints are excluded (default 1: persons whose
  keypoints are all unlabelled carry no keypoint supervision);
* annotations whose box has zero (or negative) width or height are **skipped** — a top-down crop
  needs a box, and in COCO such boxes only occur on degenerate annotations;
* ``area`` is the annotation's ``area`` field; when it is missing or ≤ 0 it falls back to the
  box area ``w·h`` (the OKS scale then stays finite).

Image files are not opened here; :func:`read_image` raises ``FileNotFoundError`` naming the path
when a listed image is missing.
"""
from __future__ import annotations

import contextlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image
from pycocotools.coco import COCO

from poselab.data.errors import DatasetError, DatasetNotFound, HOW_TO_GET_DATA
from poselab.skeleton import NUM_KEYPOINTS

__all__ = ["PersonInstance", "load_persons", "read_image", "read_coco_json", "split_of",
           "default_image_root"]

_SPLIT_RE = re.compile(r"^person_keypoints_(?P<split>.+)\.json$")
#: A box larger than this many times its image (or this far outside it) is refused as corrupt.
_MAX_BOX_FACTOR = 10


@dataclass
class PersonInstance:
    """One person annotation.

    Attributes:
        image_id, ann_id: COCO ids.
        image_path: the image file (not checked for existence).
        image_size: ``(H, W)`` from the image record.
        bbox: ``(4,)`` float64 ``[x, y, w, h]``.
        keypoints: ``(17, 3)`` float64 ``(x, y, v)``, COCO flags (0 unlabelled, 1 occluded,
            2 visible).
        area: OKS scale² (segment area in COCO; see module docstring for the fallback).
        keypoints_true: ``(17, 3)`` float64 rendered truth of generated data (``None`` for real
            data); the label ``keypoints`` may be a noisy version of it.
    """
    image_id: int
    ann_id: int
    image_path: Path
    image_size: tuple[int, int]
    bbox: np.ndarray
    keypoints: np.ndarray
    area: float
    keypoints_true: np.ndarray | None = field(default=None)

    @property
    def num_keypoints(self) -> int:
        return int(np.count_nonzero(self.keypoints[:, 2] > 0))


def split_of(ann_json: str | Path) -> str | None:
    """The split name of ``person_keypoints_<split>.json`` (``None`` for other names)."""
    m = _SPLIT_RE.match(Path(ann_json).name)
    return m.group("split") if m else None


def default_image_root(ann_json: str | Path) -> Path:
    """``<json>/../../<split>``: the official COCO layout (``annotations/`` beside ``<split>/``)."""
    ann_json = Path(ann_json)
    split = split_of(ann_json)
    if split is None:
        raise DatasetError(f"cannot infer the image folder of {ann_json}: the file is not named "
                           "person_keypoints_<split>.json; pass image_root=<folder of the images>")
    return ann_json.parent.parent / split


def read_coco_json(ann_json: str | Path) -> dict:
    """Read and structurally check a COCO person-keypoint json.

    Raises:
        DatasetNotFound: the file does not exist.
        DatasetError: not valid json (e.g. truncated), or missing ``images``/``annotations``
            lists, or annotations without the fields a keypoint dataset needs.
    """
    ann_json = Path(ann_json)
    if not ann_json.is_file():
        raise DatasetNotFound(f"no COCO annotations at {ann_json}; {HOW_TO_GET_DATA}")
    try:
        with open(ann_json, "rb") as f:
            data = json.loads(f.read())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{ann_json} is not valid json ({e}); the file is malformed or "
                           "truncated — download or generate it again") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{ann_json}: top level must be a json object with 'images' and "
                           f"'annotations', got {type(data).__name__}")
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{ann_json}: missing or non-list '{key}' (a COCO keypoint file "
                               "has 'images', 'annotations' and 'categories')")
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or not {"id", "file_name", "height", "width"} <= img.keys():
            raise DatasetError(f"{ann_json}: images[{i}] needs id, file_name, height and width, "
                               f"got {img!r:.200}")
        _check_id(img["id"], ann_json, f"images[{i}] 'id'")
        for key in ("height", "width"):
            value = img[key]
            if _as_int(value) is None or value < 1:
                raise DatasetError(f"{ann_json}: images[{i}] (id {img['id']}) '{key}' must be a "
                                   f"positive integer (pixels), got {value!r:.60}")
        _check_file_name(img["file_name"], ann_json, i)
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or not {"id", "image_id", "bbox"} <= ann.keys():
            raise DatasetError(f"{ann_json}: annotations[{i}] needs id, image_id and bbox, "
                               f"got {ann!r:.200}")
        ann.setdefault("category_id", 1)  # no category: a person (pycocotools needs the key)
        _check_id(ann["id"], ann_json, f"annotations[{i}] 'id'")
        _check_id(ann["image_id"], ann_json, f"annotations[{i}] (id {ann['id']}) 'image_id'")
        for key in ("area", "iscrowd", "category_id", "num_keypoints"):
            value = ann.get(key, 0)
            if value is None and key == "area":
                continue  # a null area falls back to the box area (module docstring)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                raise DatasetError(f"{ann_json}: annotations[{i}] (id {ann['id']}) '{key}' must be "
                                   f"a number, got {value!r:.60}")
    _check_unique([img["id"] for img in data["images"]], ann_json, "image")
    _check_unique([ann["id"] for ann in data["annotations"]], ann_json, "annotation")
    data.setdefault("categories", [{"id": 1, "name": "person"}])
    return data


def _as_int(value) -> int | None:
    """``value`` as an int when it is an integral number (not a bool, string or 1.7), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    if not np.isfinite(value) or int(value) != value:
        return None
    return int(value)


def _check_id(value, ann_json, what: str) -> None:
    if _as_int(value) is None:
        raise DatasetError(f"{ann_json}: {what} must be an integer id, got {value!r:.60}; COCO ids "
                           "are integers (the file is not a valid COCO keypoint file)")


def _check_unique(ids: list, ann_json, kind: str) -> None:
    seen: set = set()
    dup: list = []
    for i in ids:
        if i in seen and i not in dup:
            dup.append(i)
        seen.add(i)
    if dup:
        shown = ", ".join(map(str, dup[:10])) + (" ..." if len(dup) > 10 else "")
        raise DatasetError(f"{ann_json}: duplicate {kind} id(s) {shown} ({len(dup)} id(s) used more "
                           f"than once); every {kind} needs its own id — fix the file (renumber "
                           "them) or regenerate it")


def _check_file_name(name, ann_json, index: int) -> None:
    """An image ``file_name`` must be a relative path that stays inside the image root."""
    ok = isinstance(name, str) and name.strip() != "" and "\x00" not in name
    if ok:
        parts = PurePosixPath(name.replace("\\", "/")).parts
        ok = (not PurePosixPath(name.replace("\\", "/")).is_absolute()
              and not re.match(r"^[A-Za-z]:", name) and ".." not in parts)
    if not ok:
        raise DatasetError(f"{ann_json}: images[{index}] file_name {name!r:.80} must be a file name "
                           "relative to the image folder (no absolute path, no '..'); the file "
                           "is not a valid COCO keypoint file")


def _as_keypoints(values, ann_json, ann_id, name, coco_flags: bool = True) -> np.ndarray:
    """``(17, 3)`` of an annotation's keypoint list; ``coco_flags``: the third column must be
    COCO's v (0, 1, 2) — not checked for our ``keypoints_true`` extension field."""
    try:
        kp = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DatasetError(f"{ann_json}: annotation {ann_id} has non-numeric '{name}'") from None
    if kp.shape != (NUM_KEYPOINTS * 3,):
        raise DatasetError(f"{ann_json}: annotation {ann_id} '{name}' must hold "
                           f"{NUM_KEYPOINTS * 3} numbers (17 × x, y, v), got shape {kp.shape}")
    if not np.all(np.isfinite(kp)):
        raise DatasetError(f"{ann_json}: annotation {ann_id} '{name}' has non-finite values")
    kp = kp.reshape(NUM_KEYPOINTS, 3)
    flags = kp[:, 2]
    if coco_flags and not np.isin(flags, (0.0, 1.0, 2.0)).all():
        bad = sorted({float(f) for f in flags if f not in (0.0, 1.0, 2.0)})
        raise DatasetError(f"{ann_json}: annotation {ann_id} '{name}' has visibility flags {bad[:5]}; COCO's "
                           "v is 0 (not labelled), 1 (labelled, not visible) or 2 (visible)")
    return kp


def load_persons(ann_json: str | Path, image_root: str | Path | None = None,
                 min_keypoints: int = 1) -> list[PersonInstance]:
    """Person instances of a COCO keypoint file, in pycocotools' annotation order.

    Args:
        ann_json: ``.../annotations/person_keypoints_<split>.json``.
        image_root: folder of the images; default ``<json>/../../<split>``.
        min_keypoints: keep persons with at least this many labelled (v > 0) joints; 0 keeps
            every non-crowd person with a valid box.
    Returns:
        list of :class:`PersonInstance` (possibly empty; the Dataset complains about that).
    Raises:
        DatasetNotFound / DatasetError: see :func:`read_coco_json`; also for keypoint arrays of
        the wrong length and annotations naming an image that is not listed.
    """

    ann_json = Path(ann_json)
    if _as_int(min_keypoints) is None or min_keypoints < 0:
        raise ValueError(f"min_keypoints must be a whole number >= 0, got {min_keypoints!r}")
    root = Path(image_root) if image_root is not None else default_image_root(ann_json)
    data = read_coco_json(ann_json)
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    persons: list[PersonInstance] = []
    for ann_id in coco.getAnnIds():
        ann = coco.anns[ann_id]
        if ann.get("category_id", 1) != 1 or ann.get("iscrowd", 0):
            continue
        if "keypoints" not in ann:
            raise DatasetError(f"{ann_json}: annotation {ann_id} has no 'keypoints'; is this a "
                               "person_keypoints file (not instances_*.json)?")
        kp = _as_keypoints(ann["keypoints"], ann_json, ann_id, "keypoints")
        if np.count_nonzero(kp[:, 2] > 0) < min_keypoints:
            continue
        try:
            bbox = np.asarray(ann["bbox"], dtype=np.float64)
        except (TypeError, ValueError):
            raise DatasetError(f"{ann_json}: annotation {ann_id} has a non-numeric bbox") from None
        if bbox.shape != (4,) or not np.all(np.isfinite(bbox)):
            raise DatasetError(f"{ann_json}: annotation {ann_id} bbox must be 4 finite numbers "
                               f"[x, y, w, h], got {ann['bbox']!r}")
        if bbox[2] <= 0 or bbox[3] <= 0:
            continue  # zero-area box: skipped (module docstring)
        img = coco.imgs.get(ann["image_id"])
        if img is None:
            raise DatasetError(f"{ann_json}: annotation {ann_id} names image_id "
                               f"{ann['image_id']} which is not in 'images'")
        height, width = int(img["height"]), int(img["width"])
        if (bbox[2] > _MAX_BOX_FACTOR * width or bbox[3] > _MAX_BOX_FACTOR * height
                or bbox[0] + bbox[2] < -_MAX_BOX_FACTOR * width or bbox[0] > _MAX_BOX_FACTOR * width
                or bbox[1] + bbox[3] < -_MAX_BOX_FACTOR * height
                or bbox[1] > _MAX_BOX_FACTOR * height):
            raise DatasetError(f"{ann_json}: annotation {ann_id} bbox {bbox.tolist()} lies far "
                               f"outside its {width}x{height} image (more than {_MAX_BOX_FACTOR}x "
                               "the image size); the annotation is corrupt — fix or remove it")
        area = float(ann.get("area", 0.0) or 0.0)
        if not np.isfinite(area) or area <= 0:
            area = float(bbox[2] * bbox[3])
        kp_true = ann.get("keypoints_true")
        persons.append(PersonInstance(
            image_id=int(ann["image_id"]), ann_id=int(ann_id),
            image_path=root / img["file_name"],
            image_size=(height, width),
            bbox=bbox, keypoints=kp, area=area,
            keypoints_true=None if kp_true is None else _as_keypoints(
                kp_true, ann_json, ann_id, "keypoints_true", coco_flags=False)))
    return persons


def read_image(path: str | Path, expected_size: tuple[int, int] | None = None) -> Image.Image:
    """Decode an image file to an RGB ``PIL.Image`` (fully loaded, file closed).

    16-bit images (PNG ``I;16`` / ``I`` modes) are scaled to 8 bits (``v / 257``) instead of
    being clipped to white; float images (``F``) are read as 0..255.

    Args:
        path: the image file.
        expected_size: ``(H, W)`` the annotations give for the image; a file of another size
            raises (the keypoints would not fit the pixels).
    Raises:
        FileNotFoundError: the file is missing (naming the path).
        DatasetError: the file does not decode (truncated, not an image) or its size differs
            from ``expected_size``; the message names the path and says what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} is missing (listed in the annotations); "
                                "check image_root or fetch/generate the dataset again")
    try:
        with Image.open(path) as im:
            im.load()
            rgb = _to_rgb(im)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DatasetError(f"image file {path} cannot be decoded ({type(e).__name__}: {e}); the "
                           "file is damaged or truncated — download or generate it again") from None
    if expected_size is not None:
        h, w = int(expected_size[0]), int(expected_size[1])
        if rgb.size != (w, h):
            raise DatasetError(f"image file {path} is {rgb.size[0]}x{rgb.size[1]} (WxH) but the "
                               f"annotations say {w}x{h}; the keypoints would not match the pixels "
                               "— fix the json's width/height or use the right image")
    return rgb


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode == "RGB":
        return im.copy()
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im, dtype=np.float64)
        sixteen = im.mode.startswith("I;16") or im.format == "PNG" or arr.max(initial=0) > 255
        scale = 257.0 if sixteen else 1.0  # 16-bit PNGs open as "I": 0..65535
        grey = np.clip(np.rint(arr / scale), 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(grey[..., None], 3, axis=2), "RGB")
    if im.mode == "F":
        grey = np.clip(np.rint(np.nan_to_num(np.asarray(im, dtype=np.float64))), 0, 255)
        return Image.fromarray(np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2), "RGB")
    return im.convert("RGB")
