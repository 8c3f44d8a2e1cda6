"""Hostile inputs to the metrics (reliability probe, issue 10): COCO AP ground truths and
results, OKS, EPE/PCK, rank metrics — a clear ValueError naming the argument or a correct result."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from poselab.metrics import (coco_keypoint_eval, end_point_error, ground_truth_as_results,
                             oks_matrix, pck, ranking_accuracy, spearman)


def _gt():
    rng = np.random.default_rng(0)
    images = [{"id": i, "file_name": f"{i}.jpg", "height": 100, "width": 80} for i in (1, 2)]
    anns = []
    for aid, img in ((1, 1), (2, 1), (3, 2)):
        kp = np.concatenate([rng.uniform(10, 70, (17, 2)), np.full((17, 1), 2)], 1)
        anns.append({"id": aid, "image_id": img, "category_id": 1, "iscrowd": 0,
                     "bbox": [5.0, 5.0, 60.0, 80.0], "area": 3000.0, "num_keypoints": 17,
                     "keypoints": [float(x) for x in kp.ravel()]})
    return {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "person", "keypoints": [str(k) for k in range(17)]}]}


def test_perfect_predictions_score_one():
    gt = _gt()
    assert coco_keypoint_eval(gt, ground_truth_as_results(gt))["AP"] == pytest.approx(1.0)


def test_fractional_image_id_is_refused_not_scored_as_image_1():
    gt = _gt()
    results = ground_truth_as_results(gt)
    results[0]["image_id"] = 1.7
    with pytest.raises(ValueError, match=r"results\[0\]\['image_id'\] must be an integer id, got 1.7"):
        coco_keypoint_eval(gt, results)


@pytest.mark.parametrize("key, value, words", [
    ("score", "high", r"results\[0\]\['score'\] must be a finite number"),
    ("score", float("nan"), r"results\[0\]\['score'\]"),
    ("score", True, r"results\[0\]\['score'\]"),
    ("image_id", "abc", r"results\[0\]\['image_id'\] must be an integer"),
    ("category_id", "person", r"results\[0\]\['category_id'\] must be an integer"),
    ("keypoints", ["a"] * 51, r"results\[0\]\['keypoints'\] must be numbers"),
    ("keypoints", [1.0] * 50, "has 50 numbers"),
    ("image_id", 99, "image ids not in the ground truth"),
])
def test_bad_result_fields(key, value, words):
    gt = _gt()
    results = ground_truth_as_results(gt)
    results[0][key] = value
    with pytest.raises(ValueError, match=words):
        coco_keypoint_eval(gt, results)


def test_torch_and_numpy_scalars_in_results_are_accepted():
    gt = _gt()
    results = ground_truth_as_results(gt)
    results[0]["score"] = torch.tensor(0.9)
    results[1]["image_id"] = np.int64(results[1]["image_id"])
    results[2]["keypoints"] = torch.tensor(results[2]["keypoints"]).reshape(17, 3)
    assert coco_keypoint_eval(gt, results)["AP"] == pytest.approx(1.0)


def _mutate(gt, fn):
    gt = copy.deepcopy(gt)
    fn(gt)
    return gt


@pytest.mark.parametrize("mutation, words", [
    (lambda g: [a.pop("area") for a in g["annotations"]], "annotation 1 has no finite numeric 'area'"),
    (lambda g: g["annotations"][1].update(area="big"), "annotation 2 has no finite numeric 'area'"),
    (lambda g: g["annotations"].append(copy.deepcopy(g["annotations"][0])),
     "duplicate annotation id(s) [1]"),
    (lambda g: g["images"].append(dict(g["images"][0])), "duplicate image id(s) [1]"),
    (lambda g: g["annotations"][0].update(keypoints=[1.0] * 30), "must be 51 finite numbers"),
    (lambda g: g["annotations"][0].pop("keypoints"), "instances_"),
    (lambda g: g["annotations"][0].update(bbox=[1, 2]), "'bbox' of 4 numbers"),
    (lambda g: g["annotations"][0].update(image_id=1.5), "integer 'image_id'"),
    (lambda g: g["images"][0].update(id="one"), "images[0] needs an integer 'id'"),
    (lambda g: g.pop("images"), "'images'"),
    # a 5-joint set whose categories name its joints gave a pycocotools broadcast error (17 sigmas)
    (lambda g: [g["categories"][0].update(keypoints=list("abcde")),
                *[a.update(keypoints=a["keypoints"][:15]) for a in g["annotations"]]],
     "name 5 keypoints; COCO keypoint AP"),
    (lambda g: [g["categories"][0].pop("keypoints"),
                *[a.update(keypoints=a["keypoints"][:15]) for a in g["annotations"]]],
     "no category names its keypoints, so the 17 COCO joints are assumed"),
])
def test_bad_ground_truth_is_refused_naming_the_entry(mutation, words):
    gt = _mutate(_gt(), mutation)
    results = [r for r in ground_truth_as_results(_gt())]
    with pytest.raises(ValueError) as e:
        coco_keypoint_eval(gt, results)
    assert words in str(e.value) and "ground-truth dict" in str(e.value)


def test_duplicate_annotation_ids_no_longer_evaluate_to_ap_one():
    """The probe's case: 3 persons sharing one id; pycocotools kept one and AP said 1.0."""
    gt = _gt()
    for ann in gt["annotations"]:
        ann["id"] = 7
    with pytest.raises(ValueError, match="duplicate annotation id"):
        coco_keypoint_eval(gt, [])


