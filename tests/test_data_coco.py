"""Reading COCO-format files: the real sample, and every bad-input case."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from poselab.data import DatasetError, DatasetNotFound, load_persons
from poselab.data.coco import default_image_root, read_image

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "coco_sample"
needs_sample = pytest.mark.skipif(not SAMPLE.is_dir(), reason="../shared/coco_sample not present")


def _direct_count(path):
    """Persons the loader should keep, counted straight from the json (no poselab code)."""
    d = json.loads(Path(path).read_text())
    n = 0
    for a in d["annotations"]:
        labelled = sum(1 for v in a["keypoints"][2::3] if v > 0)
        if a["category_id"] == 1 and not a["iscrowd"] and labelled >= 1 \
                and a["bbox"][2] > 0 and a["bbox"][3] > 0:
            n += 1
    return n


@needs_sample
def test_sample_loads_373_persons_and_matches_json():
    total = 0
    for split in ("train2017", "val2017"):
        ann = SAMPLE / "annotations" / f"person_keypoints_{split}.json"
        persons = load_persons(ann)
        assert len(persons) == _direct_count(ann)
        total += len(persons)
        raw = {a["id"]: a for a in json.loads(ann.read_text())["annotations"]}
        images = {i["id"]: i for i in json.loads(ann.read_text())["images"]}
        for p in persons:
            a = raw[p.ann_id]
            assert p.image_id == a["image_id"]
            np.testing.assert_array_equal(p.keypoints.reshape(-1), a["keypoints"])
            np.testing.assert_array_equal(p.bbox, a["bbox"])
            assert p.area == a["area"]
            img = images[p.image_id]
            assert p.image_size == (img["height"], img["width"])
            assert p.image_path == SAMPLE / split / img["file_name"]
            assert p.image_path.is_file()
            assert p.keypoints_true is None
            assert p.keypoints.dtype == np.float64 and p.keypoints.shape == (17, 3)
    assert total == 373


@needs_sample
def test_sample_image_reads_with_listed_size():
    p = load_persons(SAMPLE / "annotations" / "person_keypoints_val2017.json")[0]
    im = read_image(p.image_path)
    assert im.mode == "RGB" and (im.size[1], im.size[0]) == p.image_size


def _write(tmp_path, anns, images=None, name="person_keypoints_val.json"):
    images = images if images is not None else [
        {"id": 1, "file_name": "a.jpg", "height": 50, "width": 40}]
    ann_dir = tmp_path / "annotations"
    ann_dir.mkdir(exist_ok=True)
    path = ann_dir / name
    path.write_text(json.dumps({"images": images, "annotations": anns,
                                "categories": [{"id": 1, "name": "person"}]}))
    return path


def _ann(id_, kp=None, bbox=(5, 5, 20, 30), **kw):
    if kp is None:
        kp = [10, 10, 2] * 17
    return {"id": id_, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": list(bbox),
            "area": 300.0, "keypoints": kp, "num_keypoints": 17, **kw}


def test_rules_zero_box_invisible_crowd_area_fallback(tmp_path):
    anns = [_ann(1), _ann(2, bbox=(5, 5, 0, 30)), _ann(3, kp=[0] * 51), _ann(4, iscrowd=1),
            _ann(5, area=0), {**_ann(6), "category_id": 2},
            _ann(7, kp=[0] * 48 + [3, 4, 1])]
    path = _write(tmp_path, anns)
    ids = [p.ann_id for p in load_persons(path)]
    assert ids == [1, 5, 7]  # zero box skipped, all-unlabelled excluded, crowd/non-person skipped
    assert [p.ann_id for p in load_persons(path, min_keypoints=0)] == [1, 3, 5, 7]
    assert [p.ann_id for p in load_persons(path, min_keypoints=2)] == [1, 5]
    p5 = [p for p in load_persons(path) if p.ann_id == 5][0]
    assert p5.area == 20 * 30  # area fallback: box area
    assert load_persons(path)[0].image_path == tmp_path / "val" / "a.jpg"


def test_keypoints_true_is_read(tmp_path):
    truth = [float(i) for i in range(51)]
    path = _write(tmp_path, [_ann(1, keypoints_true=truth)])
    (p,) = load_persons(path)
    np.testing.assert_array_equal(p.keypoints_true.reshape(-1), truth)


@pytest.mark.parametrize("content, words", [
    ('{"images": [', "not valid json"),
    ("", "not valid json"),
    ("[1, 2]", "top level"),
    ('{"annotations": []}', "'images'"),
    ('{"images": [], "annotations": {}}', "'annotations'"),
    ('{"images": [{"id": 1}], "annotations": []}', "images[0]"),
    ('{"images": [], "annotations": [{"id": 1}]}', "annotations[0]"),
])
def test_malformed_json_raises_dataset_error_naming_file(tmp_path, content, words):
    path = tmp_path / "annotations" / "person_keypoints_val.json"
    path.parent.mkdir()
    path.write_text(content)
    with pytest.raises(DatasetError) as e:
        load_persons(path)
    assert str(path) in str(e.value) and words in str(e.value)


def test_truncated_real_file(tmp_path):
    good = _write(tmp_path, [_ann(i) for i in range(1, 20)])
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="truncated"):
        load_persons(good)


@pytest.mark.parametrize("ann, words", [
    (_ann(1, kp=[1, 2, 2] * 16), "51 numbers"),
    (_ann(1, kp=["a"] * 51), "non-numeric"),
    ({**_ann(1), "image_id": 99}, "not in 'images'"),
    ({k: v for k, v in _ann(1).items() if k != "keypoints"}, "no 'keypoints'"),
    (_ann(1, bbox=(1, 2, 3)), "bbox"),
])
def test_bad_annotation_fields(tmp_path, ann, words):
    path = _write(tmp_path, [ann])
    with pytest.raises(DatasetError, match=words):
        load_persons(path)


def test_missing_file_and_uninferable_image_root(tmp_path):
    with pytest.raises(DatasetNotFound) as e:
        load_persons(tmp_path / "annotations" / "person_keypoints_val.json")
    assert isinstance(e.value, FileNotFoundError) and "fetch_coco.py" in str(e.value)
    other = tmp_path / "labels.json"
    other.write_text("{}")
    with pytest.raises(DatasetError, match="image_root"):
        load_persons(other)
    assert default_image_root("/x/annotations/person_keypoints_train2017.json") == \
        Path("/x/train2017")


def test_read_image_missing_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        read_image(tmp_path / "nope.jpg")


@needs_sample
def test_sample_json_copy_with_image_root(tmp_path):
    src = SAMPLE / "annotations" / "person_keypoints_val2017.json"
    dst = tmp_path / "whatever.json"
    shutil.copy(src, dst)
    persons = load_persons(dst, image_root=SAMPLE / "val2017")
    assert len(persons) == _direct_count(src) and persons[0].image_path.is_file()
