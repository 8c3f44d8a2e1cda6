"""HDM EMD loss vs POT / an independent numpy solver, gradient, edge cases."""
import numpy as np
import pytest
import torch

from poselab.chapters.hdm.analysis import reference_sinkhorn_cost
from poselab.losses import emd_loss
from poselab.losses import transport
from poselab.losses.transport import hdm_transport

ot = pytest.importorskip("ot")


def _pot_cost(hm, kp, reg=1.0):
    H, W = hm.shape
    a = np.maximum(hm, 0).ravel()
    a = a / a.sum()
    x, y = kp
    corners = np.array([[np.floor(x) + dx, np.floor(y) + dy] for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1))])
    b = (1 - np.abs(x - corners[:, 0])) * (1 - np.abs(y - corners[:, 1]))
    yy, xx = np.mgrid[0:H, 0:W]
    pix = np.stack([xx.ravel(), yy.ravel()], 1).astype(float)
    M = np.sqrt(((pix[:, None] - corners[None]) ** 2).sum(-1))
    return float(ot.sinkhorn2(a, b, M, reg, numItermax=100000, stopThr=1e-12, method="sinkhorn_log"))


@pytest.mark.parametrize("size", [(16, 12), (96, 72)])
def test_matches_pot_float64_including_corners(size):
    H, W = size
    rng = np.random.default_rng(0)
    hm = rng.random((1, 4, H, W)) - 0.2
    kp = np.array([[[0.0, 0.0], [W - 1.0, H - 1.0], [0.3, H - 1.2],
                    [rng.uniform(0, W - 1), rng.uniform(0, H - 1)]]])
    got = emd_loss(torch.as_tensor(hm), torch.as_tensor(kp), torch.ones(1, 4), tol=1e-11,
                   reduction="none").numpy()
    for k in range(4):
        ref = _pot_cost(hm[0, k], kp[0, k])
        assert abs(got[0, k] - ref) / ref <= 1e-7


def test_independent_numpy_reference_agrees():
    rng = np.random.default_rng(3)
    hm = rng.random((7, 5)) - 0.3
    kp = (2.7, 4.1)
    got = float(emd_loss(torch.as_tensor(hm)[None, None], torch.tensor([[kp]], dtype=torch.float64),
                         torch.ones(1, 1), tol=1e-12))
    assert abs(got - reference_sinkhorn_cost(hm, kp)) / got < 1e-8


def test_float32_corner_keypoints_96x72_finite_and_close():
    H, W = 96, 72
    hm = torch.zeros(1, 2, H, W)
    hm[0, 0, H - 1, W - 1] = 1.0  # mass in the far corner, keypoint in the other corner
    hm[0, 1, 0, 0] = 1.0
    kp = torch.tensor([[[0.0, 0.0], [W - 1.0, H - 1.0]]])
    hm.requires_grad_(True)
    out = emd_loss(hm, kp, torch.ones(1, 2), reduction="none")
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(hm.grad).all()
    expected = np.hypot(H - 1, W - 1)  # all mass one pixel, demander at the opposite corner
    assert np.allclose(out.detach().numpy(), expected, rtol=1e-5)


def test_gradcheck_float64():
    torch.manual_seed(0)
    hm = (torch.rand(2, 2, 6, 5, dtype=torch.float64) + 0.05).requires_grad_(True)
    kp = torch.tensor([[[1.3, 2.7], [0.0, 4.5]], [[3.9, 0.2], [2.5, 2.5]]], dtype=torch.float64)
    vis = torch.ones(2, 2)
    for demanders in ("subpixel", "naive"):
        fn = lambda h: emd_loss(h, kp, vis, tol=1e-13, demanders=demanders, reduction="sum")  # noqa: E731
        assert torch.autograd.gradcheck(fn, (hm,), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_gradcheck_log_domain_path(monkeypatch):
    monkeypatch.setattr(transport, "_stable", lambda reg, dtype: False)
    torch.manual_seed(1)
    hm = (torch.rand(1, 2, 5, 4, dtype=torch.float64) + 0.05).requires_grad_(True)
    kp = torch.tensor([[[1.3, 2.7], [0.4, 3.5]]], dtype=torch.float64)
    fn = lambda h: emd_loss(h, kp, torch.ones(1, 2), tol=1e-13, reduction="sum")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (hm,), eps=1e-6, atol=1e-6, rtol=1e-4)
    ref = _pot_cost(hm.detach().numpy()[0, 0], (1.3, 2.7))
    assert abs(float(emd_loss(hm.detach(), kp, torch.ones(1, 2), tol=1e-12, reduction="none")[0, 0]) - ref) < 1e-8


