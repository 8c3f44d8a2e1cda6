"""Unit tests of poselab.data.fetch.select_subset against a naive reference selection."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poselab.data.fetch import FetchError, select_subset


def reference_subset(coco, n):
    """Naive loops: images having a person with keypoints, ascending id, first n; all their anns."""
    ids = []
    for im in coco["images"]:
        has_kp = False
        for a in coco["annotations"]:
            if a["image_id"] == im["id"] and a["num_keypoints"] > 0:
                has_kp = True
        if has_kp:
            ids.append(im["id"])
    ids.sort()
    if n is not None:
        ids = ids[:n]
    anns = [a["id"] for a in coco["annotations"] if a["image_id"] in ids]
    return ids, anns


@st.composite
def coco_dicts(draw):
    image_ids = draw(st.lists(st.integers(1, 10_000), unique=True, max_size=12))
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 10, "height": 8} for i in image_ids]
    draw(st.randoms()).shuffle(images)
    n_ann = draw(st.integers(0, 30))
    anns = []
    for k in range(n_ann):
        anns.append({
            "id": 100_000 + k,
            # some annotations point at images that are not listed: they must never be kept
            "image_id": draw(st.sampled_from(image_ids + [99_999])) if image_ids else 99_999,
            "num_keypoints": draw(st.sampled_from([0, 0, 1, 5, 17])),
            "iscrowd": draw(st.sampled_from([0, 1])),
        })
    return {"info": {"v": 1}, "licenses": [{"id": 1}], "images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "person"}]}


@settings(max_examples=150, deadline=None)
@given(coco=coco_dicts(), n=st.one_of(st.none(), st.integers(1, 15)))
def test_select_subset_matches_naive_reference(coco, n):
    got = select_subset(coco, n)
    ids, ann_ids = reference_subset(coco, n)
    assert [im["id"] for im in got["images"]] == ids
    assert [a["id"] for a in got["annotations"]] == ann_ids
    assert got["info"] == coco["info"] and got["licenses"] == coco["licenses"]
    assert got["categories"] == coco["categories"]
    # every kept image really has a keypoint person; none of a kept image's annotations is lost
    for im in got["images"]:
        mine = [a for a in coco["annotations"] if a["image_id"] == im["id"]]
        assert any(a["num_keypoints"] > 0 for a in mine)
        assert all(a in got["annotations"] for a in mine)


def test_select_subset_independent_of_file_order():
    images = [{"id": i, "file_name": f"{i}.jpg"} for i in (30, 10, 20)]
    anns = [{"id": k, "image_id": i, "num_keypoints": 3} for k, i in enumerate((20, 30, 10))]
    a = select_subset({"images": images, "annotations": anns}, 2)
    b = select_subset({"images": images[::-1], "annotations": anns[::-1]}, 2)
    assert [im["id"] for im in a["images"]] == [10, 20] == [im["id"] for im in b["images"]]


@pytest.mark.parametrize("bad", ["../x.jpg", "a/b.jpg", "/etc/passwd", "..", "", "a\\b.jpg", None])
def test_unsafe_file_name_refused(bad):
    coco = {"images": [{"id": 1, "file_name": bad}],
            "annotations": [{"id": 1, "image_id": 1, "num_keypoints": 2}]}
    with pytest.raises(FetchError, match="file_name"):
        select_subset(coco)


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_bad_max_images(n):
    with pytest.raises(FetchError, match="max_images"):
        select_subset({"images": [], "annotations": []}, n)


def test_not_a_coco_dict():
    with pytest.raises(FetchError, match="not a COCO"):
        select_subset({"images": []})
    with pytest.raises(FetchError, match="not a COCO"):
        select_subset({"images": [{"file_name": "x.jpg"}], "annotations": [{"num_keypoints": 1}]})
