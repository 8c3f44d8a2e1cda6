"""RSPose ranking losses: the vectorised losses against a naive per-positive loop (written here,
float64 numpy, following the RS reference's loop), dtypes at the paper's sizes, edge cases, the
rank balance, and that each coefficient scales its own update."""
import math

import numpy as np
import pytest
import torch

from poselab.codecs import POSITIVE_THRESHOLD_3SIGMA, encode_gaussian, encode_simcc
from poselab.losses import ranking
from poselab.losses.ranking import (instance_sort_loss, rspose_loss, spatial_rank_loss,
                                    spatial_rank_sort_loss, spatial_sort_loss)
from poselab.skeleton import OKS_SIGMAS

EPS = 1e-10


def _H(x, delta):
    return np.clip(x / (2 * delta) + 0.5, 0.0, 1.0)


def naive_problem(s, y, pos, rank_delta, sort_delta):
    """One ranking problem, one positive at a time (RS reference loop). Returns
    (rank loss, sort loss, rank update (N,), sort update (N,))."""
    s, y = np.asarray(s, np.float64), np.asarray(y, np.float64)
    P = np.flatnonzero(pos)
    Nn = np.flatnonzero(~pos)
    g_r, g_s = np.zeros(len(s)), np.zeros(len(s))
    lr, ls = [], []
    for i in P[np.argsort(s[P], kind="stable")]:
        h_neg = _H(s[Nn] - s[i], rank_delta)
        fp = h_neg.sum()
        rank_pos = _H(s[P] - s[i], rank_delta).sum()
        l_r = fp / (rank_pos + fp)
        hs = _H(s[P] - s[i], sort_delta)
        cur = (hs * (1 - y[P])).sum() / hs.sum()
        ge = y[P] >= y[i]
        tgt = (hs * ge * (1 - y[P])).sum() / (hs * ge).sum()
        e = cur - tgt
        lr.append(l_r)
        ls.append(e)
        if fp > EPS:
            g_r[i] -= l_r
            g_r[Nn] += h_neg * l_r / fp
        m = hs * (~ge)
        if m.sum() > EPS:
            g_s[i] -= e
            g_s[P] += m * e / m.sum()
    n = len(P)
    return np.mean(lr), np.mean(ls), g_r / n, g_s / n


def naive_spatial(scores, labels, visible, rank_delta, sort_delta, thr=0.0):
    """Mean over the problems with positives; updates divided by that number."""
    B, K = scores.shape[:2]
    s = scores.detach().double().reshape(B, K, -1).numpy()
    y = labels.detach().double().reshape(B, K, -1).numpy()
    v = visible.detach().double().numpy()
    g_r, g_s = np.zeros_like(s), np.zeros_like(s)
    lr, ls = [], []
    for b in range(B):
        for k in range(K):
            pos = (y[b, k] > thr) & (v[b, k] > 0)
            if not pos.any():
                continue
            a, c, gr, gs = naive_problem(s[b, k], y[b, k], pos, rank_delta, sort_delta)
            lr.append(a), ls.append(c)
            g_r[b, k], g_s[b, k] = gr, gs
    n = max(len(lr), 1)
    return (sum(lr) / n, sum(ls) / n, (g_r / n).reshape(scores.shape),
            (g_s / n).reshape(scores.shape))


