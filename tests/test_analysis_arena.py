"""analysis.arena: per-joint errors and time-to-AP, against hand computations."""
import math

import numpy as np
import pytest

from poselab.chapters.capstone.arena import per_keypoint_error, time_to_metric


def test_per_keypoint_error_against_a_loop():
    rng = np.random.default_rng(0)
    c, g = rng.normal(size=(7, 4, 2)), rng.normal(size=(7, 4, 2))
    v = rng.random((7, 4)) > 0.4
    v[:, 3] = False
    got = per_keypoint_error(c, g, v)
    for k in range(3):
        want = np.mean([np.hypot(*(c[n, k] - g[n, k])) for n in range(7) if v[n, k]])
        assert got[k] == pytest.approx(want)
    assert math.isnan(got[3])
    with pytest.raises(ValueError, match="N, K, 2"):
        per_keypoint_error(c, g[:, :2], v)


def test_time_to_metric():
    hist = {"step_times": [1.0] * 10, "data_times": [0.5] * 10,
            "val": [{"step": 4, "AP": 0.2}, {"step": 8, "AP": 0.55}, {"step": 10, "AP": 0.5}]}
    assert time_to_metric(hist, 0.5) == pytest.approx(12.0)   # reached at step 8: 8 × 1.5 s
    assert time_to_metric(hist, 0.1) == pytest.approx(6.0)
    assert math.isnan(time_to_metric(hist, 0.9))


def test_recorded_arena_reads_the_table_and_labels_its_provenance(tmp_path):
    import json as _json
    from poselab.experiments.arena import recorded_arena
    assert recorded_arena("none-recorded", root=tmp_path) is None
    folder = tmp_path / "arena_default"
    folder.mkdir()
    (folder / "arena.md").write_text("| recipe | AP |\n|---|---|\n| mse | 0.47 |\n")
    (folder / "manifest.json").write_text(_json.dumps({
        "command": "poselab arena --preset default", "commit": "86cc77d0000", "started": "2026-11-24T14:54:52",
        "wall_seconds": 1200.0, "machine": "2 CPUs"}))
    rec = recorded_arena("default", root=tmp_path)
    assert "| mse | 0.47 |" in rec.markdown
    for fact in ("poselab arena --preset default", "commit 86cc77d", "2026-11-24 14:54", "20.0 min wall", "2 CPUs"):
        assert fact in rec.label
    assert rec.tables() == [("", ["recipe", "AP"], [["mse", "0.47"]])]
    page = rec._repr_html_()
    assert "overflow-x:auto" in page and "<td" in page and "0.47" in page  # fitted to the notebook width
    (folder / "arena.md").write_text("**generated val**\n\n| recipe | AP |\n|---|---|\n| a | 1 |\n| b | 2 |\n\n"
                                     "**real COCO sample**\n\n| recipe | AP |\n|---|---|\n| a | 0 |\n")
    (folder / "manifest.json").write_text("[not a manifest")
    rec = recorded_arena("default", root=tmp_path)
    assert rec.label.startswith("Recorded `default`-preset arena")
    assert [(n, len(rows)) for n, _, rows in rec.tables()] == [("generated val", 2), ("real COCO sample", 1)]
    with pytest.raises(ValueError, match="name"):
        recorded_arena("../x")
