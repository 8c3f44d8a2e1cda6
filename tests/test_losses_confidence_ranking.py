"""Confidence-ranking losses against naive loop references (float64), in the dtypes they run in,
with the bad-input contract and counter-cases."""
import itertools
import math

import numpy as np
import pytest
import torch

from poselab.losses import (CONFIDENCE_RANKING_LOSSES, ap_rank_loss, approx_ndcg_loss,
                            crps_rank_loss, dr_loss, gaussian_rank_loss, lambdarank_loss,
                            laplacian_rank_loss, neural_ndcg_loss, ranknet_loss)
from poselab.losses.confidence_ranking import rank_pair_term, rank_pair_term_eq9


def _data(n=23, seed=0, n_groups=4, ties=True):
    rng = np.random.default_rng(seed)
    pred = rng.random(n)
    target = rng.random(n)
    if ties:
        target[:4] = target[4]  # tied targets are skipped by the pairwise losses
    groups = rng.integers(0, n_groups, n)
    return pred, target, groups


def _pairs(n, groups=None):
    for i, j in itertools.product(range(n), range(n)):
        if i != j and (groups is None or groups[i] == groups[j]):
            yield i, j


# ------------------------------------------------------------------------- Laplacian (Eq. 8-9)

def _g_loop(d, order, c=1.0, m=None):
    """Eq. 38 per pair; the misordered branch continuous at d = 0 for every margin (the constant
    m² + c²/4 instead of c²/2: the same at the paper's m = c/2)."""
    m = c / 2 if m is None else m
    if order * d > 0:
        return (abs(d) - m) ** 2 + c * c / 4
    return c * abs(d) + m * m + c * c / 4


def laplacian_loop(pred, target, b_prime=2.0, c=1.0, groups=None, margin=None):
    n = len(pred)
    l1 = sum(abs(target[i] - pred[i]) for i in range(n)) / n
    terms = [_g_loop(pred[i] - pred[j], np.sign(target[i] - target[j]), c, margin)
             for i, j in _pairs(n, groups) if target[i] != target[j]]
    return 2 / b_prime * l1 + (sum(terms) / len(terms) if terms else 0.0)


@pytest.mark.parametrize("use_groups", [False, True])
@pytest.mark.parametrize("margin", [None, 0.0, 0.3, 1.0])
def test_laplacian_matches_loop(use_groups, margin):
    pred, target, groups = _data()
    g = groups if use_groups else None
    ref = laplacian_loop(pred, target, 2.0, 1.0, g, margin)
    got = laplacian_rank_loss(torch.tensor(pred), torch.tensor(target), 2.0, 1.0,
                              None if g is None else torch.tensor(g), margin=margin)
    assert abs(got.item() - ref) < 1e-12


def test_laplacian_b_prime_c_and_chunking():
    pred, target, groups = _data(40, seed=3)
    ref = laplacian_loop(pred, target, 0.5, 1.5, groups)
    for chunk in (1, 7, 4096):
        got = laplacian_rank_loss(torch.tensor(pred), torch.tensor(target), b_prime=0.5, c=1.5,
                                  groups=torch.tensor(groups), chunk=chunk)
        assert abs(got.item() - ref) < 1e-12


def test_eq9_equals_eq38_form_and_counter_case():
    delta = torch.linspace(-1, 1, 2001, dtype=torch.float64)
    for order in (1.0, -1.0):
        o = torch.full_like(delta, order)
        assert (rank_pair_term(delta, o) - rank_pair_term_eq9(delta, o)).abs().max() <= 1e-12
        # a margin other than c/2 is a different function: the check would catch it
        assert (rank_pair_term(delta, o, margin=0.3) - rank_pair_term_eq9(delta, o)).abs().max() > 1e-3
    # the four cases by hand at delta = +-0.25, c = 1
    assert math.isclose(rank_pair_term_eq9(torch.tensor(0.25), torch.tensor(1.0)).item(), 0.3125)
    assert math.isclose(rank_pair_term_eq9(torch.tensor(0.25), torch.tensor(-1.0)).item(), 0.75)
    assert math.isclose(rank_pair_term_eq9(torch.tensor(-0.25), torch.tensor(1.0)).item(), 0.75)
    assert math.isclose(rank_pair_term_eq9(torch.tensor(-0.25), torch.tensor(-1.0)).item(), 0.3125)