def naive_instance(heatmaps, keypoints, visible, areas, delta):
    B, K, H, W = heatmaps.shape
    hm = heatmaps.detach().double().reshape(B, K, -1).numpy()
    conf, idx = hm.max(-1), hm.argmax(-1)
    px = np.stack([idx % W, idx // W], -1).astype(np.float64)
    d2 = ((px - keypoints.double().numpy()) ** 2).sum(-1)
    ks = np.exp(-d2 / (2 * areas.double().numpy()[:, None] * (2 * OKS_SIGMAS[None]) ** 2))
    g = np.zeros((B, K, H * W))
    losses = []
    for k in range(K):
        pos = visible[:, k].numpy() > 0
        if not pos.any():
            continue
        _, l_s, _, g_s = naive_problem(conf[:, k], ks[:, k], pos, delta, delta)
        losses.append(l_s)
        g[np.arange(B), k, idx[:, k]] = g_s
    n = max(len(losses), 1)
    return sum(losses) / n, (g / n).reshape(B, K, H, W)


def gaussian_problem(B=2, K=3, size=(64, 48), sigma=2.0, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    H, W = size
    kp = torch.rand(B, K, 2, generator=g, dtype=torch.float64) * torch.tensor([W - 1.0, H - 1.0])
    labels, vis = encode_gaussian(kp, None, size, sigma=sigma, dtype=torch.float64)
    # a prediction with structure: a shifted, noisy blob (ties, overlaps, mis-sorts)
    shift = torch.randint(-3, 4, (B, K, 2), generator=g).double()
    blob, _ = encode_gaussian(kp + shift, None, size, sigma=sigma * 1.5, dtype=torch.float64)
    scores = 2.0 * blob + 0.3 * torch.randn(B, K, H, W, generator=g, dtype=torch.float64)
    return scores.to(dtype), labels.to(dtype), vis.to(dtype), kp


def _grad(fn, scores, *args, **kw):
    x = scores.detach().clone().requires_grad_(True)
    loss = fn(x, *args, **kw)
    loss.backward()
    return loss.detach(), x.grad


# ----------------------------------------------------------------------------- vs the loop
@pytest.mark.parametrize("deltas", [(0.4, 1.5), (0.5, 0.5), (0.05, 3.0)])
def test_spatial_matches_naive_loop_2d(deltas):
    rd, sd = deltas
    scores, labels, vis, _ = gaussian_problem(B=2, K=3, seed=1)
    vis[1, 2] = 0  # an invisible joint is not a problem
    ref_r, ref_s, ref_gr, ref_gs = naive_spatial(scores, labels, vis, rd, sd)
    loss, grad = _grad(spatial_rank_loss, scores, labels, vis, delta=rd)
    assert abs(loss.item() - ref_r) <= 1e-9
    assert (grad.numpy() - ref_gr).__abs__().max() <= 1e-9
    loss, grad = _grad(spatial_sort_loss, scores, labels, vis, delta=sd)
    assert abs(loss.item() - ref_s) <= 1e-9
    assert np.abs(grad.numpy() - ref_gs).max() <= 1e-9
    assert np.abs(ref_gs).max() > 1e-4 and np.abs(ref_gr).max() > 1e-4  # not a vacuous check


def test_spatial_matches_naive_loop_simcc_sizes():
    g = torch.Generator().manual_seed(3)
    kp = torch.rand(2, 3, 2, generator=g, dtype=torch.float64) * torch.tensor([191.0, 255.0])
    lx, ly, w = encode_simcc(kp, None, (256, 192), split_ratio=2.0, sigma=6.0)
    for lab in (lx.double(), ly.double()):
        scores = 3 * torch.roll(lab, 5, -1) + 0.5 * torch.randn(lab.shape, generator=g, dtype=torch.float64)
        for thr in (POSITIVE_THRESHOLD_3SIGMA, 0.0):
            ref_r, ref_s, ref_gr, ref_gs = naive_spatial(scores, lab, w.double(), 0.4, 0.2, thr)
            out = spatial_rank_sort_loss(scores.clone().requires_grad_(True), lab, w, 0.4, 0.2,
                                         sort_weight=1.0, positive_threshold=thr,
                                         return_terms=True)
            assert abs(out["spatial_rank"].item() - ref_r) <= 1e-9
            assert abs(out["spatial_sort"].item() - ref_s) <= 1e-9
            x = scores.clone().requires_grad_(True)
            spatial_rank_sort_loss(x, lab, w, 0.4, 0.2, sort_weight=1.0,
                                   positive_threshold=thr).backward()
            assert np.abs(x.grad.numpy() - (ref_gr + ref_gs)).max() <= 1e-9


def test_instance_sort_matches_naive_loop():
    g = torch.Generator().manual_seed(5)
    B, K, H, W = 8, 17, 64, 48
    hm = torch.randn(B, K, H, W, generator=g, dtype=torch.float64)
    kp = torch.rand(B, K, 2, generator=g, dtype=torch.float64) * torch.tensor([W - 1.0, H - 1.0])
    vis = (torch.rand(B, K, generator=g) > 0.2).double()
    areas = torch.rand(B, generator=g, dtype=torch.float64) * 600 + 100
    ref, ref_g = naive_instance(hm, kp, vis, areas, 3.0)
    loss, grad = _grad(instance_sort_loss, hm, kp, vis, areas, delta=3.0)
    assert abs(loss.item() - ref) <= 1e-9
    assert np.abs(grad.numpy() - ref_g).max() <= 1e-9
    assert np.abs(ref_g).max() > 1e-4


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_instance_sort_unlabelled_keypoints_may_be_nan(dtype):
    """Instance-Sort reads a NaN/Inf keypoint of a joint with visible 0 as an unlabelled joint (as
    bcir_loss and sar_loss do): same loss and gradient as any finite value there, for the 2-D
    loss, the combined rspose_loss and the SimCC form; refused by name with visible > 0 or None."""
    g = torch.Generator().manual_seed(6)
    B, K, H, W = 6, 17, 64, 48
    hm = torch.randn(B, K, H, W, generator=g, dtype=dtype)
    kp = (torch.rand(B, K, 2, generator=g, dtype=torch.float64) * torch.tensor([W - 1.0, H - 1.0])).to(dtype)
    vis = (torch.rand(B, K, generator=g) > 0.3).to(dtype)
    areas = (torch.rand(B, generator=g, dtype=torch.float64) * 600 + 100).to(dtype)
    holes = kp.clone()
    holes[vis == 0] = float("nan")
    holes[tuple((vis == 0).nonzero()[0].tolist()) + (0,)] = float("inf")
    assert int((vis == 0).sum()) > 3
    labels = encode_gaussian(kp, None, (H, W), sigma=2.0, dtype=dtype)[0]
    sx, sy = hm.amax(2), hm.amax(3)  # a (B, K, W) and (B, K, H) pair: 1-D outputs, split ratio 1
    cases = [
        (lambda t, x: instance_sort_loss(x, t, vis, areas), hm),
        (lambda t, x: rspose_loss(x, labels, vis, keypoints=t, areas=areas), hm),
        (lambda t, x: ranking.simcc_instance_sort_loss(x, sy, t, vis, areas, split_ratio=1.0), sx),
    ]
    for fn, inp in cases:
        (l0, g0), (l1, g1) = (_grad(lambda x: fn(t, x), inp) for t in (kp, holes))
        assert torch.isfinite(l1) and torch.equal(l0, l1) and torch.equal(g0, g1)
        assert float(g0.abs().max()) > 0
    bad = holes.clone()
    bad[tuple(vis.nonzero()[0].tolist())] = float("nan")
    with pytest.raises(ValueError, match="keypoints contains NaN or Inf for a joint with visible > 0"):
        instance_sort_loss(hm, bad, vis, areas)
    with pytest.raises(ValueError, match="keypoints contains NaN or Inf, and without visible"):
        instance_sort_loss(hm, holes, None, areas)


def test_chunking_gives_the_same_result(monkeypatch):
    scores, labels, vis, _ = gaussian_problem(B=3, K=4, seed=2)
    full = _grad(spatial_rank_sort_loss, scores, labels, vis)
    monkeypatch.setattr(ranking, "_RANK_CHUNK", 1)  # one row per chunk
    monkeypatch.setattr(ranking, "_SORT_CHUNK", 1)
    chunked = _grad(spatial_rank_sort_loss, scores, labels, vis)
    assert torch.allclose(full[0], chunked[0], atol=1e-12, rtol=0)
    assert torch.allclose(full[1], chunked[1], atol=1e-12, rtol=0)


# ----------------------------------------------------------------------------- dtypes, sizes
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float16, 2e-2),
                                       (torch.bfloat16, 5e-2)])
