"""Hostile inputs to the data layer (COCO json, images, crops): a clear error naming the file /
argument and what to do, or a correct finite result. Part of the reliability probe (issue 10)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from poselab.data import DatasetError, load_persons
from poselab.data.coco import read_image
from poselab.data.dataset import TopDownDataset
from poselab.data.transforms import affine_matrix, bbox_to_center_scale, warp_image


def _ann(id_, image_id=1, **kw):
    return {"id": id_, "image_id": image_id, "category_id": 1, "iscrowd": 0,
            "bbox": [5, 5, 20, 30], "area": 300.0, "keypoints": [10, 12, 2] * 17,
            "num_keypoints": 17, **kw}


def _img(id_=1, **kw):
    return {"id": id_, "file_name": "a.jpg", "height": 50, "width": 40, **kw}


def _write(tmp_path, anns, images=None):
    path = tmp_path / "annotations" / "person_keypoints_val.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"images": images if images is not None else [_img()],
                                "annotations": anns, "categories": [{"id": 1, "name": "person"}]}))
    return path


def _jpeg(path, size=(40, 50), colour=(120, 60, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format="JPEG", quality=95)
    return path


# ------------------------------------------------------------------ json: ids, fields, paths

@pytest.mark.parametrize("anns, images, words", [
    ([_ann(7), _ann(7), _ann(9), _ann(9)], None, "duplicate annotation id(s) 7, 9"),
    ([_ann(1)], [_img(3), {**_img(3), "file_name": "b.jpg"}], "duplicate image id(s) 3"),
    ([_ann(1, image_id=1.7)], None, "'image_id' must be an integer"),
    ([_ann(1, image_id="1")], None, "'image_id' must be an integer"),
    ([_ann(2.5)], None, "'id' must be an integer"),
    ([_ann(1)], [_img(1.5)], "'id' must be an integer"),
    ([_ann(1, area="big")], None, "'area' must be a number"),
    ([_ann(1, iscrowd="0")], None, "'iscrowd' must be a number"),
    ([_ann(1, category_id="person")], None, "'category_id' must be a number"),
    ([_ann(1)], [_img(height="abc")], "'height' must be a positive integer"),
    ([_ann(1)], [_img(width=0)], "'width' must be a positive integer"),
    ([_ann(1)], [_img(width=40.5)], "'width' must be a positive integer"),
    ([_ann(1)], [_img(file_name="../../x.jpg")], "no absolute path, no '..'"),
    ([_ann(1)], [_img(file_name="/etc/hostname")], "no absolute path, no '..'"),
    ([_ann(1)], [_img(file_name="sub/../../x.jpg")], "no absolute path, no '..'"),
    ([_ann(1)], [_img(file_name="")], "file_name"),
    ([_ann(1)], [_img(file_name=7)], "file_name"),
    ([_ann(1, bbox=[0, 0, 1e30, 1e30])], None, "far outside"),
    ([_ann(1, bbox=[1e9, 5, 20, 30])], None, "far outside"),
    # COCO's v is 0, 1 or 2: a 7, a −1 or a 0.5 used to load (a 7 counted as visible)
    ([_ann(1, keypoints=[10, 10, 7] * 17)], None, "visibility flags [7.0]"),
    ([_ann(1, keypoints=[10, 10, 2] * 16 + [10, 10, -1])], None, "visibility flags [-1.0]"),
    ([_ann(1, keypoints=[10, 10, 0.5] * 17)], None, "visibility flags [0.5]"),
])
def test_bad_json_fields_name_the_file_and_the_field(tmp_path, anns, images, words):
    path = _write(tmp_path, anns, images)
    with pytest.raises(DatasetError) as e:
        load_persons(path)
    assert words in str(e.value) and str(path) in str(e.value)


def test_duplicate_ids_are_not_silently_collapsed(tmp_path):
    """The probe's case: 3 copies of one id used to give 3 copies of the last annotation."""
    anns = [_ann(5, bbox=[5, 5, 20, 30]), _ann(5, bbox=[1, 1, 10, 10]), _ann(5, bbox=[2, 2, 8, 8])]
    with pytest.raises(DatasetError, match="duplicate annotation id.* 5 "):
        load_persons(_write(tmp_path, anns))


