"""SAR chapter recipes: heads (poselab.models.regression_head), codecs, losses and strides."""
import numpy as np
import pytest
import torch

from poselab.experiments import CODECS, LOSSES, MODELS, RECIPES, Geometry
from poselab.chapters.sar import recipes as Z
from poselab.losses import sar_loss
from poselab.models.regression_head import EncoderFeatures, GlobalRegressionHead, GridFCSARHead, PooledHead

GEOM = Geometry((64, 48), (16, 12))


def test_recipes_registered():
    for name in ("sar", "sar_regression", "sar_simcc", "sar_fg_fc"):
        assert name in RECIPES
    assert RECIPES["sar"].loss_params["lam"] == 16.0
    assert set(Z.CHAPTER_RECIPES) <= set(RECIPES)


@pytest.mark.parametrize("name,shapes", [
    ("sar", {"selector": (2, 17, 16, 12), "offsets": (2, 17, 2, 16, 12)}),
    ("sar_fg_fc", {"selector": (2, 17, 4, 3), "offsets": (2, 17, 2, 4, 3)}),   # the encoder's 64x48/16 grid
    ("sar_regression", {"coords": (2, 17, 2)}),
])
def test_models_outputs_and_loss_backward(name, shapes):
    r = RECIPES[name]
    model = MODELS[r.model](r, GEOM, 0)
    again = MODELS[r.model](r, GEOM, 0)  # same seed -> same weights (before BatchNorm stats move)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    out = model(torch.randn(2, 3, 64, 48))
    assert {k: tuple(v.shape) for k, v in out.items()} == shapes
    codec = CODECS[r.codec](GEOM, **dict(r.codec_params))
    kp = torch.rand(2, 17, 2) * torch.tensor([47.0, 63.0])
    batch = {k: v for k, v in codec.encode(kp, torch.ones(2, 17)).items()}
    loss = LOSSES[r.loss](GEOM, **dict(r.loss_params))(out, batch)
    assert torch.isfinite(loss)
    loss.backward()
    coords, scores = codec.decode(out) if name == "sar_regression" else codec.decode(out["selector"], out["offsets"])
    assert coords.shape == (2, 17, 2) and scores.shape == (2, 17)


@pytest.mark.parametrize("name", ["sar_regression", "sar_fg_fc"])
def test_regression_baselines_pool_the_encoder_not_the_decoder(name):
    """Table 1: Regression and f^g + FC have no deconvolutions; the lab's pool the tiny
    backbone's stride-16 encoder output, so no decoder layer is in the model (pooled from the
    decoded stride-2 map they stayed at the image-blind mean pose)."""
    r = RECIPES[name]
    model = MODELS[r.model](r, Geometry((128, 96), (64, 48)), 0)
    keys = list(model.state_dict())
    assert not [k for k in keys if any(part in k for part in ("lat", "fuse", "reduce"))], keys
    assert isinstance(model.backbone, EncoderFeatures) and model.backbone.out_channels == 96
    feats = model.backbone(torch.randn(1, 3, 128, 96))
    assert feats.shape == (1, 96, 8, 6)
    full = MODELS["sar_global_regression"](r, Geometry((128, 96), (64, 48)), 0) if name == "sar_regression" else model
    assert torch.equal(full.backbone.encoder[0][0].weight, model.backbone.encoder[0][0].weight)   # seeded alike


def test_encoder_features_of_every_backbone_and_a_refusal():
    from poselab.models.backbones import ResNet18Backbone, TinyBackbone
    from poselab.models.imagenet_resnet import ImageNetResNet18Backbone
    x = torch.randn(1, 3, 64, 48)
    for backbone, channels in ((TinyBackbone(stride=2), 96), (ResNet18Backbone(), 256),
                               (ImageNetResNet18Backbone(weights=None), 256)):
        enc = EncoderFeatures(backbone)
        assert enc.out_channels == channels and enc(x).shape == (1, channels, 4, 3)
        # the backbone's own layers (same objects: its seeded weights), never copies
        own = {id(p) for p in backbone.parameters()}
        assert all(id(p) in own for p in enc.parameters())
        assert sum(p.numel() for p in enc.parameters()) < sum(p.numel() for p in backbone.parameters())
    with pytest.raises(ValueError, match="no encoder known"):
        EncoderFeatures(torch.nn.Conv2d(3, 8, 3))


def test_fg_fc_refuses_a_grid_that_is_not_the_encoders():
    r = RECIPES["sar_fg_fc"].replace(codec_params={"base": "sar", "stride": 8})
    with pytest.raises(ValueError, match="encoder"):
        MODELS[r.model](r, GEOM, 0)


