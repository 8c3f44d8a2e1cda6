"""The one soft-argmax (BCIR Eq. 3) and the bias compensation (Eq. 38) in every dtype they run in,
at the paper's 64×48 heatmaps: stability for huge β (issue 10), agreement with float64 loop
references, and the C <= n case."""
import math

import numpy as np
import pytest
import torch

from poselab.codecs import (IntegralCodec, compensate_softargmax_bias, compensated_soft_argmax, soft_argmax,
                            softmax_log_normalizer, spatial_softmax)
from poselab.losses import soft_argmax_2d

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
H, W = 64, 48


def ref_soft_argmax(m: np.ndarray, beta: float):
    """float64 loop reference with the max subtracted (exact up to float64 rounding)."""
    mx = m.max()
    num_x = num_y = den = 0.0
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            e = math.exp(beta * (m[i, j] - mx))
            num_x, num_y, den = num_x + j * e, num_y + i * e, den + e
    return num_x / den, num_y / den


def out_tol(dtype):
    """Half an ulp of the output at coordinates up to 64, plus float32 compute error."""
    return {torch.float64: 1e-9, torch.float32: 2e-5, torch.float16: 0.02, torch.bfloat16: 0.13}[dtype]


def test_alias_is_the_same_function():
    assert soft_argmax_2d is soft_argmax


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("beta", [1.0, 10.0, 40.0])
def test_soft_argmax_matches_float64_loop_at_64x48(dtype, beta):
    g = torch.Generator().manual_seed(int(beta))
    maps = (torch.randn(2, H, W, generator=g, dtype=torch.float64) * 0.3).to(dtype)
    maps[0, 50, 3] = 1.5                     # a peak near a corner: far from the centre
    got = soft_argmax(maps, beta)
    assert got.dtype == dtype and got.shape == (2, 2)
    for n in range(2):
        ref = ref_soft_argmax(maps[n].double().numpy(), beta)  # same (rounded) input values
        assert np.abs(got[n].double().numpy() - ref).max() <= out_tol(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("beta", [1e4, 1e6, 1e30, 1e300])
def test_soft_argmax_huge_beta_is_the_argmax_and_finite(dtype, beta):
    """Issue 10: softmax(β·h) overflowed to inf - inf = NaN for huge β·h."""
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(3, 17, H, W, generator=g).to(dtype)
    idx = torch.randint(0, H * W, (3, 17), generator=g)
    flat = maps.reshape(3, 17, H * W)
    flat.scatter_(-1, idx[..., None], torch.full((3, 17, 1), 4.0, dtype=dtype))
    maps = flat.reshape(3, 17, H, W).requires_grad_(True)
    got = soft_argmax(maps, beta)
    assert torch.isfinite(got).all()
    want = torch.stack([idx % W, idx // W], -1).to(torch.float64)
    assert (got.double() - want).abs().max() <= out_tol(dtype)
    got.sum().backward()
    assert torch.isfinite(maps.grad).all()


@pytest.mark.parametrize("dtype,beta", [(torch.float32, 1e39), (torch.float16, 1e5),
                                        (torch.bfloat16, 1e39)])
def test_the_unshifted_softmax_is_nan_where_ours_is_not(dtype, beta):
    """Counter-case: the formula the issue reported (softmax of β·h) fails on the same input."""
    m = torch.zeros(H, W, dtype=dtype)
    m[10, 20] = 2.0
    naive = torch.softmax((beta * m).reshape(-1), -1)
    assert torch.isnan(naive).any()
    assert soft_argmax(m, beta).tolist() == [20.0, 10.0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_spatial_softmax_and_log_normalizer(dtype):
    g = torch.Generator().manual_seed(1)
    m = (torch.randn(4, H, W, generator=g, dtype=torch.float64) * 2).to(dtype)
    p = spatial_softmax(m, 10.0)
    assert p.dtype == dtype
    ref = torch.softmax(10.0 * m.double().reshape(4, -1), -1).reshape(4, H, W)
    tol = {torch.float64: 1e-12, torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 8e-3}[dtype]
    assert (p.double() - ref).abs().max() <= tol
    log_c = softmax_log_normalizer(m, 10.0)
    ref_c = torch.logsumexp(10.0 * m.double().reshape(4, -1), -1)
    assert (log_c.double() - ref_c).abs().max() <= 1e-5 * ref_c.abs().max()
    # huge β·h: log C is finite or +inf, never NaN
    assert not torch.isnan(softmax_log_normalizer(m, 1e300)).any()


def symmetric_blob(cx, cy, sigma=2.0, radius=6, peak=1.0, size=(H, W)):
    """Gaussian with square support |dx|, |dy| <= radius around an integer pixel, zero elsewhere."""
    ys, xs = np.mgrid[0:size[0], 0:size[1]]
    g = peak * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma ** 2))
    return g * ((np.abs(xs - cx) <= radius) & (np.abs(ys - cy) <= radius))


# measured max errors over 40 centres: float64 1e-11 / 7e-14, float32 5.0e-3 / 1.4e-4 (β = 1 / 10;
# the compensation multiplies J_r's rounding by C / (C - n) ≈ 125 at β = 1), float16 and bfloat16
# within half an ulp of the output (the map is rounded symmetrically, so the centre stays exact)
COMP_TOL = {(torch.float64, 1.0): 1e-10, (torch.float64, 10.0): 1e-12,
            (torch.float32, 1.0): 1e-2, (torch.float32, 10.0): 5e-4,
            (torch.float16, 1.0): 0.016, (torch.float16, 10.0): 0.016,
            (torch.bfloat16, 1.0): 0.126, (torch.bfloat16, 10.0): 0.126}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("beta", [1.0, 10.0])
def test_compensation_recovers_blob_centre_at_64x48(dtype, beta):
    tol = COMP_TOL[(dtype, beta)]
    rng = np.random.default_rng(5)
    for _ in range(40):
        cx, cy = int(rng.integers(6, W - 6)), int(rng.integers(6, H - 6))
        m = torch.from_numpy(symmetric_blob(cx, cy)).to(dtype)
        comp = compensated_soft_argmax(m, beta)
        assert comp.dtype == dtype
        assert np.abs(comp.double().numpy() - [cx, cy]).max() <= tol
        if dtype == torch.float64:   # the two-step public path agrees in float64
            two_step = compensate_softargmax_bias(soft_argmax(m, beta), m, beta)
            assert np.abs(two_step.numpy() - [cx, cy]).max() <= tol


def test_compensation_without_localized_support_returns_raw_and_says_so():
    m = -torch.rand(2, H, W, dtype=torch.float64)     # every logit below 0: C < n
    m[1] += 2.0                                        # the second map rises above 0: C > n
    raw = soft_argmax(m, 10.0)
    comp, valid = compensate_softargmax_bias(raw, m, 10.0, return_valid=True)
    assert valid.tolist() == [False, True]
    assert torch.equal(comp[0], raw[0])
    assert not torch.equal(comp[1], raw[1])
    # huge β with all-negative logits: C underflows to 0, still finite
    comp = compensate_softargmax_bias(soft_argmax(m, 1e300), m, 1e300)
    assert torch.isfinite(comp).all()


def test_compensation_gradient_finite_in_half_precision():
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        m = torch.from_numpy(symmetric_blob(30, 40)).to(dtype).requires_grad_(True)
        comp = compensated_soft_argmax(m, 10.0)
        comp.sum().backward()
        assert torch.isfinite(m.grad).all()


def test_codec_decode_compensates():
    codec = IntegralCodec((256, 192), (H, W), beta=10.0, compensate=True)
    plain = IntegralCodec((256, 192), (H, W), beta=10.0, compensate=False)
    m = torch.from_numpy(symmetric_blob(7, 9, sigma=3.0, radius=7, peak=0.3))[None, None].float()
    (c, s), (p, _) = codec.decode(m), plain.decode(m)
    want = torch.tensor([(7 + 0.5) * 4 - 0.5, (9 + 0.5) * 4 - 0.5])
    assert (c[0, 0] - want).abs().max() < 0.02
    assert (p[0, 0] - want).abs().max() > 1.0          # the uncompensated point is pulled inward
    assert 0 < float(s[0, 0]) <= 1


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "ten"])
def test_bad_beta_names_beta(bad):
    with pytest.raises(ValueError, match="beta"):
        soft_argmax(torch.zeros(4, 4), bad)
    with pytest.raises(ValueError, match="beta"):
        spatial_softmax(torch.zeros(4, 4), bad)


