"""Crop geometry: reference computations written out by hand (float64 closed forms, loops)."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from poselab.data.transforms import (affine_matrix, apply_affine, bbox_to_center_scale,
                                     crop_to_image, flip_keypoints, image_to_crop, warp_image)
from poselab.skeleton import KEYPOINT_NAMES

finite = dict(allow_nan=False, allow_infinity=False)


def test_bbox_to_center_scale_by_hand():
    # wide box for a 64x48 (H x W) input: width decides, height grows to w * 64/48
    c, s = bbox_to_center_scale([10.0, 20.0, 60.0, 30.0], (64, 48), padding=1.25)
    assert c.tolist() == [40.0, 35.0]
    assert s[0] == pytest.approx(60 * 1.25)
    assert s[1] == pytest.approx(60 * 64 / 48 * 1.25)
    # tall box: height decides
    c, s = bbox_to_center_scale([0.0, 0.0, 10.0, 100.0], (64, 48), padding=1.0)
    assert s.tolist() == pytest.approx([75.0, 100.0])


@given(st.floats(-100, 100, **finite), st.floats(-100, 100, **finite), st.floats(0.5, 300, **finite),
       st.floats(0.5, 300, **finite), st.sampled_from([(64, 48), (256, 192), (32, 32), (48, 64)]),
       st.floats(1.0, 2.0, **finite))
@settings(max_examples=60, deadline=None)
def test_bbox_window_has_input_aspect_and_contains_box(x, y, w, h, size, pad):
    c, s = bbox_to_center_scale([x, y, w, h], size, padding=pad)
    assert s[0] / s[1] == pytest.approx(size[1] / size[0], rel=1e-12)
    assert c[0] - s[0] / 2 <= x + 1e-9 and c[0] + s[0] / 2 >= x + w - 1e-9
    assert c[1] - s[1] / 2 <= y + 1e-9 and c[1] + s[1] / 2 >= y + h - 1e-9


@pytest.mark.parametrize("bad", [[0, 0, 0, 10], [0, 0, 10, -1], [0, 0, np.nan, 3], [1, 2, 3]])
def test_bbox_bad_input(bad):
    with pytest.raises(ValueError):
        bbox_to_center_scale(bad, (64, 48))


def test_affine_window_edges_map_to_crop_edges():
    # window [cx - w/2, cx + w/2] -> crop x in [-0.5, W - 0.5] (pixel-centre convention)
    c, s, size = np.array([50.0, 40.0]), np.array([30.0, 40.0]), (64, 48)
    m = affine_matrix(c, s, size)
    corners = np.array([[c[0] - s[0] / 2, c[1] - s[1] / 2], [c[0] + s[0] / 2, c[1] + s[1] / 2]])
    out = apply_affine(corners, m)
    np.testing.assert_allclose(out, [[-0.5, -0.5], [47.5, 63.5]], atol=1e-12)


def _naive_forward(p, c, s, size, rot_deg):
    """crop = D R (p - c) + o, written component-wise."""
    h, w = size
    t = math.radians(rot_deg)
    dx, dy = p[0] - c[0], p[1] - c[1]
    rx = math.cos(t) * dx - math.sin(t) * dy
    ry = math.sin(t) * dx + math.cos(t) * dy
    return (rx * w / s[0] + (w - 1) / 2, ry * h / s[1] + (h - 1) / 2)


@given(st.floats(-200, 800, **finite), st.floats(-200, 800, **finite),
       st.floats(1.0, 500.0, **finite), st.floats(-180, 180, **finite),
       st.lists(st.floats(-1000, 1000, **finite), min_size=2, max_size=2))
@settings(max_examples=80, deadline=None)
def test_affine_round_trip_and_formula(cx, cy, sw, rot, point):
    size = (64, 48)
    c, s = np.array([cx, cy]), np.array([sw, sw * 64 / 48])
    m = affine_matrix(c, s, size, rot)
    mi = affine_matrix(c, s, size, rot, inverse=True)
    p = np.array(point)
    q = apply_affine(p, m)
    np.testing.assert_allclose(q, _naive_forward(p, c, s, size, rot), rtol=1e-12, atol=1e-9)
    back = apply_affine(q, mi)
    assert np.max(np.abs(back - p)) <= 1e-9


@given(st.floats(-200, 800, **finite), st.floats(-200, 800, **finite), st.floats(1, 500, **finite),
       st.floats(1, 500, **finite))
@settings(max_examples=50, deadline=None)
def test_crop_to_image_inverts_image_to_crop_and_matches_matrix(cx, cy, sw, sh):
    rng = np.random.default_rng(0)
    pts = rng.uniform(-300, 900, size=(17, 2))
    c, s = np.array([cx, cy]), np.array([sw, sh])
    q = image_to_crop(pts, c, s, (64, 48))
    np.testing.assert_allclose(q, apply_affine(pts, affine_matrix(c, s, (64, 48))), atol=1e-9)
    assert np.max(np.abs(crop_to_image(q, c, s, (64, 48)) - pts)) <= 1e-9


def test_crop_to_image_batched_numpy_and_torch():
    rng = np.random.default_rng(1)
    q = rng.uniform(0, 48, size=(5, 17, 2))
    c = rng.uniform(0, 500, size=(5, 2))
    s = rng.uniform(10, 300, size=(5, 2))
    out = crop_to_image(q, c, s, (64, 48))
    for b in range(5):  # loop reference
        ref = apply_affine(q[b], affine_matrix(c[b], s[b], (64, 48), inverse=True))
        np.testing.assert_allclose(out[b], ref, atol=1e-9)
    out_t = crop_to_image(torch.tensor(q), torch.tensor(c), torch.tensor(s), (64, 48))
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float64
    np.testing.assert_allclose(out_t.numpy(), out, atol=1e-12)


def test_apply_affine_torch_matches_numpy():
    m = affine_matrix([10.0, 20.0], [30.0, 40.0], (64, 48), 17.0)
    p = np.random.default_rng(2).normal(size=(3, 17, 2)) * 50
    np.testing.assert_allclose(apply_affine(torch.tensor(p), m).numpy(), apply_affine(p, m),
                               atol=1e-12)


def _ramp_image(h=60, w=64, slope=4):
    img = np.zeros((h, w, 3), np.uint8)
    img[:, :, 0] = slope * np.arange(w)[None, :]
    img[:, :, 1] = slope * np.arange(h)[:, None]
    return img


@pytest.mark.parametrize("rot", [0.0, 23.0])
def test_warp_image_samples_at_pixel_centres(rot):
    # Bilinear interpolation reproduces a linear ramp; the crop pixel (i, j) must hold the ramp
    # at matrix^-1 (j, i). A half-pixel slip at 1:1 scale would be an error of 2 (slope 4 / 2);
    # PIL truncates to uint8, hence the window (-1, 0.01].
    img = _ramp_image()
    c, s, size = np.array([31.3, 28.6]), np.array([36.0, 48.0]), (48, 36)
    m = affine_matrix(c, s, size, rot)
    crop = warp_image(img, m, size).astype(np.float64)
    inv = affine_matrix(c, s, size, rot, inverse=True)
    for i in range(4, size[0] - 4, 3):
        for j in range(4, size[1] - 4, 3):
            t = math.radians(rot)
            dx, dy = (j - (size[1] - 1) / 2) * s[0] / size[1], (i - (size[0] - 1) / 2) * s[1] / size[0]
            x = c[0] + math.cos(t) * dx + math.sin(t) * dy
            y = c[1] - math.sin(t) * dx + math.cos(t) * dy
            np.testing.assert_allclose(apply_affine(np.array([j, i], float), inv), [x, y], atol=1e-9)
            assert -1.0 < crop[i, j, 0] - 4 * x <= 0.01, (i, j)
            assert -1.0 < crop[i, j, 1] - 4 * y <= 0.01, (i, j)


def test_warp_image_fill_outside_and_bad_input():
    img = np.full((10, 10, 3), 200, np.uint8)
    crop = warp_image(img, affine_matrix([100.0, 100.0], [10.0, 10.0], (8, 8)), (8, 8))
    assert crop.shape == (8, 8, 3) and crop.max() == 0
    with pytest.raises(ValueError):
        warp_image(img[..., 0], affine_matrix([5.0, 5.0], [10.0, 10.0], (8, 8)), (8, 8))
    with pytest.raises(ValueError):
        warp_image(img, np.zeros((2, 3)), (8, 8))


def _name_flip_index():
    """Flip partner of each joint from the names alone (left_x <-> right_x)."""
    out = []
    for name in KEYPOINT_NAMES:
        if name.startswith("left_"):
            out.append(KEYPOINT_NAMES.index("right_" + name[5:]))
        elif name.startswith("right_"):
            out.append(KEYPOINT_NAMES.index("left_" + name[6:]))
        else:
            out.append(KEYPOINT_NAMES.index(name))
    return out


@given(st.integers(2, 1000), st.integers(0, 2 ** 31 - 1))
@settings(max_examples=40, deadline=None)
def test_flip_twice_is_identity_and_swaps_left_right(width, seed):
    rng = np.random.default_rng(seed)
    kp = np.concatenate([rng.uniform(0, width - 1, (17, 1)), rng.uniform(0, 500, (17, 1)),
                         rng.integers(0, 3, (17, 1))], axis=1)
    once = flip_keypoints(kp, width)
    np.testing.assert_allclose(flip_keypoints(once, width), kp, atol=1e-9)
    partner = _name_flip_index()
    for k in range(17):
        j = partner[k]
        assert once[k, 0] == pytest.approx(width - 1 - kp[j, 0])
        assert once[k, 1] == kp[j, 1] and once[k, 2] == kp[j, 2]


def test_flip_keypoints_matches_flipped_image_pixels():
    # a joint marked at an integer pixel lands on the same mark in the mirrored image
    rng = np.random.default_rng(3)
    img = np.zeros((40, 30), np.int32)
    kp = np.stack([rng.integers(0, 30, 17), rng.integers(0, 40, 17)], axis=1).astype(float)
    for k, (x, y) in enumerate(kp):
        img[int(y), int(x)] = k + 1
    mirrored = img[:, ::-1]
    flipped = flip_keypoints(kp, 30)
    partner = _name_flip_index()
    for k, (x, y) in enumerate(flipped):
        assert mirrored[int(y), int(x)] in {partner[k] + 1} | {
            j + 1 for j in range(17) if (kp[j] == kp[partner[k]]).all()}


def test_flip_keypoints_batched_torch():
    kp = torch.rand(4, 17, 2) * 40
    out = flip_keypoints(kp, 48)
    assert isinstance(out, torch.Tensor) and out.shape == kp.shape
    np.testing.assert_allclose(out.numpy(), flip_keypoints(kp.numpy(), 48), atol=1e-5)
    with pytest.raises(ValueError):
        flip_keypoints(np.zeros((16, 2)), 48)