def test_regression_starts_at_map_centre_and_codec_roundtrip():
    head = GlobalRegressionHead(8, 3, (16, 12))
    out = head(torch.zeros(2, 8, 16, 12))["coords"]
    assert torch.allclose(out, torch.tensor([5.5, 7.5]).expand(2, 3, 2))
    codec = Z.RegressionCodec((64, 48), (16, 12))
    kp = torch.tensor([[[10.0, 20.0], [40.5, 3.25]]])
    target = codec.encode(kp)["target"]
    back, scores = codec.decode({"coords": target})
    assert torch.allclose(back, kp, atol=1e-5) and torch.equal(scores, torch.ones(1, 2))
    with pytest.raises(ValueError, match="coords"):
        codec.decode({"coords": torch.zeros(3)})


def test_regression_loss_is_normalised_l1():
    r = RECIPES["sar_regression"]
    fn = LOSSES[r.loss](GEOM)
    pred = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    tgt = torch.tensor([[[2.0, 2.0], [3.0, 8.0]]])
    w = torch.tensor([[1.0, 1.0]])
    expected = ((1 / 12 + 0) + (0 + 4 / 16)) / 2
    assert float(fn({"coords": pred}, {"target": tgt, "weights": w})) == pytest.approx(expected, rel=1e-6)


def test_fg_fc_cells_see_only_the_pooled_feature():
    head = GridFCSARHead(8, 2, (4, 3))
    f = torch.randn(1, 8, 4, 3)
    shuffled = f.flatten(2)[..., torch.randperm(12)].view(1, 8, 4, 3)  # same pooled vector
    a, b = head(f), head(shuffled)
    assert torch.allclose(a["selector"], b["selector"], atol=1e-6)
    assert torch.allclose(a["offsets"], b["offsets"], atol=1e-6)


@pytest.mark.parametrize("base", ["mse", "sar", "sar_simcc", "sar_regression"])
def test_at_stride_grid_and_cache_names(base):
    r = Z.at_stride(base, 16)
    assert r.name == f"{base}-s16"
    model = MODELS[r.model](r, GEOM, 1)
    out = model(torch.randn(1, 3, 64, 48))
    codec = CODECS[r.codec](GEOM, **dict(r.codec_params))
    if base == "mse":
        assert out.shape == (1, 17, 4, 3) and codec.heatmap_size == (4, 3) and codec.sigma == 1.0
    if base == "sar":
        assert out["selector"].shape == (1, 17, 4, 3)
        batch = codec.encode(torch.rand(1, 17, 2) * 40, torch.ones(1, 17))
        assert torch.isfinite(LOSSES[r.loss](GEOM, **dict(r.loss_params))(out, batch))
    if base == "sar_simcc":
        assert out[0].shape == (1, 17, 96)


def test_loss_refuses_mismatched_grid():
    # the SAR loss at stride 4 given a stride-16 model output: clear error, not a silent misfit
    fn = LOSSES["sar"](GEOM)
    out = {"selector": torch.zeros(1, 17, 4, 3), "offsets": torch.zeros(1, 17, 2, 4, 3)}
    with pytest.raises(ValueError, match="output grid"):
        fn(out, {"target": torch.zeros(1, 17, 2), "weights": torch.ones(1, 17)})
    with pytest.raises(ValueError, match="stride"):
        Z.grid_geometry(GEOM, 5)


def test_sar_loss_builder_matches_function():
    fn = LOSSES["sar"](GEOM)
    g = torch.Generator().manual_seed(0)
    out = {"selector": torch.randn(2, 17, 16, 12, generator=g), "offsets": torch.randn(2, 17, 2, 16, 12, generator=g)}
    batch = {"target": torch.rand(2, 17, 2, generator=g) * 12, "weights": (torch.rand(2, 17, generator=g) > 0.3).float()}
    from poselab.codecs.sar import sar_flatten_outputs
    c, s = sar_flatten_outputs(out["selector"], out["offsets"])
    assert torch.equal(fn(out, batch), sar_loss(c, s, batch["target"], batch["weights"], 16.0, (12, 16)))


def test_pooled_head():
    head = PooledHead(torch.nn.Identity(), 2)
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert torch.equal(head(x), torch.nn.functional.avg_pool2d(x, 2))
    with pytest.raises(ValueError, match="factor"):
        PooledHead(torch.nn.Identity(), 0)


GEOM_S2 = Geometry((64, 48), (32, 24))   # the default preset's stride-2 head


@pytest.mark.parametrize("recipe", ["sar", "sar_fg_fc", "sar_regression", "sar_simcc",
                                    ("mse", 4), ("mse", 16), ("sar", 16), ("sar_simcc", 8),
                                    ("sar_regression", 16)])
def test_every_sar_model_follows_a_stride_2_preset(recipe):
    # the zoo models used to build their backbone at stride 4 whatever the preset said: on the
    # stride-2 default the stride-16 grid came out 2x too coarse and the loss refused it
    r = Z.at_stride(*recipe) if isinstance(recipe, tuple) else RECIPES[recipe]
    model = MODELS[r.model](r, GEOM_S2, 0)
    # the regression baselines pool the encoder (stride 16 whatever the preset); the rest follow it
    assert model.backbone.stride == (16 if isinstance(model.backbone, EncoderFeatures) else 2)
    out = model(torch.randn(2, 3, 64, 48))
    codec = CODECS[r.codec](GEOM_S2, **dict(r.codec_params))
    kp = torch.rand(2, 17, 2) * torch.tensor([47.0, 63.0])
    batch = codec.encode(kp, torch.ones(2, 17))
    loss = LOSSES[r.loss](GEOM_S2, **dict(r.loss_params))(out, batch)
    loss = loss["loss"] if isinstance(loss, dict) else loss
    assert torch.isfinite(loss)
    loss.backward()
    if isinstance(out, dict) and "selector" in out:
        assert tuple(out["selector"].shape[-2:]) == tuple(codec.heatmap_size)


