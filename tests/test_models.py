"""Model factory: output shapes per head, parameter counts (closed forms), seeding, bad input."""
import math

import pytest
import torch

from poselab.models import HEADS, build_model, count_parameters


def _shapes(out):
    if isinstance(out, tuple):
        return [tuple(t.shape) for t in out]
    if isinstance(out, dict):
        return {k: tuple(v.shape) for k, v in out.items()}
    return tuple(out.shape)


@pytest.mark.parametrize("size", [(64, 48), (128, 96)])
@pytest.mark.parametrize("head", HEADS)
def test_tiny_output_shapes(head, size):
    H, W = size
    model = build_model(head, size, "tiny", seed=0).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, H, W))
    h, w = H // 4, W // 4
    expected = {
        "heatmap": (2, 17, h, w),
        "integral": (2, 17, h, w),
        "simcc": [(2, 17, W * 2), (2, 17, H * 2)],
        "sar": {"selector": (2, 17, h, w), "offsets": (2, 17, 2, h, w)},
    }[head]
    assert _shapes(out) == expected
    assert model.heatmap_size == (h, w) and model.head_type == head


def test_tiny_param_budget_and_simcc_split():
    n = count_parameters(build_model("heatmap", (64, 48)))
    assert 0.3e6 <= n <= 1.0e6
    m3 = build_model("simcc", (64, 48), simcc_split_ratio=3.0)
    x, y = m3.eval()(torch.randn(1, 3, 64, 48))
    assert x.shape[-1] == 48 * 3 and y.shape[-1] == 64 * 3
    # SimCC adds two Linear layers (h*w -> bins) and the same 1x1 conv as the heatmap head.
    extra = (16 * 12 + 1) * (96 + 128)
    assert count_parameters(build_model("simcc", (64, 48))) - n == extra


def test_resnet18_param_count_closed_form():
    # torchvision ResNet-18 without its fc layer has 11,176,512 parameters; SimpleBaseline adds
    # three 4x4 deconvolutions (512->256, 256->256, 256->256, no bias) with BatchNorm (2*256 each)
    # and a 1x1 conv 256 -> K with bias.
    body = 11_176_512
    deconvs = 512 * 256 * 16 + 2 * 256 * 256 * 16 + 3 * 2 * 256
    head = 256 * 17 + 17
    model = build_model("heatmap", (64, 48), "resnet18")
    assert count_parameters(model) == body + deconvs + head
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 3, 64, 48))  # 48 is not a multiple of 32
    assert out.shape == (1, 17, 16, 12)


def test_sar_head_prior_bias():
    model = build_model("sar", (64, 48), seed=0)
    b = model.head.selector.bias.detach()
    assert torch.allclose(b, torch.full_like(b, -math.log(0.99 / 0.01)))
    with torch.no_grad():
        sel = model.eval()(torch.randn(1, 3, 64, 48))["selector"]
    assert abs(float(torch.sigmoid(sel).mean()) - 0.01) < 0.005  # the prior 0.01 at init


def test_seed_gives_identical_weights_and_keeps_global_rng():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_model("heatmap", seed=7)
    after = torch.rand(1)
    b = build_model("heatmap", seed=7)
    c = build_model("heatmap", seed=8)
    assert torch.equal(before, after)  # fork_rng: the global stream is untouched
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())


@pytest.mark.parametrize("kwargs, match", [
    (dict(head="dsnt"), "unknown head"),
    (dict(backbone="vit"), "unknown backbone"),
    (dict(input_size=(60, 48)), "multiples of 16"),
    (dict(input_size=64), r"\(H, W\)"),
    (dict(num_keypoints=0), "num_keypoints"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_model(**kwargs)


def test_bad_image_shape():
    model = build_model("simcc", (64, 48))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.randn(2, 64, 48))
    with pytest.raises(ValueError, match="input_size"):
        model(torch.randn(1, 3, 128, 96))