def test_missing_iscrowd_num_keypoints_and_categories_are_filled_in():
    gt = _gt()
    for ann in gt["annotations"]:
        del ann["iscrowd"], ann["num_keypoints"]
    del gt["categories"]
    results = ground_truth_as_results(_gt())
    assert coco_keypoint_eval(gt, results)["AP"] == pytest.approx(1.0)


def test_truncated_ground_truth_file_names_the_file(tmp_path):
    path = tmp_path / "person_keypoints_val.json"
    text = json.dumps(_gt())
    path.write_text(text[: len(text) // 2])
    with pytest.raises(ValueError) as e:
        coco_keypoint_eval(path, [])
    assert str(path) in str(e.value) and "truncated" in str(e.value)


def test_ground_truth_file_without_area_names_the_file(tmp_path):
    gt = _gt()
    del gt["annotations"][2]["area"]
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    with pytest.raises(ValueError, match=f"{path}: annotation 3 has no finite numeric 'area'"):
        coco_keypoint_eval(path, [])


# ------------------------------------------------------------------ OKS, EPE, PCK, ranks

def test_oks_refuses_nan_and_negative_area():
    pred, gt, vis = np.zeros((1, 17, 2)), np.zeros((1, 17, 2)), np.full((1, 17), 2)
    with pytest.raises(ValueError, match="gt_area contains 1 NaN"):
        oks_matrix(pred, gt, vis, np.array([np.nan]))
    with pytest.raises(ValueError, match="area must be >= 0"):
        oks_matrix(pred, gt, vis, np.array([-1.0]))


def test_oks_without_visible_joints_is_zero_not_nan():
    table = oks_matrix(np.zeros((2, 17, 2)), np.zeros((1, 17, 2)), np.zeros((1, 17)), np.ones(1))
    assert table.shape == (2, 1) and np.all(table == 0.0)


def test_epe_and_pck_refuse_undefined_cases():
    pred, gt = np.zeros((2, 17, 2)), np.ones((2, 17, 2))
    with pytest.raises(ValueError, match="no visible joint"):
        end_point_error(pred, gt, np.zeros((2, 17)))
    with pytest.raises(ValueError, match="bbox_size must be > 0"):
        pck(pred, gt, np.ones((2, 17)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="alpha"):
        pck(pred, gt, np.ones((2, 17)), np.ones((2, 4)), alpha=float("nan"))
    with pytest.raises(ValueError, match="pred must be a numeric array"):
        end_point_error("abc", gt, np.ones((2, 17)))


def test_rank_metrics_on_degenerate_input():
    assert spearman([1, 1, 1], [1, 2, 3]) == 0.0  # constant scores: no rank information
    with pytest.raises(ValueError, match="at least 2"):
        spearman([1], [1])
    with pytest.raises(ValueError, match="same length"):
        spearman([1, 2], [1, 2, 3])
    assert ranking_accuracy([1, 1, 1], [1, 2, 3]) == 0.5  # ties count half
    with pytest.raises(ValueError, match="different quality"):
        ranking_accuracy([1, 2], [3, 3])


def test_oks_shape_mismatches_name_the_arguments():
    """Was numpy's broadcasting error from deep inside the similarity (session 14 probe)."""
    from poselab.metrics import oks
    pred, gt, vis, area = np.zeros((3, 17, 2)), np.ones((3, 17, 2)), np.full((3, 17), 2.0), np.full(3, 900.0)
    with pytest.raises(ValueError, match=r"pred_xy \(3, 5, 2\), gt_xy \(3, 17, 2\) and area \(3,\) do not broadcast"):
        oks(pred[:, :5], gt, vis, area)
    with pytest.raises(ValueError, match=r"area \(4,\) do not broadcast"):
        oks(pred, gt, vis, np.full(4, 900.0))
    with pytest.raises(ValueError, match=r"gt_vis \(3, 5\) does not broadcast"):
        oks(pred, gt, vis[:, :5], area)
    assert oks(pred, gt, vis, area).shape == (3,)                   # the right shapes still work
    assert oks(pred, gt[0], vis[0], 900.0).shape == (3,)             # and broadcasting ones