def test_dtypes_at_paper_sizes(dtype, tol):
    scores, labels, vis, kp = gaussian_problem(B=4, K=17, seed=4)
    areas = torch.full((4,), 300.0, dtype=torch.float64)
    # the reference sees the same rounded labels: Spatial Sort ranks positives by their label, and
    # rounding a Gaussian's labels to float32 can merge or split ties (a 5.6e-4 change in the
    # float64 loss itself on some CPUs' exp), which is the input changing, not the arithmetic
    ref = rspose_loss(scores, labels.to(dtype).double(), vis, kp, areas, return_terms=True)
    x = scores.to(dtype).requires_grad_(True)
    out = rspose_loss(x, labels.to(dtype), vis.to(dtype), kp.to(dtype), areas.to(dtype),
                      return_terms=True)
    out["loss"].backward()
    assert x.grad.dtype == dtype and bool(torch.isfinite(x.grad).all())
    for k in ("spatial_rank", "spatial_sort", "loss"):
        assert out[k].dtype == dtype and math.isfinite(out[k].item())
        assert abs(out[k].item() - ref[k].item()) <= tol * max(1.0, abs(ref[k].item())), k
    # against float64 on the *same rounded* inputs, the gradient agrees to output rounding
    xr = x.detach().double().requires_grad_(True)
    rspose_loss(xr, labels.to(dtype).double(), vis.double(), kp.to(dtype).double(),
                areas.to(dtype).double()).backward()
    scale = xr.grad.abs().max().item()
    assert (x.grad.double() - xr.grad).abs().max().item() <= 1e-2 * scale


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_dtypes_simcc_sizes(dtype):
    g = torch.Generator().manual_seed(7)
    kp = torch.rand(4, 17, 2, generator=g) * torch.tensor([191.0, 255.0])
    lx, _, w = encode_simcc(kp, None, (256, 192))
    scores = (4 * torch.roll(lx, 3, -1) + torch.randn(lx.shape, generator=g))
    ref = spatial_rank_sort_loss(scores.double(), lx.double(), w.double(), 0.4, 0.2, 0.25,
                                 POSITIVE_THRESHOLD_3SIGMA)
    x = scores.to(dtype).requires_grad_(True)
    loss = spatial_rank_sort_loss(x, lx.to(dtype), w.to(dtype), 0.4, 0.2, 0.25,
                                  POSITIVE_THRESHOLD_3SIGMA)
    loss.backward()
    assert bool(torch.isfinite(x.grad).all()) and math.isfinite(loss.item())
    assert abs(loss.item() - ref.item()) <= (1e-5 if dtype == torch.float32 else 5e-2)


# ----------------------------------------------------------------------------- edge cases
def test_no_positives_zero_loss_zero_gradient():
    x = torch.randn(2, 3, 16, 12, requires_grad=True)
    labels = torch.zeros(2, 3, 16, 12)
    out = rspose_loss(x, labels, torch.ones(2, 3), torch.rand(2, 3, 2) * 10,
                      torch.full((2,), 50.0), instance_weight=0.0, return_terms=True)
    out["loss"].backward()
    assert out["loss"].item() == 0.0 and bool((x.grad == 0).all())
    # labels present but nothing visible
    y = torch.rand(2, 3, 16, 12)
    x.grad = None
    spatial_rank_sort_loss(x, y, torch.zeros(2, 3)).backward()
    assert bool((x.grad == 0).all())
    x.grad = None
    instance_sort_loss(x, torch.rand(2, 3, 2), torch.zeros(2, 3), torch.ones(2),
                       sigmas=[0.1] * 3).backward()
    assert bool((x.grad == 0).all())
    # empty batch
    e = torch.zeros(0, 17, 8, 6, requires_grad=True)
    assert spatial_rank_loss(e, torch.zeros(0, 17, 8, 6), torch.zeros(0, 17)).item() == 0.0


def test_all_tied_scores_closed_form():
    # one positive among N tied pixels: FP = (N-1)/2, rank⁺ = 1/2 -> ℓ_R = (N-1)/N
    x = torch.zeros(1, 1, 8, 6, dtype=torch.float64, requires_grad=True)
    y = torch.zeros(1, 1, 8, 6, dtype=torch.float64)
    y[0, 0, 3, 2] = 1
    loss = spatial_rank_loss(x, y)
    loss.backward()
    assert abs(loss.item() - 47 / 48) <= 1e-12
    assert abs(x.grad[0, 0, 3, 2].item() + 47 / 48) <= 1e-12
    assert abs(x.grad.sum().item()) <= 1e-12