def test_laplacian_gradient_flips_a_misordered_pair_and_holds_margin():
    # misordered: target says 0 above 1, scores say the opposite; a gradient step moves them apart
    pred = torch.tensor([0.4, 0.6], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0.5, 0.5 - 1e-3], dtype=torch.float64)
    laplacian_rank_loss(pred, target, b_prime=1e9).backward()  # pair term only
    assert pred.grad[0] < 0 < pred.grad[1]
    # correctly ordered at |delta| = c/2: the pair term is stationary
    pred = torch.tensor([0.75, 0.25], dtype=torch.float64, requires_grad=True)
    laplacian_rank_loss(pred, torch.tensor([0.9, 0.1], dtype=torch.float64), b_prime=1e12).backward()
    assert pred.grad.abs().max() < 1e-9


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_tied_predictions_get_eq9_gradient(dtype):
    """Eq. 9 puts delta = 0 in its [0, c] case: d g / d delta = -c * order there. Written as c|delta|
    the misordered branch got autograd's sign(0) = 0 and a tied pair was never separated."""
    for c in (1.0, 0.5):
        for order in (1.0, -1.0):
            delta = torch.zeros(1, dtype=dtype, requires_grad=True)
            rank_pair_term(delta, torch.tensor([order]), c).sum().backward()
            assert math.isclose(delta.grad.item(), -c * order, rel_tol=1e-6), (c, order, delta.grad)
            ref = torch.zeros(1, dtype=torch.float64, requires_grad=True)
            rank_pair_term_eq9(ref, torch.tensor([order]), c).sum().backward()
            if order > 0:  # Eq. 9's case 1 at delta = 0 (case 4 is the delta < 0 side for order -1)
                assert math.isclose(ref.grad.item(), delta.grad.item(), rel_tol=1e-6)
    # the whole loss: two tied scores with distinct targets move apart, the better one up
    pred = torch.tensor([0.5, 0.5], dtype=dtype, requires_grad=True)
    laplacian_rank_loss(pred, torch.tensor([0.5 + 1e-3, 0.5]), b_prime=1e12).backward()
    assert pred.grad[0] < 0 < pred.grad[1]


def test_margin_form_is_continuous_and_reduces_to_the_paper_at_half():
    tiny = 1e-9
    d = torch.tensor([tiny, -tiny], dtype=torch.float64)
    one = torch.ones(2, dtype=torch.float64)
    for m in (0.0, 0.3, 0.5, 0.7, 1.0):
        g = rank_pair_term(d, one, 1.0, m)
        assert abs(g[0] - g[1]).item() < 1e-8, m
    # the literal Eq. 38 branches jump (margin 1: 1.25 vs 0.5): the counter-case of the default
    literal = rank_pair_term(d, one, 1.0, 1.0, continuous=False)
    assert math.isclose(literal[0].item(), 1.25, rel_tol=1e-6) and math.isclose(literal[1].item(), 0.5, rel_tol=1e-6)
    # at m = c/2 both forms are the paper's loss, everywhere on [-c, c]
    grid = torch.linspace(-1, 1, 2001, dtype=torch.float64)
    for order in (1.0, -1.0):
        o = torch.full_like(grid, order)
        assert torch.equal(rank_pair_term(grid, o), rank_pair_term(grid, o, continuous=False))
        assert (rank_pair_term(grid, o) - rank_pair_term_eq9(grid, o)).abs().max() <= 1e-12
    # the shift is a constant per branch: gradients of both forms agree away from 0
    for m in (0.0, 1.0):
        a = grid.clone().requires_grad_()
        b = grid.clone().requires_grad_()
        rank_pair_term(a, torch.ones_like(grid), 1.0, m).sum().backward()
        rank_pair_term(b, torch.ones_like(grid), 1.0, m, continuous=False).sum().backward()
        assert torch.equal(a.grad, b.grad)


