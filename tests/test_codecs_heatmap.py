"""Tests for poselab.codecs.heatmap against naive float64 loops and closed forms."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from scipy import ndimage

from poselab.codecs import (HeatmapCodec, decode_argmax, decode_dark, encode_dot, encode_gaussian,
                            heatmap_stride, heatmap_to_input, input_to_heatmap)


# ----------------------------------------------------------------------------- references
def ref_msra(kp, H, W, sigma, visible=True):
    """MSRA target by explicit loops over the (6σ+1)² window (MMPose's description)."""
    out = np.zeros((H, W))
    if not visible or not np.all(np.isfinite(kp)):
        return out, 0.0
    cx, cy = math.floor(kp[0] + 0.5), math.floor(kp[1] + 0.5)
    r = 3 * sigma
    any_inside = False
    for i in range(int(math.floor(cy - r)), int(math.ceil(cy + r)) + 1):
        for j in range(int(math.floor(cx - r)), int(math.ceil(cx + r)) + 1):
            if abs(i - cy) > r or abs(j - cx) > r:
                continue
            if 0 <= i < H and 0 <= j < W:
                any_inside = True
                out[i, j] = math.exp(-((j - cx) ** 2 + (i - cy) ** 2) / (2 * sigma ** 2))
    return out, float(any_inside)


def ref_argmax_quarter(m, quarter=True):
    H, W = m.shape
    best, bi, bj = -np.inf, 0, 0
    for i in range(H):
        for j in range(W):
            if m[i, j] > best:
                best, bi, bj = m[i, j], i, j
    x, y = float(bj), float(bi)
    if quarter:
        if 1 <= bj <= W - 2 and m[bi, bj + 1] != m[bi, bj - 1]:
            x += 0.25 if m[bi, bj + 1] > m[bi, bj - 1] else -0.25
        if 1 <= bi <= H - 2 and m[bi + 1, bj] != m[bi - 1, bj]:
            y += 0.25 if m[bi + 1, bj] > m[bi - 1, bj] else -0.25
    return (x, y), best


# ----------------------------------------------------------------------------- scale helpers
def test_input_heatmap_convention_is_block_mean():
    # heatmap pixel u covers input pixels u*s .. u*s+s-1 whose centres average to (u+0.5)s-0.5
    inp, hm = (64, 48), (16, 12)
    sx, sy = heatmap_stride(inp, hm)
    assert (sx, sy) == (4.0, 4.0)
    u = torch.tensor([[0.0, 0.0], [3.0, 7.0], [11.0, 15.0]])
    got = heatmap_to_input(u, inp, hm)
    for (ux, uy), (gx, gy) in zip(u.tolist(), got.tolist()):
        assert gx == pytest.approx(np.mean(np.arange(int(ux) * 4, int(ux) * 4 + 4)))
        assert gy == pytest.approx(np.mean(np.arange(int(uy) * 4, int(uy) * 4 + 4)))


def test_anisotropic_stride():
    assert heatmap_stride((64, 48), (32, 12)) == (4.0, 2.0)
    xy = heatmap_to_input(torch.tensor([1.0, 1.0], dtype=torch.float64), (64, 48), (32, 12))
    assert xy.tolist() == [(1.5 * 4) - 0.5, (1.5 * 2) - 0.5]


@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=2),
       st.sampled_from([((256, 192), (64, 48)), ((64, 48), (16, 12)), ((100, 80), (30, 20))]))
def test_scale_helpers_are_inverse(xy, sizes):
    t = torch.tensor(xy, dtype=torch.float64)
    back = heatmap_to_input(input_to_heatmap(t, *sizes), *sizes)
    assert torch.allclose(back, t, atol=1e-9)


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="heatmap_size"):
        encode_gaussian(torch.zeros(1, 2), None, (0, 4))
    with pytest.raises(ValueError, match="sigma"):
        encode_gaussian(torch.zeros(1, 2), None, (8, 8), sigma=-1)
    with pytest.raises(ValueError, match="keypoints"):
        encode_gaussian(torch.zeros(3, 3), None, (8, 8))
    with pytest.raises(ValueError, match="visible"):
        encode_gaussian(torch.zeros(3, 2), torch.ones(4), (8, 8))


# ----------------------------------------------------------------------------- Gaussian encoding
@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.0])
def test_msra_matches_loop_reference(sigma):
    rng = np.random.default_rng(0)
    H, W = 16, 12
    kp = rng.uniform(-8, 20, size=(40, 2))
    kp[:3] = [[-0.5, 3.0], [11.49, 15.5], [-6.6, 4.0]]  # round-half-up edges, window just outside
    vis = rng.integers(0, 3, size=40)
    heat, w = encode_gaussian(kp, vis, (H, W), sigma)
    assert heat.dtype == torch.float32 and heat.shape == (40, H, W) and w.shape == (40,)
    for k in range(40):
        ref, rw = ref_msra(kp[k], H, W, sigma, vis[k] > 0)
        assert float(w[k]) == rw, k
        np.testing.assert_allclose(heat[k].numpy(), ref, atol=1e-6)


