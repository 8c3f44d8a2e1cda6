"""RCNet / ScoreNet / DEKR pose features, and post-hoc rescorer training on synthetic arrays."""
import numpy as np
import pytest
import torch

from poselab.metrics import ranking_accuracy
from poselab.models import POSE_FEATURES, RCNet, ScoreNet, count_parameters, pose_features
from poselab.skeleton import LIMBS
from poselab.train.rescore import PoseSequences, fit_rescorer, rescore


def test_parameter_count_matches_the_paper():
    n = count_parameters(RCNet(POSE_FEATURES))
    assert POSE_FEATURES == 75
    assert 0.065e6 <= n <= 0.075e6  # "only 0.07M parameters"
    assert count_parameters(RCNet(POSE_FEATURES, feedforward=64)) < 0.01e6  # the FF width is what sets it


@pytest.mark.parametrize("cls", [RCNet, ScoreNet])
def test_shapes_range_and_padding(cls):
    torch.manual_seed(0)
    net = cls(10).eval()
    x = torch.randn(3, 5, 10)
    out = net(x)
    assert out.shape == (3, 5) and bool(((out > 0) & (out < 1)).all())
    assert net(x[0]).shape == (5,)
    # padding: extra padded poses change nothing for the real ones, and get 0
    padded = torch.cat([x, torch.randn(3, 2, 10)], dim=1)
    mask = torch.zeros(3, 7, dtype=torch.bool)
    mask[:, 5:] = True
    out_p = net(padded, mask)
    assert torch.allclose(out_p[:, :5], out, atol=1e-6)
    assert (out_p[:, 5:] == 0).all()


def test_attention_sees_the_other_poses_and_the_mlp_does_not():
    torch.manual_seed(0)
    x = torch.randn(1, 4, 10)
    y = x.clone()
    y[0, 3] += 3.0  # change another pose of the same image
    rc, sn = RCNet(10).eval(), ScoreNet(10).eval()
    assert (rc(x)[0, 0] - rc(y)[0, 0]).abs() > 1e-4
    assert (sn(x)[0, 0] - sn(y)[0, 0]).abs() == 0
    # permutation equivariance (no positional encoding)
    perm = torch.tensor([2, 0, 3, 1])
    assert torch.allclose(rc(x)[0, perm], rc(x[:, perm])[0], atol=1e-6)


def test_bad_input_is_named():
    net = RCNet(10)
    with pytest.raises(ValueError, match="features"):
        net(torch.zeros(2, 11))
    with pytest.raises(ValueError, match="padding_mask"):
        net(torch.zeros(2, 3, 10), torch.zeros(2, 4, dtype=torch.bool))
    assert net(torch.zeros(2, 0, 10)).shape == (2, 0)


def _features_loop(coords, ks, inst):
    rows = []
    for p, k, s in zip(coords, ks, inst):
        lengths = [np.hypot(*(p[b] - p[a])) for a, b in LIMBS]
        torso = max((np.hypot(*(p[11] - p[5])) + np.hypot(*(p[12] - p[6]))) / 2, 1.0)
        offs = [v for a, b in LIMBS for v in (p[b] - p[a]) / torso]
        rows.append(offs + [length / torso for length in lengths] + list(k) + [s])
    return np.array(rows)


def test_pose_features_match_a_loop_and_are_scale_invariant():
    rng = np.random.default_rng(0)
    coords = rng.random((6, 17, 2)) * 100
    ks, inst = rng.random((6, 17)), rng.random(6)
    feats = pose_features(coords, ks, inst)
    assert feats.dtype == np.float32 and feats.shape == (6, 75)
    assert np.abs(feats - _features_loop(coords, ks, inst)).max() < 1e-5
    assert np.abs(pose_features(coords * 3 + 7, ks, inst) - feats).max() < 1e-4
    # a collapsed pose (all joints on one point): torso clamped to 1 px, finite zeros
    flat = pose_features(np.zeros((1, 17, 2)), np.zeros((1, 17)), np.zeros(1))
    assert np.all(np.isfinite(flat)) and np.all(flat[0, :57] == 0)
    with pytest.raises(ValueError, match="coords"):
        pose_features(np.full((1, 17, 2), np.nan), np.zeros((1, 17)), np.zeros(1))
    with pytest.raises(ValueError, match="keypoint_scores"):
        pose_features(np.zeros((2, 17, 2)), np.zeros((1, 17)), np.zeros(2))


def _synthetic(n, seed):
    """Poses whose OKS depends on the features; the original score sees it through heavy noise."""
    w = np.random.default_rng(123).normal(size=12) / np.sqrt(12)  # the same rule for every set
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 12)).astype(np.float32)
    oks = 1 / (1 + np.exp(-2 * (x @ w)))
    x[:, -1] = np.clip(oks + rng.normal(0, 0.35, n), 0, 1)
    groups = np.repeat(np.arange(n // 4 + 1), 4)[:n]
    return x, oks, groups


def test_pose_sequences_round_trip():
    x, oks, groups = _synthetic(30, 0)
    groups = np.random.default_rng(0).integers(0, 7, 30)
    seqs = PoseSequences(x, oks, groups)
    idx = seqs.index[~seqs.mask].numpy()
    assert sorted(idx.tolist()) == list(range(30))
    assert np.allclose(seqs.features[~seqs.mask].numpy(), x[idx])
    with pytest.raises(ValueError, match="finite"):
        PoseSequences(np.full((2, 3), np.nan), [0, 0], [0, 1])


@pytest.mark.parametrize("cls", [RCNet, ScoreNet])
def test_rescorer_learns_a_ranking_on_held_out_poses(cls):
    x, oks, g = _synthetic(800, 0)
    xv, oksv, gv = _synthetic(400, 1)
    torch.manual_seed(0)
    net = cls(12)
    hist = fit_rescorer(net, x, oks, g, epochs=6, lr=3e-3, warmup_steps=20, val=(xv, oksv, gv))
    refined = rescore(net, xv, gv)
    original = ranking_accuracy(xv[:, -1], oksv)
    assert ranking_accuracy(refined, oksv) > original + 0.05
    assert len(hist["val_accuracy"]) == 7 and hist["val_accuracy"][-1] > hist["val_accuracy"][0]
    # Theorem 3's reading: the rank loss went down over training and accuracy went up
    assert hist["train_rank_loss"][-1] < hist["train_rank_loss"][0]


def test_rescore_keeps_the_input_order():
    x, oks, g = _synthetic(50, 2)
    net = RCNet(12).eval()
    perm = np.random.default_rng(0).permutation(50)
    a = rescore(net, x, g)
    b = rescore(net, x[perm], g[perm])
    assert np.allclose(a[perm], b, atol=1e-6)


def test_rescoring_targets_are_float32_only_on_mps_and_exact_enough_there():
    from poselab.losses import laplacian_rank_loss
    from poselab.train.rescore import target_dtype
    assert target_dtype("mps") == torch.float32 and target_dtype(torch.device("mps")) == torch.float32
    assert target_dtype("cpu") == torch.float64 and target_dtype("cuda") == torch.float64
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(200, generator=g)                       # RCNet's sigmoid outputs
    oks = torch.rand(200, generator=g, dtype=torch.float64)   # exact OKS
    exact = laplacian_rank_loss(pred.double(), oks)
    mps_like = laplacian_rank_loss(pred, oks.to(torch.float32))
    assert mps_like.dtype == torch.float32
    assert float(mps_like) == pytest.approx(float(exact), rel=1e-5)