def test_null_or_missing_area_falls_back_to_box_area(tmp_path):
    no_area = {k: v for k, v in _ann(2).items() if k != "area"}
    persons = load_persons(_write(tmp_path, [_ann(1, area=None), no_area]))
    assert [p.area for p in persons] == [600.0, 600.0]


def test_subfolder_file_name_is_allowed(tmp_path):
    (p,) = load_persons(_write(tmp_path, [_ann(1)], [_img(file_name="sub/a.jpg")]))
    assert p.image_path == tmp_path / "val" / "sub" / "a.jpg"


def test_nan_keypoint_in_json_refused(tmp_path):
    path = tmp_path / "annotations" / "person_keypoints_val.json"
    path.parent.mkdir()
    kp = ", ".join(["NaN, 1, 2"] + ["1, 1, 2"] * 16)
    path.write_text('{"images": [{"id": 1, "file_name": "a.jpg", "height": 50, "width": 40}], '
                    '"annotations": [{"id": 1, "image_id": 1, "bbox": [1, 1, 9, 9], '
                    f'"keypoints": [{kp}]}}]}}')
    with pytest.raises(DatasetError, match="non-finite"):
        load_persons(path)


# ------------------------------------------------------------------ image files

def test_16_bit_png_is_scaled_not_clipped_to_white(tmp_path):
    values = (np.arange(50 * 40).reshape(50, 40) * 30).astype(np.uint16)  # 0 .. 59 970
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    rgb = np.asarray(read_image(path))
    assert rgb.shape == (50, 40, 3) and rgb.dtype == np.uint8
    expected = np.rint(values / 257.0)
    np.testing.assert_array_equal(rgb[..., 0], expected)
    assert rgb.max() < 255 and len(np.unique(rgb)) > 100  # was: everything above 255 -> white


def test_truncated_jpeg_error_names_the_path(tmp_path):
    good = _jpeg(tmp_path / "val" / "a.jpg")
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError) as e:
        read_image(good)
    assert str(good) in str(e.value) and "again" in str(e.value)


def test_text_file_named_jpg_error_names_the_path(tmp_path):
    bad = tmp_path / "a.jpg"
    bad.write_text("not an image")
    with pytest.raises(DatasetError, match="a.jpg cannot be decoded"):
        read_image(bad)


def test_json_size_disagreeing_with_the_file_is_refused_when_cropping(tmp_path):
    _jpeg(tmp_path / "val" / "a.jpg", size=(64, 50))  # file 64 wide, json says 40
    ds = TopDownDataset(_write(tmp_path, [_ann(1)]), input_size=(32, 24))
    with pytest.raises(DatasetError) as e:
        ds[0]
    assert "64x50" in str(e.value) and "40x50" in str(e.value) and "a.jpg" in str(e.value)


def test_consistent_image_crops_fine(tmp_path):
    _jpeg(tmp_path / "val" / "a.jpg")
    item = TopDownDataset(_write(tmp_path, [_ann(1)]), input_size=(32, 24))[0]
    assert item["image"].shape == (3, 32, 24) and bool(item["image"].isfinite().all())


# ------------------------------------------------------------------ dataset arguments, geometry

@pytest.mark.parametrize("kwargs, words", [
    ({"input_size": (64,)}, "input_size"),
    ({"input_size": (64.5, 48)}, "input_size"),
    ({"input_size": "64x48"}, "input_size"),
    ({"input_size": (0, 48)}, "input_size"),
    ({"rotation": float("nan")}, "rotation"),
    ({"rotation": 1e9}, "rotation"),
    ({"flip_prob": "0.5"}, "flip_prob"),
    ({"flip_prob": float("nan")}, "flip_prob"),
    ({"scale_jitter": float("inf")}, "scale_jitter"),
    ({"padding": 0}, "padding"),
    ({"target_fn": "gaussian"}, "target_fn"),
])
def test_dataset_arguments(tmp_path, kwargs, words):
    path = _write(tmp_path, [_ann(1)])
    with pytest.raises(ValueError, match=words):
        TopDownDataset(path, **kwargs)


def test_nan_rotation_fails_early_naming_the_argument():
    c, s = bbox_to_center_scale([5, 5, 20, 30], (64, 48))
    with pytest.raises(ValueError, match="rotation_deg"):
        affine_matrix(c, s, (64, 48), rotation_deg=float("nan"))