def test_maps_without_pixels_are_refused():
    for fn in (soft_argmax, spatial_softmax, softmax_log_normalizer, compensated_soft_argmax):
        with pytest.raises(ValueError, match="at least one pixel"):
            fn(torch.zeros(2, 0, 5))
    with pytest.raises(ValueError, match="at least one pixel"):
        IntegralCodec((64, 48), (16, 12)).decode(torch.zeros(1, 17, 16, 0))
    assert soft_argmax(torch.zeros(0, 17, 16, 12)).shape == (0, 17, 2)   # an empty batch is fine


def ref_guarded(m: np.ndarray, beta: float, max_gain: float):
    """float64 reference of the guard: J = centre + min(C/(C-n), max_gain) (J_r - centre),
    C summed directly."""
    jr = np.array(ref_soft_argmax(m, beta))
    n = m.size
    c = float(np.exp(beta * m.astype(np.float64)).sum())
    gain = min(c / (c - n), max_gain) if c > n else max_gain
    centre = np.array([(m.shape[1] - 1) / 2, (m.shape[0] - 1) / 2])
    return centre + gain * (jr - centre)


@pytest.mark.parametrize("dtype", DTYPES)
def test_guard_caps_the_gain_at_initialisation_and_leaves_a_blob_exact(dtype):
    """Maps like a network's at initialisation (logits ~1e-3): Eq. 38 as derived amplifies the
    soft-argmax's offset from the centre hundreds of times (or falls back where C <= n); with
    max_gain the gain is at most the cap (float64 loop reference), and a localized blob is still
    recovered exactly — the counter-case an always-on clamp (or none) fails."""
    rng = np.random.default_rng(3)
    init = rng.normal(0.0, 1e-3, size=(6, H, W)) + np.linspace(0, 2e-3, W)[None, None]
    t = torch.tensor(init, dtype=dtype)
    plain, valid = compensated_soft_argmax(t, 10.0, return_valid=True)
    centre = torch.tensor([(W - 1) / 2, (H - 1) / 2])
    work = t if dtype == torch.float64 else t.float()     # half maps are computed in float32
    raw = soft_argmax(work, 10.0)
    gains = ((compensated_soft_argmax(work, 10.0) - centre.to(raw.dtype)).norm(dim=-1)
             / (raw - centre.to(raw.dtype)).norm(dim=-1))[valid]
    assert bool(valid.any()) and float(gains.max()) > 50
    exact = compensated_soft_argmax(t, 10.0, max_gain=10.0)
    guarded = compensated_soft_argmax(work, 10.0, max_gain=10.0)
    assert float((exact.double() - guarded.double()).abs().max()) <= out_tol(dtype)
    centre = centre.to(raw.dtype)
    ratio = (guarded - centre).norm(dim=-1) / (raw - centre).norm(dim=-1)
    assert float(ratio.max()) <= 10.0 * (1 + 1e-3)
    if dtype == torch.float64:
        for k in range(6):
            np.testing.assert_allclose(exact[k].numpy(), ref_guarded(init[k], 10.0, 10.0), rtol=1e-9)
    ys, xs = np.mgrid[0:H, 0:W]
    blob = np.exp(-((xs - 9.0) ** 2 + (ys - 50.0) ** 2) / 8.0)
    b = torch.tensor(blob, dtype=dtype)
    tol = 1e-9 if dtype == torch.float64 else 0.05
    assert float((compensated_soft_argmax(b, 10.0, max_gain=10.0).float() - torch.tensor([9.0, 50.0])).abs().max()) < tol


