"""Tests for SimCC, integral (soft-argmax + BCIR compensation), SAR and the round-trip bounds."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import poselab.codecs as codecs
from poselab.codecs import (IntegralCodec, SARCodec, SimCCCodec, compensate_softargmax_bias,
                            decode_sar, decode_simcc, encode_simcc, positives, sar_cell_centres,
                            sar_top_m, simcc_bins, soft_argmax)


# ============================================================================= SimCC
def test_simcc_labels_match_loop_reference():
    rng = np.random.default_rng(0)
    inp, k, sigma = (64, 48), 2.0, 6.0
    Lx, Ly = simcc_bins(inp, k)
    assert (Lx, Ly) == (96, 128)
    kp = rng.uniform(-30, 80, size=(2, 9, 2))
    vis = rng.integers(0, 3, size=(2, 9))
    lx, ly, w = encode_simcc(kp, vis, inp, k, sigma)
    assert lx.shape == (2, 9, Lx) and ly.shape == (2, 9, Ly)
    for b in range(2):
        for j in range(9):
            bx = math.floor((kp[b, j, 0] + 0.5) * k - 0.5 + 0.5)
            by = math.floor((kp[b, j, 1] + 0.5) * k - 0.5 + 0.5)
            ok = vis[b, j] > 0 and -3 * sigma <= bx <= Lx - 1 + 3 * sigma and -3 * sigma <= by <= Ly - 1 + 3 * sigma
            assert w[b, j] == float(ok)
            rx = [math.exp(-(t - bx) ** 2 / (2 * sigma ** 2)) * ok for t in range(Lx)]
            ry = [math.exp(-(t - by) ** 2 / (2 * sigma ** 2)) * ok for t in range(Ly)]
            np.testing.assert_allclose(lx[b, j].numpy(), rx, atol=1e-6)
            np.testing.assert_allclose(ly[b, j].numpy(), ry, atol=1e-6)


def test_simcc_positives_are_3sigma_window():
    lx, ly, w = encode_simcc(torch.tensor([[20.2, 30.7]]), None, (64, 48), 2.0, 6.0)
    pos = positives(lx)
    assert int(pos.sum()) == 37  # 6σ+1 bins, centre well inside
    idx = pos[0].nonzero()[:, 0]
    centre = math.floor((20.2 + 0.5) * 2 - 0.5 + 0.5)
    assert idx.min() == centre - 18 and idx.max() == centre + 18
    with pytest.raises(ValueError, match="threshold"):
        positives(lx, threshold=0.0)


def test_simcc_decode_roundtrip_and_scores():
    rng = np.random.default_rng(1)
    codec = SimCCCodec((64, 48), split_ratio=2.0, sigma=6.0)
    kp = rng.uniform(0, 1, size=(4, 17, 2)) * [47, 63]
    t = codec(kp, np.full((4, 17), 2))
    c, s = codec.decode(t["target_x"], t["target_y"])
    assert np.abs(c.numpy() - kp).max() <= 1 / (2 * 2.0) + 1e-6
    # softmax score reference (numpy, float64)
    def smax(v):
        e = np.exp(v - v.max(-1, keepdims=True))
        return (e / e.sum(-1, keepdims=True)).max(-1)
    ref = np.minimum(smax(t["target_x"].double().numpy()), smax(t["target_y"].double().numpy()))
    np.testing.assert_allclose(s.numpy(), ref, rtol=1e-5)
    _, raw = decode_simcc(t["target_x"], t["target_y"], 2.0, score="raw")
    np.testing.assert_allclose(raw.numpy(), 1.0)
    with pytest.raises(ValueError, match="leading"):
        decode_simcc(torch.zeros(2, 3, 10), torch.zeros(2, 4, 10))
    with pytest.raises(ValueError, match="NaN"):
        decode_simcc(torch.full((1, 3), float("nan")), torch.zeros(1, 3))


def test_simcc_bad_keypoints_and_empty():
    kp = torch.tensor([[[float("nan"), 1.0], [5.0, float("-inf")], [1e6, 3.0], [3.0, 4.0]]])
    lx, ly, w = encode_simcc(kp, None, (16, 12))
    assert w.tolist() == [[0, 0, 0, 1]] and torch.isfinite(lx).all() and torch.isfinite(ly).all()
    assert lx[0, :3].abs().sum() == 0
    lx, ly, w = encode_simcc(torch.zeros(0, 17, 2), None, (16, 12))
    assert lx.shape == (0, 17, 24) and ly.shape == (0, 17, 32)
    c, s = decode_simcc(lx, ly)
    assert c.shape == (0, 17, 2) and s.shape == (0, 17)


# ============================================================================= integral
def ref_soft_argmax(m, beta):
    H, W = m.shape
    num_x = num_y = den = 0.0
    mx = m.max()
    for i in range(H):
        for j in range(W):
            e = math.exp(beta * (m[i, j] - mx))
            num_x += j * e
            num_y += i * e
            den += e
    return num_x / den, num_y / den


def ref_compensated(m, beta):
    """Expectation under the weights exp(βh) - 1 (the algebraic form of BCIR Eq. 38)."""
    H, W = m.shape
    num_x = num_y = den = 0.0
    for i in range(H):
        for j in range(W):
            e = math.expm1(beta * m[i, j])
            num_x += j * e
            num_y += i * e
            den += e
    return num_x / den, num_y / den


def test_soft_argmax_matches_loop_reference():
    rng = np.random.default_rng(2)
    maps = rng.normal(size=(3, 2, 6, 5))
    for beta in (0.5, 3.0, 40.0):
        got = soft_argmax(torch.from_numpy(maps), beta)
        assert got.shape == (3, 2, 2) and got.dtype == torch.float64
        for b in range(3):
            for k in range(2):
                np.testing.assert_allclose(got[b, k].numpy(), ref_soft_argmax(maps[b, k], beta), rtol=1e-12)


def test_soft_argmax_beta_zero_and_huge():
    m = torch.randn(4, 7, 9, dtype=torch.float64)
    c0 = soft_argmax(m, 0.0)
    assert torch.allclose(c0, torch.tensor([4.0, 3.0], dtype=torch.float64).expand(4, 2))
    m[:, 2, 5] = 50.0
    c = soft_argmax(m, 1e4)
    assert torch.isfinite(c).all() and torch.allclose(c, torch.tensor([5.0, 2.0], dtype=torch.float64))


def test_soft_argmax_bad_inputs():
    m = torch.zeros(2, 4, 4)
    with pytest.raises(ValueError, match="beta"):
        soft_argmax(m, -1.0)
    with pytest.raises(ValueError, match="beta"):
        soft_argmax(m, float("inf"))
    for bad in (float("nan"), float("inf")):
        m2 = m.clone()
        m2[0, 1, 1] = bad
        with pytest.raises(ValueError, match="NaN"):
            soft_argmax(m2, 1.0)
        with pytest.raises(ValueError, match="NaN"):
            compensate_softargmax_bias(torch.zeros(2, 2), m2, 1.0)
    with pytest.raises(ValueError, match="coords"):
        compensate_softargmax_bias(torch.zeros(3, 2), m, 1.0)


@pytest.mark.parametrize("beta", [0.3, 1.0, 10.0, 100.0, 1e4])
def test_compensation_exact_for_symmetric_blob_on_zero_background(beta):
    """BCIR Eq. 38 recovers the true location exactly; the raw soft-argmax does not."""
    H, W = 17, 13
    rng = np.random.default_rng(int(beta * 10) % 1000)
    for _ in range(5):
        cx, cy = int(rng.integers(2, W - 2)), int(rng.integers(2, H - 2))
        m = np.zeros((H, W))
        a, b = rng.uniform(0.2, 1.0, size=2)
        m[cy, cx] = 1.0
        m[cy, cx - 1] = m[cy, cx + 1] = a      # symmetric about (cx, cy)
        m[cy - 1, cx] = m[cy + 1, cx] = b
        m[cy - 2, cx] = m[cy + 2, cx] = 0.1
        t = torch.from_numpy(m)
        raw = soft_argmax(t, beta)
        comp = compensate_softargmax_bias(raw, t, beta)
        assert np.abs(comp.numpy() - [cx, cy]).max() < 1e-9
        if beta <= 10 and (cx, cy) != ((W - 1) / 2, (H - 1) / 2):
            assert np.abs(raw.numpy() - [cx, cy]).max() > 1e-3  # the bias the paper describes


def test_compensation_equals_expm1_weighted_mean_on_random_maps():
    rng = np.random.default_rng(3)
    maps = rng.uniform(0.0, 1.0, size=(4, 6, 8))  # positive maps: C > n, well conditioned
    t = torch.from_numpy(maps)
    for beta in (0.5, 5.0):
        comp = compensate_softargmax_bias(soft_argmax(t, beta), t, beta)
        for n in range(4):
            np.testing.assert_allclose(comp[n].numpy(), ref_compensated(maps[n], beta), rtol=1e-9)


def test_compensation_is_not_the_mmpose_noop():
    m = torch.zeros(32, 32, dtype=torch.float64)
    m[5, 6] = 1.0
    raw = soft_argmax(m, 1.0)
    comp = compensate_softargmax_bias(raw, m, 1.0)
    C = float(torch.exp(m).sum())
    mmpose = C / (C - 1) * (raw - 1 / (2 * C))
    assert torch.allclose(comp, torch.tensor([6.0, 5.0], dtype=torch.float64))
    assert (mmpose - comp).abs().max() > 5  # mmpose's form barely moves the biased estimate


def test_compensation_degenerate_cases_are_finite():
    flat = torch.zeros(3, 5, 6)
    for beta in (0.0, 1.0):
        raw = soft_argmax(flat, beta)
        comp = compensate_softargmax_bias(raw, flat, beta)
        assert torch.equal(comp, raw)  # C == n: documented fallback to the uncorrected value
    m = torch.randn(3, 5, 6)
    comp = compensate_softargmax_bias(soft_argmax(m, 0.0), m, 0.0)
    assert torch.allclose(comp, torch.tensor([2.5, 2.0]).expand(3, 2))
    # huge β and huge logits: no overflow
    m = torch.randn(2, 4, 4) * 1e3
    comp = compensate_softargmax_bias(soft_argmax(m, 1e4), m, 1e4)
    assert torch.isfinite(comp).all()
    # gradients stay finite through the fallback branch
    x = torch.zeros(2, 4, 4, requires_grad=True)
    compensate_softargmax_bias(soft_argmax(x, 1.0), x, 1.0).sum().backward()
    assert torch.isfinite(x.grad).all()


@settings(max_examples=40, deadline=None)
@given(st.floats(0.0, 1e5), st.integers(0, 2 ** 31 - 1), st.floats(1e-3, 1e3))
def test_compensation_always_finite(beta, seed, scale):
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(2, 3, 5, 4, generator=g) * scale
    comp = compensate_softargmax_bias(soft_argmax(m, beta), m, beta)
    assert torch.isfinite(comp).all()


def test_integral_codec_targets_and_prior():
    codec = IntegralCodec((64, 48), (16, 12), beta=10.0, with_prior=True, sigma=1.5)
    kp = np.array([[[10.0, 20.0], [-3.0, 5.0], [np.nan, 1.0], [47.0, 63.0]]])
    out = codec(kp, np.array([[2, 2, 2, 1]]))
    assert out["target"].shape == (1, 4, 2) and out["prior"].shape == (1, 4, 16, 12)
    # -3 input px -> (-3 + 0.5)/4 - 0.5 = -1.125 heatmap px: outside [-0.5, W-0.5]
    assert out["weights"].tolist() == [[1, 0, 0, 1]]
    np.testing.assert_allclose(out["target"][0, 0].numpy(), [(10.5 / 4) - 0.5, (20.5 / 4) - 0.5])
    sums = out["prior"].sum((-2, -1))
    np.testing.assert_allclose(sums.numpy(), [[1, 0, 0, 1]], atol=1e-6)
    assert torch.isfinite(out["prior"]).all() and torch.isfinite(out["target"]).all()
    coords, scores = codec.decode(torch.zeros(2, 3, 16, 12))
    assert coords.shape == (2, 3, 2) and scores.shape == (2, 3)
    assert torch.allclose(coords, torch.tensor([(5.5 + 0.5) * 4 - 0.5, (7.5 + 0.5) * 4 - 0.5]))
    e = codec.decode(torch.zeros(0, 17, 16, 12))
    assert e[0].shape == (0, 17, 2) and e[1].shape == (0, 17)


# ============================================================================= SAR
def test_sar_cell_centres():
    p = sar_cell_centres((3, 4))
    assert p.shape == (3, 4, 2) and p[2, 1].tolist() == [1.0, 2.0]
    q = sar_cell_centres((3, 4), input_size=(12, 16))  # stride 4: cell (0,0) covers input px 0..3
    assert q[0, 0].tolist() == [1.5, 1.5] and q[2, 3].tolist() == [13.5, 9.5]


def test_sar_decode_matches_loop_reference():
    rng = np.random.default_rng(4)
    B, K, H, W = 2, 3, 5, 4
    logits = rng.normal(size=(B, K, H, W)) * 3
    offsets = rng.normal(size=(B, K, 2, H, W))
    lt, ot = torch.from_numpy(logits), torch.from_numpy(offsets)
    for m, gamma in ((1, 0.0), (3, 0.0), (4, 0.6), (20, 0.99)):
        coords, scores = decode_sar(lt, ot, m=m, gamma=gamma)
        for b in range(B):
            for k in range(K):
                cells = []
                for i in range(H):
                    for j in range(W):
                        c = 1 / (1 + math.exp(-logits[b, k, i, j]))
                        cells.append((c, j + offsets[b, k, 0, i, j], i + offsets[b, k, 1, i, j]))
                cells.sort(key=lambda t: -t[0])
                top = cells[:m]
                keep = [t for t in top if t[0] >= gamma] or top[:1]
                wsum = sum(t[0] for t in keep)
                ref = (sum(t[0] * t[1] for t in keep) / wsum, sum(t[0] * t[2] for t in keep) / wsum)
                np.testing.assert_allclose(coords[b, k].numpy(), ref, rtol=1e-10)
                assert float(scores[b, k]) == pytest.approx(top[0][0])
    _, s_norm = decode_sar(lt, ot, score="normalised")
    c = 1 / (1 + np.exp(-logits))
    np.testing.assert_allclose(s_norm.numpy(), c.max((-2, -1)) / c.sum((-2, -1)), rtol=1e-10)
    pts, sc, keep = sar_top_m(lt, ot, m=2, gamma=0.5)
    assert pts.shape == (B, K, 2, 2) and keep.dtype == torch.bool and (sc[..., 0] >= sc[..., 1]).all()


def test_sar_bad_inputs_and_empty():
    with pytest.raises(ValueError, match="offsets"):
        decode_sar(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 3, 4, 4))
    with pytest.raises(ValueError, match="m must"):
        decode_sar(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 2, 4, 4), m=17)
    with pytest.raises(ValueError, match="gamma"):
        decode_sar(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 2, 4, 4), gamma=2.0)
    with pytest.raises(ValueError, match="NaN"):
        decode_sar(torch.full((1, 2, 4, 4), float("nan")), torch.zeros(1, 2, 2, 4, 4))
    c, s = decode_sar(torch.zeros(0, 17, 4, 4), torch.zeros(0, 17, 2, 4, 4))
    assert c.shape == (0, 17, 2) and s.shape == (0, 17)


def test_sar_codec_roundtrip_sign_convention():
    codec = SARCodec((64, 48), (16, 12), with_heatmap=True)
    kp = np.array([[[10.0, 20.0], [50.0, -8.0], [np.inf, 0.0]]])  # SAR may target outside points
    out = codec(kp, None)
    assert out["weights"].tolist() == [[1, 1, 0]] and out["heatmap"].shape == (1, 3, 16, 12)
    tgt = out["target"]
    logits = torch.full((1, 3, 16, 12), -5.0)
    logits[0, :, 7, 3] = 5.0
    # offsets = target - cell centre at the selected cell: K_t = p_t + offset_t (SAR Eq. 5)
    offsets = torch.zeros(1, 3, 2, 16, 12)
    offsets[0, :, 0, 7, 3] = tgt[0, :, 0] - 3
    offsets[0, :, 1, 7, 3] = tgt[0, :, 1] - 7
    coords, _ = codec.decode(logits, offsets)
    np.testing.assert_allclose(coords[0, :2].numpy(), kp[0, :2], atol=1e-4)


# ============================================================================= round trips
@pytest.mark.parametrize("name", sorted(codecs.ROUNDTRIP_BOUNDS_PX))
def test_roundtrip_within_bound(name):
    err = codecs.roundtrip_max_error(name, n=400, seed=1)
    assert 0 <= err <= codecs.ROUNDTRIP_BOUNDS_PX[name]
    assert codecs.ROUNDTRIP_UNITS[name] in ("heatmap px", "input px")


def test_roundtrip_quantisation_bounds_are_tight():
    # argmax-type codecs really do hit (close to) their quantisation bound: the test can fail
    assert codecs.roundtrip_max_error("gaussian_argmax", n=400, seed=2) > 0.45
    assert codecs.roundtrip_max_error("simcc", n=400, seed=2) > 0.2
    assert codecs.roundtrip_max_error("unbiased_quarter", n=400, seed=2) > 0.2


def test_roundtrip_unknown_name():
    with pytest.raises(ValueError, match="unknown codec"):
        codecs.roundtrip_max_error("nope")


@pytest.mark.parametrize("k", [1.0, 3.0])
def test_simcc_other_split_ratios_roundtrip(k):
    rng = np.random.default_rng(6)
    codec = SimCCCodec((32, 24), split_ratio=k, sigma=4.0)
    kp = rng.uniform(0, 1, size=(50, 2)) * [23, 31]
    t = codec(kp)
    c, _ = codec.decode(t["target_x"], t["target_y"])
    err = np.abs(c.numpy() - kp).max()
    assert err <= 1 / (2 * k) + 1e-5 and err > 0.8 / (2 * k)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.integers(1, 6), st.integers(1, 6), st.floats(0, 1), st.integers(0, 10 ** 6))
def test_sar_decode_always_finite_and_in_hull(m_req, H, W, gamma, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, H, W, generator=g) * 20
    offsets = torch.randn(2, 3, 2, H, W, generator=g)
    m = min(m_req, H * W)
    pts, c, keep = sar_top_m(logits, offsets, m=m, gamma=gamma)
    coords, scores = decode_sar(logits, offsets, m=m, gamma=gamma)
    assert torch.isfinite(coords).all() and ((scores >= 0) & (scores <= 1)).all()
    # a weighted mean of the selected points lies within their bounding box
    assert (coords >= pts.amin(-2) - 1e-5).all() and (coords <= pts.amax(-2) + 1e-5).all()
