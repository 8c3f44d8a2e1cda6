"""Generated people: determinism, label semantics, controls, caching, the pose bank."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

from poselab.data import load_persons, synth
from poselab.data.pose_bank import build_pose_bank, load_pose_bank
from poselab.skeleton import KEYPOINT_NAMES, OKS_SIGMAS

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "coco_sample"
needs_sample = pytest.mark.skipif(not SAMPLE.is_dir(), reason="../shared/coco_sample not present")


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def test_same_seed_identical_bytes_different_seed_differs(tmp_path):
    a = synth.generate(tmp_path / "a", 6, seed=7, split="val")
    b = synth.generate(tmp_path / "b", 6, seed=7, split="val")
    c = synth.generate(tmp_path / "c", 6, seed=8, split="val")
    fa, fb, fc = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert fa == fb and len(fa) == 8  # 6 images, the json and the manifest (val/.poselab-generated.json)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert all(fa[k] != fc[k] for k in fa if k.endswith(".jpg"))
    assert a == tmp_path / "a" / "annotations" / "person_keypoints_val.json"
    assert (tmp_path / "a" / "val" / "000000000001.jpg").is_file()


def test_workers_do_not_change_output(tmp_path):
    synth.generate(tmp_path / "a", 20, seed=2, workers=1)
    synth.generate(tmp_path / "b", 20, seed=2, workers=2)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


def test_prefix_property(tmp_path):
    small = json.loads(synth.generate(tmp_path / "s", 3, seed=1).read_text())
    big = json.loads(synth.generate(tmp_path / "b", 5, seed=1).read_text())
    assert big["images"][:3] == small["images"]
    assert big["annotations"][: len(small["annotations"])] == small["annotations"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    path = synth.generate(out, 40, seed=3, split="train")
    return path, json.loads(path.read_text())


def test_coco_structure_and_label_semantics(generated):
    path, d = generated
    h, w = synth.DEFAULT_CONTROLS["image_size"]
    anns = d["annotations"]
    assert len({a["id"] for a in anns}) == len(anns)
    assert len({i["id"] for i in d["images"]}) == len(d["images"]) == 40
    assert d["categories"][0]["keypoints"] == list(KEYPOINT_NAMES)
    per_image = np.bincount([a["image_id"] for a in anns])
    lo, hi = synth.DEFAULT_CONTROLS["persons_per_image"]
    assert per_image[1:].max() <= hi and per_image[1:].min() >= 1
    for a in anns:
        assert a["category_id"] == 1 and a["iscrowd"] == 0
        kp = np.array(a["keypoints"], float).reshape(17, 3)
        kt = np.array(a["keypoints_true"], float).reshape(17, 3)
        assert a["num_keypoints"] == int((kp[:, 2] > 0).sum())
        np.testing.assert_array_equal(kp[:, 2], kt[:, 2])
        inside = (kt[:, 0] >= -0.5) & (kt[:, 0] < w - 0.5) & (kt[:, 1] >= -0.5) & (kt[:, 1] < h - 0.5)
        np.testing.assert_array_equal(kp[:, 2] > 0, inside)   # v = 0 exactly when outside
        assert (kp[~inside, :2] == 0).all()
        np.testing.assert_array_equal(kp[inside, :2], kt[inside, :2])  # sigma_true = 0
        x, y, bw, bh = a["bbox"]
        assert bw > 0 and bh > 0 and x >= -0.5 and y >= -0.5 and x + bw <= w - 0.5 + 1e-6
        assert 0 < a["area"] <= synth.AREA_SCALE * bw * bh + 1e-6
        # joint centres lie on the drawn silhouette, hence inside its tight box
        vis = kt[inside]
        assert (vis[:, 0] >= x - 0.51).all() and (vis[:, 0] <= x + bw + 0.01).all()
        assert (vis[:, 1] >= y - 0.51).all() and (vis[:, 1] <= y + bh + 0.01).all()
    flags = np.concatenate([np.array(a["keypoints"]).reshape(17, 3)[:, 2] for a in anns])
    assert (flags == 1).any() and (flags == 2).mean() > 0.6


def test_loader_and_pycocotools_read_it(generated):
    path, d = generated
    persons = load_persons(path)
    assert len(persons) == sum(1 for a in d["annotations"] if a["num_keypoints"] > 0)
    assert all(p.image_path.is_file() and p.keypoints_true is not None for p in persons)
    import contextlib
    import io
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(path))
        dets = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"],
                 "score": 1.0} for a in d["annotations"] if a["num_keypoints"] > 0]
        ev = COCOeval(gt, gt.loadRes(dets), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)


def test_occlusion_only_from_others(tmp_path):
    # one person, no occluder: nothing can cover a joint, so no v = 1
    lone = json.loads(synth.generate(tmp_path / "a", 12, 0, persons_per_image=(1, 1),
                                     occlusion_prob=0.0).read_text())
    flags = np.concatenate([np.array(a["keypoints"]).reshape(17, 3)[:, 2] for a in lone["annotations"]])
    assert not (flags == 1).any()
    occ = json.loads(synth.generate(tmp_path / "b", 12, 0, persons_per_image=(1, 1),
                                    occlusion_prob=1.0).read_text())
    flags = np.concatenate([np.array(a["keypoints"]).reshape(17, 3)[:, 2] for a in occ["annotations"]])
    assert (flags == 1).sum() >= 6


def test_truncation_control(tmp_path):
    kw = dict(persons_per_image=(1, 1), scale_range=(0.3, 0.4), occlusion_prob=0.0)
    none = json.loads(synth.generate(tmp_path / "a", 10, 0, truncation_prob=0.0, **kw).read_text())
    assert all(a["num_keypoints"] == 17 for a in none["annotations"])
    full = json.loads(synth.generate(tmp_path / "b", 10, 0, truncation_prob=1.0, **kw).read_text())
    assert sum(a["num_keypoints"] < 17 for a in full["annotations"]) >= 7


def test_sigma_true_noise_model(tmp_path):
    # E[OKS_k(label, truth)] = 1 / (1 + sigma_true^2) for the documented noise model
    sig = 0.5
    clean = synth.generate(tmp_path / "a", 30, 4, sigma_true=0.0)
    noisy = synth.generate(tmp_path / "b", 30, 4, sigma_true=sig)
    def jpgs(folder):  # the manifest holds the json's hash, which differs with the labels
        return {k: v for k, v in _files(folder).items() if k.endswith(".jpg")}
    assert jpgs(tmp_path / "a" / "train") == jpgs(tmp_path / "b" / "train")  # same images
    assert len(jpgs(tmp_path / "a" / "train")) == 30
    oks = []
    for a in json.loads(noisy.read_text())["annotations"]:
        kp = np.array(a["keypoints"]).reshape(17, 3)
        kt = np.array(a["keypoints_true"]).reshape(17, 3)
        for k in range(17):
            if kp[k, 2] > 0:
                d2 = (kp[k, 0] - kt[k, 0]) ** 2 + (kp[k, 1] - kt[k, 1]) ** 2
                oks.append(math.exp(-d2 / (2 * a["area"] * (2 * OKS_SIGMAS[k]) ** 2)))
    oks = np.array(oks)
    expected = 1 / (1 + sig ** 2)
    assert abs(oks.mean() - expected) < 4 * oks.std() / math.sqrt(len(oks)) + 0.01


def test_default_persons_per_image_range(tmp_path):
    """Every image holds 1 or 2 persons (DEFAULT_CONTROLS) and both counts occur. (The CPU-time
    budget of the generator is a benchmark, not a unit test.)"""
    path = synth.generate(tmp_path, 40, 0)
    d = json.loads(path.read_text())
    per_image = {im["id"]: 0 for im in d["images"]}
    for a in d["annotations"]:
        per_image[a["image_id"]] += 1
    assert set(per_image.values()) == {1, 2}


@pytest.mark.parametrize("bad", [dict(occlusion_prob=1.5), dict(persons_per_image=(0, 2)),
                                 dict(scale_range=(0.5, 0.2)), dict(sigma_true=-1),
                                 dict(image_size=(10, 10)), dict(colour="red")])
def test_bad_controls(tmp_path, bad):
    with pytest.raises(ValueError):
        synth.generate(tmp_path, 2, 0, **bad)


def test_existing_folder_needs_overwrite(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "mine.jpg").write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite"):
        synth.generate(tmp_path, 1, 0)
    assert (tmp_path / "train" / "mine.jpg").read_bytes() == b"precious"
    # overwrite=True deletes only what the generator wrote: a user's file makes it refuse
    with pytest.raises(FileExistsError, match="did not write|not written"):
        synth.generate(tmp_path, 1, 0, overwrite=True)
    assert (tmp_path / "train" / "mine.jpg").read_bytes() == b"precious"
    (tmp_path / "train" / "mine.jpg").unlink()
    synth.generate(tmp_path, 2, 0)
    synth.generate(tmp_path, 1, 0, overwrite=True)  # its own output is replaced
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == [
        ".poselab-generated.json", "000000000001.jpg"]


def test_bad_split_and_count(tmp_path):
    with pytest.raises(ValueError):
        synth.generate(tmp_path, 0, 0)
    with pytest.raises(ValueError):
        synth.generate(tmp_path, 1, 0, split="../x")


def test_default_dataset_cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    train = synth.default_dataset("train", n_images=4, root=root, progress=False)
    val = synth.default_dataset("val", n_images=4, root=root, progress=False)
    assert train == root / "annotations" / "person_keypoints_train-n4.json"
    assert (root / "train-n4").is_dir() and (root / "val-n4").is_dir()
    assert json.loads(train.read_text())["info"]["seed"] != json.loads(val.read_text())["info"]["seed"]
    assert not list(root.glob(".tmp-*"))
    before = train.read_bytes()

    def boom(*a, **k):
        raise AssertionError("regenerated although the cache is complete")
    monkeypatch.setattr(synth, "generate", boom)
    assert synth.default_dataset("train", n_images=4, root=root) == train
    monkeypatch.undo()
    # an interrupted generation (images but no json) is redone, not reused
    train.unlink()
    again = synth.default_dataset("train", n_images=4, root=root, progress=False)
    assert again.read_bytes() == before
    # a spec mismatch (e.g. another generator version) regenerates too
    spec = root / "annotations" / ".person_keypoints_train-n4.spec.json"
    spec.write_text("{}")
    assert synth.default_dataset("train", n_images=4, root=root, progress=False).read_bytes() == before


def test_default_root_env(monkeypatch, tmp_path):
    monkeypatch.setenv("POSELAB_DATA_DIR", str(tmp_path))
    assert synth.default_root() == tmp_path / "synth"
    assert synth.default_root(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("POSELAB_DATA_DIR")
    repo = Path(synth.__file__).resolve().parents[2]
    assert synth.default_root() in (repo / "data" / "synth",
                                    Path.home() / ".cache" / "poselab" / "synth")


def test_pose_bank_shape_and_human_proportions():
    poses, vis = load_pose_bank()
    assert poses.shape[1:] == (17, 2) and 80 <= len(poses) <= 200 and vis.shape == poses.shape[:2]
    torso = np.linalg.norm(0.5 * (poses[:, 5] + poses[:, 6]) - 0.5 * (poses[:, 11] + poses[:, 12]), axis=1)
    np.testing.assert_allclose(torso, 1.0, atol=0.01)
    # head above hips for most poses (image y points down)
    assert np.mean(poses[:, 0, 1] < poses[:, 11, 1]) > 0.9


@needs_sample
def test_pose_bank_table_is_built_from_sample_and_keeps_real_geometry():
    bank = build_pose_bank(SAMPLE)
    poses, vis = load_pose_bank()
    np.testing.assert_allclose(poses, bank["poses"], atol=5.01e-4)
    np.testing.assert_array_equal(vis, bank["visibility"])
    # labelled joints: distances in torso units equal those of the source annotation
    anns = {}
    for f in sorted((SAMPLE / "annotations").glob("*.json")):
        for a in json.loads(f.read_text())["annotations"]:
            anns[f"{f.name}:{a['id']}"] = np.array(a["keypoints"], float).reshape(17, 3)
    for n in range(0, len(poses), 7):
        src = anns[bank["source"][n]]
        lab = np.flatnonzero(src[:, 2] > 0)
        t_src = np.linalg.norm(0.5 * (src[5, :2] + src[6, :2]) - 0.5 * (src[11, :2] + src[12, :2]))
        for i in lab[:6]:
            for j in lab[-6:]:
                d_src = np.linalg.norm(src[i, :2] - src[j, :2]) / t_src
                d_bank = np.linalg.norm(poses[n, i] - poses[n, j])
                assert d_bank == pytest.approx(d_src, abs=2e-3)