def test_zero_mass_gives_uniform_supplier_cost_and_zero_grad():
    H, W = 4, 3
    hm = (-torch.ones(1, 1, H, W, dtype=torch.float64)).requires_grad_(True)
    kp = torch.tensor([[[1.0, 2.0]]], dtype=torch.float64)  # integer keypoint: one demander
    out = emd_loss(hm, kp, torch.ones(1, 1), tol=1e-12)
    out.backward()
    yy, xx = np.mgrid[0:H, 0:W]
    expected = np.hypot(xx - 1.0, yy - 2.0).mean()  # all mass must go to the single demander
    assert abs(float(out.detach()) - expected) < 1e-9
    assert float(hm.grad.abs().max()) == 0.0


def test_invisible_joints_and_reductions():
    torch.manual_seed(0)
    hm = torch.rand(2, 3, 8, 6, requires_grad=True)
    kp = torch.rand(2, 3, 2) * 5
    kp[1, 2] = float("nan")
    vis = torch.tensor([[2, 0, 1], [2, 2, 2]])
    none = emd_loss(hm, kp, vis, reduction="none")
    assert none.shape == (2, 3) and none[0, 1] == 0 and none[1, 2] == 0
    valid = torch.tensor([[1, 0, 1], [1, 1, 0]], dtype=torch.bool)
    assert torch.allclose(emd_loss(hm, kp, vis, reduction="sum"), none.sum())
    assert torch.allclose(emd_loss(hm, kp, vis, reduction="mean"), none[valid].mean())
    emd_loss(hm, kp, vis).backward()
    assert float(hm.grad[0, 1].abs().max()) == 0.0 and float(hm.grad[1, 2].abs().max()) == 0.0
    assert float(emd_loss(hm, kp, torch.zeros(2, 3))) == 0.0


def test_n_iters_and_tol_behaviour():
    torch.manual_seed(0)
    hm = torch.rand(2, 3, 16, 12, dtype=torch.float64)
    kp = torch.rand(2, 3, 2, dtype=torch.float64) * 10
    vis = torch.ones(2, 3)
    info = hdm_transport(hm, kp, vis, tol=1e-6)
    assert info["marginal_error"] <= 1e-6 and info["iterations"] < 100
    assert hdm_transport(hm, kp, vis, n_iters=3, tol=0.0)["iterations"] == 3
    # past convergence more iterations change nothing
    a = emd_loss(hm, kp, vis, n_iters=1000, tol=0.0, reduction="none")
    b = emd_loss(hm, kp, vis, n_iters=1500, tol=0.0, reduction="none")
    assert float((a - b).abs().max()) <= 1e-12
    # a loose tolerance is honoured (error reported ≤ tol) and close to the converged value
    c = emd_loss(hm, kp, vis, tol=1e-3, reduction="none")
    assert float((c - a).abs().max()) < 1e-1
    plan = hdm_transport(hm, kp, vis, tol=1e-10)["plan"]
    assert torch.allclose(plan.sum(-1), hm / hm.sum((-2, -1), keepdim=True), atol=1e-10)


def test_bad_arguments_raise():
    hm = torch.rand(1, 1, 4, 4)
    kp = torch.zeros(1, 1, 2)
    vis = torch.ones(1, 1)
    for kwargs in ({"reg": 0.0}, {"n_iters": 0}, {"tol": -1.0}, {"demanders": "x"}, {"reduction": "avg"}):
        with pytest.raises(ValueError):
            emd_loss(hm, kp, vis, **kwargs)
    with pytest.raises(ValueError):
        emd_loss(hm, torch.zeros(1, 2, 2), vis)
    with pytest.raises(ValueError):
        emd_loss(hm * float("nan"), kp, vis)


