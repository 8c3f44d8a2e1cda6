"""SAR chapter, section 6: joints outside the crop (decoder reach, cut crops, errors, verdict)."""
import numpy as np
import pytest
import torch

from poselab.chapters.sar import out_of_crop as ooc
from poselab.data import TopDownDataset, synth
from poselab.experiments.presets import get_preset
from poselab.claims import has_learnt
from poselab.viz.sentence import Sentence

SIZES = [((64, 48), (16, 12)), ((256, 192), (64, 48)), ((128, 96), (64, 48))]  # paper's 64x48 maps included


@pytest.mark.parametrize("input_size,heatmap_size", SIZES)
def test_heatmap_stays_in_the_crop_regression_and_sar_reach_outside(input_size, heatmap_size):
    reach = ooc.decoder_reach(ooc.chapter_decoders(input_size, heatmap_size), input_size)
    assert ooc.reach_holds(reach)
    assert reach["heatmap, any map"]["max_outside"] == 0.0
    assert reach["heatmap"]["max_miss"] > 0.1 * min(input_size)   # it misses outside targets by a lot
    for name in ("regression", "SAR"):
        assert reach[name]["reaches_outside"] and reach[name]["max_miss"] < 1e-3
        assert reach[name]["max_outside"] > 0.2 * min(input_size)
    # the analytic bound: argmax pixels map to [(s-1)/2, W-(s+1)/2]
    s = input_size[1] / heatmap_size[1]
    codec_decode, maps = ooc.chapter_decoders(input_size, heatmap_size)["heatmap, any map"]
    pts = np.array([codec_decode(m) for m in maps])
    assert pts[:, 0].min() >= (s - 1) / 2 - 1e-4 and pts[:, 0].max() <= input_size[1] - (s + 1) / 2 + 1e-4
    assert isinstance(ooc.reach_sentence(reach), Sentence) and "regression, SAR" in ooc.reach_sentence(reach)


@pytest.mark.parametrize("decoder", ["quarter", "argmax", "dark"])
def test_every_heatmap_decoder_stays_in_the_crop(decoder):
    """DARK may refine a border peak by up to half a map pixel outwards: onto the crop's edge, never beyond."""
    size, hm = (256, 192), (64, 48)
    reach = ooc.decoder_reach(ooc.chapter_decoders(size, hm, heatmap_decoder=decoder), size)
    assert reach["heatmap, any map"]["max_outside"] == 0.0 and not reach["heatmap"]["reaches_outside"]
    assert ooc.reach_holds(reach)


def test_a_clamping_regression_decoder_fails_the_reach_check():
    size, hm = (64, 48), (16, 12)
    decoders = ooc.chapter_decoders(size, hm)
    decode, encode = decoders["regression"]
    x0, y0, x1, y1 = ooc.crop_box(size)
    decoders["regression"] = (lambda o: np.clip(decode(o), [x0, y0], [x1, y1]), encode)
    reach = ooc.decoder_reach(decoders, size)
    assert not reach["regression"]["reaches_outside"] and reach["regression"]["max_outside"] == 0.0
    assert not ooc.reach_holds(reach)


def test_sar_with_bounded_offsets_fails_the_reach_check():
    size, hm = (64, 48), (16, 12)
    decoders = ooc.chapter_decoders(size, hm)
    _, encode = decoders["SAR"]
    full = ooc.chapter_decoders(size, hm)["SAR"][0]

    def bounded(o):  # offsets limited to half a cell (a tanh-style head): stays within the crop
        return full({"selector": o["selector"], "offsets": o["offsets"].clamp(-0.5, 0.5)})
    decoders["SAR"] = (bounded, encode)
    reach = ooc.decoder_reach(decoders, size)
    assert not reach["SAR"]["reaches_outside"] and not ooc.reach_holds(reach)


def test_an_extrapolating_heatmap_decoder_fails_the_bound():
    size, hm = (64, 48), (16, 12)
    decoders = ooc.chapter_decoders(size, hm)
    decode, maps = decoders["heatmap, any map"]
    decoders["heatmap, any map"] = (lambda m: 1.5 * (decode(m) - np.array([23.5, 31.5])) + np.array([23.5, 31.5]), maps)
    reach = ooc.decoder_reach(decoders, size)
    assert reach["heatmap, any map"]["max_outside"] > 0 and not ooc.reach_holds(reach)