def test_regression_controls_have_no_pair_term():
    from poselab.losses.confidence_ranking import l1_score_loss, mse_score_loss
    pred, target = torch.tensor([0.9, 0.2, 0.5]), torch.tensor([0.8, 0.4, 0.5])
    assert math.isclose(l1_score_loss(pred, target).item(), 0.1, rel_tol=1e-6)
    assert math.isclose(mse_score_loss(pred, target).item(), 0.05 / 3, rel_tol=1e-5)
    # the L1 control is the Laplacian loss with its pair term removed
    big = laplacian_rank_loss(pred, target)
    assert big.item() > l1_score_loss(pred, target).item() + 0.1
    # a pure permutation of the scores that keeps every |error| moves neither control
    p2, t2 = torch.tensor([0.3, 0.7]), torch.tensor([0.5, 0.5])
    assert l1_score_loss(p2, t2).item() == l1_score_loss(p2.flip(0), t2).item()


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float16, 5e-3),
                                       (torch.bfloat16, 3e-2)])
def test_laplacian_low_precision(dtype, tol):
    pred, target, groups = _data(300, seed=5)
    ref = laplacian_loop(pred, target, groups=groups)
    p = torch.tensor(pred).to(dtype).requires_grad_()
    got = laplacian_rank_loss(p, torch.tensor(target), groups=torch.tensor(groups))
    got.backward()
    assert got.dtype == dtype and torch.isfinite(p.grad.float()).all()
    # the reference on the rounded inputs (rounding pred changes the value itself)
    ref_rounded = laplacian_loop(p.detach().double().numpy(), target, groups=groups)
    assert abs(got.float().item() - ref_rounded) < tol * max(1.0, abs(ref))


def test_laplacian_vectorised_at_a_few_thousand():
    n = 3000
    p = torch.rand(n, requires_grad=True)
    loss = laplacian_rank_loss(p, torch.rand(n))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(p.grad).all()


# ------------------------------------------------------------------------- rivals, loop references

def ranknet_loop(pred, target, groups=None, sigma=1.0):
    terms = [math.log1p(math.exp(-sigma * (pred[i] - pred[j])))
             for i, j in _pairs(len(pred), groups) if target[i] > target[j]]
    return sum(terms) / len(terms) if terms else 0.0


def _rank_desc(values, members):
    order = sorted(members, key=lambda i: (-values[i], i))
    return {i: r + 1 for r, i in enumerate(order)}


def _group_lists(groups, n):
    if groups is None:
        return [list(range(n))]
    return [[i for i in range(n) if groups[i] == g] for g in sorted(set(groups.tolist()))]


def lambdarank_loop(pred, target, groups=None, sigma=1.0):
    total = 0.0
    lists = _group_lists(groups, len(pred))
    for members in lists:
        gains = {i: 2 ** target[i] - 1 for i in members}
        ideal = _rank_desc(gains, members)
        max_dcg = sum(gains[i] / math.log2(1 + ideal[i]) for i in members)
        if max_dcg <= 0:
            continue
        rank = _rank_desc(pred, members)
        for i in members:
            for j in members:
                if target[i] > target[j]:
                    w = abs(1 / math.log2(1 + rank[i]) - 1 / math.log2(1 + rank[j])) * \
                        abs(gains[i] - gains[j]) / max_dcg
                    total += -w * math.log2(1 / (1 + math.exp(-sigma * (pred[i] - pred[j]))))
    return total / len(lists)


def approx_ndcg_loop(pred, target, groups=None, alpha=1.0):
    values = []
    for members in _group_lists(groups, len(pred)):
        gains = {i: 2 ** target[i] - 1 for i in members}
        ideal = _rank_desc(gains, members)
        max_dcg = sum(gains[i] / math.log2(1 + ideal[i]) for i in members)
        if max_dcg <= 0:
            continue
        dcg = 0.0
        for i in members:
            r = 1 + sum(1 / (1 + math.exp(-alpha * (pred[j] - pred[i]))) for j in members if j != i)
            dcg += gains[i] / math.log2(1 + r)
        values.append(dcg / max_dcg)
    return -sum(values) / len(values) if values else 0.0