def test_huge_box_fails_early_with_a_readable_message():
    c, s = bbox_to_center_scale([0, 0, 1e30, 1e30], (64, 48))
    with pytest.raises(ValueError, match="bbox/scale"):
        affine_matrix(c, s, (64, 48))


def test_warp_image_accepts_a_normal_crop():
    img = np.full((50, 40, 3), 200, np.uint8)
    c, s = bbox_to_center_scale([5, 5, 20, 30], (64, 48))
    crop = warp_image(img, affine_matrix(c, s, (64, 48), rotation_deg=30.0), (64, 48))
    assert crop.shape == (64, 48, 3) and crop.max() == 200


@pytest.mark.parametrize("mode", ["RGBA", "P", "LA", "1", "L"])
def test_other_png_modes_decode_to_rgb(tmp_path, mode):
    path = tmp_path / f"{mode}.png"
    Image.new(mode, (8, 6), 1).save(path)
    rgb = read_image(path)
    assert rgb.mode == "RGB" and rgb.size == (8, 6)


# ------------------------------------------------------------------ found by our own probe

@pytest.mark.parametrize("data", [None, 123, 4.5])
def test_resolve_dataset_wrong_type(data):
    from poselab.data import resolve_dataset
    with pytest.raises(TypeError, match="data must be 'synth', 'coco_sample'"):
        resolve_dataset(data)


@pytest.mark.parametrize("split", ["../x", "a/b", "", ".."])
def test_resolve_dataset_split_outside_the_folder(tmp_path, split):
    from poselab.data import resolve_dataset
    with pytest.raises(ValueError, match="split must be a split name"):
        resolve_dataset(tmp_path, split=split)


@pytest.mark.parametrize("value", [1.5, "2", -1, True])
def test_min_keypoints_not_truncated(tmp_path, value):
    with pytest.raises(ValueError, match="min_keypoints must be a whole number"):
        load_persons(_write(tmp_path, [_ann(1)]), min_keypoints=value)


@pytest.mark.parametrize("kwargs, words", [
    ({"batch_size": 2.5}, "batch_size"), ({"batch_size": 0}, "batch_size"),
    ({"seed": 1.5}, "seed"), ({"num_workers": -1}, "num_workers"),
])
def test_make_loader_counts_not_truncated(tmp_path, kwargs, words):
    from poselab.data.dataset import make_loader
    ds = TopDownDataset(_write(tmp_path, [_ann(1)]), input_size=(32, 24))
    args = {"batch_size": 2, "shuffle": True, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=words):
        make_loader(ds, **args)


def test_set_epoch_and_seed_not_truncated(tmp_path):
    path = _write(tmp_path, [_ann(1)])
    with pytest.raises(ValueError, match="seed"):
        TopDownDataset(path, seed=0.5)
    ds = TopDownDataset(path)
    with pytest.raises(ValueError, match="epoch"):
        ds.set_epoch(1.5)


@pytest.mark.parametrize("fn", ["crop_to_image", "image_to_crop"])
@pytest.mark.parametrize("scale", [0.0, float("nan"), -5.0])
def test_crop_mappings_refuse_degenerate_windows(fn, scale):
    import torch
    from poselab.data import transforms
    points = np.random.default_rng(0).uniform(0, 40, (2, 17, 2))
    for as_array in (np.asarray, torch.as_tensor):
        with pytest.raises(ValueError, match="scale finite and > 0"):
            getattr(transforms, fn)(as_array(points), as_array(np.zeros((2, 2))),
                                    as_array(np.full((2, 2), scale)), (64, 48))


@pytest.mark.parametrize("width", [float("nan"), "48", 0, 47.5])
def test_flip_keypoints_width_checked(width):
    from poselab.data.transforms import flip_keypoints
    with pytest.raises(ValueError, match="width must be the image width"):
        flip_keypoints(np.zeros((17, 3)), width)


def test_flip_keypoints_accepts_nested_lists():
    from poselab.data.transforms import flip_keypoints
    kp = np.random.default_rng(1).uniform(0, 40, (17, 2))
    np.testing.assert_array_equal(flip_keypoints(kp.tolist(), 48), flip_keypoints(kp, 48))


def test_warp_image_refuses_an_absurd_output_size():
    """(100000, 100000) used to allocate 30 GB (our probe process was OOM-killed)."""
    with pytest.raises(ValueError, match="output_size"):
        warp_image(np.zeros((10, 10, 3), np.uint8), np.eye(2, 3), (100000, 100000))
