"""One codec protocol (architecture issue #22, item 3): every codec decodes what its head returns
with ``decode(outputs)``, knows its geometry and travels with its model, and
``evaluate(model, val_json)`` decodes with the model's own codec — or one sized from the model's
actual outputs — never with a head-name switch at a default stride of 4.

The counter-cases are oracle models at the default preset's stride 2 (128×96 crops, 64×48 maps)
whose outputs are each codec's exact encoding of the crop's ground truth: decoded right they give
AP ≈ 1 and EPE ≈ 0; the old evaluation (stride-4 map size, β = 1 and no compensation for the
integral head, quarter-pixel instead of four-pixel decoding for EMD) put every keypoint at about
half its coordinates (AP 0).
"""
from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch

from poselab import codecs
from poselab.codecs import (Codec, FourPixelCodec, HeatmapCodec, IntegralCodec, SARCodec, SimCCCodec,
                            attach_codec, codec_from_spec, encode_gaussian, model_codec)
from poselab.data import TopDownDataset
from poselab.data.synth import default_dataset
from poselab.models import build_model
from poselab.train import codec_for_model, default_codec, evaluate

INPUT, MAPS = (128, 96), (64, 48)   # the default preset: stride 2, the papers' 64×48 maps


@pytest.fixture(scope="module")
def val_json():
    return default_dataset("val", n_images=12, progress=False)


@pytest.fixture(scope="module")
def crops(val_json):
    ds = TopDownDataset(val_json, input_size=INPUT, train=False)
    return [ds[i] for i in range(len(ds))]


def _key(image: torch.Tensor) -> str:
    return hashlib.sha1(image.detach().float().contiguous().numpy().tobytes()).hexdigest()


class Oracle(torch.nn.Module):
    """Returns, for each crop it is shown, the outputs made for that crop (blank or unknown images
    get the first crop's outputs, e.g. a probe for the output size)."""

    def __init__(self, head_type, crops, make_outputs):
        super().__init__()
        self.head_type, self.input_size = head_type, INPUT
        self.table = {_key(c["image"]): make_outputs(c) for c in crops}
        self.first = next(iter(self.table.values()))

    def forward(self, images):
        outs = [self.table.get(_key(im), self.first) for im in images]
        if isinstance(self.first, dict):
            return {k: torch.stack([o[k] for o in outs]) for k in self.first}
        if isinstance(self.first, tuple):
            return tuple(torch.stack([o[i] for o in outs]) for i in range(len(self.first)))
        return torch.stack(outs)


def _heatmap_outputs(codec):
    return lambda c: codec.encode(c["keypoints"][None], c["visible"][None])["target"][0]


def _integral_logits(codec):
    def make(c):
        kp = codecs.input_to_heatmap(torch.as_tensor(c["keypoints"]), INPUT, MAPS)
        return encode_gaussian(kp, c["visible"], MAPS, 2.0, unbiased=True)[0]
    return make


def _sar_outputs(codec):
    def make(c):
        kp = codec.encode(c["keypoints"][None], c["visible"][None])["target"][0]   # (K, 2) map px
        H, W = MAPS
        centres = codecs.sar_cell_centres(MAPS)                                   # (H, W, 2)
        offsets = (kp[:, None, None, :] - centres).movedim(-1, -3)                  # (K, 2, H, W)
        near = torch.floor(kp + 0.5).long().clamp(min=0)
        logits = torch.full((kp.shape[0], H, W), -10.0)
        for k in range(kp.shape[0]):
            logits[k, near[k, 1].clamp(max=H - 1), near[k, 0].clamp(max=W - 1)] = 10.0
        return {"selector": logits, "offsets": offsets}
    return make


def _simcc_outputs(codec):
    def make(c):
        t = codec.encode(c["keypoints"][None], c["visible"][None])
        return (t["target_x"][0] * 10.0, t["target_y"][0] * 10.0)
    return make


