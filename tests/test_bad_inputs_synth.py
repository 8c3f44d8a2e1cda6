"""Hostile inputs to the people generator (reliability probe, issue 10): it deletes only what
it wrote (a manifest per split), never replaces a user's json, refuses counts it would truncate."""
from __future__ import annotations

import json

import pytest

from poselab.data import synth


def _tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def precious(tmp_path):
    """A user's folder: their own notes beside the generator's output folder."""
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "000000000001.jpg").write_bytes(b"a real photo")
    return tmp_path


@pytest.mark.parametrize("split", ["..", ".", "annotations", "../x", "a/b", "", "val\n"])
def test_split_names_that_escape_or_collide_are_refused(precious, split):
    before = _tree(precious)
    with pytest.raises(ValueError, match="split must be a plain name"):
        synth.generate(precious / "out", 1, 0, split=split, overwrite=True)
    assert _tree(precious) == before


def test_users_json_is_not_replaced_without_overwrite(tmp_path):
    path = tmp_path / "annotations" / "person_keypoints_train.json"
    path.parent.mkdir()
    path.write_text('{"mine": true}')
    with pytest.raises(FileExistsError, match="overwrite=True"):
        synth.generate(tmp_path, 1, 0)
    assert path.read_text() == '{"mine": true}'


def test_users_json_is_not_replaced_with_overwrite_either(tmp_path):
    path = tmp_path / "annotations" / "person_keypoints_train.json"
    path.parent.mkdir()
    path.write_text('{"mine": true}')
    with pytest.raises(FileExistsError, match="not written by poselab"):
        synth.generate(tmp_path, 1, 0, overwrite=True)
    assert path.read_text() == '{"mine": true}'


def test_edited_generated_json_is_kept(tmp_path):
    path = synth.generate(tmp_path, 2, 0)
    data = json.loads(path.read_text())
    data["annotations"][0]["keypoints"][0] += 1.0  # a user's correction
    path.write_text(json.dumps(data))
    before = _tree(tmp_path)
    with pytest.raises(FileExistsError, match="not the json the generator wrote"):
        synth.generate(tmp_path, 2, 0, overwrite=True)
    assert _tree(tmp_path) == before


def test_real_coco_folder_with_coco_style_names_is_not_deleted(tmp_path):
    images = tmp_path / "val2017"
    images.mkdir()
    (images / "000000000139.jpg").write_bytes(b"coco photo")
    before = _tree(tmp_path)
    with pytest.raises(FileExistsError, match="nothing was deleted"):
        synth.generate(tmp_path, 1, 0, split="val2017", overwrite=True)
    assert _tree(tmp_path) == before


def test_overwrite_replaces_exactly_its_own_files(tmp_path):
    synth.generate(tmp_path, 3, 0, split="val")
    (tmp_path / "annotations" / "person_keypoints_train.json").write_text("other split, mine")
    synth.generate(tmp_path, 2, 1, split="val", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "val").iterdir()) == [
        ".poselab-generated.json", "000000000001.jpg", "000000000002.jpg"]
    assert (tmp_path / "annotations" / "person_keypoints_train.json").read_text() == "other split, mine"


def test_interrupted_generation_is_removable(tmp_path):
    synth.generate(tmp_path, 3, 0)
    (tmp_path / "annotations" / "person_keypoints_train.json").unlink()  # died before the json
    (tmp_path / "train" / "000000000003.jpg").unlink()
    synth.generate(tmp_path, 1, 0, overwrite=True)
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == [
        ".poselab-generated.json", "000000000001.jpg"]


@pytest.mark.parametrize("kwargs, words", [
    ({"n_images": 2.9}, "n_images must be a whole number"),
    ({"n_images": "3"}, "n_images"),
    ({"n_images": True}, "n_images"),
    ({"seed": 1.5}, "seed must be a whole number"),
    ({"seed": -1}, "seed"),
    ({"workers": 0}, "workers"),
    ({"background_clutter": (0, 10 ** 6)}, "background_clutter"),
    ({"background_clutter": (2.5, 3)}, "background_clutter must hold whole numbers"),
    ({"image_size": (64.5, 64)}, "image_size must hold whole numbers"),
    ({"image_size": "256x320"}, "image_size must be a pair"),
    ({"persons_per_image": (1, float("nan"))}, "persons_per_image"),
    ({"scale_range": (float("nan"), 0.5)}, "scale_range"),
    ({"occlusion_prob": "0.3"}, "occlusion_prob"),
    ({"pose_jitter_deg": float("inf")}, "pose_jitter_deg"),
])
def test_counts_and_controls_are_not_truncated(tmp_path, kwargs, words):
    args = {"n_images": 1, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=words):
        synth.generate(tmp_path, args.pop("n_images"), args.pop("seed"), **args)
    assert not (tmp_path / "train").exists()


def test_out_dir_naming_a_file(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        synth.generate(target, 1, 0)
    assert target.read_text() == "x"


def test_default_cache_without_manifest_is_regenerated_only_if_it_holds_generator_images(tmp_path):
    root = tmp_path / "cache"
    json_path = synth.default_dataset("val", n_images=2, root=root, progress=False)
    (root / "val-n2" / synth.MANIFEST).unlink()  # a cache written before manifests existed
    spec = root / "annotations" / ".person_keypoints_val-n2.spec.json"
    spec.write_text("{}")  # stale spec: regenerate
    assert synth.default_dataset("val", n_images=2, root=root, progress=False) == json_path
    assert (root / "val-n2" / synth.MANIFEST).is_file()
    (root / "val-n2" / "my_notes.txt").write_text("mine")
    spec.write_text("{}")
    with pytest.raises(FileExistsError, match="my_notes.txt"):
        synth.default_dataset("val", n_images=2, root=root, progress=False)
    assert (root / "val-n2" / "my_notes.txt").read_text() == "mine"


def test_split_generated_before_manifests_is_replaced_via_its_json(tmp_path):
    """Legacy output (no manifest): the generator's own json lists what may be deleted."""
    synth.generate(tmp_path, 2, 0, split="val")
    (tmp_path / "val" / synth.MANIFEST).unlink()
    synth.generate(tmp_path, 1, 0, split="val", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "val").iterdir()) == [
        synth.MANIFEST, "000000000001.jpg"]
    (tmp_path / "val" / synth.MANIFEST).unlink()
    (tmp_path / "val" / "000000000777.jpg").write_bytes(b"mine, not in the json")
    with pytest.raises(FileExistsError, match="000000000777.jpg"):
        synth.generate(tmp_path, 1, 0, split="val", overwrite=True)
    assert (tmp_path / "val" / "000000000777.jpg").read_bytes() == b"mine, not in the json"
