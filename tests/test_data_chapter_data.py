"""resolve_chapter_data: the one auto / synth / coco_sample / path rule of every chapter."""
import pytest

from poselab.data import DatasetNotFound, find_coco_sample, resolve_chapter_data
from poselab.data import registry


def test_auto_prefers_the_real_sample_when_present():
    chosen = resolve_chapter_data("auto", real_data="")
    expected = "coco_sample" if find_coco_sample() is not None else "synth"
    assert chosen.name == expected and chosen.real_json is None and chosen.ann_json.is_file()
    assert expected in chosen.note


def test_auto_falls_back_to_synth_and_coco_sample_says_what_to_do(monkeypatch):
    monkeypatch.setattr("poselab.data.chapter_data.find_coco_sample", lambda: None)
    chosen = resolve_chapter_data("auto", real_data="auto", n_images=4)
    assert chosen.name == "synth" and chosen.real_json is None and "no real COCO sample" in chosen.note
    with pytest.raises(DatasetNotFound, match="POSELAB_COCO_SAMPLE"):
        resolve_chapter_data("coco_sample")


def test_paths_and_bad_values(tmp_path):
    sample = find_coco_sample()
    if sample is not None:
        chosen = resolve_chapter_data(sample, real_data=sample)
        assert chosen.ann_json == registry.resolve_dataset(sample, "val")
        assert chosen.real_json == chosen.ann_json
    for bad in ("", None):
        with pytest.raises(ValueError, match="data must be"):
            resolve_chapter_data(bad)
    with pytest.raises(DatasetNotFound):
        resolve_chapter_data(tmp_path / "nothing_here")