@pytest.mark.parametrize("demanders", ["subpixel", "naive"])
def test_newton_solver_matches_sinkhorn_value_and_gradient(demanders):
    torch.manual_seed(4)
    H, W = 20, 15
    hm = torch.randn(2, 5, H, W, dtype=torch.float64)
    # corners, an integer keypoint (zero-mass demanders), a nearly integer one (tiny mass)
    kp = torch.tensor([[[0.0, 0.0], [W - 1.0, H - 1.0], [3.0, 7.0], [5.0 + 1e-9, 2.5], [9.3, 11.8]],
                       [[0.2, H - 1.0], [W - 1.0, 0.7], [1.5, 1.5], [7.7, 3.1], [12.9, 18.2]]],
                      dtype=torch.float64)
    hm[1, 4] = -1.0  # no positive mass: uniform suppliers, zero gradient
    vis = torch.ones(2, 5)
    out = {}
    for solver in ("newton", "sinkhorn"):
        h = hm.clone().requires_grad_(True)
        val = emd_loss(h, kp, vis, tol=1e-12, demanders=demanders, solver=solver, reduction="none")
        (val * torch.arange(1.0, 11.0, dtype=torch.float64).reshape(2, 5)).sum().backward()
        out[solver] = (val.detach(), h.grad)
    assert torch.allclose(out["newton"][0], out["sinkhorn"][0], rtol=1e-10, atol=0)
    assert torch.allclose(out["newton"][1], out["sinkhorn"][1], rtol=1e-7, atol=1e-12)
    assert float(out["newton"][1][1, 4].abs().max()) == 0.0
    info = hdm_transport(hm, kp, vis, tol=1e-12, demanders=demanders, solver="newton")
    assert info["marginal_error"] <= 1e-12 and info["iterations"] <= 12


def test_newton_needs_few_iterations_and_agrees_with_pot():
    rng = np.random.default_rng(5)
    H, W = 64, 48
    kp = np.array([[rng.uniform(0, W - 1), rng.uniform(0, H - 1)] for _ in range(3)])
    yy, xx = np.mgrid[0:H, 0:W]
    hm = np.stack([np.exp(-((xx - x - 1.5) ** 2 + (yy - y + 2.0) ** 2) / 8) for x, y in kp])
    hm = hm + 0.05 * rng.standard_normal(hm.shape)
    info = hdm_transport(torch.as_tensor(hm)[None], torch.as_tensor(kp)[None], tol=1e-10,
                         solver="newton")
    assert info["iterations"] <= 8 and info["marginal_error"] <= 1e-10
    for k in range(3):
        ref = _pot_cost(hm[k], kp[k])
        assert abs(float(info["cost"][0, k]) - ref) / ref <= 1e-8


def test_newton_float32_unreachable_tol_stays_finite_and_bounded():
    torch.manual_seed(6)
    hm = torch.rand(1, 3, 96, 72)
    kp = torch.tensor([[[0.0, 0.0], [71.0, 95.0], [30.4, 50.6]]])
    h = hm.clone().requires_grad_(True)
    val = emd_loss(h, kp, torch.ones(1, 3), tol=1e-15, n_iters=40, solver="newton", reduction="none")
    val.sum().backward()
    ref = emd_loss(hm.double(), kp.double(), torch.ones(1, 3), tol=1e-12, solver="sinkhorn",
                   reduction="none")
    assert torch.isfinite(val).all() and torch.isfinite(h.grad).all()
    assert torch.allclose(val.double(), ref, rtol=1e-4)
    info = hdm_transport(hm, kp, tol=1e-15, n_iters=40, solver="newton")
    assert info["iterations"] <= 40 and info["marginal_error"] < 1e-4


def test_solver_argument_validated():
    with pytest.raises(ValueError, match="solver"):
        emd_loss(torch.rand(1, 1, 4, 4), torch.zeros(1, 1, 2), torch.ones(1, 1), solver="lbfgs")


