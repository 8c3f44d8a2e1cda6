"""Issue #30, classes 5 and 6: finite inputs give finite outputs (in the dtypes each path runs in),
and hyper-parameters that would silently change training are refused with a ValueError naming
the parameter and the accepted range.

Each test is a hostile input of the outside probe (or of the same class) that gave NaN / inf /
a truncated value before the fix; at the papers' map size (64×48) where the path takes maps.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from poselab._numbers import whole_number
from poselab.codecs import SARCodec, decode_sar, encode_gaussian, sar_top_m
from poselab.losses import (CONFIDENCE_RANKING_LOSSES, ap_rank_loss, dr_loss, laplacian_rank_loss,
                            neural_ndcg_loss, rspose_loss, sar_auxiliary_heatmap_loss, sar_loss,
                            spatial_rank_loss, spatial_rank_sort_loss, spatial_sort_loss)
from poselab.losses.ranking import DELTA_MIN, RSPoseLoss, SpatialRankSortLoss
from poselab.metrics import end_point_error, oks, pck

H, W = 64, 48


def _maps(B=2, K=3, dtype=torch.float32, seed=0, spread=3.0):
    """Scores near the Gaussian labels (a half-trained network) at the papers' 64×48."""
    g = torch.Generator().manual_seed(seed)
    kp = torch.rand(B, K, 2, generator=g) * torch.tensor([W - 9.0, H - 9.0]) + 4
    labels, vis = encode_gaussian(kp, None, (H, W), sigma=2.0)
    scores = spread * labels + torch.randn(B, K, H, W, generator=g)
    return scores.to(dtype), labels.to(dtype), vis


def _loss_and_grad(fn, scores, labels, vis, **kw):
    x = scores.clone().requires_grad_(True)
    loss = fn(x, labels, vis, **kw)
    loss.backward()
    return loss.detach(), x.grad


def _finite(*tensors):
    return all(bool(torch.isfinite(t).all()) for t in tensors)


# ============================================================================ class 5: ranking
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("delta", [1e-8, 1e-9, 1e-12, 1e-300])
def test_spatial_sort_is_finite_for_tiny_delta(dtype, delta):
    # was NaN: t = s/(2δ) ≥ 2²³ rounds (t + ½) − t to 0, emptying Eq. 8's denominator (0/0)
    scores, labels, vis = _maps(dtype=dtype)
    for fn in (spatial_sort_loss, spatial_rank_loss):
        loss, grad = _loss_and_grad(fn, scores, labels, vis, delta=delta)
        assert _finite(loss, grad), (fn.__name__, delta)
    # δ below the documented floor is computed with the floor: the same numbers
    at_floor, g_floor = _loss_and_grad(spatial_sort_loss, scores, labels, vis, delta=DELTA_MIN)
    loss, grad = _loss_and_grad(spatial_sort_loss, scores, labels, vis, delta=delta)
    assert torch.equal(loss, at_floor) and torch.equal(grad, g_floor)


def test_delta_floor_leaves_valid_deltas_alone():
    # two positives 5e-6 apart, the better label on the lower score: with δ = 1e-5 (above the
    # floor) H(5e-6) = 3/4, with δ = DELTA_MIN it is 1 — a floor that bound above DELTA_MIN
    # would make the two losses equal
    scores = torch.tensor([[[0.0, 5e-6, -1.0]]], dtype=torch.float64)
    labels = torch.tensor([[[1.0, 0.5, 0.0]]], dtype=torch.float64)
    above = spatial_sort_loss(scores, labels, delta=1e-5)
    at = spatial_sort_loss(scores, labels, delta=DELTA_MIN)
    assert _finite(above, at) and abs(above.item() - at.item()) > 1e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("big", [1e8, 1e12, 3e37])
@pytest.mark.parametrize("where", ["negative", "best_positive"])
def test_one_huge_score_in_a_map_keeps_everything_finite(dtype, big, where):
    # was NaN for a negative pixel of 1e8: every positive sits 1e8 below the map's top, so
    # t = s/(2δ) ≈ −3e7 and (t + ½) − t rounds to 0 in float32, emptying Eq. 8's denominators
    scores, labels, vis = _maps(dtype=dtype)
    base = spatial_rank_sort_loss(scores, labels, vis, reduction="none", return_terms=True)
    bad = scores.clone()
    flat = labels[0, 0].flatten()
    k = int(flat.argmax()) if where == "best_positive" else int((flat == 0).nonzero()[0])
    bad[0, 0].view(-1)[k] = big
    for fn in (spatial_sort_loss, spatial_rank_loss):
        loss, grad = _loss_and_grad(fn, bad, labels, vis)
        assert _finite(loss, grad), (fn.__name__, big)
    out = spatial_rank_sort_loss(bad, labels, vis, reduction="none", return_terms=True)
    # the other maps' losses do not move
    for term in ("spatial_rank", "spatial_sort"):
        assert torch.equal(out[term].flatten()[1:], base[term].flatten()[1:])


