"""EMD on finite maps whose sum overflows (reliability issue, class 5: 1e38 maps gave NaN, then a
LinAlgError from deep inside torch): HDM Eq. 3 is scale-invariant, so the loss of a map equals
the loss of the same map scaled down, in every dtype the loss runs in."""
from __future__ import annotations

import pytest
import torch

from poselab.losses import emd_loss
from poselab.losses.transport.suppliers import suppliers


@pytest.mark.parametrize("dtype, scale", [(torch.float32, 3e38), (torch.float32, 1e37),
                                          (torch.float64, 1e307), (torch.float16, 6e4)])
def test_huge_maps_give_the_loss_of_the_same_map_scaled_down(dtype, scale):
    g = torch.Generator().manual_seed(1)
    base = torch.rand(2, 17, 64, 48, dtype=torch.float64, generator=g)
    kp = torch.rand(2, 17, 2, dtype=torch.float64, generator=g) * torch.tensor([40.0, 56.0]) + 4
    vis = torch.ones(2, 17)
    h = (base * scale).to(dtype).requires_grad_(True)
    loss = emd_loss(h, kp.to(dtype), vis.to(dtype))
    loss.backward()
    reference = emd_loss(base, kp, vis.double())
    assert torch.isfinite(loss) and torch.isfinite(h.grad).all()
    tol = {torch.float16: 5e-3, torch.float32: 1e-5, torch.float64: 1e-12}[dtype]
    assert abs(float(loss) - float(reference)) <= tol * float(reference)


def test_suppliers_of_an_overflowing_row_sum_to_one_and_match_the_scaled_row():
    row = torch.tensor([[3e38, 3e38, 1e38, -5.0]], dtype=torch.float32)
    a, total = suppliers(row.clone(), return_total=True)
    assert torch.isinf(total).all()
    assert torch.allclose(a, torch.tensor([[3 / 7, 3 / 7, 1 / 7, 0.0]]), atol=1e-7)
    normal = torch.tensor([[3.0, 3.0, 1.0, -5.0]])
    assert torch.equal(suppliers(normal.clone()), torch.relu(normal) / 7.0)  # normal rows: Eq. 3 as before