def test_distance_outside_and_bad_input():
    d = ooc.distance_outside(np.array([[10.0, 10.0], [-3.5, 10.0], [50.5, 66.5], [-0.5, -0.5]]), (64, 48))
    np.testing.assert_allclose(d, [0.0, 3.0, np.hypot(3.0, 3.0), 0.0])
    with pytest.raises(ValueError, match="points"):
        ooc.distance_outside(np.zeros((3, 3)), (64, 48))
    with pytest.raises(ValueError, match="input_size"):
        ooc.crop_box((64,))
    with pytest.raises(ValueError, match="non-finite"):
        ooc.decoder_reach({"bad": (lambda o: np.array([np.nan, 0.0]), lambda t: t)}, (64, 48))


@pytest.fixture(scope="module")
def val_json(tmp_path_factory):
    return synth.generate(tmp_path_factory.mktemp("ooc"), n_images=4, seed=3, split="val")


def test_cut_crops_shift_the_window_and_keep_the_truth(val_json):
    size = (64, 48)
    crops = ooc.cut_crops(val_json, size, n_persons=3, shift=0.3)
    n = len(crops["cut"]) // len(ooc.CUTS)
    t = crops["truth"].reshape(n, len(ooc.CUTS), 17, 2)
    names = list(ooc.CUTS)
    # the ordinary crop is the dataset's own evaluation crop
    ds = TopDownDataset(val_json, input_size=size, train=False)
    item = ds[0]
    np.testing.assert_allclose(crops["images"][0].numpy(), item["image"].numpy(), atol=1e-6)
    np.testing.assert_allclose(t[0, 0], item["keypoints_true"].numpy(), atol=1e-3)
    # moving the window up by 0.3 of its side moves every joint down by 0.3 H crop px
    np.testing.assert_allclose(t[:, names.index("up")] - t[:, names.index("none")],
                               np.broadcast_to([0.0, 0.3 * size[0]], t[:, 0].shape), atol=1e-6)
    np.testing.assert_allclose(t[:, names.index("left")] - t[:, names.index("none")],
                               np.broadcast_to([0.3 * size[1], 0.0], t[:, 0].shape), atol=1e-6)
    assert (crops["known"] & ~crops["inside"]).sum() > 0  # the cut crops leave joints outside
    assert crops["images"].dtype == torch.float32 and crops["images"].shape[1:] == (3, *size)
    with pytest.raises(ValueError, match="shift"):
        ooc.cut_crops(val_json, size, shift=1.5)
    with pytest.raises(ValueError, match="cuts"):
        ooc.cut_crops(val_json, size, cuts=("diagonal",))