def neural_ndcg_loop(pred, target, groups=None, tau=1.0, iters=50, tol=1e-6):
    values = []
    for members in _group_lists(groups, len(pred)):
        s = np.array([pred[i] for i in members])
        y = np.array([2 ** target[i] - 1 for i in members])
        n = len(s)
        a = np.abs(s[:, None] - s[None, :])
        b = a.sum(1)
        p = np.zeros((n, n))
        for k in range(1, n + 1):
            row = ((n + 1 - 2 * k) * s - b) / tau
            row = np.exp(row - row.max())
            p[k - 1] = row / row.sum()
        for _ in range(iters):
            p = p / p.sum(1, keepdims=True)
            p = p / p.sum(0, keepdims=True)
            if np.abs(p.sum(1) - 1).max() < tol:
                break
        disc = 1 / np.log2(np.arange(2, n + 2))
        max_dcg = (np.sort(y)[::-1] * disc).sum()
        if max_dcg > 0:
            values.append(((p @ y) * disc).sum() / max_dcg)
    return -float(np.mean(values)) if values else 0.0


def ap_loop(pred, target, groups=None, thr=0.5, delta=0.1):
    n = len(pred)
    pos = [i for i in range(n) if target[i] >= thr]
    h = lambda x: min(1.0, max(0.0, x / (2 * delta) + 0.5))  # noqa: E731
    aps, grad = [], np.zeros(n)
    for i in pos:
        others = [j for j in range(n) if j != i and (groups is None or groups[i] == groups[j])]
        rp = 1 + sum(h(pred[j] - pred[i]) for j in others if target[j] >= thr)
        rn = sum(h(pred[j] - pred[i]) for j in others if target[j] < thr)
        aps.append(rp / (rp + rn))
        for j in others:
            if target[j] < thr:
                lij = h(pred[j] - pred[i]) / (rp + rn)
                grad[j] += lij / len(pos)
                grad[i] -= lij / len(pos)
    return 1 - sum(aps) / len(aps), grad


def dr_loop(pred, target, groups=None, thr=0.5, margin=0.5, L=6.0, tau=4.0, lp=1.0,
            ln=0.1 / math.log(3.5)):
    vals = []
    for members in _group_lists(groups, len(pred)):
        pos = [i for i in members if target[i] >= thr]
        neg = [i for i in members if target[i] < thr]
        if neg:
            w = np.exp([pred[j] / ln for j in neg])
            e_neg = float((w / w.sum()) @ np.array([pred[j] for j in neg]))
        else:
            e_neg = 0.0
        if pos:
            w = np.exp([-pred[i] / lp for i in pos])
            e_pos = float((w / w.sum()) @ np.array([pred[i] for i in pos]))
        else:
            e_pos = 1.0
        vals.append(tau / L * math.log1p(math.exp(L * (e_neg - e_pos + margin))))
    return sum(vals) / len(vals)


def crps_loop(pred, target, groups=None):
    n = len(pred)
    l1 = sum(abs(pred[i] - target[i]) for i in range(n)) / n
    pairs = [abs(pred[i] - pred[j]) for i, j in _pairs(n, groups)]
    return l1 - 0.5 * (sum(pairs) / len(pairs) if pairs else 0.0)


def gaussian_loop(pred, target, groups=None, sigma=math.sqrt(2), sp=1.0, c=1.0):
    n = len(pred)
    sq = sum((target[i] - pred[i]) ** 2 for i in range(n)) / n
    terms = [(c - np.sign(target[i] - target[j]) * (pred[i] - pred[j])) ** 3
             for i, j in _pairs(n, groups) if target[i] != target[j]]
    return 2 / sigma ** 2 * sq + (sum(terms) / len(terms) if terms else 0.0) / (6 * sp ** 2)