def test_perfect_ranking_has_zero_loss_and_a_counter_case():
    _, labels, vis, _ = gaussian_problem(B=1, K=2, size=(16, 12), seed=0)
    # scores = dense rank of the label: distinct labels 1 apart, positives ≥ 5 above negatives
    levels = torch.unique(labels, sorted=True, return_inverse=True)[1].double()
    good = levels + (labels > 0) * 5.0
    assert spatial_rank_loss(good, labels, vis).item() == 0.0
    assert spatial_sort_loss(good, labels, vis, delta=0.4).item() <= 1e-12
    bad = -good
    assert spatial_rank_loss(bad, labels, vis).item() > 0.5
    assert spatial_sort_loss(bad, labels, vis, delta=0.4).item() > 0.1


def test_bad_inputs_raise_clear_errors():
    x = torch.randn(2, 3, 8, 6)
    y = torch.rand(2, 3, 8, 6)
    with pytest.raises(ValueError, match="delta"):
        spatial_rank_loss(x, y, delta=0.0)
    with pytest.raises(ValueError, match="labels must have the shape"):
        spatial_rank_loss(x, y[..., :5])
    with pytest.raises(ValueError, match="NaN"):
        spatial_sort_loss(x * float("nan"), y)
    with pytest.raises(ValueError, match=r"\(B, K, \*S\)"):
        spatial_rank_loss(x[0, 0], y[0, 0])
    with pytest.raises(ValueError, match="weights must have shape"):
        spatial_rank_loss(x, y, torch.ones(3))
    with pytest.raises(ValueError, match="reduction"):
        spatial_rank_loss(x, y, reduction="avg")
    with pytest.raises(ValueError, match="sigmas"):
        instance_sort_loss(x, torch.rand(2, 3, 2), None, torch.ones(2))
    with pytest.raises(ValueError, match="areas must be > 0"):
        instance_sort_loss(x, torch.rand(2, 3, 2), None, torch.zeros(2), sigmas=[0.1] * 3)
    with pytest.raises(ValueError, match="keypoints"):
        rspose_loss(x, y, None, instance_weight=0.25)
    with pytest.raises(ValueError, match="positive_threshold"):
        spatial_rank_loss(x, y, positive_threshold=float("nan"))


def test_reductions():
    scores, labels, vis, _ = gaussian_problem(B=2, K=3, size=(16, 12), seed=6)
    vis[0, 0] = 0
    per = spatial_rank_loss(scores, labels, vis, reduction="none")
    assert per.shape == (2, 3) and per[0, 0].item() == 0.0
    assert torch.allclose(spatial_rank_loss(scores, labels, vis, reduction="sum"), per.sum())
    assert torch.allclose(spatial_rank_loss(scores, labels, vis), per.sum() / 5)


# ----------------------------------------------------------------------------- the update
def test_rank_update_is_balanced_and_mse_is_not():
    scores, labels, vis, _ = gaussian_problem(B=2, K=17, seed=8)
    _, g = _grad(spatial_rank_loss, scores, labels, vis)
    pos = labels > 0
    s_pos, s_neg = g[pos].sum().item(), g[~pos].sum().item()
    assert s_pos < 0 < s_neg
    assert abs(s_pos + s_neg) / abs(g[pos]).sum().item() <= 1e-12
    # counter-case: the MSE gradient is not balanced
    g_mse = 2 * (scores - labels)
    assert abs(g_mse[pos].sum() + g_mse[~pos].sum()) / g_mse[pos].abs().sum() > 0.1


def test_coefficient_scales_its_own_update():
    scores, labels, vis, kp = gaussian_problem(B=4, K=17, size=(32, 24), seed=9)
    areas = torch.full((4,), 150.0, dtype=torch.float64)
    kw = dict(visible=vis, keypoints=kp, areas=areas)
    _, g0 = _grad(rspose_loss, scores, labels, sort_weight=0.0, instance_weight=0.0, **kw)
    _, g1 = _grad(rspose_loss, scores, labels, sort_weight=1.0, instance_weight=0.0, **kw)
    _, g3 = _grad(rspose_loss, scores, labels, sort_weight=3.0, instance_weight=0.0, **kw)
    _, gi = _grad(rspose_loss, scores, labels, sort_weight=0.0, instance_weight=2.0, **kw)
    sort_part = g1 - g0
    assert sort_part.abs().max() > 1e-4            # the sort coefficient does something
    assert torch.allclose(g3 - g0, 3 * sort_part, atol=1e-12)
    _, g_is = _grad(instance_sort_loss, scores, kp, vis, areas)
    assert g_is.abs().max() > 1e-4
    assert torch.allclose(gi - g0, 2 * g_is, atol=1e-12)
    _, g_half = _grad(lambda x, *a: 0.5 * spatial_rank_loss(x, *a), scores, labels, vis)
    _, g_rank = _grad(spatial_rank_loss, scores, labels, vis)
    assert torch.allclose(g_half, 0.5 * g_rank, atol=1e-15)


