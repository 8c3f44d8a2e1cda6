"""resolve_dataset / find_coco_sample: names, folders, json paths, and the errors."""
import json
from pathlib import Path

import pytest

from poselab.data import DatasetNotFound, find_coco_sample, resolve_dataset
from poselab.data import synth

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "coco_sample"
needs_sample = pytest.mark.skipif(not SAMPLE.is_dir(), reason="../shared/coco_sample not present")


def _coco_folder(root, names=("val",)):
    (root / "annotations").mkdir(parents=True)
    for n in names:
        (root / "annotations" / f"person_keypoints_{n}.json").write_text(
            json.dumps({"images": [], "annotations": []}))
    return root


@needs_sample
def test_coco_sample_found_and_resolved(monkeypatch):
    monkeypatch.delenv("POSELAB_COCO_SAMPLE", raising=False)
    assert find_coco_sample().resolve() == SAMPLE.resolve()
    assert resolve_dataset("coco_sample").resolve() == \
        (SAMPLE / "annotations" / "person_keypoints_val2017.json").resolve()
    assert resolve_dataset("coco_sample", "train").name == "person_keypoints_train2017.json"


def test_env_overrides_and_bad_env_warns(monkeypatch, tmp_path):
    folder = _coco_folder(tmp_path / "mine", ("val2017",))
    monkeypatch.setenv("POSELAB_COCO_SAMPLE", str(folder))
    assert find_coco_sample() == folder
    assert resolve_dataset("coco_sample") == folder / "annotations" / "person_keypoints_val2017.json"
    monkeypatch.setenv("POSELAB_COCO_SAMPLE", str(tmp_path / "nothing"))
    with pytest.warns(UserWarning, match="POSELAB_COCO_SAMPLE"):
        found = find_coco_sample()
    if SAMPLE.is_dir():
        assert found is not None


def test_missing_sample_message(monkeypatch, tmp_path):
    import poselab.data.registry as reg
    monkeypatch.setattr(reg, "find_coco_sample", lambda: None)
    with pytest.raises(DatasetNotFound, match="synth"):
        reg.resolve_dataset("coco_sample")


def test_folder_and_json_paths(tmp_path):
    folder = _coco_folder(tmp_path / "d", ("val", "train2017"))
    assert resolve_dataset(folder) == folder / "annotations" / "person_keypoints_val.json"
    assert resolve_dataset(str(folder), "train") == \
        folder / "annotations" / "person_keypoints_train2017.json"
    js = folder / "annotations" / "person_keypoints_val.json"
    assert resolve_dataset(js) == js


@pytest.mark.parametrize("where", ["nofolder", "empty", "nojson.json", "wrongsplit"])
def test_not_found_errors_say_how_to_get_data(tmp_path, where):
    (tmp_path / "empty").mkdir()
    _coco_folder(tmp_path / "wrongsplit", ("train",))
    with pytest.raises(DatasetNotFound) as e:
        resolve_dataset(tmp_path / where, "val")
    msg = str(e.value)
    assert isinstance(e.value, FileNotFoundError)
    assert "data_scripts/fetch_coco.py --split val2017 --max-images 200 --out DIR" in msg
    assert "data='synth'" in msg and str(tmp_path / where) in msg


def test_synth_name_uses_default_dataset(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(synth, "default_dataset", lambda split: seen.append(split) or tmp_path)
    assert resolve_dataset("synth", "train") == tmp_path
    assert resolve_dataset("synth") == tmp_path
    assert seen == ["train", "val"]