REFERENCES = {
    "ranknet": (ranknet_loss, ranknet_loop), "lambdarank": (lambdarank_loss, lambdarank_loop),
    "approx_ndcg": (approx_ndcg_loss, approx_ndcg_loop),
    # tol=0: both run all 50 Sinkhorn iterations (the batched version stops when every list has
    # converged, the loop list by list; at the default tol they differ by < 1e-7)
    "neural_ndcg": (lambda p, t, groups=None: neural_ndcg_loss(p, t, groups, tol=0.0),
                    lambda p, t, g: neural_ndcg_loop(p, t, g, tol=0.0)),
    "ap_loss": (ap_rank_loss, lambda p, t, g: ap_loop(p, t, g)[0]), "dr_loss": (dr_loss, dr_loop),
    "crps": (crps_rank_loss, crps_loop), "gaussian": (gaussian_rank_loss, gaussian_loop),
    "laplacian": (laplacian_rank_loss, lambda p, t, g: laplacian_loop(p, t, groups=g)),
}


@pytest.mark.parametrize("use_groups", [False, True])
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_rival_matches_loop(name, use_groups):
    fn, ref_fn = REFERENCES[name]
    pred, target, groups = _data(19, seed=11)
    g = groups if use_groups else None
    got = fn(torch.tensor(pred), torch.tensor(target),
             groups=None if g is None else torch.tensor(g)).item()
    assert abs(got - ref_fn(pred, target, g)) < 1e-9, name


def test_ap_loss_error_driven_gradient_matches_loop():
    pred, target, groups = _data(17, seed=2)
    p = torch.tensor(pred, requires_grad=True)
    ap_rank_loss(p, torch.tensor(target), groups=torch.tensor(groups)).backward()
    _, grad = ap_loop(pred, target, groups)
    assert np.abs(p.grad.numpy() - grad).max() < 1e-12


@pytest.mark.parametrize("name", sorted(CONFIDENCE_RANKING_LOSSES))
def test_gradient_descent_improves_ranking(name):
    """Plain gradient steps on free scores raise pairwise accuracy for every loss (ApproxNDCG's
    gradients are ~10x smaller on [0, 1] scores: sigmoid(alpha * delta) is nearly linear there)."""
    from poselab.metrics import ranking_accuracy
    torch.manual_seed(0)
    target = torch.rand(64, dtype=torch.float64)
    logits = (torch.rand(64, dtype=torch.float64) - 0.5).requires_grad_()
    opt = torch.optim.SGD([logits], lr=5.0 if name == "approx_ndcg" else 0.5)
    before = ranking_accuracy(torch.sigmoid(logits).detach().numpy(), target.numpy())
    for _ in range(200):
        opt.zero_grad()
        CONFIDENCE_RANKING_LOSSES[name](torch.sigmoid(logits), target).backward()
        opt.step()
    after = ranking_accuracy(torch.sigmoid(logits).detach().numpy(), target.numpy())
    assert after > before + 0.05, (name, before, after)


# ------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("name", sorted(CONFIDENCE_RANKING_LOSSES))
def test_nothing_to_rank_is_finite(name):
    fn = CONFIDENCE_RANKING_LOSSES[name]
    for pred, target in [(torch.zeros(0), torch.zeros(0)), (torch.tensor([0.3]), torch.tensor([0.7])),
                         (torch.tensor([0.2, 0.4, 0.9]), torch.full((3,), 0.5))]:
        p = pred.clone().requires_grad_()
        loss = fn(p, target)
        loss.backward()
        assert torch.isfinite(loss), (name, pred, target)
        assert p.grad is None or torch.isfinite(p.grad).all()


def test_all_targets_equal_leaves_only_the_l1_term():
    pred = torch.tensor([0.2, 0.4, 0.9])
    assert math.isclose(laplacian_rank_loss(pred, torch.full((3,), 0.5)).item(),
                        (0.3 + 0.1 + 0.4) / 3, rel_tol=1e-6)
    assert ranknet_loss(pred, torch.full((3,), 0.5)).item() == 0.0