def test_descending_the_update_ranks_and_sorts_free_heatmaps():
    _, labels, vis, _ = gaussian_problem(B=2, K=4, size=(16, 12), seed=10)
    x = (0.1 * torch.randn(labels.shape, generator=torch.Generator().manual_seed(0),
                           dtype=torch.float64)).requires_grad_(True)
    opt = torch.optim.SGD([x], lr=50.0)
    first = None
    for _ in range(200):
        opt.zero_grad()
        loss = spatial_rank_sort_loss(x, labels, vis, 0.4, 0.4, sort_weight=1.0)
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    assert loss.item() < 0.2 * first
    assert spatial_rank_loss(x, labels, vis).item() < 0.05


def test_instance_sort_ordering_counter_case():
    B, K = 6, 17
    hm = torch.zeros(B, K, 16, 12)
    kp = torch.full((B, K, 2), 6.0)
    kp[:, :, 0] = 6.0 + torch.arange(B, dtype=torch.float32)[:, None]  # person b off by b px
    areas = torch.full((B,), 100.0)
    aligned = hm.clone()
    aligned[:, :, 6, 6] = (10.0 * (B - torch.arange(B, dtype=torch.float32)))[:, None]
    reversed_ = hm.clone()
    reversed_[:, :, 6, 6] = (10.0 * torch.arange(B, dtype=torch.float32))[:, None]
    assert instance_sort_loss(aligned, kp, None, areas, delta=3.0).item() <= 1e-7
    assert instance_sort_loss(reversed_, kp, None, areas, delta=3.0).item() > 0.1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_row_order_sorts_every_row(dtype):
    """numpy's argsort per row (any order among ties): extreme magnitudes, signed zeros,
    denormals, all-tied rows, and half precision (sorted as float32, exactly)."""
    g = torch.Generator().manual_seed(11)
    big = {torch.float16: 4, torch.bfloat16: 30}.get(dtype, 30)
    x = (torch.randn(7, 300, generator=g, dtype=torch.float64)
         * torch.logspace(-big, big, 7, dtype=torch.float64)[:, None]).to(dtype)
    x[0, :4] = torch.tensor([0.0, -0.0, 1e-45, -1e-45]).to(dtype)
    x[1, :] = 2.5  # all tied
    order = ranking._row_order(x)
    assert order.dtype == torch.int64 and order.shape == x.shape
    assert torch.equal(x.gather(1, order), torch.sort(x, 1)[0])
    assert torch.equal(torch.sort(order, 1)[0], torch.arange(300).expand(7, 300))  # a permutation
    # counter-case: an unsorted permutation is caught by the same check
    assert not torch.equal(x.gather(1, order.flip(1)), torch.sort(x, 1)[0])