def test_msra_window_and_peak():
    heat, w = encode_gaussian(torch.tensor([[10.3, 9.6]]), None, (32, 32), 2.0)
    assert float(heat.max()) == 1.0 and heat[0, 10, 10] == 1.0  # centre = round(9.6)=10, round(10.3)=10
    nz = (heat[0] > 0).nonzero()
    assert nz[:, 0].min() == 4 and nz[:, 0].max() == 16  # 13 = 6σ+1 rows
    assert nz[:, 1].min() == 4 and nz[:, 1].max() == 16


def test_unbiased_matches_closed_form():
    rng = np.random.default_rng(1)
    H, W, s = 12, 10, 1.5
    kp = rng.uniform(-2, 12, size=(5, 3, 2))
    heat, w = encode_gaussian(kp, None, (H, W), s, unbiased=True, dtype=torch.float64)
    ii, jj = np.mgrid[0:H, 0:W]
    for b in range(5):
        for k in range(3):
            x, y = kp[b, k]
            ref = np.exp(-((jj - x) ** 2 + (ii - y) ** 2) / (2 * s * s))
            np.testing.assert_allclose(heat[b, k].numpy(), ref, rtol=1e-12, atol=1e-300)
            assert w[b, k] == 1.0


def test_weights_invisible_nonfinite_far_outside():
    kp = torch.tensor([[[5.0, 5.0], [float("nan"), 3.0], [float("inf"), 1.0], [5.0, 5.0],
                        [-7.1, 5.0], [5.0, 30.0], [-6.0, 5.0]]])
    vis = torch.tensor([[2, 2, 2, 0, 1, 1, 1]])
    for unbiased in (False, True):
        heat, w = encode_gaussian(kp, vis, (16, 16), 2.0, unbiased=unbiased)
        assert torch.isfinite(heat).all()
        assert w.tolist() == [[1, 0, 0, 0, 0, 0, 1]]
        assert (heat[0, 1:6] == 0).all() and heat[0, 6].max() > 0


def test_empty_batch_and_numpy_input():
    heat, w = encode_gaussian(np.zeros((0, 17, 2)), np.zeros((0, 17)), (8, 6))
    assert heat.shape == (0, 17, 8, 6) and w.shape == (0, 17)
    c, s = decode_argmax(heat)
    assert c.shape == (0, 17, 2) and s.shape == (0, 17)
    c, s = decode_dark(heat)
    assert c.shape == (0, 17, 2) and s.shape == (0, 17)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(allow_nan=True, allow_infinity=True, width=32),
                          st.floats(allow_nan=True, allow_infinity=True, width=32)),
                min_size=1, max_size=6),
       st.booleans())
def test_gaussian_always_finite_with_valid_weights(points, unbiased):
    kp = torch.tensor(points, dtype=torch.float32)
    heat, w = encode_gaussian(kp, None, (9, 7), 1.0, unbiased=unbiased)
    assert torch.isfinite(heat).all() and torch.isfinite(w).all()
    assert set(w.unique().tolist()) <= {0.0, 1.0}
    # a weight-1 joint has a non-empty map; weight-0 joints are all zero
    assert ((heat.amax((-2, -1)) > 0) == (w > 0)).all() or unbiased
    assert (heat.amax((-2, -1))[w == 0] == 0).all()


# ----------------------------------------------------------------------------- dot encoding
def test_dot_one_hot_and_bilinear():
    kp = torch.tensor([[2.4, 3.6], [5.5, 0.0], [-0.7, 2.0], [9.9, 1.0]], dtype=torch.float64)
    heat, w = encode_dot(kp, None, (6, 10), dtype=torch.float64)
    assert w.tolist() == [1, 1, 0, 0]  # 9.9 rounds to column 10, outside W=10
    assert heat[0, 4, 2] == 1 and heat[0].sum() == 1
    assert heat[1, 0, 6] == 1  # 5.5 rounds half up
    assert heat[2].sum() == 0
    hb, wb = encode_dot(kp, None, (6, 10), bilinear=True, dtype=torch.float64)
    assert wb.tolist() == [1, 1, 1, 1]  # -0.7 leaves 0.3 of the mass at x=0
    ii, jj = np.mgrid[0:6, 0:10]
    m = hb[0].numpy()
    assert m.sum() == pytest.approx(1.0)
    assert (m * jj).sum() == pytest.approx(2.4) and (m * ii).sum() == pytest.approx(3.6)
    assert hb[2].sum() == pytest.approx(0.3)
    assert hb[2, 2, 0] == pytest.approx(0.3)
    assert hb[3].sum() == pytest.approx(0.1) and hb[3, 1, 9] == pytest.approx(0.1)


# ----------------------------------------------------------------------------- decoding
def test_argmax_and_quarter_match_loop_reference():
    rng = np.random.default_rng(2)
    maps = rng.normal(size=(4, 5, 7, 6))
    maps[0, 0, 0, 3] = 10  # maximum on the top border
    maps[0, 1, 3, 5] = 10  # on the right border
    for quarter in (True, False):
        c, s = decode_argmax(maps, refine="quarter" if quarter else None)
        assert c.shape == (4, 5, 2) and s.shape == (4, 5)
        for b in range(4):
            for k in range(5):
                (x, y), v = ref_argmax_quarter(maps[b, k], quarter)
                assert c[b, k].tolist() == [x, y]
                assert float(s[b, k]) == pytest.approx(v, rel=1e-6)