CASES = {
    # name: (head, the model's own codec, outputs maker, largest EPE_crop in input px)
    "heatmap (mse)": ("heatmap", HeatmapCodec(INPUT, MAPS, sigma=2.0, decoder="quarter"), _heatmap_outputs, 1.0),
    "heatmap (emd, four-pixel)": ("heatmap", FourPixelCodec(INPUT, MAPS, target="bilinear_dot"),
                                  _heatmap_outputs, 1e-3),
    "integral (bcir)": ("integral", IntegralCodec(INPUT, MAPS, beta=10.0, compensate=True), _integral_logits, 0.05),
    "sar": ("sar", SARCodec(INPUT, MAPS), _sar_outputs, 1e-3),
    "simcc": ("simcc", SimCCCodec(INPUT, split_ratio=2.0), _simcc_outputs, 0.5),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_evaluate_decodes_a_stride_2_model_with_its_own_codec(name, val_json, crops):
    head, codec, make, max_epe = CASES[name]
    model = attach_codec(Oracle(head, crops, make(codec)), codec)
    got = evaluate(model, val_json, return_predictions=False)           # no codec, no head given
    want = evaluate(model, val_json, codec=codec, return_predictions=False)
    assert got["AP"] == want["AP"] and got["EPE_crop"] == want["EPE_crop"]
    assert got["EPE_crop"] <= max_epe, got["EPE_crop"]
    assert got["AP"] > 0.9, got["AP"]


@pytest.mark.parametrize("name", ["heatmap (mse)", "sar", "simcc"])
def test_a_model_without_a_codec_is_decoded_at_its_actual_output_size(name, val_json, crops):
    head, codec, make, max_epe = CASES[name]
    model = Oracle(head, crops, make(codec))                             # carries no codec
    inferred = codec_for_model(model)
    assert inferred.input_size == INPUT and inferred.heatmap_size == codec.heatmap_size
    got = evaluate(model, val_json, return_predictions=False)
    assert got["EPE_crop"] <= max_epe and got["AP"] > 0.9, got


def test_an_integral_head_without_a_codec_is_decoded_at_beta_10_at_its_size():
    model = build_model("integral", INPUT, seed=0, heatmap_stride=2)
    codec = codec_for_model(model)
    assert isinstance(codec, IntegralCodec) and codec.heatmap_size == MAPS
    assert codec.beta == 10.0 and not codec.compensate


def test_a_codec_at_the_wrong_stride_is_refused_by_name(val_json, crops):
    head, codec, make, _ = CASES["heatmap (mse)"]
    model = Oracle(head, crops, make(codec))
    stride4 = HeatmapCodec(INPUT, (32, 24))
    with pytest.raises(ValueError, match=r"64×48 but this HeatmapCodec decodes 32×24"):
        evaluate(model, val_json, codec=stride4)
    with pytest.raises(ValueError, match="crops"):
        evaluate(model, val_json, codec=HeatmapCodec((64, 48), (32, 24)))


def test_default_codec_has_no_default_stride():
    with pytest.raises(ValueError, match="heatmap_size"):
        default_codec("heatmap", INPUT)
    assert default_codec("sar", INPUT, heatmap_size=MAPS).heatmap_size == MAPS
    assert default_codec("simcc", INPUT).bins == (192, 256)


# ----------------------------------------------------------------------------- the protocol
PROTOCOL = {
    "heatmap": (HeatmapCodec(INPUT, MAPS, decoder="dark", dark_kernel=None), lambda: torch.randn(2, 3, *MAPS)),
    "four_pixel": (FourPixelCodec(INPUT, MAPS), lambda: torch.rand(2, 3, *MAPS)),
    "integral": (IntegralCodec(INPUT, MAPS, beta=5.0, compensate=True, max_gain=20.0), lambda: torch.randn(2, 3, *MAPS)),
    "sar": (SARCodec(INPUT, MAPS, m=2, gamma=0.1), lambda: {"selector": torch.randn(2, 3, *MAPS),
                                                            "offsets": torch.randn(2, 3, 2, *MAPS)}),
    "simcc": (SimCCCodec(INPUT, split_ratio=3.0), lambda: (torch.randn(2, 3, 288), torch.randn(2, 3, 384))),
}


@pytest.mark.parametrize("name", sorted(PROTOCOL))
def test_every_codec_decodes_its_heads_outputs_and_rebuilds_from_its_spec(name):
    codec, outputs = PROTOCOL[name]
    assert isinstance(codec, Codec) and codec.input_size == INPUT
    out = outputs()
    coords, scores = codec.decode(out)
    assert coords.shape == (2, 3, 2) and scores.shape == (2, 3)
    again = codec_from_spec(codec.spec())
    assert type(again) is type(codec) and again == codec and again.spec() == codec.spec()
    c2, s2 = again.decode(out)
    assert torch.equal(c2, coords) and torch.equal(s2, scores)
    assert codec.stride == (2.0 if name != "simcc" else 1 / 3)
    if name != "simcc":
        small = {k: v[..., ::2, ::2] for k, v in out.items()} if isinstance(out, dict) else out[..., ::2, ::2]
        with pytest.raises(ValueError, match="32×24"):
            codec.decode(small)


def test_a_spec_names_only_poselab_codec_classes():
    for bad in ({"class": "os.system", "kwargs": {}}, {"class": "poselab.models.build_model", "kwargs": {}},
                {"class": "poselab.codecs.heatmap.Nope", "kwargs": {}}, "HeatmapCodec"):
        with pytest.raises(ValueError):
            codec_from_spec(bad)


def test_the_codec_travels_with_a_checkpoint(tmp_path):
    from poselab.train import Checkpoint, fit
    codec = IntegralCodec((64, 48), (32, 24), beta=20.0, compensate=True)
    model = build_model("integral", (64, 48), seed=0, heatmap_stride=2, codec=codec)
    assert model_codec(model) == codec and model.config["codec"] == codec.spec()

    class Toy(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            kp = torch.full((17, 2), 20.0 + i)
            return {"image": torch.randn(3, 64, 48, generator=torch.Generator().manual_seed(i)),
                    **codec.encode(kp, torch.ones(17))}

    def loss(outputs, batch):
        return (codec.decode(outputs)[0] - 20.0).abs().mean()

    path = tmp_path / "c.pt"
    fit(model, loss, Toy(), max_steps=2, batch_size=2, callbacks=[Checkpoint(path)])
    ckpt = torch.load(path, weights_only=True)
    rebuilt = build_model(**ckpt["model_config"])                     # the model and its codec
    assert model_codec(rebuilt) == codec
    bare = build_model("integral", (64, 48), seed=1, heatmap_stride=2)
    assert model_codec(bare) is None
    fit(bare, loss, Toy(), max_steps=2, batch_size=2, resume_from=path)
    assert model_codec(bare) == codec


# ----------------------------------------------------------------------------- recipes
@pytest.mark.parametrize("recipe", ["mse", "emd", "bcir", "sar", "simcc_kl"])
def test_evaluate_gives_a_stride_2_runs_own_numbers(recipe, tmp_path, monkeypatch):
    """The done-when line: ``evaluate(model, val_json)`` on a stride-2 model of each head type
    equals the recipe's own evaluation (the runner's, with the recipe's codec)."""
    from poselab.experiments import PRESETS, resolve_run_data, run_recipe
    monkeypatch.setenv("POSELAB_CACHE_DIR", str(tmp_path))
    preset = PRESETS["fast"].replace(name="stride2-probe", heatmap_stride=2, max_steps=3)
    run = run_recipe(recipe, preset=preset, seed=0, device="cpu")
    _, sets = resolve_run_data("synth", preset)
    name, path = next(iter(sets.items()))
    model = run.model()
    assert model_codec(model) == run.codec()
    got = evaluate(model, path, return_predictions=False)
    for metric in ("AP", "EPE", "EPE_crop"):
        mine, theirs = got[metric], run.metrics[name][metric]
        assert (math.isnan(mine) and math.isnan(theirs)) or np.isclose(mine, theirs, rtol=1e-6, atol=1e-9), (
            metric, mine, theirs)