# ----------------------------------------------------------------------------- issue 17 paths
def test_small_maps_match_naive_loop_where_positives_dominate():
    """16×12 maps (64×48 input, σ = 2): the 13×13 window covers most pixels, so the rank part
    takes the all-pixel window search (N ≤ 4|P|) and the sort part sees rows of very different
    |P| (windows clipped at the border, an invisible joint); float64 equals the loop."""
    scores, labels, vis, kp = gaussian_problem(B=3, K=4, size=(16, 12), seed=11)
    vis[2, 1] = 0
    counts = (labels > 0).flatten(2).sum(-1)
    assert 192 <= 4 * int(counts.max()) and int(counts.min()) < int(counts.max())
    for rd, sd in ((0.4, 1.5), (0.05, 0.1)):
        ref_r, ref_s, ref_gr, ref_gs = naive_spatial(scores, labels, vis, rd, sd)
        loss, grad = _grad(spatial_rank_loss, scores, labels, vis, delta=rd)
        assert abs(loss.item() - ref_r) <= 1e-9 * max(1.0, abs(ref_r))
        assert np.abs(grad.numpy() - ref_gr).max() <= 1e-9
        loss, grad = _grad(spatial_sort_loss, scores, labels, vis, delta=sd)
        assert abs(loss.item() - ref_s) <= 1e-9 * max(1.0, abs(ref_s))
        assert np.abs(grad.numpy() - ref_gs).max() <= 1e-9
        assert np.abs(ref_gs).max() > 1e-4 and np.abs(ref_gr).max() > 1e-4


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-9), (torch.float32, 2e-5)])
@pytest.mark.parametrize("chunk", [None, 4000])
def test_sort_rows_ordered_by_positive_count_are_put_back(monkeypatch, dtype, tol, chunk):
    """The sort part runs rows ordered by |P| (in chunks padded to their own max |P|); every
    problem's loss and update must come back to its own row: per-row results (reduction="none")
    against the loop, one problem at a time. The rows have different |P| and different losses,
    so a mix-up fails (counter-case: the same results shuffled are not equal)."""
    scores, labels, vis, _ = gaussian_problem(B=4, K=5, size=(16, 12), seed=12)
    keep = torch.rand(labels.shape, generator=torch.Generator().manual_seed(1), dtype=labels.dtype)
    labels = labels * (keep > 0.5)                                  # |P| from ~20 to ~90 per row
    vis[1, 3] = 0
    if chunk is not None:
        monkeypatch.setattr(ranking, "_SORT_CHUNK", chunk)          # several uneven chunks
    # the loop sees the labels the loss sees (rounded to dtype: rounding can merge or split the
    # ties Spatial Sort ranks positives by, which changes the problem, not the arithmetic)
    s, y = scores.reshape(20, -1).numpy(), labels.to(dtype).double().reshape(20, -1).numpy()
    pos = (y > 0) & (vis.reshape(20, 1).numpy() > 0)
    assert len(set(pos.sum(1).tolist())) > 5
    x = scores.to(dtype).clone().requires_grad_(True)
    per_row = spatial_sort_loss(x, labels.to(dtype), vis.to(dtype), delta=0.5,
                                reduction="none").flatten()
    w = torch.rand(20, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    (per_row * w.to(dtype)).sum().backward()
    grad = x.grad.reshape(20, -1).double().numpy()
    ref = np.zeros(20)
    for r in range(20):
        if pos[r].any():
            _, ref[r], _, g_s = naive_problem(s[r], y[r], pos[r], 0.5, 0.5)
            assert np.abs(grad[r] - w[r].item() * g_s).max() <= tol, r
        else:
            assert np.abs(grad[r]).max() == 0.0
    assert np.abs(per_row.detach().double().numpy() - ref).max() <= tol
    assert np.abs(ref - ref[::-1]).max() > 1e-3                    # counter-case: a mix-up shows


def test_float32_training_size_matches_float64():
    """The training path (float32 scores, 16×12 maps, batch × 17 joints) against float64 on the
    same rounded inputs: losses to 1e-5 relative, updates to 1e-5 of their largest entry."""
    s64, l64, v64, kp = gaussian_problem(B=8, K=17, size=(16, 12), seed=13)
    s32, l32 = s64.float(), l64.float()
    areas = torch.full((8,), 80.0)
    out = {}
    for name, (s, l) in {"32": (s32, l32), "64": (s32.double(), l32.double())}.items():
        x = s.clone().requires_grad_(True)
        terms = rspose_loss(x, l, v64.to(s.dtype), kp.to(s.dtype), areas.to(s.dtype),
                            return_terms=True)
        terms["loss"].backward()
        out[name] = (terms, x.grad)
    for k in ("spatial_rank", "spatial_sort", "instance_sort", "loss"):
        a, b = out["32"][0][k].item(), out["64"][0][k].item()
        assert out["32"][0][k].dtype == torch.float32
        assert abs(a - b) <= 1e-5 * max(1.0, abs(b)), k
    g32, g64 = out["32"][1].double(), out["64"][1]
    assert (g32 - g64).abs().max() <= 1e-5 * g64.abs().max()


def test_rspose_instance_sort_needs_2d_heatmaps():
    x = torch.randn(2, 17, 20)
    y = torch.rand(2, 17, 20)
    with pytest.raises(ValueError, match="heatmaps must have 4 dims"):
        rspose_loss(x, y, None, torch.rand(2, 17, 2), torch.ones(2))


def test_module_wrappers_equal_the_functions():
    from poselab.losses import BCIRLoss, InstanceSortLoss, RSPoseLoss, SpatialRankSortLoss, bcir_loss
    from poselab.losses import integral_l1_loss
    scores, labels, vis, kp = gaussian_problem(B=3, K=17, seed=9)
    areas = torch.tensor([300.0, 800.0, 150.0], dtype=torch.float64)
    assert torch.equal(RSPoseLoss()(scores, labels, vis, kp, areas), rspose_loss(scores, labels, vis, kp, areas))
    assert torch.equal(SpatialRankSortLoss(rank_delta=0.3)(scores, labels, vis),
                       spatial_rank_sort_loss(scores, labels, vis, rank_delta=0.3))
    assert torch.equal(InstanceSortLoss()(scores, kp, vis, areas), instance_sort_loss(scores, kp, vis, areas))
    kpb = kp * 0.5
    assert torch.equal(BCIRLoss()(scores, kpb, vis, prior_weight=0.5), bcir_loss(scores, kpb, vis, prior_weight=0.5))
    # integral_l1_loss's default β is the paper's 10 (it was 1 while its docstring said 10)
    assert torch.equal(integral_l1_loss(scores, kpb, vis), integral_l1_loss(scores, kpb, vis, beta=10.0))
    with pytest.raises(ValueError):
        BCIRLoss(beta=-1.0)


# ----------------------------------------------------------------------------- SimCC Instance-Sort
def naive_simcc_instance(sx, sy, keypoints, visible, areas, delta, k=2.0):
    """Instance-Sort on SimCC vectors, one person and joint at a time (float64 numpy): confidence =
    min of the two axes' maxima (SimCC's decoder score), location = the arg-max bins in input px;
    the update on the confidence goes to the arg-max bin of the smaller axis (half each on a tie)."""
    x, y = sx.detach().double().numpy(), sy.detach().double().numpy()
    kp, v, a = keypoints.double().numpy(), visible.double().numpy(), areas.double().numpy()
    B, K = x.shape[:2]
    conf, ks = np.zeros((B, K)), np.zeros((B, K))
    ix, iy = np.zeros((B, K), int), np.zeros((B, K), int)
    for b in range(B):
        for j in range(K):
            ix[b, j], iy[b, j] = int(np.argmax(x[b, j])), int(np.argmax(y[b, j]))
            conf[b, j] = min(x[b, j, ix[b, j]], y[b, j, iy[b, j]])
            px, py = (ix[b, j] + 0.5) / k - 0.5, (iy[b, j] + 0.5) / k - 0.5
            d2 = (px - kp[b, j, 0]) ** 2 + (py - kp[b, j, 1]) ** 2
            ks[b, j] = math.exp(-d2 / (2 * a[b] * (2 * OKS_SIGMAS[j]) ** 2))
    gx, gy = np.zeros_like(x), np.zeros_like(y)
    losses = []
    for j in range(K):
        pos = v[:, j] > 0
        if not pos.any():
            continue
        _, l_s, _, g = naive_problem(conf[:, j], ks[:, j], pos, delta, delta)
        losses.append(l_s)
        for b in range(B):
            mx, my = x[b, j, ix[b, j]], y[b, j, iy[b, j]]
            wx = 1.0 if mx < my else 0.5 if mx == my else 0.0
            gx[b, j, ix[b, j]] += wx * g[b]
            gy[b, j, iy[b, j]] += (1.0 - wx) * g[b]
    n = max(len(losses), 1)
    return sum(losses) / n, gx / n, gy / n


def simcc_persons(B=8, K=17, size=(256, 192), k=2.0, seed=0, dtype=torch.float64):
    """SimCC-shaped predictions at the paper's 256×192 input (384 and 512 bins): the labels of a
    shifted keypoint plus noise, so the maxima are near the joints at various distances."""
    from poselab.codecs import encode_simcc
    g = torch.Generator().manual_seed(seed)
    H, W = size
    kp = torch.rand(B, K, 2, generator=g, dtype=torch.float64) * torch.tensor([W - 1.0, H - 1.0])
    shift = torch.randn(B, K, 2, generator=g, dtype=torch.float64) * 6
    lx, ly, _ = encode_simcc((kp + shift).clamp(0, W - 1), None, size, split_ratio=k, sigma=6.0)
    sx = 20 * lx.double() + 0.05 * torch.randn(lx.shape, generator=g, dtype=torch.float64)
    sy = 20 * ly.double() + 0.05 * torch.randn(ly.shape, generator=g, dtype=torch.float64)
    vis = (torch.rand(B, K, generator=g) > 0.2).double()
    areas = torch.rand(B, generator=g, dtype=torch.float64) * 8000 + 1000   # input px²
    return sx.to(dtype), sy.to(dtype), kp, vis, areas


def _simcc_grads(sx, sy, *args, **kw):
    x, y = sx.detach().clone().requires_grad_(True), sy.detach().clone().requires_grad_(True)
    loss = ranking.simcc_instance_sort_loss(x, y, *args, **kw)
    loss.backward()
    return loss.detach(), x.grad, y.grad


@pytest.mark.parametrize("delta", [0.5, 3.0])
def test_simcc_instance_sort_matches_naive_loop_at_the_papers_size(delta):
    sx, sy, kp, vis, areas = simcc_persons(seed=1)
    assert sx.shape[-1] == 384 and sy.shape[-1] == 512
    ref, ref_gx, ref_gy = naive_simcc_instance(sx, sy, kp, vis, areas, delta)
    loss, gx, gy = _simcc_grads(sx, sy, kp, vis, areas, delta=delta)
    assert abs(loss.item() - ref) <= 1e-9 and ref > 1e-3
    assert np.abs(gx.numpy() - ref_gx).max() <= 1e-9 and np.abs(gy.numpy() - ref_gy).max() <= 1e-9
    assert np.abs(ref_gx).max() > 1e-4 and np.abs(ref_gy).max() > 1e-4    # both axes get updates
    # the update touches one bin per axis and joint at most
    assert int((gx != 0).sum(-1).max()) <= 1 and int((gy != 0).sum(-1).max()) <= 1


def test_simcc_instance_sort_float32_matches_float64():
    sx, sy, kp, vis, areas = simcc_persons(seed=2)
    l64, gx64, gy64 = _simcc_grads(sx, sy, kp, vis, areas)
    l32, gx32, gy32 = _simcc_grads(sx.float(), sy.float(), kp.float(), vis.float(), areas.float())
    assert l32.dtype == torch.float32 and gx32.dtype == torch.float32
    assert abs(l32.item() - l64.item()) <= 1e-5 * max(1.0, abs(l64.item()))
    for a, b in ((gx32, gx64), (gy32, gy64)):
        assert (a.double() - b).abs().max() <= 1e-5 * b.abs().max()


def test_simcc_instance_sort_counter_cases():
    # conf ordered like KS → 0; the reverse → clearly positive; a tie of the two axes splits the update
    B, K = 4, 17
    kp = torch.full((B, K, 2), 40.0, dtype=torch.float64)
    kp[:, :, 0] = torch.tensor([40.0, 42.0, 46.0, 52.0])[:, None]    # person b is b-th best localised
    sx = torch.zeros(B, K, 192, dtype=torch.float64)
    sy = torch.zeros(B, K, 256, dtype=torch.float64)
    sx[:, :, 81] = 10.0    # x-bin 81 → input px 40.25 for everyone
    sy[:, :, 81] = 20.0
    areas = torch.full((B,), 200.0, dtype=torch.float64)
    up = torch.tensor([8.0, 6.0, 4.0, 2.0], dtype=torch.float64)[:, None]
    equal = ranking.simcc_instance_sort_loss(sx, sy, kp, None, areas, delta=0.5)
    sx_al = sx.clone(); sx_al[:, :, 81] = up
    sx_rev = sx.clone(); sx_rev[:, :, 81] = up.flip(0)
    assert ranking.simcc_instance_sort_loss(sx_al, sy, kp, None, areas, delta=0.5).item() <= 1e-9
    assert ranking.simcc_instance_sort_loss(sx_rev, sy, kp, None, areas, delta=0.5).item() > 0.1
    assert equal.item() > 0   # equal confidences (within δ): the KS order is not yet enforced
    # the confidence is the smaller axis: y's maxima do not matter while they stay above x's
    sy_big = sy.clone(); sy_big[:, :, 81] = up.flip(0) * 10
    assert ranking.simcc_instance_sort_loss(sx_al, sy_big, kp, None, areas, delta=0.5).item() <= 1e-9
    sy_tie = sy.clone(); sy_tie[:, :, 81] = up.flip(0)                 # ties on every (b, k)
    _, gx, gy = _simcc_grads(sx_rev, sy_tie, kp, None, areas, delta=0.5)
    assert torch.allclose(gx.sum(-1), gy.sum(-1)) and gx.abs().max() > 0
    # the location comes from the arg-max bins, in input px at split_ratio k
    sx_k = torch.zeros(B, K, 96, dtype=torch.float64); sx_k[:, :, 40] = up   # k = 1: bin 40 → 40 px
    sy_k = torch.zeros(B, K, 128, dtype=torch.float64); sy_k[:, :, 40] = 20.0
    kp_k = kp.clone(); kp_k[:, :, 0] = torch.tensor([40.0, 38.0, 35.0, 31.0])[:, None]
    big = torch.full((B,), 20000.0, dtype=torch.float64)   # large persons: KS > 0 at 20 px too
    assert ranking.simcc_instance_sort_loss(sx_k, sy_k, kp_k, None, big, delta=0.5,
                                            split_ratio=1.0).item() <= 1e-9
    # read at k = 2 the same bin is 19.75 px: the KS order reverses
    assert ranking.simcc_instance_sort_loss(sx_k, sy_k, kp_k, None, big, delta=0.5,
                                            split_ratio=2.0).item() > 0.01


def test_simcc_instance_sort_bad_inputs():
    sx, sy, kp, vis, areas = simcc_persons(B=2, seed=3)
    f = ranking.simcc_instance_sort_loss
    with pytest.raises(ValueError, match="simcc_x must have 3 dims"):
        f(sx[0], sy, kp, vis, areas)
    with pytest.raises(ValueError, match=r"share their \(B, K\)"):
        f(sx, sy[:, :5], kp, vis, areas)
    with pytest.raises(TypeError, match="one dtype"):
        f(sx, sy.float(), kp, vis, areas)
    with pytest.raises(ValueError, match="NaN"):
        f(sx.clone().fill_(float("nan")), sy, kp, vis, areas)
    with pytest.raises(ValueError, match="at least one bin"):
        f(sx[..., :0], sy, kp, vis, areas)
    with pytest.raises(ValueError, match="keypoints must have shape"):
        f(sx, sy, kp[:, :3], vis, areas)
    with pytest.raises(ValueError, match=r"input px²"):
        f(sx, sy, kp, vis, torch.zeros(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="split_ratio"):
        f(sx, sy, kp, vis, areas, split_ratio=0.0)
    with pytest.raises(ValueError, match="split_ratio"):
        f(sx, sy, kp, vis, areas, split_ratio=float("inf"))
    with pytest.raises(ValueError, match="pass sigmas"):
        f(sx[:, :3], sy[:, :3], kp[:, :3], vis[:, :3], areas)
    with pytest.raises(ValueError, match="reduction"):
        f(sx, sy, kp, vis, areas, reduction="max")
    with pytest.raises(TypeError, match="simcc_instance_sort_loss"):
        instance_sort_loss((sx, sy), kp, vis, areas)
    # nobody visible / an empty batch: a finite zero tied to the graph, (K,) with reduction="none"
    x = sx.clone().requires_grad_(True)
    zero = f(x, sy, kp, torch.zeros_like(vis), areas)
    zero.backward()
    assert zero.item() == 0.0 and x.grad.abs().max() == 0
    assert f(sx[:0], sy[:0], kp[:0], vis[:0], areas[:0], reduction="none").shape == (17,)


@pytest.mark.parametrize("dtype,tol", [(torch.float16, 2e-2), (torch.bfloat16, 2e-2)])
def test_simcc_instance_sort_half_precision_outputs(dtype, tol):
    """Autocast hands the loss half-precision outputs while the batch's keypoints and areas stay
    float32: against float64 on the same rounded outputs (ties included)."""
    sx, sy, kp, vis, areas = simcc_persons(seed=2)
    hx, hy = sx.to(dtype), sy.to(dtype)
    l64, gx64, gy64 = _simcc_grads(hx.double(), hy.double(), kp, vis, areas)
    loss, gx, gy = _simcc_grads(hx, hy, kp.float(), vis.float(), areas.float())
    assert loss.dtype == dtype and gx.dtype == dtype and torch.isfinite(gx).all()
    assert abs(loss.item() - l64.item()) <= tol * abs(l64.item())
    for a, b in ((gx, gx64), (gy, gy64)):
        assert (a.double() - b).abs().max() <= tol * b.abs().max()


def test_simcc_module_wrapper_equals_the_function():
    from poselab.losses import SimCCInstanceSortLoss, simcc_instance_sort_loss
    sx, sy, kp, vis, areas = simcc_persons(B=4, seed=4)
    m = SimCCInstanceSortLoss(delta=0.5, split_ratio=2.0)
    assert torch.equal(m((sx, sy), kp, vis, areas), simcc_instance_sort_loss(sx, sy, kp, vis, areas, delta=0.5))
    assert torch.equal(SimCCInstanceSortLoss(reduction="none")([sx, sy], kp, vis, areas),
                       simcc_instance_sort_loss(sx, sy, kp, vis, areas, reduction="none"))
    with pytest.raises(TypeError, match="pair"):
        m(sx, kp, vis, areas)
