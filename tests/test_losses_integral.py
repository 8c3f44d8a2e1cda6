"""BCIR losses: the shrinkage regulariser (Eq. 15) against a loop reference, and bcir_loss (Eq. 20,
21) against an independent float64 construction; ablation switches; dtypes; bad inputs."""
import math

import numpy as np
import pytest
import torch

from poselab.losses import (bcir_loss, integral_l1_loss, laplacian_shrinkage_regularizer,
                            step_schedule)


def ref_regularizer(p: np.ndarray, tau: float) -> float:
    """Loop form of Eq. 15 with the +4-centre Laplacian and replicated border."""
    H, W = p.shape
    total = 0.0
    for i in range(H):
        for j in range(W):
            nb = [p[max(i - 1, 0), j], p[min(i + 1, H - 1), j], p[i, max(j - 1, 0)], p[i, min(j + 1, W - 1)]]
            lap = 4 * p[i, j] - sum(nb)
            total += abs(lap - tau) + lap - tau
    return total


def test_regularizer_matches_loop_reference():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(12 * 9) * 0.3, size=(2, 3)).reshape(2, 3, 12, 9)
    w = torch.tensor([[1.0, 0.0, 0.5], [1.0, 1.0, 2.0]], dtype=torch.float64)
    for tau in (-0.01, 0.0, 0.02, 0.1):
        got = laplacian_shrinkage_regularizer(torch.from_numpy(p), tau, w, reduction="none")
        ref = np.array([[w[b, k].item() * ref_regularizer(p[b, k], tau) for k in range(3)] for b in range(2)])
        np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12, atol=1e-15)
        mean = laplacian_shrinkage_regularizer(torch.from_numpy(p), tau, w)
        assert math.isclose(mean.item(), ref.sum() / 6, rel_tol=1e-12)


def test_regularizer_prefers_spread_maps():
    """A one-pixel peak costs more than a σ = 2 Gaussian of the same mass (the point of §4.4)."""
    H, W = 64, 48
    ys, xs = np.mgrid[0:H, 0:W]
    g = np.exp(-((xs - 20) ** 2 + (ys - 30) ** 2) / 8.0)
    g /= g.sum()
    peak = np.zeros((H, W))
    peak[30, 20] = 1.0
    maps = torch.from_numpy(np.stack([g, peak]))[None].float()
    per = laplacian_shrinkage_regularizer(maps, tau=0.02, reduction="none")[0]
    assert per[0] == 0                                   # its Laplacian peaks at 0.0187 < τ
    assert abs(per[1].item() - 2 * (4 - 0.02)) < 1e-5     # only the peak pixel exceeds τ
    # counter-case: with τ below the Gaussian's Laplacian the spread map is penalised too
    assert laplacian_shrinkage_regularizer(maps, tau=0.0, reduction="none")[0, 0] > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_regularizer_dtypes_against_float64(dtype):
    g = torch.Generator().manual_seed(3)
    p = torch.softmax(torch.randn(2, 17, 64 * 48, generator=g, dtype=torch.float64) * 3, -1).reshape(2, 17, 64, 48)
    ref = laplacian_shrinkage_regularizer(p, 0.01)
    got = laplacian_shrinkage_regularizer(p.to(dtype), 0.01)
    tol = {torch.float32: 1e-5, torch.float16: 2e-2, torch.bfloat16: 5e-2}[dtype]
    assert abs(got.double().item() - ref.item()) <= tol * ref.item()


def test_regularizer_gradient_flattens_a_peak():
    logits = torch.zeros(1, 1, 9, 9)
    logits[0, 0, 4, 4] = 5.0
    logits.requires_grad_(True)
    p = torch.softmax(logits.flatten(2), -1).reshape(1, 1, 9, 9)
    laplacian_shrinkage_regularizer(p, 0.02).backward()
    assert logits.grad[0, 0, 4, 4] > 0          # gradient descent lowers the peak
    assert (logits.grad[0, 0, 3:6, 3:6].sum() - logits.grad[0, 0, 4, 4]) < 0  # raises its neighbours


# ------------------------------------------------------------------------------ bcir_loss
def ref_bcir(hm: np.ndarray, kp, beta, lam, sigma, compensate):
    """float64 construction from the definitions: expm1-weighted mean (Eq. 38 rewritten), Eq. 4."""
    H, W = hm.shape
    ys, xs = np.mgrid[0:H, 0:W]
    if compensate:
        e = np.expm1(beta * hm)
    else:
        e = np.exp(beta * (hm - hm.max()))
    jx, jy = (e * xs).sum() / e.sum(), (e * ys).sum() / e.sum()
    l1 = abs(jx - kp[0]) + abs(jy - kp[1])
    g = np.exp(-((xs - kp[0]) ** 2 + (ys - kp[1]) ** 2) / (2 * sigma ** 2))
    return l1 + lam * ((g - hm) ** 2).sum()


