"""Hostile inputs (session 14): the BCIR / integral prior term on diverged logits, and
Instance-Sort with no joints."""
from __future__ import annotations

import pytest
import torch

from poselab.losses import (BCIRLoss, InstanceSortLoss, RSPoseLoss, bcir_loss, instance_sort_loss,
                            integral_l1_loss)

B, K, H, W = 2, 3, 64, 48


def _maps(scale: float, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(B, K, H, W, generator=torch.Generator().manual_seed(0), dtype=dtype) * scale


def _keypoints() -> torch.Tensor:
    return torch.rand(B, K, 2, generator=torch.Generator().manual_seed(1)) * torch.tensor([W - 1.0, H - 1.0])


@pytest.mark.parametrize("scale", [1e20, 1e30])
def test_bcir_prior_overflow_raises_instead_of_inf(scale):
    # was: loss inf (the prior's Σ (ĥ − G)² overflows float32 once |ĥ| ≳ 1.8e19), silently
    with pytest.raises(ValueError, match="prior term overflows torch.float32"):
        BCIRLoss()(_maps(scale), _keypoints(), torch.ones(B, K))
    with pytest.raises(ValueError, match="prior term overflows torch.float32"):
        bcir_loss(_maps(scale), _keypoints(), torch.ones(B, K), compensate=False)


def test_bcir_large_but_representable_logits_stay_finite():
    # the check must not fire below the overflow: 1e10-sized logits give a finite prior, as does
    # any size in float64, and without the prior term (λ = 0) the loss never overflows
    for loss in (bcir_loss(_maps(1e10), _keypoints(), torch.ones(B, K)),
                 bcir_loss(_maps(1e30, torch.float64), _keypoints().double(), torch.ones(B, K)),
                 bcir_loss(_maps(1e30), _keypoints(), torch.ones(B, K), prior_weight=0.0)):
        assert bool(torch.isfinite(loss))


def test_integral_l1_prior_overflow_raises_instead_of_inf():
    maps = _maps(1e30)
    with pytest.raises(ValueError, match="integral_l1_loss: the prior term overflows"):
        integral_l1_loss(maps, _keypoints(), torch.ones(B, K), prior_heatmaps=torch.zeros_like(maps),
                         prior_weight=1.0)
    # without a prior the same logits give a finite loss (the soft-argmax is shift-safe)
    assert bool(torch.isfinite(integral_l1_loss(maps, _keypoints(), torch.ones(B, K))))


def test_bcir_refuses_a_negative_visibility_like_every_other_loss():
    # was: a negative v silently counted as "not visible" (heatmap_mse_loss, the ranking losses
    # and SAR refuse a negative weight); 0, 1 and 2 still count as before
    vis = torch.ones(B, K)
    vis[1, 2] = -1.0
    for call in (lambda v: bcir_loss(_maps(1.0), _keypoints(), v),
                 lambda v: BCIRLoss()(_maps(1.0), _keypoints(), v)):
        with pytest.raises(ValueError, match="visible must be >= 0"):
            call(vis)
        with pytest.raises(ValueError, match="visible must be >= 0"):
            call(vis.long())
        coco = torch.tensor([[0, 1, 2], [2, 2, 0]])
        assert torch.equal(call(coco), call((coco > 0).float()))


def test_instance_sort_with_no_joints_is_zero_not_an_index_error():
    # was: IndexError "amax(): Expected reduction dim 1 to have non-zero size" from the area check
    maps = torch.zeros(B, 0, H, W, requires_grad=True)
    loss = InstanceSortLoss(sigmas=[])(maps, torch.zeros(B, 0, 2), torch.zeros(B, 0), torch.ones(B))
    assert loss.item() == 0.0
    loss = instance_sort_loss(maps, torch.zeros(B, 0, 2), torch.zeros(B, 0), torch.ones(B), sigmas=[])
    assert loss.item() == 0.0
    loss = RSPoseLoss(sigmas=[])(maps, torch.zeros(B, 0, H, W), torch.zeros(B, 0), torch.zeros(B, 0, 2), torch.ones(B))
    assert loss.item() == 0.0
    # and the area check still applies where there are joints
    with pytest.raises(ValueError, match="areas must be > 0"):
        InstanceSortLoss()(torch.zeros(B, 17, H, W), torch.zeros(B, 17, 2), torch.ones(B, 17), torch.zeros(B))


def test_comparison_table_refuses_a_run_given_twice():
    """A run repeated in a table passed for a second seed in every verdict read off it."""
    from poselab.experiments.runner import ComparisonTable, RunResult

    def run(recipe: str, seed: int, ap: float) -> RunResult:
        return RunResult(recipe=recipe, preset="full", seed=seed, data="synth",
                         metrics={"generated val": {"AP": ap}}, history={}, seconds_per_step=0.1,
                         train_seconds=1.0, peak_memory_mb=1.0, weights_path="", data_stream_sha256="",
                         key="k", device="cpu", created="", cached=True)

    table = ComparisonTable([run("mse", 0, 0.7), run("mse", 1, 0.72), run("ipr", 0, 0.4)])
    assert table.values("mse", "AP") == [0.7, 0.72]
    with pytest.raises(ValueError, match="given more than once: mse seed 0"):
        ComparisonTable([run("mse", 0, 0.7), run("mse", 0, 0.7), run("ipr", 0, 0.4)])