def test_huge_float64_scores_stay_finite():
    scores, labels, vis = _maps(dtype=torch.float64)
    bad = scores.clone()
    bad[0, 0, 0, 0], bad[0, 0, -1, -1] = 1e300, -1e300
    bad[0, 1] = labels[0, 1] * 1e300
    for fn in (spatial_sort_loss, spatial_rank_loss):
        loss, grad = _loss_and_grad(fn, bad, labels, vis)
        assert _finite(loss, grad), fn.__name__


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_scores_spanning_the_range(dtype):
    # was a non-finite gradient in float16: the map's span min − max = −1.2e5 overflowed to −inf
    scores, labels, vis = _maps(dtype=torch.float32, seed=3)
    g = torch.Generator().manual_seed(4)
    wide = ((torch.rand(scores.shape, generator=g) * 2 - 1) * 6e4).to(dtype)
    for fn in (spatial_sort_loss, spatial_rank_loss, spatial_rank_sort_loss):
        loss, grad = _loss_and_grad(fn, wide, labels.to(dtype), vis.to(dtype))
        assert loss.dtype == dtype and _finite(loss, grad), (fn.__name__, dtype)
        ref = fn(wide.float(), labels, vis)                      # float32 of the same values
        assert abs(loss.float().item() - ref.item()) <= 2e-2 * max(1.0, abs(ref.item()))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_ordinary_scores_match_float32(dtype):
    scores, labels, vis = _maps(dtype=torch.float32, seed=5)
    for fn in (spatial_sort_loss, spatial_rank_loss):
        low, g_low = _loss_and_grad(fn, scores.to(dtype), labels.to(dtype), vis.to(dtype))
        ref, g_ref = _loss_and_grad(fn, scores.to(dtype).float(), labels.to(dtype).float(), vis)
        assert _finite(low, g_low)
        assert abs(low.float().item() - ref.item()) <= 1e-2
        assert float((g_low.float() - g_ref).abs().max()) <= 1e-2


