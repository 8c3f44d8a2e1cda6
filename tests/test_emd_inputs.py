"""Hostile inputs to emd_loss / hdm_transport (issue 10): a clear error naming the argument, or a
defined finite result — never a NaN or a raw traceback from deep inside torch."""
import warnings

import pytest
import torch

from poselab.losses import emd_loss
from poselab.losses.transport import EmdLoss, hdm_transport

HM = torch.rand(1, 2, 8, 6)
KP = torch.tensor([[[2.5, 3.5], [1.0, 6.2]]])
VIS = torch.ones(1, 2)


@pytest.mark.parametrize("kwargs, name", [
    ({"reg": "one"}, "reg"), ({"reg": float("nan")}, "reg"), ({"reg": -1.0}, "reg"), ({"reg": None}, "reg"),
    ({"n_iters": float("nan")}, "n_iters"), ({"n_iters": 2.5}, "n_iters"), ({"n_iters": "ten"}, "n_iters"),
    ({"n_iters": None}, "n_iters"), ({"tol": "small"}, "tol"), ({"tol": float("nan")}, "tol"),
    ({"solver": "lbfgs"}, "solver"), ({"reduction": None}, "reduction"), ({"demanders": 4}, "demanders"),
])
def test_bad_hyperparameters_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        emd_loss(HM, KP, VIS, **kwargs)


@pytest.mark.parametrize("heatmaps, keypoints, visible, name", [
    (HM[0], KP, VIS, "heatmaps"),                                     # 3-D
    (HM.to(torch.int64), KP, VIS, "heatmaps"),                        # integer maps
    ([[1.0]], KP, VIS, "heatmaps"),                                   # not a tensor
    (torch.rand(1, 2, 0, 6), KP, VIS, "heatmaps"),                    # empty map
    (HM, KP[..., :1], VIS, "keypoints"),                              # wrong shape
    (HM, "kp", VIS, "keypoints"),                                     # not numbers
    (HM, KP, torch.ones(2, 1), "visible"),                            # wrong shape
    (HM, KP * 1e9, VIS, "keypoints"),                                 # input pixels by mistake, far off
    (HM.clone().fill_(float("inf")), KP, VIS, "heatmaps"),            # diverged network
])
def test_bad_tensors_name_the_argument(heatmaps, keypoints, visible, name):
    with pytest.raises(ValueError, match=name):
        emd_loss(heatmaps, keypoints, visible)


def test_defined_finite_results():
    # keypoints off the map but within range, NaN visibility, bool visibility, int keypoints
    kp = torch.tensor([[[-40.0, 300.0], [5.0, 7.0]]])
    out = emd_loss(HM, kp, torch.tensor([[True, True]]), reduction="none")
    assert torch.isfinite(out).all() and float(out[0, 0]) > 250
    vis = torch.tensor([[float("nan"), 2.0]])
    out = emd_loss(HM, torch.tensor([[[2, 3], [1, 6]]]), vis, reduction="none")
    assert float(out[0, 0]) == 0.0 and torch.isfinite(out).all()
    # a map whose float16 sum overflows (entries finite): solved in float32, finite
    big = torch.full((1, 1, 64, 48), 60000.0, dtype=torch.float16, requires_grad=True)
    val = emd_loss(big, torch.tensor([[[10.0, 20.0]]]), torch.ones(1, 1))
    val.backward()
    assert torch.isfinite(val) and torch.isfinite(big.grad).all()
    # single-pixel and single-row maps
    for shape in ((1, 1, 1, 1), (1, 1, 1, 7), (1, 1, 5, 1)):
        h = torch.rand(shape, requires_grad=True)
        val = emd_loss(h, torch.zeros(1, 1, 2), torch.ones(1, 1))
        val.backward()
        assert torch.isfinite(val) and torch.isfinite(h.grad).all()
    # empty batch: zero, connected
    h = torch.rand(0, 17, 8, 6, requires_grad=True)
    out = emd_loss(h, torch.zeros(0, 17, 2), torch.ones(0, 17))
    out.backward()
    assert float(out) == 0.0


def test_module_wrapper_and_inspection_share_the_checks():
    with pytest.raises(ValueError, match="reg"):
        EmdLoss(reg=0)(HM, KP, VIS)
    with pytest.raises(ValueError, match="keypoints"):
        hdm_transport(HM, KP[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        info = hdm_transport(HM.double(), KP.double())
    assert info["stopped"] == "tol" and torch.isfinite(info["cost"]).all()