@pytest.mark.parametrize("compensate", [True, False])
@pytest.mark.parametrize("lam", [0.0, 1.0, 0.3])
def test_bcir_loss_matches_float64_construction(compensate, lam):
    rng = np.random.default_rng(int(lam * 10) + compensate)
    B, K, H, W = 2, 3, 64, 48
    hm = rng.uniform(0.0, 1.0, size=(B, K, H, W)) * 0.2   # C > n: compensation well defined
    hm[0, 0, 40, 10] = 1.0
    kp = rng.uniform(0, 40, size=(B, K, 2))
    vis = np.array([[2, 0, 1], [2, 2, 2]])
    got = bcir_loss(torch.from_numpy(hm), torch.from_numpy(kp), torch.from_numpy(vis), beta=10.0,
                    prior_weight=lam, sigma=2.0, compensate=compensate, reduction="none")
    ref = np.array([[ref_bcir(hm[b, k], kp[b, k], 10.0, lam, 2.0, compensate) * (vis[b, k] > 0)
                     for k in range(K)] for b in range(B)])
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-9)
    terms = bcir_loss(torch.from_numpy(hm), torch.from_numpy(kp), torch.from_numpy(vis), beta=10.0,
                      prior_weight=lam, compensate=compensate, return_terms=True)
    assert math.isclose(terms["loss"].item(), ref.sum() / (B * K), rel_tol=1e-9)
    assert math.isclose(terms["loss"].item(), terms["l1"].item() + lam * terms["prior"].item(), rel_tol=1e-12)


def test_bcir_without_compensation_or_prior_is_integral_l1():
    g = torch.Generator().manual_seed(0)
    hm = torch.randn(2, 5, 16, 12, generator=g)
    kp = torch.rand(2, 5, 2, generator=g) * 10
    w = (torch.rand(2, 5, generator=g) > 0.3).float()
    a = bcir_loss(hm, kp, w, beta=10.0, prior_weight=0.0, compensate=False)
    b = integral_l1_loss(hm, kp, w, beta=10.0)
    assert torch.allclose(a, b, rtol=1e-6)
    # counter-case: compensation changes the loss on a blob away from the centre
    c = bcir_loss(hm + 0.0, kp, w, beta=1.0, prior_weight=0.0, compensate=True)
    assert not torch.allclose(c, integral_l1_loss(hm, kp, w, beta=1.0))


def test_bcir_zero_loss_at_the_truth_only_with_compensation():
    """A symmetric blob centred on the keypoint: compensated L1 = 0, plain IPR L1 > 0 (the bias)."""
    H, W = 64, 48
    ys, xs = np.mgrid[0:H, 0:W]
    cx, cy = 8, 50
    blob = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / 8.0) * ((abs(xs - cx) <= 6) & (abs(ys - cy) <= 6))
    hm = torch.from_numpy(blob)[None, None]
    kp = torch.tensor([[[cx, cy]]], dtype=torch.float64)
    assert bcir_loss(hm, kp, None, beta=10.0, prior_weight=0.0).item() < 1e-9
    assert bcir_loss(hm, kp, None, beta=10.0, prior_weight=0.0, compensate=False).item() > 1.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_bcir_loss_dtypes_finite_and_close(dtype):
    g = torch.Generator().manual_seed(4)
    hm64 = torch.rand(4, 17, 64, 48, generator=g, dtype=torch.float64) * 0.5
    kp = torch.rand(4, 17, 2, generator=g, dtype=torch.float64) * 40
    hm = hm64.to(dtype).requires_grad_(True)
    loss = bcir_loss(hm, kp.to(dtype), torch.ones(4, 17), beta=10.0, prior_weight=1.0)
    ref = bcir_loss(hm.detach().double(), kp.to(dtype).double(), torch.ones(4, 17), beta=10.0, prior_weight=1.0)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)     # half inputs: float32 loss
    tol = {torch.float32: 1e-5, torch.float16: 1e-5, torch.bfloat16: 1e-5}[dtype]
    assert abs(loss.double().item() - ref.item()) <= tol * ref.item()
    loss.backward()
    assert torch.isfinite(hm.grad).all()


def test_bcir_huge_beta_and_empty_inputs():
    hm = torch.randn(2, 3, 16, 12) * 100
    kp = torch.rand(2, 3, 2) * 10
    assert torch.isfinite(bcir_loss(hm, kp, None, beta=1e30, prior_weight=1.0))
    empty = torch.zeros(0, 3, 16, 12, requires_grad=True)
    z = bcir_loss(empty, torch.zeros(0, 3, 2), torch.zeros(0, 3))
    assert z.item() == 0.0
    z.backward()
    zero_w = torch.randn(2, 3, 16, 12, requires_grad=True)
    z = bcir_loss(zero_w, kp, torch.zeros(2, 3))
    z.backward()
    assert z.item() == 0.0 and zero_w.grad.abs().sum() == 0