def test_newton_stall_falls_back_to_sinkhorn(monkeypatch):
    """Force a 'stall' after one Newton iteration: the Sinkhorn continuation must still reach tol
    and give the same value and gradient as plain Sinkhorn."""
    original = transport._newton_scaling

    def stalling(a, kernel, b, n_iters, tol, warm=2):
        v, it, err, _, ev = original(a, kernel, b, 1, 0.0, warm=0)
        return v, it, err, True, ev

    torch.manual_seed(7)
    hm = torch.rand(1, 3, 12, 9, dtype=torch.float64)
    kp = torch.tensor([[[0.0, 0.0], [4.3, 7.6], [8.0, 2.2]]], dtype=torch.float64)
    ref_h = hm.clone().requires_grad_(True)
    ref = emd_loss(ref_h, kp, torch.ones(1, 3), tol=1e-12, solver="sinkhorn", reduction="sum")
    ref.backward()
    monkeypatch.setattr(transport, "_newton_scaling", stalling)
    h = hm.clone().requires_grad_(True)
    got = emd_loss(h, kp, torch.ones(1, 3), tol=1e-12, solver="newton", reduction="sum")
    got.backward()
    assert abs(float(got.detach()) - float(ref.detach())) < 1e-11
    assert torch.allclose(h.grad, ref_h.grad, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("case", ["far_keypoints", "small_reg_float32", "mixed_support"])
def test_newton_paths_agree_with_sinkhorn(case):
    """The Newton path's own kernel construction (shared offset table or per-problem planes,
    plane or row-stabilised exp, support compaction) against the Sinkhorn path's dense kernels."""
    torch.manual_seed(8)
    H, W = 18, 13
    dtype = torch.float32 if case == "small_reg_float32" else torch.float64
    hm = torch.randn(2, 4, H, W, dtype=torch.float64)
    kp = torch.rand(2, 4, 2, dtype=torch.float64) * torch.tensor([W - 1.0, H - 1.0], dtype=torch.float64)
    reg = 1.0
    if case == "far_keypoints":  # span too wide for one shared table: per-problem planes
        kp[0, 0] = torch.tensor([400.3, -250.7])
        kp[1, 3] = torch.tensor([-90.2, 700.9])
    elif case == "small_reg_float32":  # exp(-max C/ε) underflows in float32: stabilised kernel
        reg = 0.2
        kp[0, 0] = torch.tensor([0.0, 0.0])
        kp[1, 1] = torch.tensor([W - 1.0, H - 1.0])
    else:  # one dense map, one empty map, one single-pixel support, the rest about half
        hm[0, 0] = hm[0, 0].abs() + 0.1
        hm[0, 1] = -1.0
        hm[0, 2] = -1.0
        hm[0, 2, 5, 7] = 2.0
    vis = torch.ones(2, 4)
    out = {}
    for solver in ("newton", "sinkhorn"):
        h = hm.to(dtype).clone().requires_grad_(True)
        val = emd_loss(h, kp.to(dtype), vis, reg=reg, tol=1e-5 if dtype == torch.float32 else 1e-12,
                       solver=solver, reduction="none")
        (val * torch.arange(1.0, 9.0, dtype=dtype).reshape(2, 4)).sum().backward()
        assert torch.isfinite(val).all() and torch.isfinite(h.grad).all()
        out[solver] = (val.detach().double(), h.grad.double())
    rtol, gtol = (1e-4, 1e-3) if dtype == torch.float32 else (1e-10, 1e-7)
    assert torch.allclose(out["newton"][0], out["sinkhorn"][0], rtol=rtol, atol=0)
    scale = float(out["sinkhorn"][1].abs().max())
    assert float((out["newton"][1] - out["sinkhorn"][1]).abs().max()) <= gtol * scale
    if case == "mixed_support":
        assert float(out["newton"][1][0, 1].abs().max()) == 0.0  # empty map: no gradient
        grad_single = out["newton"][1][0, 2]
        assert float(grad_single.abs().sum()) == float(grad_single[5, 7].abs())  # only on the support


@pytest.mark.parametrize("far", [False, True])
def test_batch_shared_kernel_tables_match_per_chunk_tables(monkeypatch, far):
    """Several chunks at 64×48: the kernel tables built once for the batch (keypoints close
    together) give bit-identical values and gradients to tables built chunk by chunk, and both
    agree with the Sinkhorn path's dense kernels; keypoints far apart refuse the shared table."""
    torch.manual_seed(11)
    B, K, H, W = 4, 17, 64, 48  # 68 problems: two float64 chunks
    assert len(transport._chunks(B * K, 4 * H * W, 8)) > 1
    hm = torch.randn(B, K, H, W, dtype=torch.float64)
    kp = torch.rand(B, K, 2, dtype=torch.float64) * torch.tensor([W - 1.0, H - 1.0], dtype=torch.float64)
    if far:
        kp[3, 16] = torch.tensor([3000.5, -2000.25], dtype=torch.float64)
    vis = torch.ones(B, K)
    weights = torch.arange(1.0, B * K + 1.0, dtype=torch.float64).reshape(B, K)
    original = transport._shared_kernel_source
    built = []

    def spy(*args):
        built.append(original(*args))
        return built[-1]

    def run(solver="newton"):
        h = hm.clone().requires_grad_(True)
        val = emd_loss(h, kp, vis, tol=1e-12, solver=solver, reduction="none")
        (val * weights).sum().backward()
        return val.detach(), h.grad

    monkeypatch.setattr(transport, "_shared_kernel_source", spy)
    shared = run()
    assert len(built) == 1 and (built[0] is None) == far  # shared only when the span is small
    monkeypatch.setattr(transport, "_shared_kernel_source", lambda *args: None)
    per_chunk = run()
    assert torch.equal(shared[0], per_chunk[0]) and torch.equal(shared[1], per_chunk[1])
    dense = run("sinkhorn")
    assert torch.allclose(shared[0], dense[0], rtol=1e-10, atol=0)
    assert float((shared[1] - dense[1]).abs().max()) <= 1e-7 * float(dense[1].abs().max())
