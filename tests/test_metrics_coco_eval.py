"""coco_keypoint_eval against a direct pycocotools run, and its matched-OKS semantics."""
from __future__ import annotations

import contextlib
import copy
import io
import math
from pathlib import Path

import numpy as np
import pytest

from poselab.metrics import STAT_NAMES, coco_keypoint_eval, ground_truth_as_results
from poselab.skeleton import PERSON_CATEGORY

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "coco_sample"
needs_sample = pytest.mark.skipif(not (SAMPLE / "annotations").is_dir(),
                                  reason="real COCO sample not present")
SIG = np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07,
                0.87, 0.87, 0.89, 0.89]) / 10


def naive_oks(pred, gt, area):
    """OKS for all-visible GT, written from the definition."""
    d2 = ((np.asarray(pred) - np.asarray(gt)) ** 2).sum(1)
    return float(np.mean(np.exp(-d2 / (2 * area * (2 * SIG) ** 2))))


def person(ann_id, image_id, xy, area, bbox):
    kp = np.concatenate([xy, np.full((17, 1), 2.0)], 1).ravel().tolist()
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "keypoints": kp,
            "num_keypoints": 17, "area": area, "bbox": bbox, "iscrowd": 0}


def toy_gt():
    rng = np.random.default_rng(0)
    a_xy = rng.uniform(100, 200, size=(17, 2))
    b_xy = rng.uniform(300, 400, size=(17, 2))
    return {
        "images": [{"id": 1, "width": 640, "height": 480, "file_name": "a.jpg"},
                   {"id": 2, "width": 640, "height": 480, "file_name": "b.jpg"}],
        "annotations": [person(10, 1, a_xy, 10000.0, [100, 100, 100, 100]),
                        person(11, 1, b_xy, 10000.0, [300, 300, 100, 100])],
        "categories": [PERSON_CATEGORY],
    }


def det(image_id, xy, score):
    kp = np.concatenate([np.asarray(xy), np.ones((17, 1))], 1).ravel().tolist()
    return {"image_id": image_id, "category_id": 1, "keypoints": kp, "score": score}