def test_decode_rejects_nonfinite_and_bad_args():
    m = torch.zeros(2, 4, 4)
    m[1, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        decode_argmax(m)
    with pytest.raises(ValueError, match="NaN"):
        decode_dark(m)
    with pytest.raises(ValueError, match="refine"):
        decode_argmax(torch.zeros(1, 4, 4), refine="half")
    with pytest.raises(ValueError, match="kernel"):
        decode_dark(torch.zeros(1, 4, 4), kernel=4)


def test_dark_without_blur_is_exact_for_gaussians_everywhere():
    rng = np.random.default_rng(3)
    H, W = 16, 12
    kp = rng.uniform(0, 1, size=(300, 2)) * [W - 1, H - 1]
    heat, _ = encode_gaussian(kp, None, (H, W), 2.0, unbiased=True, dtype=torch.float64)
    c, s = decode_dark(heat, kernel=None)
    assert np.abs(c.numpy() - kp).max() < 1e-4  # float32 output rounding only
    np.testing.assert_allclose(s.numpy(), heat.amax((-2, -1)).numpy(), rtol=1e-6)


def test_dark_with_blur_matches_scipy_reference():
    """Blur with scipy (zero padding, OpenCV's σ for kernel 11), Newton step in numpy."""
    rng = np.random.default_rng(4)
    H, W = 20, 16
    maps = np.zeros((30, H, W))
    kp = rng.uniform(3, 12, size=(30, 2))
    ii, jj = np.mgrid[0:H, 0:W]
    for n in range(30):  # anisotropic, slightly noisy blobs: not exactly log-quadratic
        maps[n] = np.exp(-((jj - kp[n, 0]) ** 2 / 6 + (ii - kp[n, 1]) ** 2 / 10)) + 0.01 * rng.random((H, W))
    got, _ = decode_dark(maps, kernel=11)
    for n in range(30):
        b = ndimage.gaussian_filter(maps[n], sigma=2.0, mode="constant", truncate=5 / 2.0)
        L = np.log(np.maximum(b, 1e-10))
        y, x = np.unravel_index(np.argmax(maps[n]), maps[n].shape)
        g = np.array([(L[y, x + 1] - L[y, x - 1]) / 2, (L[y + 1, x] - L[y - 1, x]) / 2])
        hxx = L[y, x + 1] - 2 * L[y, x] + L[y, x - 1]
        hyy = L[y + 1, x] - 2 * L[y, x] + L[y - 1, x]
        hxy = (L[y + 1, x + 1] - L[y - 1, x + 1] - L[y + 1, x - 1] + L[y - 1, x - 1]) / 4
        off = -np.linalg.solve(np.array([[hxx, hxy], [hxy, hyy]]), g)
        ref = np.clip(np.array([x, y]) + off, [x - 0.5, y - 0.5], [x + 0.5, y + 0.5])
        np.testing.assert_allclose(got[n].numpy(), ref, atol=1e-4)


def test_dark_falls_back_to_argmax_on_non_concave_maps():
    # flat map: zero Hessian, no Newton step -> the first argmax pixel, for both variants
    for kernel in (None, 11):
        c, _ = decode_dark(torch.ones(1, 7, 7), kernel=kernel)
        assert c[0].tolist() == [0.0, 0.0]
    # a 3-pixel plateau: the quadratic through (eps, 1, 1) peaks half-way -> 2.5 (not a fallback)
    m = torch.zeros(1, 7, 7)
    m[0, 3, 2:5] = 1.0
    c, _ = decode_dark(m, kernel=None)
    assert c[0].tolist() == [2.5, 3.0]


# ----------------------------------------------------------------------------- codec object
def test_heatmap_codec_shapes_and_roundtrip():
    codec = HeatmapCodec((64, 48), (16, 12), sigma=2.0, unbiased=True, decoder="dark", dark_kernel=None)
    rng = np.random.default_rng(5)
    kp = rng.uniform(0, 1, size=(3, 17, 2)) * [47, 63]
    vis = np.full((3, 17), 2)
    vis[0, 0] = 0
    out = codec(kp, vis)  # target_fn call
    assert set(out) == {"target", "weights"}
    assert out["target"].shape == (3, 17, 16, 12) and out["weights"].shape == (3, 17)
    assert out["weights"][0, 0] == 0 and out["target"][0, 0].abs().sum() == 0
    coords, scores = codec.decode(out["target"])
    assert coords.shape == (3, 17, 2) and scores.shape == (3, 17)
    err = np.abs(coords.numpy() - kp)[out["weights"].numpy() > 0]
    assert err.max() < 4 * 1e-3  # exact up to float32, in input px (stride 4)
    with pytest.raises(ValueError, match="decoder"):
        HeatmapCodec(decoder="soft")