def test_guard_gradient_is_bounded_and_bad_caps_are_refused():
    h = torch.full((1, 1, H, W), 1e-4, dtype=torch.float64)
    h[..., 40, 30] = 2e-3
    gt = torch.tensor([[[30.0, 40.0]]], dtype=torch.float64)

    def grad(**kw):
        x = h.clone().requires_grad_(True)
        (compensated_soft_argmax(x, 10.0, **kw) - gt).abs().sum().backward()
        return float(x.grad.norm())

    x = h.clone().requires_grad_(True)
    (soft_argmax(x, 10.0) - gt).abs().sum().backward()
    plain = float(x.grad.norm())
    assert grad() > 100 * plain            # Eq. 38 as derived: the g² term through C
    assert grad(max_gain=10.0) <= 10.0 * plain * (1 + 1e-9)
    for bad in (1.0, 0.5, float("nan"), float("inf"), "ten"):
        with pytest.raises(ValueError, match="max_gain"):
            compensated_soft_argmax(h, 10.0, max_gain=bad)
    codec = IntegralCodec((128, 96), (64, 48), beta=10.0, max_gain=10.0)
    assert "max_gain=10.0" in repr(codec)


def test_centre_pairs_x_with_w_as_eq38_not_eq37_as_printed():
    """BCIR prints Eq. 37 with x paired to h/2 and Eq. 38 with x paired to w; poselab follows
    x along W. On a non-square 64×48 map the soft-argmax of a blob obeys Eq. 37 only with the
    centre ((W−1)/2, (H−1)/2); the swapped centre misses by pixels, and compensating with it
    would not recover the blob."""
    ys, xs = np.mgrid[0:H, 0:W]
    blob = np.exp(-((xs - 9.0) ** 2 + (ys - 50.0) ** 2) / 8.0) * ((xs - 9.0) ** 2 + (ys - 50.0) ** 2 <= 64)
    t = torch.tensor(blob)
    r = float(math.exp(math.log(H * W) - float(softmax_log_normalizer(t, 1.0))))
    raw = soft_argmax(t, 1.0).numpy()
    ours = (1 - r) * np.array([9.0, 50.0]) + r * np.array([(W - 1) / 2, (H - 1) / 2])
    swapped = (1 - r) * np.array([9.0, 50.0]) + r * np.array([(H - 1) / 2, (W - 1) / 2])
    assert np.abs(raw - ours).max() < 1e-9 and np.abs(raw - swapped).min() > 1.0
    np.testing.assert_allclose(compensated_soft_argmax(t, 1.0).numpy(), [9.0, 50.0], atol=1e-9)