def direct_cocoeval(gt_path, results):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        ev = COCOeval(gt, gt.loadRes(copy.deepcopy(results)), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@needs_sample
@pytest.mark.parametrize("split", ["val2017", "train2017"])
def test_ground_truth_scores_ap_one(split):
    gt = SAMPLE / "annotations" / f"person_keypoints_{split}.json"
    results = ground_truth_as_results(gt)
    out = coco_keypoint_eval(gt, results)
    for name in ("AP", "AP50", "AP75", "APm", "APl", "AR"):
        assert out[name] == 1.0, name
    assert np.all(np.array(out["matched_oks"]) == 1.0)


@needs_sample
def test_perturbed_matches_direct_cocoeval(capsys):
    gt = SAMPLE / "annotations" / "person_keypoints_val2017.json"
    rng = np.random.default_rng(1)
    results = []
    for r in ground_truth_as_results(gt):
        kp = np.array(r["keypoints"]).reshape(17, 3)
        kp[:, :2] += rng.normal(0, rng.uniform(1, 25), size=(17, 2))
        results.append({**r, "keypoints": kp.ravel().tolist(), "score": float(rng.random())})
    frozen = copy.deepcopy(results)
    out = coco_keypoint_eval(gt, results)
    assert results == frozen  # caller's list untouched (pycocotools' loadRes mutates)
    assert capsys.readouterr().out == ""  # silenced
    stats = direct_cocoeval(gt, results)
    for name, value in zip(STAT_NAMES, stats):
        assert out[name] == pytest.approx(max(value, 0.0), abs=0), name
    assert 0.1 < out["AP"] < 0.95
    # matched OKS: every value is the OKS to some GT of the image; never above the image max
    m, mx = np.array(out["matched_oks"]), np.array(out["max_oks"])
    assert len(m) == len(results) and np.all(m <= mx + 1e-12)
    assert np.all((m == 0) | (m >= 0.5))  # matches are made at OKS >= 0.50
    # with one prediction per GT person, a prediction within OKS 0.5 of a person is nearly
    # always matched to that person
    good = mx >= 0.5
    assert good.sum() > 40 and np.mean(np.isclose(m[good], mx[good], rtol=0, atol=1e-12)) > 0.95
    assert np.all(m[~good] == 0)


@needs_sample
def test_verbose_prints(capsys):
    gt = SAMPLE / "annotations" / "person_keypoints_val2017.json"
    coco_keypoint_eval(gt, ground_truth_as_results(gt)[:5], verbose=True)
    assert "Average Precision" in capsys.readouterr().out


def test_matched_oks_semantics(tmp_path):
    gt = toy_gt()
    a = np.array(gt["annotations"][0]["keypoints"]).reshape(17, 3)[:, :2]
    b = np.array(gt["annotations"][1]["keypoints"]).reshape(17, 3)[:, :2]
    rng = np.random.default_rng(5)
    a_ok = a + rng.normal(0, 6, (17, 2))    # OKS ~0.8 with A
    a_best = a + rng.normal(0, 1, (17, 2))  # better, but scored lower → duplicate
    b_ok = b + rng.normal(0, 4, (17, 2))
    far = a + 500
    results = [det(1, a_ok, 0.9), det(1, a_best, 0.5), det(1, b_ok, 0.7), det(1, far, 0.8),
               det(2, b_ok, 0.95)]  # image 2 has no GT
    out = coco_keypoint_eval(gt, results)
    want_a_ok, want_a_best, want_b = naive_oks(a_ok, a, 10000), naive_oks(a_best, a, 10000), \
        naive_oks(b_ok, b, 10000)
    assert want_a_best > want_a_ok > 0.5 and want_b > 0.5
    np.testing.assert_allclose(out["matched_oks"], [want_a_ok, 0.0, want_b, 0.0, 0.0], atol=1e-12)
    assert out["matched_gt_id"] == [10, -1, 11, -1, -1]
    np.testing.assert_allclose(out["max_oks"], [want_a_ok, want_a_best, want_b,
                                                naive_oks(far, a, 10000), 0.0], atol=1e-12)
    assert out["ignored"] == [False] * 5
    # AP at 0.50: ranked 0.95 FP, 0.9 TP, 0.8 FP, 0.7 TP, 0.5 FP → precision envelope gives
    # 101-point interpolated AP from the definition (max precision at recall >= t):
    prec = np.array([0, 1 / 2, 1 / 3, 2 / 4, 2 / 5])
    tp_recall = np.array([0, 0.5, 0.5, 1.0, 1.0])
    ap50 = np.mean([max([p for p, r in zip(prec, tp_recall) if r >= t], default=0)
                    for t in np.linspace(0, 1, 101)])
    assert out["AP50"] == pytest.approx(ap50, abs=1e-12)
    assert out["undefined"] == ["APm", "ARm"]  # no medium persons in the toy set → -1 → 0.0
    assert out["APm"] == 0.0 and out["stats"][STAT_NAMES.index("APm")] == -1.0


def test_detection_matched_to_ignored_gt_gets_zero():
    gt = toy_gt()
    crowd = copy.deepcopy(gt["annotations"][1])
    crowd.update(id=12, image_id=2, iscrowd=1, num_keypoints=0, keypoints=[0] * 51,
                 bbox=[0, 0, 300, 300], area=90000.0)
    gt["annotations"].append(crowd)
    inside = np.full((17, 2), 100.0)
    out = coco_keypoint_eval(gt, [det(2, inside, 0.9)])
    assert out["matched_gt_id"] == [12] and out["ignored"] == [True]
    assert out["matched_oks"] == [0.0] and out["max_oks"] == [0.0]


def test_empty_results_give_zero():
    out = coco_keypoint_eval(toy_gt(), [])
    assert all(out[name] == 0.0 for name in STAT_NAMES)
    assert out["matched_oks"] == [] and out["precision"].shape == (10, 101)


def test_more_than_maxdets_are_unmatched():
    gt = toy_gt()
    a = np.array(gt["annotations"][0]["keypoints"]).reshape(17, 3)[:, :2]
    far = [det(1, a + 900, 0.9) for _ in range(20)]
    out = coco_keypoint_eval(gt, far + [det(1, a, 0.1)])  # the perfect one is 21st by score
    assert out["matched_oks"][-1] == 0.0 and out["ignored"][-1] is True
    assert out["max_oks"][-1] == pytest.approx(1.0)


@pytest.mark.parametrize("mutate, match", [
    (lambda r: r.update(image_id=999), "image ids not in the ground truth"),
    (lambda r: r["keypoints"].__setitem__(4, math.nan), "NaN"),
    (lambda r: r.update(score=math.inf), "score"),
    (lambda r: r.update(keypoints=r["keypoints"][:50]), "3 × 17"),
    (lambda r: r.update(category_id=7), "category_id"),
    (lambda r: r.pop("score"), "keys"),
])
def test_bad_results(mutate, match):
    good = det(1, np.zeros((17, 2)), 0.5)
    bad = copy.deepcopy(good)
    mutate(bad)
    with pytest.raises(ValueError, match=match):
        coco_keypoint_eval(toy_gt(), [good, bad])


def test_bad_gt():
    with pytest.raises(FileNotFoundError, match="no COCO annotation file"):
        coco_keypoint_eval("/nonexistent/person_keypoints.json", [])
    with pytest.raises(ValueError, match="gt_json"):
        coco_keypoint_eval(42, [])
    with pytest.raises(ValueError, match="list of dicts"):
        coco_keypoint_eval(toy_gt(), {"image_id": 1})


def test_numpy_keypoints_and_ids_accepted():
    gt = toy_gt()
    a = np.array(gt["annotations"][0]["keypoints"]).reshape(17, 3)
    as_list = [det(1, a[:, :2] + 2.0, 0.9)]
    as_array = [{**as_list[0], "image_id": np.int64(1), "keypoints": np.asarray(as_list[0]["keypoints"])}]
    one, two = coco_keypoint_eval(gt, as_list), coco_keypoint_eval(gt, as_array)
    assert one["AP"] == two["AP"] and one["matched_oks"] == two["matched_oks"]
    assert one["matched_oks"][0] == pytest.approx(naive_oks(a[:, :2] + 2.0, a[:, :2], 10000.0),
                                                  abs=1e-12)
