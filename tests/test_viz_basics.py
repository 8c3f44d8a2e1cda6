"""Chapter 00 "pose basics": analysis functions, figure builders and the OKS widget."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest

from poselab.chapters.basics import analysis as ab
from poselab.skeleton import LIMBS, OKS_SIGMAS, PERSON_CATEGORY
from poselab.viz import poses as vb

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "coco_sample"
VAL_JSON = SAMPLE / "annotations" / "person_keypoints_val2017.json"
needs_sample = pytest.mark.skipif(not VAL_JSON.is_file(), reason="real COCO sample not present")


def naive_ks(pred, gt, area):
    return [math.exp(-((p[0] - g[0]) ** 2 + (p[1] - g[1]) ** 2) / (2 * area * (2 * s) ** 2))
            for p, g, s in zip(pred, gt, OKS_SIGMAS)]


def toy_person(seed=0, vis=None):
    rng = np.random.default_rng(seed)
    kp = np.concatenate([rng.uniform(20, 120, (17, 2)), np.full((17, 1), 2.0)], 1)
    if vis is not None:
        kp[:, 2] = vis
    return kp


def toy_gt(n_images=3):
    anns = []
    for i in range(n_images):
        for j in range(2):
            kp = toy_person(10 * i + j)
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                         "keypoints": kp.ravel().tolist(), "num_keypoints": 17,
                         "area": 5000.0 + 1000 * j, "bbox": [20, 20, 100, 100]})
    return {"images": [{"id": i + 1, "width": 160, "height": 160, "file_name": f"{i}.jpg"}
                        for i in range(n_images)],
            "annotations": anns, "categories": [PERSON_CATEGORY]}


# ---------------------------------------------------------------- analysis
def test_ks_versus_distance_closed_form():
    area = 2500.0
    d = np.array([0.0, 10.0, 50.0])
    ks = ab.ks_versus_distance(d, area)
    assert ks.shape == (17, 3)
    want = np.exp(-d[None] ** 2 / (2 * area * (2 * OKS_SIGMAS[:, None]) ** 2))
    np.testing.assert_allclose(ks, want, rtol=1e-12)
    assert np.all(np.diff(ks, axis=1) < 0)


def test_oks_breakdown_matches_naive():
    gt = toy_person(1, vis=[2, 0, 1] * 5 + [0, 2])
    pred = gt[:, :2] + np.random.default_rng(2).normal(0, 4, (17, 2))
    out = ab.oks_breakdown(pred, gt, 3000.0)
    ks = naive_ks(pred, gt[:, :2], 3000.0)
    np.testing.assert_allclose(out["ks"], ks, rtol=1e-12)
    vis = gt[:, 2] > 0
    assert out["oks"] == pytest.approx(np.mean(np.array(ks)[vis]), rel=1e-12)
    assert out["visible"].tolist() == vis.tolist()
    with pytest.raises(ValueError, match=r"\(K, 3\)"):
        ab.oks_breakdown(pred, gt[:, :2], 3000.0)


def test_perturb_and_rank():
    gt = toy_gt()
    results, quality = ab.perturb_ground_truth(gt, noise=0.1, seed=3)
    assert len(results) == 6 and quality.shape == (6,)
    for r, q, a in zip(results, quality, gt["annotations"]):
        pred = np.array(r["keypoints"]).reshape(17, 3)[:, :2]
        g = np.array(a["keypoints"]).reshape(17, 3)[:, :2]
        assert q == pytest.approx(np.mean(naive_ks(pred, g, a["area"])), rel=1e-12)
    again, _ = ab.perturb_ground_truth(gt, noise=0.1, seed=3)
    assert again == results
    evals = ab.ap_by_ranking(gt, results, quality, seed=0)
    assert set(evals) == {"good", "random", "reversed"}
    # Ranking by the true OKS puts every true positive first: AP can only drop otherwise.
    assert evals["good"]["AP"] >= evals["random"]["AP"] - 1e-12
    assert evals["good"]["AP"] >= evals["reversed"]["AP"] - 1e-12
    for ev in evals.values():  # same keypoints, only scores differ
        np.testing.assert_allclose(ev["max_oks"], quality, atol=1e-12)
    # the per-threshold AP in the figure's legend is pycocotools' AP75
    fig = vb.precision_recall_figure(evals, threshold_index=5)
    for trace, ev in zip(fig.data, evals.values()):
        assert f"AP@0.75={ev['AP75']:.3f}" in trace.name
    with pytest.raises(ValueError, match="ordering"):
        ab.ap_by_ranking(gt, results, quality, orderings=("best",))
    with pytest.raises(ValueError, match="one value per result"):
        ab.ap_by_ranking(gt, results, quality[:3])


@needs_sample
def test_ranking_changes_ap_on_real_sample():
    results, quality = ab.perturb_ground_truth(VAL_JSON, noise=0.1, seed=0)
    evals = ab.ap_by_ranking(VAL_JSON, results, quality, orderings=("good", "reversed"))
    assert evals["good"]["AP"] > evals["reversed"]["AP"] + 0.05


@needs_sample
def test_max_oks_difference_real_sample():
    results, _ = ab.perturb_ground_truth(VAL_JSON, noise=0.1, seed=1)
    out = ab.max_oks_difference(VAL_JSON, results)
    assert out["max_abs_diff"] <= 1e-12 and out["pairs"] >= len(results)
    assert out["images"] == len({r["image_id"] for r in results})


def test_compare_folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        (root / "sub").mkdir(parents=True)
        (root / "x.json").write_text('{"a": 1}')
        (root / "sub" / "img.jpg").write_bytes(bytes(range(50)))
    same = ab.compare_folders(a, b)
    assert same["identical"] and same["files"] == 2 and same["differing"] == []
    (b / "sub" / "img.jpg").write_bytes(bytes(range(49)) + b"\x00")
    (b / "extra.txt").write_text("")
    diff = ab.compare_folders(a, b)
    assert not diff["identical"] and diff["differing"] == ["extra.txt", "sub/img.jpg"]
    assert diff["digest"] == same["digest"]  # digest is of a's content
    with pytest.raises(FileNotFoundError):
        ab.compare_folders(a, tmp_path / "missing")


def test_person_crop_and_heatmaps_peak_on_keypoints():
    pytest.importorskip("poselab.codecs.heatmap")
    image = np.zeros((200, 300, 3), dtype=np.uint8)
    kp = np.array([[100.0 + 5 * k, 60.0 + 6 * k, 2.0] for k in range(17)])
    kp[3, 2] = 0
    out = ab.person_crop_and_heatmaps(image, [90, 50, 100, 120], kp, (128, 96), (32, 24), 1.5)
    assert out["crop"].shape == (128, 96, 3) and out["heatmaps"].shape == (17, 32, 24)
    assert out["weights"][3] == 0 and np.all(out["heatmaps"][3] == 0)
    # the peak of each labelled joint's heatmap is the heatmap pixel nearest the keypoint
    stride = 128 / 32
    for k in np.flatnonzero(kp[:, 2] > 0):
        i, j = np.unravel_index(out["heatmaps"][k].argmax(), (32, 24))
        x, y = out["keypoints"][k, :2]
        assert abs(j - ((x + 0.5) / stride - 0.5)) <= 0.5 + 1e-9
        assert abs(i - ((y + 0.5) / stride - 0.5)) <= 0.5 + 1e-9


# ---------------------------------------------------------------- figures
def test_pose_figure_traces():
    kp = toy_person(0, vis=[2] * 15 + [0, 1])
    image = np.zeros((160, 160, 3), dtype=np.uint8)
    fig = vb.pose_figure(image, [kp, kp[:, :2]], bboxes=[[20, 20, 100, 100]],
                         zoom_to=[20, 20, 100, 100])
    assert isinstance(fig, go.Figure)
    assert [t.type for t in fig.data] == ["image", "scatter", "scatter", "scatter", "scatter",
                                          "scatter"]
    limbs, joints = fig.data[1], fig.data[2]
    n_limbs = sum(1 for a, b in LIMBS if kp[a, 2] > 0 and kp[b, 2] > 0)
    assert len(limbs.x) == 3 * n_limbs and n_limbs < len(LIMBS)
    assert len(joints.x) == 16  # v = 0 joint not drawn
    assert list(joints.marker.symbol).count("circle-open") == 1
    assert len(fig.data[4].x) == 17  # a (K, 2) prediction draws every joint
    assert fig.layout.yaxis.range[0] > fig.layout.yaxis.range[1]  # y points down
    blank = vb.pose_figure(None, [kp])
    assert [t.type for t in blank.data] == ["scatter", "scatter"]
    with pytest.raises(ValueError, match="K, 2"):
        vb.pose_figure(None, [np.zeros((17, 4))])


def test_heatmap_figures():
    crop = np.zeros((64, 48, 3), dtype=np.uint8)
    heat = np.random.default_rng(0).random((17, 16, 12))
    fig = vb.heatmap_overlay_figure(crop, heat, keypoints=toy_person(0))
    assert [t.type for t in fig.data] == ["image", "heatmap", "scatter", "scatter"]
    hm = fig.data[1]
    assert hm.dx == 4 and hm.x0 == 1.5  # heatmap pixel 0 covers crop pixels 0..3
    np.testing.assert_allclose(np.array(hm.z), heat.max(0))
    grid = vb.joint_heatmaps_figure(heat, [0, 9, 16])
    assert [t.type for t in grid.data] == ["heatmap"] * 3
    with pytest.raises(ValueError, match="joints"):
        vb.joint_heatmaps_figure(heat, [17])


def test_ks_and_pr_figures():
    ks = np.linspace(0.1, 1, 17)
    vis = np.arange(17) % 4 != 0
    fig = vb.ks_bars_figure(ks, vis, 0.5)
    assert [t.type for t in fig.data] == ["bar"] and "0.500" in fig.layout.title.text
    assert list(fig.data[0].marker.color).count("#bdbdbd") == int((~vis).sum())
    curves = vb.ks_curves_figure(np.arange(5.0), np.ones((17, 5)), [0, 5])
    assert [t.name for t in curves.data] == ["nose", "left_shoulder"]
    with pytest.raises(ValueError):
        vb.ks_curves_figure(np.arange(4.0), np.ones((17, 5)), [0])
    ev = {"AP": 0.5, "precision": np.ones((10, 101)), "recall_thresholds": np.linspace(0, 1, 101)}
    pr = vb.precision_recall_figure({"good": ev, "bad": {**ev, "AP": 0.1}}, threshold_index=5)
    assert len(pr.data) == 2 and "AP=0.100" in pr.data[1].name and "0.75" in pr.layout.title.text
    assert "AP@0.75=1.000" in pr.data[0].name


# ---------------------------------------------------------------- widget
def test_oks_explorer_callbacks():
    pytest.importorskip("ipywidgets")
    from poselab.chapters.basics.widgets import OKSExplorer

    gt = toy_person(4, vis=[2] * 16 + [0])
    ex = OKSExplorer(gt, area=2500.0, image=np.zeros((160, 160, 3), dtype=np.uint8))
    assert ex.state()["oks"] == 1.0 and ex.scale.value == 50.0
    ex.joint.value = 9
    ex.dx.value = 6.0
    ex.dy.value = -8.0
    pred = gt[:, :2].copy()
    pred[9] += (6.0, -8.0)
    want = np.mean(np.array(naive_ks(pred, gt[:, :2], 2500.0))[:16])
    assert ex.state()["oks"] == pytest.approx(want, rel=1e-12)
    assert f"{want:.3f}" in ex.ks_fig.layout.title.text
    np.testing.assert_allclose(ex.ks_fig.data[0].y, naive_ks(pred, gt[:, :2], 2500.0), rtol=1e-12)
    joints_trace = ex.pose_fig.data[-1]
    np.testing.assert_allclose(np.c_[joints_trace.x, joints_trace.y], pred[:16])  # v=0 not drawn
    # switching joints shows that joint's own offset and does not move anything
    ex.joint.value = 0
    assert (ex.dx.value, ex.dy.value) == (0.0, 0.0) and ex.offsets[9].tolist() == [6.0, -8.0]
    ex.joint.value = 9
    assert (ex.dx.value, ex.dy.value) == (6.0, -8.0)
    # a bigger object tolerates the same pixel error better
    before = ex.state()["oks"]
    ex.scale.value = 100.0
    assert ex.state()["oks"] > before
    with pytest.raises(ValueError, match="area"):
        OKSExplorer(gt, area=0.0)


def test_image_trace_encodes_pixels():
    import base64
    import io

    from PIL import Image

    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    trace = vb.image_trace(small)
    head, data = trace.source.split(",", 1)
    assert head == "data:image/png;base64"
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))
    np.testing.assert_array_equal(decoded, small)  # PNG: lossless
    big = np.full((300, 400, 3), 128, dtype=np.uint8)
    assert vb.image_trace(big).source.startswith("data:image/jpeg;base64,")
    with pytest.raises(ValueError, match="uint8"):
        vb.image_trace(small.astype(float))
