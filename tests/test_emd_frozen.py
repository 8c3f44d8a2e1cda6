"""emd_loss's values and gradients at the benchmark size (B=32, K=17, 64×48, reg 1, tol 1e-6) are
frozen: speed work on ``poselab/losses/transport`` (issue #32, goal 4) must not change the numbers.

``tests/data/emd_reference_64x48.npz`` holds, per joint, the loss and two digests of its gradient
(``Σ_i g_i w_i`` with fixed random weights ``w`` and ``Σ_i |g_i|``), computed in float64 and
float32 by the implementation before the speed work (commit fce2a64). Backward runs with a
non-uniform, partly negative ``grad_output`` so that the scaling in ``backward`` is checked too.
Tolerances: float64 1e-12 relative (round-off of reordered sums, not a different iterate),
float32 within the solver's round-off floor. The counter-cases (one Sinkhorn warm-up update fewer in float64,
a solve stopped one Newton step early, a backward that ignores ``grad_output``) move the numbers
beyond them."""
import pathlib

import numpy as np
import pytest
import torch

from poselab.losses import emd_loss
from poselab.losses.transport import newton

REFERENCE = pathlib.Path(__file__).parent / "data" / "emd_reference_64x48.npz"
B, K, H, W = 32, 17, 64, 48
# (loss, gradient digest) relative tolerances per dtype
TOLERANCE = {torch.float64: (1e-12, 1e-12), torch.float32: (1e-6, 1e-5)}


def inputs(seed=0):
    """Float64 heatmaps (B, K, H, W): a Gaussian blob ~2 px off the keypoint plus noise (about
    half the pixels ≤ 0, as in ``benchmarks/emd.py``), keypoints, backward weights and the
    fixed random weights of the gradient digest."""
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    kp = torch.rand(B, K, 2, generator=g, dtype=f64) * torch.tensor([W - 1.0, H - 1.0], dtype=f64)
    c = kp + 2 * torch.randn(B, K, 2, generator=g, dtype=f64)
    yy, xx = torch.meshgrid(torch.arange(H, dtype=f64), torch.arange(W, dtype=f64), indexing="ij")
    hm = torch.exp(-((xx - c[..., 0, None, None]) ** 2 + (yy - c[..., 1, None, None]) ** 2) / 8)
    hm = hm + 0.05 * torch.randn(B, K, H, W, generator=g, dtype=f64)
    weights = torch.rand(B, K, generator=g, dtype=f64) * 2 - 0.5  # grad_output, some negative
    digest = torch.randn(H, W, generator=g, dtype=f64)
    return hm, kp, weights, digest


def digests(loss_fn, dtype, **kwargs):
    """Per-joint (loss, Σ g·w, Σ |g|) as float64 numpy arrays of shape (B·K,)."""
    hm, kp, weights, digest = inputs()
    x = hm.to(dtype).detach().clone().requires_grad_(True)
    loss = loss_fn(x, kp.to(dtype), torch.ones(B, K), tol=1e-6, reduction="none", **kwargs)
    loss.backward(weights.to(dtype))
    grad = x.grad.double()
    return (loss.detach().double().reshape(-1).numpy(), (grad * digest).sum((2, 3)).reshape(-1).numpy(),
            grad.abs().sum((2, 3)).reshape(-1).numpy())


def deviations(dtype, loss_fn=emd_loss, **kwargs):
    """Largest relative deviation of the loss and of the gradient digest from the frozen numbers."""
    name = str(dtype).split(".")[-1]
    ref = np.load(REFERENCE)
    loss, gdot, gabs = digests(loss_fn, dtype, **kwargs)
    scale = ref[f"gabs_{name}"]  # Σ|g| per joint, > 0
    d_loss = np.max(np.abs(loss - ref[f"loss_{name}"]) / np.abs(ref[f"loss_{name}"]))
    d_grad = max(np.max(np.abs(gdot - ref[f"gdot_{name}"]) / scale),
                 np.max(np.abs(gabs - ref[f"gabs_{name}"]) / scale))
    return float(d_loss), float(d_grad)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_loss_and_gradient_equal_the_frozen_numbers(dtype):
    d_loss, d_grad = deviations(dtype)
    tol_loss, tol_grad = TOLERANCE[dtype]
    assert d_loss <= tol_loss and d_grad <= tol_grad, (d_loss, d_grad)


def test_counter_case_a_different_iterate_is_caught_in_float64(monkeypatch):
    # one Sinkhorn warm-up update instead of two: still within tol of the fixed point (2e-9
    # apart), but not the same numbers (in float32 that difference, 2e-7, is round-off)
    original = newton.newton_scaling
    monkeypatch.setattr("poselab.losses.transport._newton_scaling",
                        lambda *args, **kwargs: original(*args, **{**kwargs, "warm": 1}))
    d_loss, d_grad = deviations(torch.float64)
    assert d_loss > TOLERANCE[torch.float64][0] and d_grad > TOLERANCE[torch.float64][1], (d_loss, d_grad)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_counter_case_a_solve_stopped_one_newton_step_early_is_caught(dtype, monkeypatch):
    original = newton.newton_scaling
    monkeypatch.setattr("poselab.losses.transport._newton_scaling",
                        lambda a, kernel, b, n_iters, tol, **kw: original(a, kernel, b, 2, tol, **kw))
    d_loss, d_grad = deviations(dtype)
    tol_loss, tol_grad = TOLERANCE[dtype]
    assert d_loss > tol_loss and d_grad > tol_grad, (d_loss, d_grad)


def test_counter_case_a_backward_that_ignores_grad_output_is_caught(monkeypatch):
    from poselab.losses.transport import _EntropicCost
    original = _EntropicCost.backward

    def ignoring(ctx, grad_out):
        return original(ctx, torch.ones_like(grad_out))

    monkeypatch.setattr(_EntropicCost, "backward", staticmethod(ignoring))
    d_loss, d_grad = deviations(torch.float64)
    assert d_loss <= TOLERANCE[torch.float64][0] and d_grad > 1e-3