# ============================================================================ class 5: SAR
def _sar_problem(B=2, K=3, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    T = H * W
    coords = torch.rand(B, K, T, 2, generator=g) * torch.tensor([W, H])
    logits = torch.randn(B, K, T, generator=g) * 2 - 4.6
    target = torch.rand(B, K, 2, generator=g) * torch.tensor([W, H])
    return coords.to(dtype), logits.to(dtype), target.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("eps", [1e-6, 0.0])
def test_sar_loss_half_precision_far_points_are_finite(dtype, eps):
    # was NaN gradients (and inf with eps=0) in float16: |K_t − K*| = 1.2e5 px overflows to inf
    coords = torch.full((1, 2, 8, 2), 6e4, dtype=dtype)
    target = torch.full((1, 2, 2), -6e4, dtype=dtype)
    logits = torch.zeros(1, 2, 8, dtype=dtype)
    c, s = coords.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    loss = sar_loss(c, s, target, map_size=(W, H), eps=eps)
    loss.backward()
    assert loss.dtype == dtype and _finite(loss.detach(), c.grad, s.grad)
    if eps > 0:
        assert abs(loss.float().item() + math.log(eps)) < 0.1      # capped at −log eps
    # saturated logits spanning float16's range
    s2 = torch.full((1, 2, 8), -6e4, dtype=dtype).requires_grad_(True)
    c2 = torch.full((1, 2, 8, 2), 3e3, dtype=dtype).requires_grad_(True)
    loss2 = sar_loss(c2, s2, -target.new_full((1, 2, 2), 3e3), map_size=(1, 1), eps=eps)
    loss2.backward()
    assert _finite(loss2.detach(), c2.grad, s2.grad)


@pytest.mark.parametrize("dtype,tol", [(torch.float16, 5e-3), (torch.bfloat16, 3e-2)])
def test_sar_loss_half_precision_matches_float64_at_papers_size(dtype, tol):
    coords, logits, target = _sar_problem(dtype=torch.float64)
    ref = sar_loss(coords, logits, target, map_size=(W, H), reduction="none")
    low = sar_loss(coords.to(dtype), logits.to(dtype), target.to(dtype), map_size=(W, H),
                   reduction="none")
    assert low.dtype == dtype
    assert float(((low.double() - ref).abs() / ref.abs().clamp_min(1)).max()) <= tol


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
@pytest.mark.parametrize("eps", [1e-6, 0.0])
def test_sar_loss_keypoint_of_1e300_is_finite(dtype, eps):
    # a float64 target of 1e300 px was cast to inf in float32: every log r = −inf, the backward's
    # posterior −inf − (−inf) = NaN and the loss inf (eps = 0)
    coords, logits, _ = _sar_problem(B=1, K=2, dtype=dtype)
    target = torch.rand(1, 2, 2, dtype=torch.float64) * 10
    target[0, 0, 0] = 1e300
    c, s = coords.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    loss = sar_loss(c, s, target, map_size=(W, H), eps=eps)
    loss.backward()
    assert _finite(loss.detach(), c.grad, s.grad), (dtype, eps)


def test_sar_auxiliary_refuses_targets_outside_unit_interval():
    logits = torch.zeros(1, 2, 8, 6)
    ok = torch.zeros(1, 2, 8, 6)
    ok[..., 3, 2] = 1.0
    assert torch.isfinite(sar_auxiliary_heatmap_loss(logits, ok))
    with pytest.raises(ValueError, match=r"target must lie in \[0, 1\]"):
        sar_auxiliary_heatmap_loss(logits, ok * 255)
    with pytest.raises(ValueError, match="pos_threshold"):
        sar_auxiliary_heatmap_loss(logits, ok, pos_threshold=float("nan"))


# ============================================================================ class 5: metrics
def test_epe_of_a_1e300_keypoint_is_finite():
    rng = np.random.default_rng(0)
    pred, gt = rng.random((2, 17, 2)) * 40, rng.random((2, 17, 2)) * 40
    vis = np.ones((2, 17))
    pred[0, 0] = (1e300, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # no overflow warning either
        epe = end_point_error(pred, gt, vis)
        assert math.isfinite(epe) and epe == pytest.approx(1e300 / 34, rel=1e-12)
        pred[:], gt[:] = 1e307, -1e307                    # every distance 2.8e307: the sum overflows
        assert end_point_error(pred, gt, vis) == pytest.approx(2e307 * math.sqrt(2), rel=1e-12)
        assert pck(pred, gt, vis, np.full(2, 100.0)) == 0.0
        assert float(oks(pred[0], gt[0], vis[0], 100.0)) == 0.0


def test_epe_unchanged_for_ordinary_keypoints():
    rng = np.random.default_rng(1)
    pred, gt = rng.random((3, 17, 2)) * 40, rng.random((3, 17, 2)) * 40
    vis = (rng.random((3, 17)) > 0.3).astype(float)
    expect = np.sqrt(((pred - gt) ** 2).sum(-1))[vis > 0].mean()
    assert end_point_error(pred, gt, vis) == expect


# ============================================================================ class 6: weights
@pytest.mark.parametrize("name", ["sort_weight", "rank_weight", "instance_weight"])
@pytest.mark.parametrize("value", [-1.0, -1e-9, float("nan"), float("inf")])
def test_negative_or_nonfinite_loss_weights_are_refused(name, value):
    scores, labels, vis = _maps(B=1, K=2)
    with pytest.raises(ValueError, match=name):
        rspose_loss(scores, labels, vis, **{"instance_weight": 0.0, name: value})
    with pytest.raises(ValueError, match=name):
        RSPoseLoss(**{name: value})
    if name == "sort_weight":
        with pytest.raises(ValueError, match=r"sort_weight must be a finite number"):
            spatial_rank_sort_loss(scores, labels, vis, sort_weight=value)
        with pytest.raises(ValueError, match="sort_weight"):
            SpatialRankSortLoss(sort_weight=value)


def test_zero_weights_still_allowed():
    scores, labels, vis = _maps(B=1, K=2)
    out = spatial_rank_sort_loss(scores, labels, vis, sort_weight=0.0, return_terms=True)
    assert out["loss"].item() == out["spatial_rank"].item()


@pytest.mark.parametrize("thr", [float("nan"), -0.1, 1.0, 255.0])
def test_positive_threshold_outside_unit_interval_is_refused(thr):
    scores, labels, vis = _maps(B=1, K=2)
    for fn in (spatial_rank_loss, spatial_sort_loss, spatial_rank_sort_loss):
        with pytest.raises(ValueError, match=r"positive_threshold must be in \[0, 1\)|positive_threshold must be a finite"):
            fn(scores, labels, vis, positive_threshold=thr)
    with pytest.raises(ValueError, match="positive_threshold"):
        SpatialRankSortLoss(positive_threshold=thr)


@pytest.mark.parametrize("scale", [255.0, 100.0, -1.0])
def test_sort_labels_outside_unit_interval_are_refused(scale):
    # 0-255 label images or percents flip the sign of Eq. 8-9's (1 − y) weights
    scores, labels, vis = _maps(B=1, K=2)
    for fn in (spatial_sort_loss, spatial_rank_sort_loss, rspose_loss):
        with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\]"):
            fn(scores, labels * scale, vis)
    # the rank loss only thresholds the labels: its positives are the same set
    assert torch.equal(spatial_rank_loss(scores, labels * abs(scale), vis),
                       spatial_rank_loss(scores, labels, vis))


# ============================================================================ class 6: RCNet losses
@pytest.mark.parametrize("name", sorted(CONFIDENCE_RANKING_LOSSES))
def test_confidence_targets_in_percent_are_refused(name):
    pred = torch.tensor([0.9, 0.5, 0.2])
    target = torch.tensor([80.0, 50.0, 10.0])                # OKS in percent
    with pytest.raises(ValueError, match=r"target must lie in \[0, 1\]"):
        CONFIDENCE_RANKING_LOSSES[name](pred, target)
    with pytest.raises(ValueError, match=r"target must lie in \[0, 1\]"):
        CONFIDENCE_RANKING_LOSSES[name](pred, -target / 100)
    assert torch.isfinite(CONFIDENCE_RANKING_LOSSES[name](pred, target / 100))


@pytest.mark.parametrize("fn", [ap_rank_loss, dr_loss])
@pytest.mark.parametrize("thr", [float("nan"), 0.0, -0.5, 1.5, float("inf")])
def test_detection_threshold_outside_unit_interval_is_refused(fn, thr):
    # NaN made every pose a negative (AP-Loss 0, DR-Loss trained on negatives only)
    pred, target = torch.tensor([0.9, 0.5, 0.2]), torch.tensor([0.8, 0.5, 0.1])
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\]"):
        fn(pred, target, threshold=thr)
    assert torch.isfinite(fn(pred, target, threshold=1.0))