def _crops(n=40, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.uniform([-20, -20], [68, 84], size=(n, 17, 2))
    return {"truth": truth, "known": np.ones((n, 17), bool),
            "inside": ooc.distance_outside(truth, (64, 48)) == 0, "input_size": (64, 48)}


def test_errors_split_inside_and_outside():
    crops = _crops()
    perfect = ooc.out_of_crop_errors(crops["truth"].copy(), crops)
    assert perfect["epe_inside"] == 0 and perfect["epe_outside"] == 0 and perfect["share_placed_outside"] == 1.0
    x0, y0, x1, y1 = ooc.crop_box((64, 48))
    clamped = ooc.out_of_crop_errors(np.clip(crops["truth"], [x0, y0], [x1, y1]), crops)
    assert clamped["epe_inside"] == 0 and clamped["share_placed_outside"] == 0.0
    assert clamped["epe_outside"] == pytest.approx(clamped["outside_beyond_px"])  # a clamp misses by the distance beyond
    with pytest.raises(ValueError, match="shape"):
        ooc.out_of_crop_errors(np.zeros((2, 17, 2)), crops)
    with pytest.raises(ValueError, match="non-finite"):
        ooc.out_of_crop_errors(np.full_like(crops["truth"], np.nan), crops)


def _errors(outside_sar, outside_hm, n_outside=200):
    def e(v):
        return {"epe_outside": v, "epe_inside": 3.0, "n_outside": n_outside, "n_inside": 1000,
                "share_placed_outside": 0.5, "outside_beyond_px": 5.0}
    return {"sar_aux": [e(v) for v in outside_sar], "mse": [e(v) for v in outside_hm]}


def test_verdict_flips_with_the_constructed_errors():
    p = get_preset("default")
    better = ooc.out_of_crop_verdict(_errors([6.0, 6.3, 5.8], [9.1, 9.4, 9.0]), "sar_aux", "mse", p, seeds=(0, 1, 2))
    assert better.verdict == "reproduced"
    worse = ooc.out_of_crop_verdict(_errors([9.1, 9.4, 9.0], [6.0, 6.3, 5.8]), "sar_aux", "mse", p, seeds=(0, 1, 2))
    assert worse.verdict == "not reproduced"
    few = ooc.out_of_crop_verdict(_errors([6.0, 6.3, 5.8], [9.1, 9.4, 9.0], n_outside=5), "sar_aux", "mse", p)
    assert few.verdict == "inconclusive" and "too few" in few.reason
    fast = ooc.out_of_crop_verdict(_errors([6.0, 6.3, 5.8], [9.1, 9.4, 9.0]), "sar_aux", "mse", get_preset("fast"))
    assert fast.verdict == "inconclusive"
    blind = ooc.out_of_crop_verdict(_errors([6.0, 6.3, 5.8], [9.1, 9.4, 9.0]), "sar_aux", "mse", p,
                                    learnt=[has_learnt("mse", [0.001, 0.0, 0.002], floor=0.05)])
    assert blind.verdict == "inconclusive" and "not learnt" in blind.reason
    assert "placed none" not in better.reason  # share 0.5 in the constructed errors
    unused = _errors([6.0, 6.3, 5.8], [9.1, 9.4, 9.0])
    for e in unused["sar_aux"]:
        e["share_placed_outside"] = 0.0
    unused_v = ooc.out_of_crop_verdict(unused, "sar_aux", "mse", p, seeds=(0, 1, 2))
    assert unused_v.verdict == "reproduced" and "placed none" in unused_v.reason
    assert "per_seed" in better.evidence and better.evidence["preset"] == "default"
    s = ooc.errors_sentence(_errors([6.0, 6.3, 5.8], [9.1, 9.4, 9.0]), better, "sar_aux", "mse")
    assert isinstance(s, Sentence) and "reproduced" in s and "6.03" in s
    rows = ooc.errors_table(_errors([6.0, 6.3, 5.8], [9.1, 9.4, 9.0]))
    assert rows[0]["EPE outside (px)"] == pytest.approx(6.0333333) and rows[1]["seeds"] == 3
    with pytest.raises(ValueError, match="no per-seed"):
        ooc.errors_table({"sar": []})
    with pytest.raises(ValueError, match="no errors"):
        ooc.out_of_crop_verdict(_errors([1.0], [2.0]), "sar", "mse", p)


def test_predict_crops_decodes_in_input_px():
    from poselab.chapters.sar.recipes import RegressionCodec

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return {"coords": torch.full((x.shape[0], 17, 2), -3.0)}  # heatmap px, outside the crop
    crops = {"images": torch.zeros(5, 3, 64, 48)}
    pts = ooc.predict_crops(Fixed(), RegressionCodec((64, 48), (16, 12)), crops, batch_size=2)
    assert pts.shape == (5, 17, 2) and np.allclose(pts, (-3.0 + 0.5) * 4 - 0.5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_predict_crops_with_sar_outputs_in_each_dtype(dtype):
    """SAR outputs as autocast would hand them over (half types on a GPU): the decoded point is the
    cell centre + offset, outside the crop, within the dtype's rounding."""
    from poselab.codecs import SARCodec

    class Fixed(torch.nn.Module):
        def forward(self, x):
            sel = torch.full((x.shape[0], 17, 16, 12), -5.0, dtype=dtype)
            sel[:, :, 0, 0] = 5.0
            off = torch.zeros(x.shape[0], 17, 2, 16, 12, dtype=dtype)
            off[:, :, :, 0, 0] = -2.25  # 2.25 cells up-left of the corner cell
            return {"selector": sel, "offsets": off}
    pts = ooc.predict_crops(Fixed(), SARCodec((64, 48), (16, 12)), {"images": torch.zeros(3, 3, 64, 48)})
    assert np.all(np.isfinite(pts)) and np.allclose(pts, (-2.25 + 0.5) * 4 - 0.5, atol=1e-2)
    assert np.all(ooc.distance_outside(pts, (64, 48)) > 0)
