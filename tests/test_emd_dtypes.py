"""emd_loss in every dtype it runs in, at the papers' heatmap sizes (issues 8 and 10).

Reference: the same problems in float64 (itself checked against POT in tests/test_hdm_loss.py),
built from the *rounded* low-precision inputs, so that only the solver's arithmetic is compared.
Half-precision inputs are solved in float32 and returned in their own dtype.
"""
import math
import warnings

import pytest
import torch

from poselab.losses import emd_loss
from poselab.losses import transport
from poselab.losses.transport import hdm_transport

SIZES = [(16, 12), (32, 24), (64, 48), (96, 72)]
LOW = [torch.float32, torch.float16, torch.bfloat16]
# relative tolerance on values: the solver (float32, marginal error ≤ 1e-6) plus rounding the
# result to the output dtype (float16 eps 9.8e-4, bfloat16 eps 7.8e-3)
VALUE_RTOL = {torch.float32: 2e-5, torch.float16: 1e-3, torch.bfloat16: 8e-3}


def _problems(H, W, seed=0):
    """B=2, K=6: corner keypoints with the mass in the opposite corner (the longest transport,
    where the unstabilised float32 kernel underflowed), a rectified-normal map, a blob beside a
    random keypoint, an almost-integer keypoint (a demander with ~1e-6 mass) and a dense map."""
    g = torch.Generator().manual_seed(seed)
    hm = torch.randn(2, 6, H, W, generator=g, dtype=torch.float64)
    kp = torch.rand(2, 6, 2, generator=g, dtype=torch.float64) * torch.tensor([W - 1.0, H - 1.0],
                                                                                dtype=torch.float64)
    corners = [(0.0, 0.0), (W - 1.0, H - 1.0), (0.0, H - 1.0), (W - 1.0, 0.0)]
    for k, (x, y) in enumerate(corners):
        kp[0, k] = torch.tensor([x, y])
        hm[0, k] = -1.0
        hm[0, k, int(H - 1 - y):, :][:2, :2] = 1.0  # a few pixels in the opposite corner
        hm[0, k, int(H - 1 - y), int(W - 1 - x)] = 2.0
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64),
                            indexing="ij")
    hm[1, 0] = torch.exp(-((xx - kp[1, 0, 0] - 2) ** 2 + (yy - kp[1, 0, 1] + 1) ** 2) / 8)
    kp[1, 1] = torch.tensor([W / 2 + 1e-6, H / 3])
    hm[1, 2] = hm[1, 2].abs() + 0.01
    return hm, kp


def _rounded(hm, kp, dtype):
    """Inputs in ``dtype`` and the same (rounded) values in float64."""
    h, k = hm.to(dtype), kp.to(dtype)
    return h, k, h.double(), k.double()


def _value_and_grad(hm, kp, **kw):
    h = hm.clone().requires_grad_(True)
    val = emd_loss(h, kp, torch.ones(hm.shape[:2]), reduction="none", **kw)
    weights = torch.arange(1.0, 1.0 + val.numel(), dtype=val.dtype).reshape(val.shape)
    (val * weights).sum().backward()
    return val.detach(), h.grad


@pytest.mark.parametrize("solver", ["newton", "sinkhorn"])
@pytest.mark.parametrize("dtype", LOW, ids=str)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_values_and_gradients_match_float64(size, dtype, solver):
    hm, kp = _problems(*size)
    h, k, h64, k64 = _rounded(hm, kp, dtype)
    val, grad = _value_and_grad(h, k, solver=solver)
    ref, ref_grad = _value_and_grad(h64, k64, solver=solver, tol=1e-12)
    assert val.dtype == dtype and grad.dtype == dtype
    assert bool(torch.isfinite(val).all()) and bool(torch.isfinite(grad).all())
    rel = ((val.double() - ref).abs() / ref).max()
    assert float(rel) <= VALUE_RTOL[dtype], f"max relative error {float(rel):.2e}"
    # gradients: per joint, relative to the largest entry of that joint's gradient
    err = (grad.double() - ref_grad).abs().amax((-2, -1))
    scale = ref_grad.abs().amax((-2, -1))
    bound = 1e-3 if dtype == torch.float32 else 4 * VALUE_RTOL[dtype]
    assert bool((err <= bound * scale + 1e-12).all()), f"gradient error {float((err / scale).max()):.2e}"