@pytest.mark.parametrize("scale", [-4.0, 0.0, float("nan")])
def test_dr_loss_scale_must_be_positive(scale):
    pred, target = torch.tensor([0.9, 0.5, 0.2]), torch.tensor([0.8, 0.5, 0.1])
    with pytest.raises(ValueError, match="scale must be a finite number > 0"):
        dr_loss(pred, target, scale=scale)
    with pytest.raises(ValueError, match="margin must be a finite number"):
        dr_loss(pred, target, margin=float("nan"))


def test_dr_loss_unchanged_for_valid_parameters():
    pred, target = torch.tensor([0.9, 0.5, 0.2]), torch.tensor([0.8, 0.5, 0.1])
    assert dr_loss(pred, target, scale=8.0).item() == pytest.approx(2 * dr_loss(pred, target).item())


# ============================================================================ class 6: counts
@pytest.mark.parametrize("value", [2.5, 2.7, float("nan"), True, "3", 0])
def test_whole_number_refuses_what_int_would_truncate(value):
    with pytest.raises(ValueError, match="must be a whole number >= 1"):
        whole_number(value, "epochs", 1)


def test_whole_number_accepts_integral_values():
    assert whole_number(3, "x") == 3 and whole_number(3.0, "x") == 3
    assert whole_number(np.int64(4), "x", 1) == 4
    with pytest.raises(ValueError, match=r"in \[1, 4\]"):
        whole_number(5, "m", 1, 4)


