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


@pytest.mark.parametrize("backbone,size", [("tiny", (64, 48)), ("tiny", (128, 96)), ("resnet18", (64, 48))])
@pytest.mark.parametrize("head", HEADS)
def test_heatmap_stride_2_output_shapes(head, backbone, size):
    H, W = size
    model = build_model(head, size, backbone, seed=0, heatmap_stride=2).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, H, W))
    h, w = H // 2, W // 2
    expected = {
        "heatmap": (1, 17, h, w), "integral": (1, 17, h, w),
        "simcc": [(1, 17, W * 2), (1, 17, H * 2)],
        "sar": {"selector": (1, 17, h, w), "offsets": (1, 17, 2, h, w)},
    }[head]
    assert _shapes(out) == expected
    assert model.heatmap_size == (h, w) and model.heatmap_stride == 2
    assert model.config["heatmap_stride"] == 2


def test_stride_2_is_stride_4_plus_one_decoder_stage():
    s4 = build_model("heatmap", (64, 48), seed=0)
    assert build_model("heatmap", (64, 48), seed=0, heatmap_stride=4).state_dict().keys() == s4.state_dict().keys()
    assert not any("lat2" in k or "fuse2" in k for k in s4.state_dict())
    s2 = build_model("heatmap", (64, 48), seed=0, heatmap_stride=2)
    b4, b2 = s4.backbone.state_dict(), s2.backbone.state_dict()
    # the shared layers are created first under the same seed: identical initial weights
    assert all(torch.equal(b4[k], b2[k]) for k in b4)
    # extra parameters in closed form: lat2 (24->32 1x1 + bias), reduce4 (64->32 1x1 + bias),
    # fuse2 (3x3 32->32, no bias, BN 2*32); the head reads 32 instead of 64 channels.
    extra = (24 * 32 + 32) + (64 * 32 + 32) + (32 * 32 * 9 + 2 * 32) + (32 - 64) * 17
    assert count_parameters(s2) - count_parameters(s4) == extra
    # ResNet-18: a fourth 4x4 deconvolution 256->256 with BatchNorm
    r4, r2 = build_model("heatmap", (64, 48), "resnet18"), build_model("heatmap", (64, 48), "resnet18", heatmap_stride=2)
    assert count_parameters(r2) - count_parameters(r4) == 256 * 256 * 16 + 2 * 256


def test_stride_2_trains_and_rebuilds_from_config():
    model = build_model("heatmap", (64, 48), seed=0, heatmap_stride=2)
    again = build_model(**{k: v for k, v in model.config.items()}, seed=0)
    assert again.heatmap_size == (32, 24)
    x = torch.randn(2, 3, 64, 48)
    out = model(x)
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("bad", [3, 1, 8, "2", 2.5, True])
def test_bad_heatmap_stride(bad):
    with pytest.raises(ValueError, match="heatmap_stride"):
        build_model("heatmap", (64, 48), heatmap_stride=bad)


@pytest.mark.parametrize("head", HEADS)
def test_autocast_bfloat16_outputs_float32_close_to_float32(head):
    x = torch.randn(2, 3, 64, 48, generator=torch.Generator().manual_seed(0))
    ref = build_model(head, (64, 48), seed=0, heatmap_stride=2).eval()
    low = build_model(head, (64, 48), seed=0, heatmap_stride=2, autocast="bfloat16").eval()
    low.load_state_dict(ref.state_dict())  # same weights (init does not depend on autocast anyway)
    with torch.no_grad():
        a, b = ref(x), low(x)
    flat = lambda o: list(o) if isinstance(o, tuple) else list(o.values()) if isinstance(o, dict) else [o]  # noqa: E731
    for ta, tb in zip(flat(a), flat(b)):
        assert tb.dtype == torch.float32 and ta.shape == tb.shape
        scale = ta.abs().max()
        err = (ta - tb).abs().max()
        # bfloat16 has an 8-bit mantissa: ~0.4 % per rounding, a few % after a dozen layers
        assert err <= 0.05 * scale
        assert err > 0  # counter-case: it really ran in bfloat16 (float32 would be exact)
    assert low.config["autocast"] == "bfloat16" and "autocast" not in ref.config


def test_autocast_trains_and_rejects_bad_dtype():
    model = build_model("heatmap", (64, 48), seed=0, heatmap_stride=2, autocast="bfloat16")
    out = model(torch.randn(2, 3, 64, 48))
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
    with pytest.raises(ValueError, match="autocast"):
        build_model("heatmap", (64, 48), autocast="int8")


def test_forward_refuses_integer_and_non_finite_images_with_a_clear_error():
    # were: torch's "expected scalar type Byte but found Float" from inside a convolution, and
    # NaN maps returned silently
    model = build_model(head="heatmap", input_size=(64, 48), backbone="tiny", seed=0).eval()
    with pytest.raises(TypeError, match="float tensor, normalised with the ImageNet mean"):
        model(torch.zeros(2, 3, 64, 48, dtype=torch.uint8))
    for bad in (float("nan"), float("inf")):
        images = torch.randn(2, 3, 64, 48)
        images[1, 2, 30, 20] = bad
        with pytest.raises(ValueError, match="images contain NaN or Inf"):
            model(images)
    # finite images whose float16 sum overflows are still accepted (the element-wise fallback)
    big = torch.full((1, 3, 64, 48), 6e4, dtype=torch.float16)
    assert model.half()(big).shape == (1, 17, 16, 12)