@pytest.mark.parametrize("name", sorted(CONFIDENCE_RANKING_LOSSES))
def test_bad_input_names_the_argument(name):
    fn = CONFIDENCE_RANKING_LOSSES[name]
    with pytest.raises(ValueError, match="pred"):
        fn(torch.tensor([0.1, float("nan")]), torch.tensor([0.2, 0.3]))
    with pytest.raises(ValueError, match="target"):
        fn(torch.tensor([0.1, 0.2]), torch.tensor([0.2, float("nan")]))
    with pytest.raises(ValueError, match="target"):
        fn(torch.tensor([0.1, 0.2]), torch.tensor([0.2, 0.3, 0.4]))
    with pytest.raises(ValueError, match="pred"):
        fn(torch.tensor([[0.1, 0.2]]), torch.tensor([0.2, 0.3]))
    with pytest.raises(ValueError, match="pred"):
        fn(torch.tensor([1, 2]), torch.tensor([0.2, 0.3]))
    with pytest.raises(ValueError, match="groups"):
        fn(torch.tensor([0.1, 0.2]), torch.tensor([0.2, 0.3]), groups=torch.tensor([0.0, 1.0]))


def test_bad_hyper_parameters():
    p, t = torch.tensor([0.1, 0.2]), torch.tensor([0.2, 0.3])
    with pytest.raises(ValueError, match="b_prime"):
        laplacian_rank_loss(p, t, b_prime=0.0)
    with pytest.raises(ValueError, match="margin"):
        laplacian_rank_loss(p, t, margin=-0.1)
    with pytest.raises(ValueError, match="c must"):
        laplacian_rank_loss(p, t, c=float("nan"))


@pytest.mark.parametrize("name", sorted(CONFIDENCE_RANKING_LOSSES))
def test_float32_training_path_matches_float64(name):
    """RCNet trains in float32: every loss and its gradient agree with the float64 value."""
    fn = CONFIDENCE_RANKING_LOSSES[name]
    pred, target, groups = _data(128, seed=7, n_groups=30)
    p64 = torch.tensor(pred, requires_grad=True)
    p32 = torch.tensor(pred, dtype=torch.float32, requires_grad=True)
    v64, v32 = fn(p64, torch.tensor(target)), fn(p32, torch.tensor(target, dtype=torch.float32))
    v64.backward()
    v32.backward()
    assert v32.dtype == torch.float32
    assert abs(v32.item() - v64.item()) <= 1e-4 * max(1.0, abs(v64.item()))
    assert torch.allclose(p32.grad.double(), p64.grad, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("name", sorted(CONFIDENCE_RANKING_LOSSES))
def test_module_wrappers_match_the_functions_with_float32_targets(name):
    from poselab.losses.confidence_ranking import ConfidenceRankingLoss, LaplacianRankLoss
    pred, target, groups = _data(64, seed=11, n_groups=10)
    p32 = torch.tensor(pred, dtype=torch.float32)
    t32 = torch.tensor(target, dtype=torch.float32)
    g = torch.tensor(groups)
    want = CONFIDENCE_RANKING_LOSSES[name](p32, t32, groups=g)
    got = ConfidenceRankingLoss(name)(p32, t32, groups=g)
    assert got.dtype == torch.float32 and torch.equal(got, want)
    if name == "laplacian":
        assert torch.equal(LaplacianRankLoss(margin=0.3)(p32, t32, g),
                           laplacian_rank_loss(p32, t32, groups=g, margin=0.3))
    with pytest.raises(ValueError, match="unknown"):
        ConfidenceRankingLoss("no_such_loss")


def test_targets_are_compared_in_float32_on_mps():
    from poselab.losses.confidence_ranking import _wide_dtype
    assert _wide_dtype(torch.device("mps")) == torch.float32  # MPS has no float64
    assert _wide_dtype(torch.device("cpu")) == torch.float64
    assert _wide_dtype("cuda") == torch.float64