@pytest.mark.parametrize("stride", [None, 16])
def test_sar_aux_is_the_official_total_and_sar_stays_pure(stride):
    """Item 5: the official code adds an auxiliary heatmap loss (weight 1): ``sar_aux`` trains
    Eq. 7 + that loss through a third conv; ``sar`` (the ablation) has no such branch or term."""
    from poselab.losses import sar_auxiliary_heatmap_loss
    geom = Geometry((128, 96), (64, 48))
    r = RECIPES["sar_aux"] if stride is None else Z.at_stride("sar_aux", stride)
    model = MODELS[r.model](r, geom, 0)
    out = model(torch.randn(2, 3, 128, 96))
    hw = (64, 48) if stride is None else (8, 6)
    assert tuple(out["heatmap"].shape) == (2, 17) + hw and tuple(out["selector"].shape) == (2, 17) + hw
    codec = CODECS[r.codec](geom, **dict(r.codec_params))
    kp = torch.rand(2, 17, 2) * torch.tensor([95.0, 127.0])
    batch = codec.encode(kp, torch.ones(2, 17))
    assert tuple(batch["heatmap"].shape) == (2, 17) + hw
    got = LOSSES[r.loss](geom, **dict(r.loss_params))(out, batch)
    pure = LOSSES["sar"](geom, **{k: v for k, v in r.loss_params.items() if k != "aux_weight"})(out, batch)
    aux = sar_auxiliary_heatmap_loss(out["heatmap"], batch["heatmap"], batch["weights"])
    assert torch.allclose(got["loss"], pure + aux) and float(aux.detach()) > 0
    got["loss"].backward()
    head = model.head.head if stride is not None else model.head
    assert head.heatmap.weight.grad.abs().sum() > 0   # the branch is trained
    plain = RECIPES["sar"]
    assert "heatmap" not in MODELS[plain.model](plain, geom, 0)(torch.randn(1, 3, 128, 96))
    with pytest.raises(ValueError, match="heatmap"):
        LOSSES["sar_aux"](geom)({k: v for k, v in out.items() if k != "heatmap"}, batch)
    assert Z.HEADLINE_SAR in Z.CHAPTER_RECIPES and set(Z.AUX_HEATMAP) == {"sar_aux", "sar"}


def test_heatmap_offset_baseline_decodes_exact_outputs_continuously():
    """Add list: Table 1's Heatmap+Offset. Ideal outputs (the Gaussian target and each pixel's
    exact offset to the joint) decode to the joint itself; without the offsets (the counter-case)
    decoding is the argmax pixel, off by up to half a pixel per axis."""
    geom = Geometry((128, 96), (64, 48))
    r = RECIPES["heatmap_offset"]
    codec = CODECS[r.codec](geom, **dict(r.codec_params))
    g = torch.Generator().manual_seed(0)
    kp = torch.rand(4, 17, 2, generator=g) * torch.tensor([95.0, 127.0])
    batch = codec.encode(kp, torch.ones(4, 17))
    from poselab.codecs.sar import sar_cell_centres
    exact_off = (batch["keypoints_hm"][:, :, None, None, :] - sar_cell_centres((64, 48))).movedim(-1, 2)
    outputs = {"heatmap": batch["target"], "offsets": exact_off}
    got, scores = codec.decode(outputs)
    assert float((got - kp).abs().max()) < 1e-3 and scores.shape == (4, 17)
    loss = LOSSES[r.loss](geom, **dict(r.loss_params))(outputs, batch)
    assert float(loss["offset"]) < 1e-6 and float(loss["heatmap"]) == 0.0
    plain, _ = codec.decode({"heatmap": batch["target"], "offsets": torch.zeros_like(exact_off)})
    err = (plain - kp).abs().max()
    assert 0.3 < float(err) <= 1.0 + 1e-4                              # half a heatmap px = 1 input px
    zero = LOSSES[r.loss](geom, **dict(r.loss_params))({"heatmap": batch["target"], "offsets": torch.zeros_like(exact_off)}, batch)
    assert float(zero["offset"]) > 0
    model = MODELS[r.model](r, geom, 0)
    out = model(torch.randn(2, 3, 128, 96))
    assert tuple(out["heatmap"].shape) == (2, 17, 64, 48) and tuple(out["offsets"].shape) == (2, 17, 2, 64, 48)
    with pytest.raises(ValueError, match="heatmap_offset outputs"):
        codec.decode(out["heatmap"])