def test_sar_top_m_refuses_fractional_m():
    logits = torch.randn(1, 2, 4, 3)
    offsets = torch.zeros(1, 2, 2, 4, 3)
    for m in (2.7, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"m must be a whole number in \[1, 12\]"):
            sar_top_m(logits, offsets, m=m)
        with pytest.raises(ValueError, match="m must be a whole number"):
            decode_sar(logits, offsets, m=m)
        with pytest.raises(ValueError, match="m must be a whole number"):
            SARCodec(m=m)
    pts2, _, _ = sar_top_m(logits, offsets, m=2.0)          # integral floats are fine
    assert pts2.shape[-2] == 2


def test_confidence_ranking_counts_refuse_fractions():
    pred, target = torch.tensor([0.9, 0.5, 0.2]), torch.tensor([0.8, 0.5, 0.1])
    with pytest.raises(ValueError, match="chunk must be a whole number"):
        laplacian_rank_loss(pred, target, chunk=2.5)
    with pytest.raises(ValueError, match="sinkhorn_iters must be a whole number"):
        neural_ndcg_loss(pred, target, sinkhorn_iters=2.5)
    assert laplacian_rank_loss(pred, target, chunk=2.0) == laplacian_rank_loss(pred, target)


def test_training_entry_points_refuse_fractional_epochs():
    from poselab.chapters.bcir.recipes import t_off_for
    from poselab.chapters.sar.recipes import at_stride
    from poselab.models import RCNet
    from poselab.train import fit
    from poselab.train.callbacks import StopAfter
    from poselab.train.rescore import fit_rescorer
    with pytest.raises(ValueError, match="epochs must be a whole number"):
        t_off_for(2.5)
    assert t_off_for(40.0) == t_off_for(40) == 34
    with pytest.raises(ValueError, match="stride must be a whole number"):
        at_stride("sar", 2.5)
    with pytest.raises(ValueError, match="steps must be a whole number"):
        StopAfter(2.5)
    feats = np.random.default_rng(0).random((6, 4))
    model = RCNet(in_features=4)
    for kw, name in ((dict(epochs=2.5), "epochs"), (dict(batch_poses=3.5), "batch_poses"),
                     (dict(warmup_steps=0.5), "warmup_steps"), (dict(track_every=1.5), "track_every")):
        with pytest.raises(ValueError, match=f"{name} must be a whole number"):
            fit_rescorer(model, feats, np.linspace(0, 1, 6), np.zeros(6, int), **kw)
    with pytest.raises(ValueError, match="seed must be a whole number"):
        fit(torch.nn.Linear(1, 1), lambda out, batch: out.sum(), [torch.zeros(1)] * 4,
            epochs=1, seed=2.5)
    with pytest.raises(ValueError, match="epochs must be a whole number"):
        fit(torch.nn.Linear(1, 1), lambda out, batch: out.sum(), [torch.zeros(1)] * 4, epochs=2.5)


@pytest.mark.parametrize("thr", [float("nan"), -0.1, 1.5])
def test_rcnet_ap_thresholds_are_checked(thr):
    # a NaN OKS threshold made every detection a false positive: AP 0 instead of an error
    from poselab.chapters.rcnet.analysis import (average_precision_eq3, average_recall_eq4, fp_above_tp,
                                        precision_recall_curve)
    scores, q = [0.9, 0.8, 0.7], [0.99, 0.0, 0.99]
    with pytest.raises(ValueError, match=r"thresholds must be OKS values in \[0, 1\]"):
        average_precision_eq3(scores, q, n_gt=2, thresholds=[0.5, thr])
    with pytest.raises(ValueError, match=r"thresholds must be OKS values in \[0, 1\]"):
        average_recall_eq4(q, n_gt=2, thresholds=[thr])
    with pytest.raises(ValueError, match=r"threshold must be OKS values in \[0, 1\]"):
        precision_recall_curve(scores, q, 2, threshold=thr)
    with pytest.raises(ValueError, match=r"threshold must be OKS values in \[0, 1\]"):
        fp_above_tp(scores, q, threshold=thr)
    assert average_precision_eq3(scores, q, n_gt=2) > 0


def test_model_and_analysis_counts_refuse_fractions():
    from poselab.models import RCNet, ScoreNet
    from poselab.models.backbones import TinyBackbone
    for build, name in ((lambda: RCNet(in_features=4.5), "in_features"),
                        (lambda: RCNet(in_features=4, hidden=8.5), "hidden"),
                        (lambda: ScoreNet(in_features=4.5), "in_features"),
                        (lambda: TinyBackbone(stride=2.5), "stride")):
        with pytest.raises(ValueError, match=f"{name} must be"):
            build()
    assert RCNet(in_features=4.0).in_features == 4