def test_float32_far_mass_used_to_be_nan_and_the_stabilised_kernel_is_finite():
    """Counter-case of the bug (issue 10): with the plain kernel exp(-C/ε) in float32 the row
    sums s_i = Σ_j K_ji v_j are ~exp(-d_i) and s_i² underflows ~52 px from the keypoint, so the
    Newton evaluation G = K diag(a/s²) Kᵀ is NaN; with the row-stabilised kernel it is finite."""
    H, W = 64, 48
    kp = torch.tensor([[0.3, 0.6]])
    costs = transport.cell_costs(kp, (H, W)).float()  # (1, 4, HW), up to 79 px
    a = torch.full((1, H * W), 1.0 / (H * W))
    v = torch.ones(1, 4)
    plain = torch.exp(-costs)
    assert plain.min() > 0  # every entry representable: the old check let this kernel through ...
    assert not bool(torch.isfinite(transport._evaluate(a, plain, v)[1]).all())  # ... and s² underflowed
    stabilised = torch.exp(costs.amin(1, keepdim=True) - costs)
    assert bool(torch.isfinite(transport._evaluate(a, stabilised, v)[1]).all())
    assert not transport._plain_kernel_ok(float(costs.max()), 1.0, torch.float32)
    assert transport._plain_kernel_ok(float(costs.max()), 1.0, torch.float64)


@pytest.mark.parametrize("dtype", [torch.float64, *LOW], ids=str)
def test_every_joint_invisible_gives_a_connected_zero(dtype):
    hm = torch.randn(2, 3, 16, 12, dtype=dtype, requires_grad=True)
    kp = torch.rand(2, 3, 2) * 10
    for reduction in ("mean", "sum", "none"):
        out = emd_loss(hm, kp, torch.zeros(2, 3), reduction=reduction)
        assert out.requires_grad and out.dtype == dtype
        assert float(out.detach().abs().sum()) == 0.0
        out.sum().backward()
        assert float(hm.grad.abs().max()) == 0.0
        hm.grad = None


def test_half_precision_keypoints_are_not_rounded_to_the_heatmap_dtype():
    """bfloat16 holds 95.3 as 95.5: keypoints given in float32 must be used in float32."""
    H, W = 96, 72
    hm, _ = _problems(H, W)
    kp = torch.tensor([[[70.3, 94.7]]])
    got = emd_loss(hm[:1, :1].to(torch.bfloat16), kp, torch.ones(1, 1), reduction="none")
    ref = emd_loss(hm[:1, :1].to(torch.bfloat16).double(), kp.double(), torch.ones(1, 1), tol=1e-12,
                   reduction="none")
    assert abs(float(got) - float(ref)) / float(ref) <= VALUE_RTOL[torch.bfloat16]


# --- iterations and stopping (issue 8) ---------------------------------------------------------

def _rectified_normal(H, W, B=4, K=17, seed=1):
    g = torch.Generator().manual_seed(seed)
    hm = torch.randn(B, K, H, W, generator=g)
    kp = torch.rand(B, K, 2, generator=g) * torch.tensor([W - 1.0, H - 1.0])
    kp[0, 0] = torch.tensor([0.0, 0.0])
    kp[0, 1] = torch.tensor([W - 1.0, H - 1.0])
    return hm, kp