def test_bcir_invisible_joints_may_be_nan():
    kp = torch.rand(1, 2, 2) * 10
    kp[0, 1] = float("nan")
    loss = bcir_loss(torch.randn(1, 2, 16, 12), kp, torch.tensor([[2.0, 0.0]]))
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="visible = 0"):
        bcir_loss(torch.randn(1, 2, 16, 12), kp, torch.tensor([[2.0, 1.0]]))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_integral_l1_unlabelled_joints_may_be_nan_as_in_bcir_loss(dtype):
    """A NaN/Inf target of a weight-0 joint counts exactly as any finite value there (same loss,
    same gradient; heatmaps with the prior term, and coordinates); on a joint of weight > 0, or
    with no weights given, it is refused by name."""
    g = torch.Generator().manual_seed(3)
    hm = torch.randn(2, 3, 16, 12, generator=g).to(dtype)
    prior = torch.rand(2, 3, 16, 12, generator=g).to(dtype)
    kp = (torch.rand(2, 3, 2, generator=g) * 10).to(dtype)
    w = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    holes = kp.clone()
    holes[0, 1] = float("nan")
    holes[1, 0, 1] = float("inf")
    for pred, extra in ((hm, dict(prior_heatmaps=prior, prior_weight=0.5)), (kp.flip(-1), {})):
        for reduction in ("mean", "none"):
            out = []
            for t in (kp, holes):
                p = pred.clone().requires_grad_()
                loss = integral_l1_loss(p, t, w, reduction=reduction, **extra)
                assert bool(torch.isfinite(loss).all())
                loss.sum().backward()
                out.append((loss.detach(), p.grad))
            assert torch.equal(out[0][0], out[1][0]) and torch.equal(out[0][1], out[1][1])
    with pytest.raises(ValueError, match="weights > 0; mark it weights = 0"):
        integral_l1_loss(hm, holes, torch.ones(2, 3))
    with pytest.raises(ValueError, match="without weights no joint is marked unlabelled"):
        integral_l1_loss(hm, holes)
    with pytest.raises(ValueError, match="target must have shape"):
        integral_l1_loss(hm, holes[:, :2], w[:, :2])


@pytest.mark.parametrize("kwargs,match", [
    (dict(beta=0.0), "beta"), (dict(beta=-1.0), "beta"), (dict(beta=float("nan")), "beta"),
    (dict(prior_weight=-1.0), "prior_weight"), (dict(prior_weight=float("inf")), "prior_weight"),
    (dict(sigma=0.0), "sigma"), (dict(reduction="avg"), "reduction"),
])
def test_bcir_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bcir_loss(torch.randn(1, 2, 8, 6), torch.rand(1, 2, 2), None, **kwargs)


def test_bcir_bad_shapes_and_values():
    hm = torch.randn(1, 2, 8, 6)
    with pytest.raises(ValueError, match="heatmaps"):
        bcir_loss(hm[0], torch.rand(1, 2, 2))
    with pytest.raises(ValueError, match="keypoints"):
        bcir_loss(hm, torch.rand(1, 3, 2))
    with pytest.raises(ValueError, match="visible"):
        bcir_loss(hm, torch.rand(1, 2, 2), torch.ones(2))
    bad = hm.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="heatmaps"):
        bcir_loss(bad, torch.rand(1, 2, 2))
    with pytest.raises(ValueError, match="tau"):
        laplacian_shrinkage_regularizer(torch.rand(1, 2, 8, 6), float("nan"))
    with pytest.raises(ValueError, match="probabilities"):
        laplacian_shrinkage_regularizer(torch.rand(2, 8, 6), 0.1)


def test_step_schedule_drives_the_prior():
    hm = torch.zeros(1, 1, 16, 12)
    kp = torch.tensor([[[5.0, 6.0]]])
    on = bcir_loss(hm, kp, None, prior_weight=step_schedule(3, 10))
    off = bcir_loss(hm, kp, None, prior_weight=step_schedule(10, 10))
    assert on > off


def test_losses_refuse_maps_without_pixels():
    with pytest.raises(ValueError, match="H, W >= 1"):
        bcir_loss(torch.zeros(1, 2, 0, 6), torch.rand(1, 2, 2))
    with pytest.raises(ValueError, match="H, W >= 1"):
        integral_l1_loss(torch.zeros(1, 2, 4, 0), torch.rand(1, 2, 2))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_integral_l1_half_inputs_give_float32_losses(dtype):
    g = torch.Generator().manual_seed(6)
    hm = torch.randn(4, 17, 64, 48, generator=g).to(dtype)
    kp = (torch.rand(4, 17, 2, generator=g) * 40).to(dtype)
    got = integral_l1_loss(hm, kp, torch.ones(4, 17), beta=10.0)
    ref = integral_l1_loss(hm.double(), kp.double(), torch.ones(4, 17, dtype=torch.float64), beta=10.0)
    assert got.dtype == torch.float32 and abs(got.double().item() - ref.item()) <= 1e-5 * ref.item()
