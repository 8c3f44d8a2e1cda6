"""emd_loss on very peaked maps at small reg (issue #26 item 5): Newton's 4×4 system becomes
singular there (each pixel feeds one demander) and its gauge used to drift (max Δ = 0 instead of
max v = 1, so v underflowed in float32). The loss falls back to Sinkhorn, the gradient to a
least-squares solve; both must stay finite and agree with the Sinkhorn solver, in float32 and
float64, at 64×48."""
import warnings

import numpy as np
import pytest
import torch

from poselab.chapters.hdm.analysis import gaussian_map
from poselab.losses import emd_loss
from poselab.losses.transport import _gathered_kernels, _support, _suppliers
from poselab.losses.transport.implicit_gradient import solve_or_least_squares
from poselab.losses.transport.newton import newton_scaling
from poselab.codecs.hdm import subpixel_demanders

SIZE = (64, 48)


def _peaked(n, sigma_range, seed, jitter=0.0):
    rng = np.random.default_rng(seed)
    H, W = SIZE
    kps = rng.uniform([2, 2], [W - 3, H - 3], size=(n, 2))
    sig = rng.uniform(*sigma_range, size=n)
    centres = kps + rng.uniform(-jitter, jitter, size=(n, 2))
    maps = np.stack([gaussian_map(c, SIZE, s) for c, s in zip(centres, sig)])
    return maps, kps


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reg", [0.1, 0.15])
def test_gaussians_on_the_keypoint_at_small_reg_are_finite_and_match_sinkhorn(reg, dtype):
    # the case: σ 0.3-1.5 Gaussians centred on the keypoint (58 of 400 raised at reg 0.1)
    maps, kps = _peaked(48, (0.3, 1.5), seed=0)
    out = {}
    for solver in ("newton", "sinkhorn"):
        x = torch.tensor(maps, dtype=dtype)[:, None].requires_grad_(True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Sinkhorn is slow at reg 0.1 (the cap warning)
            loss = emd_loss(x, torch.tensor(kps, dtype=dtype)[:, None], torch.ones(len(maps), 1), reg=reg,
                            n_iters=20000, reduction="none")
        loss.sum().backward()
        assert loss.dtype == dtype and torch.isfinite(loss).all() and torch.isfinite(x.grad).all()
        out[solver] = (loss.detach().double(), x.grad.double())
    tol = 1e-5 if dtype == torch.float64 else 5e-5
    assert (out["newton"][0] - out["sinkhorn"][0]).abs().max() <= tol * out["sinkhorn"][0].abs().max()
    scale = out["sinkhorn"][1].abs().max()
    assert (out["newton"][1] - out["sinkhorn"][1]).abs().max() <= 2e-2 * scale


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sharper_maps_with_singular_newton_systems_stay_finite(dtype):
    maps, kps = _peaked(24, (0.1, 0.4), seed=1, jitter=0.5)
    x = torch.tensor(maps, dtype=dtype)[:, None].requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss = emd_loss(x, torch.tensor(kps, dtype=dtype)[:, None], torch.ones(len(maps), 1), reg=0.1,
                        reduction="none")
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(x.grad).all()


def test_newton_keeps_the_gauge_max_v_equal_one_in_float32():
    maps, kps = _peaked(8, (0.3, 1.5), seed=0)
    m = torch.tensor(maps, dtype=torch.float32).reshape(8, -1)
    k = torch.tensor(kps, dtype=torch.float32)
    _, b = subpixel_demanders(k)
    a_full = _suppliers(m)
    slot, a = _support(a_full, m > 0)
    kernel, _ = _gathered_kernels(k, SIZE, 0.1, slot, a.shape[1], None)
    v, *_ = newton_scaling(a, kernel, b, 1000, 1e-6)
    assert torch.allclose(v.amax(1), torch.ones(8))


def test_solve_or_least_squares():
    reg = torch.tensor([[[2.0, 1.0], [1.0, 3.0]]], dtype=torch.float64)
    rhs = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    assert torch.allclose(solve_or_least_squares(reg, rhs), torch.linalg.solve(reg, rhs))
    ones = torch.ones(1, 2, 2, dtype=torch.float64)  # 11ᵀ: singular
    z = solve_or_least_squares(ones, rhs)
    assert torch.isfinite(z).all() and torch.allclose(z, torch.tensor([[0.75, 0.75]], dtype=torch.float64))
