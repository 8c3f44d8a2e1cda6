"""TopDownDataset and make_loader: crops, visibility flags, augmentation determinism, errors."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from poselab.data import DatasetError, TopDownDataset, crop_to_image, make_loader
from poselab.data.dataset import IMAGENET_MEAN, IMAGENET_STD, denormalize_image
from poselab.skeleton import KEYPOINT_NAMES

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "coco_sample"
needs_sample = pytest.mark.skipif(not SAMPLE.is_dir(), reason="../shared/coco_sample not present")


@pytest.fixture()
def tiny(tmp_path):
    """Two images with hand-placed people (keypoints inside, outside the box, unlabelled)."""
    rng = np.random.default_rng(0)
    (tmp_path / "val").mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 255, (80, 100, 3), dtype=np.uint8)).save(tmp_path / "val" / name)
    kp = np.zeros((17, 3))
    kp[:, 0] = np.linspace(30, 50, 17)
    kp[:, 1] = np.linspace(20, 60, 17)
    kp[:, 2] = 2
    kp[3] = [0, 0, 0]            # unlabelled
    kp[4, 2] = 1                 # occluded
    kp[16, :2] = [99, 79]        # labelled but far outside the padded box (bottom-right corner)
    anns = [{"id": 11, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [28, 18, 24, 44],
             "area": 700.0, "keypoints": kp.reshape(-1).tolist(), "num_keypoints": 16},
            {"id": 12, "image_id": 2, "category_id": 1, "iscrowd": 0, "bbox": [10, 10, 40, 30],
             "area": 900.0, "keypoints": kp.reshape(-1).tolist(), "num_keypoints": 16,
             "keypoints_true": kp.reshape(-1).tolist()}]
    images = [{"id": 1, "file_name": "a.png", "height": 80, "width": 100},
              {"id": 2, "file_name": "b.png", "height": 80, "width": 100}]
    (tmp_path / "annotations").mkdir()
    path = tmp_path / "annotations" / "person_keypoints_val.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": []}))
    return path, kp


def test_item_contents_and_visibility(tiny):
    path, kp = tiny
    ds = TopDownDataset(path, input_size=(64, 48))
    item = ds[0]
    assert item["image"].shape == (3, 64, 48) and item["image"].dtype == torch.float32
    assert item["keypoints"].shape == (17, 2) and item["keypoints"].dtype == torch.float32
    assert item["visible"].shape == (17,) and item["v"].tolist() == kp[:, 2].tolist()
    assert item["image_id"] == 1 and item["ann_id"] == 11 and item["area"] == 700.0
    # independent crop mapping: window = box padded 1.25 with aspect 48/64
    x, y, w, h = 28, 18, 24, 44
    cx, cy = x + w / 2, y + h / 2
    sh = max(h, w * 64 / 48) * 1.25
    sw = sh * 48 / 64
    np.testing.assert_allclose(item["center"].numpy(), [cx, cy], atol=1e-5)
    np.testing.assert_allclose(item["scale"].numpy(), [sw, sh], atol=1e-4)
    expect = np.stack([(kp[:, 0] - cx) * 48 / sw + 23.5, (kp[:, 1] - cy) * 64 / sh + 31.5], 1)
    for k in range(17):
        labelled = kp[k, 2] > 0
        inside = -0.5 <= expect[k, 0] < 47.5 and -0.5 <= expect[k, 1] < 63.5
        assert item["visible"][k] == float(labelled and inside), KEYPOINT_NAMES[k]
        if labelled:
            np.testing.assert_allclose(item["keypoints"][k].numpy(), expect[k], atol=1e-4)
        else:
            assert item["keypoints"][k].tolist() == [0.0, 0.0]
    assert item["visible"][4] == 1.0 and item["visible"][3] == 0.0 and item["visible"][16] == 0.0
    # the crop pixels are the normalised warp of the image: at 1.25-padding the crop pixel
    # under joint 8 holds the bilinear value of the image around the joint
    img = np.asarray(Image.open(path.parent.parent / "val" / "a.png")).astype(float)
    crop = denormalize_image(item["image"]).astype(float)
    qx, qy = int(round(expect[8, 0])), int(round(expect[8, 1]))
    px = cx + (qx - 23.5) * sw / 48
    py = cy + (qy - 31.5) * sh / 64
    x0, y0 = int(np.floor(px)), int(np.floor(py))
    fx, fy = px - x0, py - y0
    ref = ((1 - fx) * (1 - fy) * img[y0, x0] + fx * (1 - fy) * img[y0, x0 + 1]
           + (1 - fx) * fy * img[y0 + 1, x0] + fx * fy * img[y0 + 1, x0 + 1])
    assert np.abs(crop[qy, qx] - ref).max() <= 1.5
    # back-mapped keypoints equal the originals
    back = crop_to_image(item["keypoints"].double().numpy(), item["center"].double().numpy(),
                         item["scale"].double().numpy(), (64, 48))
    np.testing.assert_allclose(back[kp[:, 2] > 0], kp[kp[:, 2] > 0, :2], atol=2e-4)
    assert "keypoints_true" not in item and "keypoints_true" in ds[1]


def test_normalisation_constants_applied(tiny):
    path, _ = tiny
    item = TopDownDataset(path, input_size=(32, 24))[1]
    raw = item["image"].numpy().transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
    assert raw.min() >= -1e-6 and raw.max() <= 1 + 1e-6


def test_flipped_item_mirrors_crop_and_swaps_joints(tiny):
    path, kp = tiny
    plain = TopDownDataset(path, input_size=(64, 48))[0]
    flipped_ds = TopDownDataset(path, input_size=(64, 48), train=True, flip_prob=1.0,
                                scale_jitter=0.0, rotation=0.0)
    flipped = flipped_ds[0]
    assert flipped["flipped"] is True and flipped["rotation"] == 0.0
    a = denormalize_image(plain["image"]).astype(int)
    b = denormalize_image(flipped["image"]).astype(int)
    assert np.abs(b - a[:, ::-1]).max() <= 1
    names = list(KEYPOINT_NAMES)
    for k, name in enumerate(names):
        partner = names.index(name.replace("left", "@").replace("right", "left").replace("@", "right"))
        if kp[partner, 2] > 0:
            assert flipped["keypoints"][k, 0].item() == pytest.approx(
                47 - plain["keypoints"][partner, 0].item(), abs=1e-4)
            assert flipped["keypoints"][k, 1].item() == pytest.approx(
                plain["keypoints"][partner, 1].item(), abs=1e-4)
        assert flipped["v"][k] == plain["v"][partner]
        assert flipped["visible"][k] == plain["visible"][partner]


def test_augmentation_deterministic_per_seed_epoch_index(tiny):
    path, _ = tiny
    make = lambda seed: TopDownDataset(path, train=True, seed=seed)  # noqa: E731
    a, b = make(0), make(0)
    for e in range(3):
        a.set_epoch(e)
        b.set_epoch(e)
        for i in range(2):
            x, y = a[i], b[i]
            assert torch.equal(x["image"], y["image"]) and torch.equal(x["keypoints"], y["keypoints"])
    draws = set()
    for e in range(20):
        a.set_epoch(e)
        draws.add(a.augmentation(0))
    assert len(draws) >= 15  # clipping can repeat a boundary value; draws still vary
    assert make(1).augmentation(0) != make(0).augmentation(0)
    factors = np.array([d[0] for d in draws])
    rots = np.array([d[1] for d in draws])
    assert factors.min() >= 0.75 and factors.max() <= 1.25 and np.abs(rots).max() <= 60
    assert TopDownDataset(path, train=False).augmentation(0) == (1.0, 0.0, False)


def test_target_fn_and_loader(tiny):
    path, _ = tiny
    calls = []

    def target_fn(keypoints, visible):
        calls.append((keypoints.shape, visible.shape))
        return {"target": keypoints * visible[:, None]}

    ds = TopDownDataset(path, target_fn=target_fn)
    batch = next(iter(make_loader(ds, batch_size=2, shuffle=False, seed=0)))
    assert batch["target"].shape == (2, 17, 2) and batch["image"].shape == (2, 3, 64, 48)
    assert calls[0] == (torch.Size([17, 2]), torch.Size([17]))
    orders = [[int(i) for b in make_loader(ds, 1, True, seed=s) for i in b["index"]] for s in (5, 5)]
    assert orders[0] == orders[1]
    with pytest.raises(ValueError, match="collide"):
        TopDownDataset(path, target_fn=lambda k, v: {"image": 0})[0]


def test_empty_dataset_and_missing_image(tiny, tmp_path):
    path, _ = tiny
    with pytest.raises(DatasetError, match="no person"):
        TopDownDataset(path, min_keypoints=17)
    empty = tmp_path / "annotations" / "person_keypoints_empty.json"
    empty.parent.mkdir(exist_ok=True)
    empty.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    with pytest.raises(DatasetError, match="no person"):
        TopDownDataset(empty)
    ds = TopDownDataset(path, image_root=tmp_path / "elsewhere")
    with pytest.raises(FileNotFoundError, match="elsewhere"):
        ds[0]
    with pytest.raises(IndexError):
        TopDownDataset(path)[5]
    with pytest.raises(ValueError):
        TopDownDataset(path, flip_prob=1.5)


@needs_sample
def test_sample_crops_map_back_to_image():
    ds = TopDownDataset(SAMPLE / "annotations" / "person_keypoints_val2017.json", cache_images=False)
    assert len(ds) == 166
    for i in (0, 50, 165):
        item = ds[i]
        p = ds.persons[i]
        back = crop_to_image(item["keypoints"].double().numpy(), item["center"].double().numpy(),
                             item["scale"].double().numpy(), (64, 48))
        lab = p.keypoints[:, 2] > 0
        np.testing.assert_allclose(back[lab], p.keypoints[lab, :2], atol=5e-3)
        # every labelled joint lies inside the padded box crop except ones outside the box itself
        assert item["visible"].sum() <= lab.sum()
