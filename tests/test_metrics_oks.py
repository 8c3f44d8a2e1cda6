"""OKS / KS against an independent naive loop and against pycocotools' computeOks on real data."""
from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poselab.metrics import keypoint_similarity, oks, oks_matrix
from poselab.skeleton import OKS_SIGMAS

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "coco_sample"
VAL_JSON = SAMPLE / "annotations" / "person_keypoints_val2017.json"
SIGMAS = [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87,
          0.87, 0.89, 0.89]  # COCO paper / cocodataset.org, divided by 10 below


def naive_oks(pred, gt, vis, area, bbox=None):
    """Textbook OKS, one pair, plain Python floats: mean over visible joints of
    exp(-d² / (2 s² (2σ)²)); for a GT without visible joints, the pycocotools box rule."""
    k = len(SIGMAS)
    n_vis = sum(1 for v in vis if v > 0)
    terms = []
    for j in range(k):
        kappa = 2 * SIGMAS[j] / 10.0
        if n_vis > 0:
            if vis[j] <= 0:
                continue
            d2 = (pred[j][0] - gt[j][0]) ** 2 + (pred[j][1] - gt[j][1]) ** 2
        else:
            if bbox is None:
                return 0.0
            x, y, w, h = bbox
            px, py = pred[j]
            dx = max(0.0, x - w - px) + max(0.0, px - (x + 2 * w))
            dy = max(0.0, y - h - py) + max(0.0, py - (y + 2 * h))
            d2 = dx * dx + dy * dy
        terms.append(math.exp(-d2 / (2 * (area + np.spacing(1)) * kappa ** 2)))
    return sum(terms) / len(terms)


def _random_case(rng, n, m, k=17, p_invisible_person=0.3):
    gt = rng.uniform(0, 200, size=(m, k, 2))
    vis = rng.integers(0, 3, size=(m, k))
    vis[rng.random(m) < p_invisible_person] = 0
    area = rng.uniform(50, 20000, size=m)
    pred = gt[rng.integers(0, m, size=n)] + rng.normal(0, 8, size=(n, k, 2))
    bbox = np.concatenate([rng.uniform(0, 150, size=(m, 2)), rng.uniform(5, 80, size=(m, 2))], 1)
    return pred, gt, vis, area, bbox


def test_sigmas_are_official():
    np.testing.assert_array_equal(OKS_SIGMAS, np.array(SIGMAS) / 10.0)


@pytest.mark.parametrize("with_bbox", [False, True])
def test_oks_matrix_matches_naive_loop(with_bbox):
    rng = np.random.default_rng(0)
    pred, gt, vis, area, bbox = _random_case(rng, 7, 9)
    got = oks_matrix(pred, gt, vis, area, gt_bbox=bbox if with_bbox else None)
    assert got.shape == (7, 9) and got.dtype == np.float64
    want = np.array([[naive_oks(pred[i].tolist(), gt[j].tolist(), vis[j].tolist(), area[j],
                                bbox[j].tolist() if with_bbox else None)
                      for j in range(9)] for i in range(7)])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-13)
    assert np.any((vis > 0).sum(1) == 0)  # the invisible-GT branch was exercised
    if not with_bbox:
        assert np.all(got[:, (vis > 0).sum(1) == 0] == 0.0)


def test_keypoint_similarity_closed_form():
    # d = κ s  →  KS = exp(-1/2) for every joint.
    area = 400.0
    kappa = 2 * OKS_SIGMAS
    pred = np.zeros((17, 2))
    gt = np.stack([kappa * 20.0, np.zeros(17)], axis=1)
    np.testing.assert_allclose(keypoint_similarity(pred, gt, area), np.exp(-0.5), rtol=1e-12)
    assert keypoint_similarity(gt, gt, area).tolist() == [1.0] * 17


def test_oks_pairwise_equals_matrix_diagonal():
    rng = np.random.default_rng(1)
    pred, gt, vis, area, _ = _random_case(rng, 5, 5)
    np.testing.assert_allclose(oks(pred, gt, vis, area), np.diag(oks_matrix(pred, gt, vis, area)),
                               atol=1e-15)


def test_oks_accepts_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    pred, gt, vis, area, _ = _random_case(rng, 3, 4, p_invisible_person=0)
    got = oks_matrix(torch.tensor(pred, dtype=torch.float32), torch.tensor(gt), torch.tensor(vis),
                     torch.tensor(area))
    np.testing.assert_allclose(got, oks_matrix(pred.astype(np.float32), gt, vis, area), atol=0)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.1, 10), shift=st.floats(-500, 500))
