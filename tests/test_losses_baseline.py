"""Baseline losses vs naive float64 references; bad inputs; empty / all-invisible batches."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from scipy.stats import entropy

from poselab.losses import (heatmap_mse_loss, integral_l1_loss, simcc_kl_loss, soft_argmax_2d,
                            step_schedule)


def _rand(*shape, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape)).float()


# ------------------------------------------------------------------ heatmap MSE
def _mse_naive(pred, target, w):
    p, t, w = (np.asarray(x, dtype=np.float64) for x in (pred, target, w))
    B, K, H, W = p.shape
    total, per = 0.0, np.zeros((B, K))
    for b in range(B):
        for k in range(K):
            s = 0.0
            for i in range(H):
                for j in range(W):
                    s += (p[b, k, i, j] - t[b, k, i, j]) ** 2
            per[b, k] = w[b, k] * s / (H * W)
            total += w[b, k] * s
    return total / (B * K * H * W), total, per


def test_mse_matches_naive_all_reductions():
    pred, target = _rand(3, 4, 5, 6, seed=1), torch.rand(3, 4, 5, 6)
    w = torch.tensor(np.random.default_rng(2).integers(0, 2, (3, 4)), dtype=torch.float32)
    mean, total, per = _mse_naive(pred, target, w)
    assert math.isclose(heatmap_mse_loss(pred, target, w).item(), mean, rel_tol=1e-5)
    assert math.isclose(heatmap_mse_loss(pred, target, w, reduction="sum").item(), total, rel_tol=1e-5)
    np.testing.assert_allclose(heatmap_mse_loss(pred, target, w, reduction="none").numpy(), per,
                               rtol=1e-5)
    # None weights = all ones
    mean1, _, _ = _mse_naive(pred, target, np.ones((3, 4)))
    assert math.isclose(heatmap_mse_loss(pred, target).item(), mean1, rel_tol=1e-5)


def test_mse_normalisation_is_mmpose_mean_and_batch_independent():
    pred, target = _rand(2, 3, 4, 4, seed=3), torch.rand(2, 3, 4, 4)
    w = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    # MMPose KeypointMSELoss: mean over all B*K*H*W elements of mask * squared error.
    mmpose = ((pred - target) ** 2 * w[..., None, None]).mean()
    assert torch.allclose(heatmap_mse_loss(pred, target, w), mmpose)
    doubled = heatmap_mse_loss(torch.cat([pred, pred]), torch.cat([target, target]), torch.cat([w, w]))
    assert torch.allclose(doubled, mmpose)


# ------------------------------------------------------------------ SimCC KL
def test_simcc_kl_matches_scipy_entropy():
    B, K, Nx, Ny, beta = 2, 3, 7, 9, 2.5
    px, py = _rand(B, K, Nx, seed=4), _rand(B, K, Ny, seed=5)
    tx, ty = torch.rand(B, K, Nx) * 3, torch.rand(B, K, Ny)  # unnormalised labels
    tx[0, 0, :3] = 0.0  # zero bins: 0 log 0 = 0
    w = torch.tensor([[1.0, 0.5, 0.0], [2.0, 1.0, 1.0]])
    ref = np.zeros((B, K))
    for b in range(B):
        for k in range(K):
            for p, t in ((px, tx), (py, ty)):
                logits = beta * p[b, k].double().numpy()
                q = np.exp(logits - logits.max())
                q /= q.sum()
                ref[b, k] += w[b, k].item() * entropy(t[b, k].double().numpy(), q)  # KL(t || q)
    got = simcc_kl_loss((px, py), (tx, ty), w, beta=beta, reduction="none")
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-4, atol=1e-6)
    assert math.isclose(simcc_kl_loss((px, py), (tx, ty), w, beta=beta).item(), ref.mean(), rel_tol=1e-4)
    assert math.isclose(simcc_kl_loss((px, py), (tx, ty), w, beta=beta, reduction="sum").item(),
                        ref.sum(), rel_tol=1e-4)


def test_simcc_kl_batch_size_independent_and_zero_at_target():
    px, py = _rand(2, 3, 8, seed=6), _rand(2, 3, 10, seed=7)
    tx, ty = torch.rand(2, 3, 8), torch.rand(2, 3, 10)
    one = simcc_kl_loss((px, py), (tx, ty))
    two = simcc_kl_loss((torch.cat([px, px]), torch.cat([py, py])), (torch.cat([tx, tx]), torch.cat([ty, ty])))
    assert torch.allclose(one, two)
    # target = softmax(logits) -> KL = 0
    sx, sy = torch.softmax(px, -1), torch.softmax(py, -1)
    assert simcc_kl_loss((px, py), (sx, sy)).abs().item() < 1e-6


def test_simcc_bad_inputs():
    px, py = torch.randn(1, 2, 8), torch.randn(1, 2, 6)
    tx, ty = torch.rand(1, 2, 8), torch.rand(1, 2, 6)
    with pytest.raises(ValueError, match="pair"):
        simcc_kl_loss(px, (tx, ty))
    with pytest.raises(ValueError, match="bins"):
        simcc_kl_loss((px, py), (tx[..., :5], ty))
    with pytest.raises(ValueError, match="non-negative"):
        simcc_kl_loss((px, py), (-tx, ty))
    bad = tx.clone()
    bad[0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"target\[0\]"):
        simcc_kl_loss((px, py), (bad, ty))


# ------------------------------------------------------------------ integral L1
def _softargmax_naive(h, beta):
    h = np.asarray(h, dtype=np.float64)
    H, W = h.shape
    e = np.exp(beta * (h - h.max()))
    z = e.sum()
    x = sum(e[i, j] * j for i in range(H) for j in range(W)) / z
    y = sum(e[i, j] * i for i in range(H) for j in range(W)) / z
    return x, y


def test_soft_argmax_and_integral_l1_match_naive():
    B, K, H, W, beta = 2, 3, 5, 4, 3.0
    hm = _rand(B, K, H, W, seed=8)
    target = torch.rand(B, K, 2) * 4
    prior = torch.rand(B, K, H, W)
    w = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.5]])
    lam = 0.7
    ref = np.zeros((B, K))
    coords = soft_argmax_2d(hm, beta)
    for b in range(B):
        for k in range(K):
            x, y = _softargmax_naive(hm[b, k], beta)
            assert abs(coords[b, k, 0].item() - x) < 1e-5 and abs(coords[b, k, 1].item() - y) < 1e-5
            l1 = abs(x - target[b, k, 0].item()) + abs(y - target[b, k, 1].item())
            sq = float(((hm[b, k].double() - prior[b, k].double()) ** 2).sum())
            ref[b, k] = w[b, k].item() * (l1 + lam * sq)
    got = integral_l1_loss(hm, target, w, beta=beta, prior_heatmaps=prior, prior_weight=lam,
                           reduction="none")
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-5, atol=1e-6)
    assert math.isclose(integral_l1_loss(hm, target, w, beta=beta, prior_heatmaps=prior,
                                         prior_weight=lam).item(), ref.mean(), rel_tol=1e-5)
    # prior_weight 0 (λ(t) after T_o) drops the prior term
    no_prior = integral_l1_loss(hm, target, w, beta=beta, prior_heatmaps=prior, prior_weight=0.0)
    assert torch.allclose(no_prior, integral_l1_loss(hm, target, w, beta=beta))
    # coordinates as prediction
    assert torch.allclose(integral_l1_loss(coords, target, w), integral_l1_loss(hm, target, w, beta=beta))


def test_soft_argmax_agrees_with_codecs_soft_argmax():
    from poselab.codecs import soft_argmax
    hm = _rand(2, 3, 6, 5, seed=9)
    assert torch.allclose(soft_argmax_2d(hm, 2.0), soft_argmax(hm, 2.0), atol=1e-5)


def test_step_schedule():
    assert [step_schedule(t, 3, 0.5) for t in range(5)] == [0.5, 0.5, 0.5, 0.0, 0.0]


def test_integral_bad_inputs():
    hm, target = torch.randn(1, 2, 4, 4), torch.rand(1, 2, 2)
    with pytest.raises(ValueError, match="coordinates"):
        integral_l1_loss(target, target, prior_heatmaps=hm, prior_weight=1.0)
    with pytest.raises(ValueError, match="prediction must be"):
        integral_l1_loss(torch.randn(1, 2, 3), target)
    with pytest.raises(ValueError, match="beta"):
        integral_l1_loss(hm, target, beta=0.0)
    with pytest.raises(ValueError, match="prior_heatmaps"):
        integral_l1_loss(hm, target, prior_heatmaps=torch.rand(1, 2, 4, 5), prior_weight=1.0)


# ------------------------------------------------------------------ shared conventions
def _cases(B):
    K, H, W = 3, 4, 5
    return {
        "mse": (lambda p: heatmap_mse_loss(p, torch.rand(B, K, H, W), torch.ones(B, K) * (B > 0)),
                (B, K, H, W)),
        "integral": (lambda p: integral_l1_loss(p, torch.rand(B, K, 2), torch.ones(B, K),
                                                prior_heatmaps=torch.rand(B, K, H, W), prior_weight=1.0),
                     (B, K, H, W)),
        "simcc": (lambda p: simcc_kl_loss((p, p[..., :4] * 2), (torch.rand(B, K, 6), torch.rand(B, K, 4)),
                                          torch.ones(B, K)), (B, K, 6)),
    }


@pytest.mark.parametrize("name", ["mse", "integral", "simcc"])
def test_empty_batch_gives_zero_with_grad(name):
    fn, shape = _cases(0)[name]
    pred = torch.randn(*shape, requires_grad=True)
    loss = fn(pred)
    assert loss.shape == () and loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert pred.grad is not None and pred.grad.shape == pred.shape


@pytest.mark.parametrize("name", ["mse", "integral", "simcc"])
def test_all_invisible_gives_zero_with_grad(name):
    B, K = 2, 3
    pred4 = torch.randn(B, K, 4, 5, requires_grad=True)
    pred3 = torch.randn(B, K, 6, requires_grad=True)
    zero = torch.zeros(B, K)
    if name == "mse":
        pred, loss = pred4, heatmap_mse_loss(pred4, torch.rand(B, K, 4, 5), zero)
    elif name == "integral":
        pred, loss = pred4, integral_l1_loss(pred4, torch.rand(B, K, 2), zero,
                                             prior_heatmaps=torch.rand(B, K, 4, 5), prior_weight=1.0)
    else:
        pred, loss = pred3, simcc_kl_loss((pred3, pred3), (torch.rand(B, K, 6), torch.rand(B, K, 6)), zero)
    assert loss.item() == 0.0 and math.isfinite(loss.item())
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() == 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_inputs_name_the_tensor(bad):
    p, t, w = torch.randn(1, 2, 3, 3), torch.rand(1, 2, 3, 3), torch.ones(1, 2)
    pb, tb = p.clone(), t.clone()
    pb[0, 0, 0, 0] = bad
    tb[0, 1, 2, 2] = bad
    with pytest.raises(ValueError, match="prediction"):
        heatmap_mse_loss(pb, t, w)
    with pytest.raises(ValueError, match="target"):
        heatmap_mse_loss(p, tb, w)
    with pytest.raises(ValueError, match="prediction"):
        integral_l1_loss(pb, torch.rand(1, 2, 2), w)
    coords = torch.rand(1, 2, 2)
    coords[0, 0, 0] = bad
    with pytest.raises(ValueError, match="target"):
        integral_l1_loss(p, coords, w)
    with pytest.raises(ValueError, match="prior_heatmaps"):
        integral_l1_loss(p, torch.rand(1, 2, 2), w, prior_heatmaps=tb, prior_weight=1.0)
    wb = w.clone()
    wb[0, 0] = bad
    with pytest.raises(ValueError, match="weights"):
        heatmap_mse_loss(p, t, wb)


def test_shape_and_option_errors():
    p, t = torch.randn(1, 2, 3, 3), torch.rand(1, 2, 3, 3)
    with pytest.raises(ValueError, match="shape"):
        heatmap_mse_loss(p, t[..., :2])
    with pytest.raises(ValueError, match="weights"):
        heatmap_mse_loss(p, t, torch.ones(2, 2))
    with pytest.raises(ValueError, match=">= 0"):
        heatmap_mse_loss(p, t, -torch.ones(1, 2))
    with pytest.raises(ValueError, match="reduction"):
        heatmap_mse_loss(p, t, reduction="avg")
    with pytest.raises(ValueError, match="4 dims"):
        heatmap_mse_loss(p[0], t[0])


@settings(max_examples=25, deadline=None)
@given(B=st.integers(1, 3), K=st.integers(1, 3), H=st.integers(1, 5), W=st.integers(1, 5),
       scale=st.floats(1e-3, 1e3), seed=st.integers(0, 10_000))
def test_losses_finite_nonnegative_with_finite_grads(B, K, H, W, scale, seed):
    g = torch.Generator().manual_seed(seed)
    pred = (torch.randn(B, K, H, W, generator=g) * scale).requires_grad_(True)
    w = (torch.rand(B, K, generator=g) > 0.3).float()
    losses = [
        heatmap_mse_loss(pred, torch.rand(B, K, H, W, generator=g), w),
        integral_l1_loss(pred, torch.rand(B, K, 2, generator=g) * W, w, beta=10.0,
                         prior_heatmaps=torch.rand(B, K, H, W, generator=g), prior_weight=1.0),
        simcc_kl_loss((pred.flatten(2), pred.flatten(2)),
                      (torch.rand(B, K, H * W, generator=g), torch.rand(B, K, H * W, generator=g)), w),
    ]
    for loss in losses:
        assert torch.isfinite(loss) and loss.item() >= -1e-6
        (grad,) = torch.autograd.grad(loss, pred)
        assert torch.isfinite(grad).all()