@pytest.mark.parametrize("dtype", LOW, ids=str)
@pytest.mark.parametrize("size", SIZES[:3], ids=lambda s: f"{s[0]}x{s[1]}")
def test_iterations_at_the_default_tol_and_below_the_roundoff_floor(size, dtype):
    """Default tol = 1e-6: Newton converges in 2 warm-up + 1–3 steps, as in float64. A tol below
    float32's round-off floor (2e-7 – 1.5e-6) stops within a few steps at that floor — not at the
    1000-iteration cap (the old stall rule never fired while round-off made the error wobble) —
    without a warning; Sinkhorn likewise stops at its floor."""
    hm, kp = _rectified_normal(*size)
    hm, kp = hm.to(dtype), kp.to(dtype)
    f64 = hdm_transport(hm.double(), kp.double(), solver="newton")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no cap warning in any of these
        info = hdm_transport(hm, kp, solver="newton")
        # float32's round-off floor is 2e-7 – 1.5e-6 here: the default tol is reached, or the
        # solver stops at that floor (bfloat16-rounded maps at 64×48: 1.5e-6)
        assert info["stopped"] in ("tol", "round-off") and info["marginal_error"] <= 2e-6
        assert info["iterations"] <= max(5, f64["iterations"] + 2)
        deep = hdm_transport(hm, kp, tol=1e-12, solver="newton")
        assert deep["stopped"] == "round-off" and deep["iterations"] <= 8
        assert deep["marginal_error"] <= 2e-6
        sk = hdm_transport(hm, kp, tol=1e-12, solver="sinkhorn")
        assert sk["stopped"] == "round-off" and sk["iterations"] <= 60
        assert sk["marginal_error"] <= transport._roundoff_floor(torch.float32)


def test_float64_still_reaches_tiny_tol():
    hm, kp = _rectified_normal(64, 48)
    info = hdm_transport(hm.double(), kp.double(), tol=1e-12, solver="newton")
    assert info["stopped"] == "tol" and info["marginal_error"] <= 1e-12 and info["iterations"] <= 6


def test_progress_detects_a_wobbling_floor_where_no_new_best_does_not():
    """Counter-case for the stall rule: an error wobbling at a floor sets a new best every few
    steps, so "no new best for 3 steps" never fires; "no halving in 2 steps" does."""
    wobble = [2e-3, 3e-6, 4.1e-7, 3.9e-7, 4.0e-7, 3.8e-7, 4.2e-7, 3.7e-7, 3.9e-7, 3.6e-7]
    best, stall, old_fired = math.inf, 0, False
    for e in wobble:
        stall = stall + 1 if e >= best else 0
        best = min(best, e)
        old_fired = old_fired or stall >= 3
    assert not old_fired
    progress = transport._Progress(2)
    fired = [progress.stalled(e) for e in wobble]
    assert fired.index(True) == 4  # after two steps without halving 4.1e-7
    quadratic = transport._Progress(2)
    assert not any(quadratic.stalled(e) for e in [2e-3, 4e-6, 1.6e-11, 1e-15])


@pytest.mark.parametrize("solver", ["newton", "sinkhorn"])
def test_cap_reached_above_tol_warns_like_pot(solver):
    hm, kp = _rectified_normal(32, 24, B=1, K=3)
    hm = hm.double()
    with pytest.warns(UserWarning, match=r"n_iters=2 .*tol=1e-12"):
        emd_loss(hm, kp.double(), torch.ones(1, 3), n_iters=2, tol=1e-12, solver=solver)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        emd_loss(hm, kp.double(), torch.ones(1, 3), n_iters=2, tol=0.0)  # tol=0: exactly n_iters
        emd_loss(hm, kp.double(), torch.ones(1, 3), solver=solver)  # converges: no warning


def test_solved_in_float32_for_half_inputs():
    assert transport._compute_dtype(torch.float16) == torch.float32
    assert transport._compute_dtype(torch.bfloat16) == torch.float32
    assert transport._compute_dtype(torch.float64) == torch.float64