def test_oks_invariances(seed, scale, shift):
    rng = np.random.default_rng(seed)
    pred, gt, vis, area, _ = _random_case(rng, 3, 4)
    base = oks_matrix(pred, gt, vis, area)
    assert np.all((base >= 0) & (base <= 1))
    # translation of the whole picture, and scaling coordinates by c with area by c²
    np.testing.assert_allclose(oks_matrix(pred + shift, gt + shift, vis, area), base, atol=1e-9)
    np.testing.assert_allclose(oks_matrix(pred * scale, gt * scale, vis, area * scale ** 2), base,
                               atol=1e-9)
    # perfect prediction → 1 for every GT with a visible joint
    perfect = oks(gt, gt, vis, area)
    assert np.all(perfect[(vis > 0).any(1)] == 1.0)


@pytest.mark.parametrize("call, match", [
    (lambda: oks_matrix(np.zeros((2, 17, 2)), np.zeros((3, 16, 2)), np.ones((3, 16)), np.ones(3)),
     "K="),
    (lambda: oks_matrix(np.zeros((2, 17)), np.zeros((3, 17, 2)), np.ones((3, 17)), np.ones(3)),
     r"\(N, K, 2\)"),
    (lambda: oks_matrix(np.zeros((2, 17, 2)), np.zeros((3, 17, 2)), np.ones((2, 17)), np.ones(3)),
     "gt_vis"),
    (lambda: oks_matrix(np.zeros((2, 17, 2)), np.zeros((3, 17, 2)), np.ones((3, 17)), np.ones(2)),
     "gt_area"),
    (lambda: oks_matrix(np.full((2, 17, 2), np.nan), np.zeros((3, 17, 2)), np.ones((3, 17)),
                        np.ones(3)), "NaN"),
    (lambda: oks_matrix(np.zeros((2, 17, 2)), np.zeros((3, 17, 2)), np.ones((3, 17)), -np.ones(3)),
     "area"),
    (lambda: oks_matrix(np.zeros((2, 17, 2)), np.zeros((3, 17, 2)), np.zeros((3, 17)), np.ones(3),
                        gt_bbox=np.ones((3, 3))), "gt_bbox"),
    (lambda: keypoint_similarity(np.zeros((5, 2)), np.zeros((5, 2)), 1.0), "sigmas"),
    (lambda: oks_matrix(np.zeros((1, 2, 2)), np.zeros((1, 2, 2)), np.ones((1, 2)), np.ones(1),
                        sigmas=[0.1, -0.1]), "positive"),
])
def test_oks_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_custom_sigmas_for_other_skeletons():
    pred = np.array([[[0.0, 0.0], [3.0, 4.0]]])
    gt = np.zeros((1, 2, 2))
    got = oks_matrix(pred, gt, np.array([[2, 2]]), np.array([100.0]), sigmas=[0.1, 0.5])
    want = (1.0 + math.exp(-25 / (2 * 100 * 1.0 ** 2))) / 2
    assert got[0, 0] == pytest.approx(want, abs=1e-15)


@pytest.mark.skipif(not VAL_JSON.is_file(), reason="real COCO sample not present")
def test_oks_matrix_matches_pycocotools_compute_oks_on_real_sample():
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(3)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(VAL_JSON))
    results = []
    for ann in coco.loadAnns(coco.getAnnIds()):
        kp = np.array(ann["keypoints"], dtype=float).reshape(17, 3)
        x, y, w, h = ann["bbox"]
        if ann["num_keypoints"] == 0:  # guesses around (and outside) the box: box rule matters
            kp[:, 0] = rng.uniform(x - 2 * w, x + 3 * w, 17)
            kp[:, 1] = rng.uniform(y - 2 * h, y + 3 * h, 17)
        else:
            kp[:, :2] += rng.normal(0, 0.08 * math.sqrt(ann["area"] + 1), size=(17, 2))
        results.append({"image_id": ann["image_id"], "category_id": 1,
                        "keypoints": kp.ravel().tolist(), "score": float(rng.random())})
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(coco, coco.loadRes(results), "keypoints")
        ev.evaluate()
    worst, compared, boxes = 0.0, 0, 0
    for (img, cat), table in ev.ious.items():
        if len(table) == 0:
            continue
        dts = ev._dts[img, cat]
        order = np.argsort([-d["score"] for d in dts], kind="mergesort")[: ev.params.maxDets[-1]]
        pred = np.array([dts[i]["keypoints"] for i in order]).reshape(len(order), 17, 3)[..., :2]
        gts = ev._gts[img, cat]
        g = np.array([a["keypoints"] for a in gts], dtype=float).reshape(len(gts), 17, 3)
        ours = oks_matrix(pred, g[..., :2], g[..., 2], np.array([a["area"] for a in gts]),
                          gt_bbox=np.array([a["bbox"] for a in gts]))
        worst = max(worst, float(np.abs(ours - np.asarray(table)).max()))
        compared += ours.size
        boxes += int(((g[..., 2] > 0).sum(1) == 0).sum())
    assert compared > 300 and boxes > 50
    assert worst <= 1e-12
