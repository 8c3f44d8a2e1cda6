"""Tests for poselab.chapters.hdm.training (MSE vs EMD training helpers) and
poselab.chapters.hdm.analysis.heatmap_compactness, against naive float64 loops and closed forms."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from poselab import claims
from poselab.chapters.hdm import training as T
from poselab.chapters.hdm.analysis import heatmap_compactness
from poselab.losses import emd_loss

INPUT, HM = (64, 48), (16, 12)


def _to_hm(xy):  # independent: stride 4, pixel centres at integers
    return (np.asarray(xy, dtype=np.float64) + 0.5) / 4.0 - 0.5


def _to_input(xy):
    return (np.asarray(xy, dtype=np.float64) + 0.5) * 4.0 - 0.5


def _bilinear(kp, size=HM):
    H, W = size
    m = np.zeros((H, W))
    x0, y0 = math.floor(kp[0]), math.floor(kp[1])
    fx, fy = kp[0] - x0, kp[1] - y0
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy),
                      (1, 1, fx * fy)):
        m[y0 + dy, x0 + dx] += w
    return m


# ----------------------------------------------------------------------------- codec
@settings(max_examples=40, deadline=None)
@given(st.floats(0.0, 10.99), st.floats(0.0, 14.99), st.floats(0.01, 100.0))
def test_four_pixel_codec_inverts_bilinear_maps_any_scale(x, y, scale):
    m = _bilinear((x, y)) * scale
    coords, scores = T.FourPixelCodec(INPUT, HM).decode(torch.as_tensor(m)[None, None])
    np.testing.assert_allclose(coords[0, 0].numpy(), _to_input((x, y)), atol=1e-4)
    assert abs(float(scores[0, 0]) - 1.0) < 1e-5  # all mass inside the square


def test_four_pixel_codec_score_is_mass_share_and_zero_without_mass():
    m = np.zeros(HM)
    m[3, 4] = m[3, 5] = 1.0
    m[10, 2] = 2.0  # the square around (4..5, 3) holds 2 of 4, the one at (2, 10) also 2 of 4
    m[12, 9] = 1.0  # total 5
    _, s = T.FourPixelCodec(INPUT, HM).decode(torch.as_tensor(m)[None, None])
    assert abs(float(s[0, 0]) - 2.0 / 5.0) < 1e-6
    _, s0 = T.FourPixelCodec(INPUT, HM).decode(-torch.ones(1, 2, *HM))
    assert torch.all(s0 == 0) and torch.isfinite(s0).all()
    with pytest.raises(ValueError):
        T.FourPixelCodec(INPUT, HM).decode(torch.zeros(HM))


def test_codec_for_choices():
    assert T.codec_for("mse", INPUT).decoder == "quarter"
    assert isinstance(T.codec_for("emd", INPUT), T.FourPixelCodec)
    with pytest.raises(ValueError, match="loss must be"):
        T.codec_for("l1", INPUT)


# ----------------------------------------------------------------------------- losses
def test_emd_visibility_matches_loop():
    rng = np.random.default_rng(0)
    kp = rng.uniform(-3, 18, size=(4, 17, 2))
    w = (rng.random((4, 17)) > 0.3).astype(np.float32)
    got = T.emd_visibility(torch.as_tensor(kp), torch.as_tensor(w), HM).numpy()
    for b in range(4):
        for k in range(17):
            inside = -0.5 <= kp[b, k, 0] < HM[1] - 0.5 and -0.5 <= kp[b, k, 1] < HM[0] - 0.5
            assert got[b, k] == float(w[b, k] > 0 and inside)


def test_make_loss_fn_emd_and_mse_match_direct_computation():
    rng = np.random.default_rng(1)
    out = torch.as_tensor(rng.random((2, 3, *HM)) - 0.2)
    kp_in = rng.uniform(0, 47, size=(2, 3, 2))
    kp_in[0, 1] = (200.0, 10.0)  # outside the crop: must be ignored
    w = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    batch = {"keypoints": torch.as_tensor(kp_in), "weights": w,
             "target": torch.as_tensor(rng.random((2, 3, *HM)))}
    got = T.make_loss_fn("emd", INPUT)(out, batch)
    kp_hm = torch.as_tensor(_to_hm(kp_in))
    kp_hm[0, 1] = 0.0  # placeholder for the ignored joint
    per = emd_loss(out, kp_hm, torch.ones(2, 3), reduction="none")
    want = (per[0, 0] + per[1].sum()) / 4  # joints used: (0,0), (1,0), (1,1), (1,2)
    assert abs(float(got) - float(want)) < 1e-6
    mse = T.make_loss_fn("mse", INPUT)(out, batch)
    ref = (((out - batch["target"]) ** 2).mean((-2, -1)) * w).mean()  # MMPose: mean over B·K·H·W
    assert abs(float(mse) - float(ref)) < 1e-9
    with pytest.raises(ValueError):
        T.make_loss_fn("kl", INPUT)


# ----------------------------------------------------------------------------- compactness
def _peak_loop(h, r):
    h = np.maximum(h, 0)
    s = h / h.sum()
    H, W = h.shape
    i, j = np.unravel_index(np.argmax(s), s.shape)
    mass = mx = my = 0.0
    for a in range(H):
        for b in range(W):
            mx += s[a, b] * b
            my += s[a, b] * a
            if (a - i) ** 2 + (b - j) ** 2 <= r * r:
                mass += s[a, b]
    var = sum(s[a, b] * ((b - mx) ** 2 + (a - my) ** 2) for a in range(H) for b in range(W))
    return mass, math.sqrt(var)


def test_peak_compactness_matches_loop_and_closed_forms():
    rng = np.random.default_rng(2)
    maps = rng.random((5, *HM)) - 0.4
    got = T.peak_compactness(maps, radius=1.5)
    for n in range(5):
        m, s = _peak_loop(maps[n], 1.5)
        assert abs(got["mass_near_peak"][n] - m) < 1e-12 and abs(got["spread"][n] - s) < 1e-12
    dot = np.zeros(HM)
    dot[4, 7] = 3.0
    two = np.zeros(HM)
    two[4, 3] = two[4, 5] = 1.0  # two equal dots 2 px apart: spread 1, half the mass near the peak
    res = T.peak_compactness(np.stack([dot, two, -np.ones(HM)]))
    assert len(res["spread"]) == 2  # the all-negative map is dropped
    np.testing.assert_allclose(res["mass_near_peak"], [1.0, 0.5], atol=1e-12)
    np.testing.assert_allclose(res["spread"], [0.0, 1.0], atol=1e-12)
    with pytest.raises(ValueError):
        T.peak_compactness(np.ones(5))


def test_heatmap_compactness_matches_loop():
    rng = np.random.default_rng(3)
    maps = rng.random((2, 3, *HM)) - 0.3
    kp = rng.uniform(0, 11, size=(2, 3, 2))
    vis = np.array([[1, 0, 2], [2, 2, 0]])
    got = heatmap_compactness(maps, kp, vis)
    rows = [(b, k) for b in range(2) for k in range(3) if vis[b, k] > 0]
    assert len(got["rms_radius_to_gt"]) == len(rows)
    for n, (b, k) in enumerate(rows):
        h = np.maximum(maps[b, k], 0)
        s = h / h.sum()
        r2 = mass = 0.0
        for a in range(HM[0]):
            for c in range(HM[1]):
                d2 = (c - kp[b, k, 0]) ** 2 + (a - kp[b, k, 1]) ** 2
                r2 += s[a, c] * d2
                mass += s[a, c] * (d2 <= 2.25)
        assert abs(got["rms_radius_to_gt"][n] - math.sqrt(r2)) < 1e-12
        assert abs(got["mass_near_gt"][n] - mass) < 1e-12
        assert got["half_max_area"][n] == sum(1 for v in h.ravel() if v >= 0.5 * h.max())
    dot = np.zeros((1, *HM))
    dot[0, 5, 6] = 1.0
    assert heatmap_compactness(dot, [[6.0, 5.0]])["rms_radius_to_gt"][0] == 0.0


# ----------------------------------------------------------------------------- data + training
def _coco(tmp_path, persons_per_image):
    images, anns, aid = [], [], 1
    for i, n in enumerate(persons_per_image, start=1):
        images.append({"id": i, "file_name": f"{i}.jpg", "width": 64, "height": 64})
        for _ in range(n):
            anns.append({"id": aid, "image_id": i, "num_keypoints": 3, "iscrowd": 0,
                         "category_id": 1, "bbox": [0, 0, 10, 10], "keypoints": [0] * 51})
            aid += 1
    p = tmp_path / "annotations" / "person_keypoints_val.json"
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps({"images": images, "annotations": anns,
                             "categories": [{"id": 1, "name": "person"}]}))
    return p


def test_subset_annotations_keeps_whole_images(tmp_path):
    src = _coco(tmp_path, [2, 1, 3, 2])
    out, root = T.subset_annotations(src, 4, tmp_path / "sub.json", image_root=tmp_path / "imgs")
    d = json.loads(out.read_text())
    assert [im["id"] for im in d["images"]] == [1, 2]  # 2 + 1 = 3; adding 3 more would exceed 4
    assert len(d["annotations"]) == 3 and root == tmp_path / "imgs"
    out1, _ = T.subset_annotations(src, 1, tmp_path / "sub1.json")  # at least one image
    assert len(json.loads(out1.read_text())["images"]) == 1
    with pytest.raises(ValueError):
        T.subset_annotations(src, 0, tmp_path / "x.json")


class _Toy(torch.utils.data.Dataset):
    def __init__(self, n=8):
        g = torch.Generator().manual_seed(0)
        self.items = []
        for _ in range(n):
            kp = torch.rand(17, 2, generator=g) * torch.tensor([40.0, 56.0]) + 4
            enc = T.codec_for("mse", INPUT).encode(kp, torch.full((17,), 2.0))
            self.items.append({"image": torch.randn(3, *INPUT, generator=g), "keypoints": kp,
                               "visible": torch.full((17,), 2.0), **enc})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


@pytest.mark.parametrize("loss", T.LOSSES)
def test_train_heatmap_model_runs_and_is_seeded(loss):
    ds = _Toy()
    m1, h1 = T.train_heatmap_model(loss, ds, max_steps=2, batch_size=4, seed=3)
    _, h2 = T.train_heatmap_model(loss, ds, max_steps=2, batch_size=4, seed=3)
    assert h1.steps == 2 and all(np.isfinite(h1.losses)) and h1.losses == h2.losses
    pred = T.predict_heatmaps(m1, ds, batch_size=3)
    assert pred["heatmaps"].shape == (8, 17, *HM) and pred["keypoints"].shape == (8, 17, 2)


def test_summarize():
    assert T.summarize([1.0, 3.0]) == f"2.000 ± {math.sqrt(2):.3f} (n=2)"
    assert T.summarize([0.5]) == "0.500 ± 0.000 (n=1)"


class _Dead(torch.nn.Module):
    head_type, input_size = "heatmap", INPUT

    def forward(self, images):
        return -torch.ones(len(images), 17, *HM)


def test_evaluate_heatmap_model_reports_dead_maps(tmp_path):
    from poselab import data as pdata
    src = pdata.default_dataset("val", n_images=40, progress=False)
    sub, root = T.subset_annotations(src, 6, tmp_path / "val6.json")
    ev = T.make_evaluator(sub, root, INPUT)
    r = T.evaluate_heatmap_model(_Dead(), "emd", ev, input_size=INPUT)
    assert r["dead_fraction"] == 1.0 and math.isnan(r["mass_near_peak"]) and math.isnan(r["spread"])
    assert 1 <= r["n_persons"] <= 6 and np.isfinite(r["EPE_crop"]) and r["AP"] == 0.0
    assert T.peak_compactness(-np.ones((2, *HM)))["mass_near_peak"].shape == (0,)


# ----------------------------------------------------------------------------- EMD collapse
def _suppliers(h):
    r = torch.relu(h)
    return r / r.sum(dim=(-2, -1), keepdim=True)


def test_max_anchor_pins_the_maximum_and_loses_no_supplier_distribution():
    g = torch.Generator().manual_seed(5)
    z = torch.randn(3, 17, *HM, generator=g, dtype=torch.float64) - 2.0
    z[0, 0] = -torch.rand(HM, generator=g, dtype=torch.float64) - 0.1  # an all-negative map
    out = T.MaxAnchor(1.0)(z)
    assert torch.allclose(out.amax(dim=(-2, -1)), torch.ones(3, 17, dtype=torch.float64),
                          atol=1e-12)
    assert bool((out.flatten(-2) > 0).any(-1).all())  # every map keeps a positive pixel
    assert T.dead_fraction(z.numpy()) > 0 and T.dead_fraction(out.numpy()) == 0.0
    # scale invariance of Eq. 3: any map with a positive pixel, scaled to max 1, is its own anchor
    pos = torch.rand(2, 4, *HM, generator=g, dtype=torch.float64) - 0.5
    scaled = pos / pos.amax(dim=(-2, -1), keepdim=True)
    assert torch.allclose(_suppliers(T.MaxAnchor(1.0)(scaled)), _suppliers(pos), atol=1e-12)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError):
            T.MaxAnchor(bad)
    with pytest.raises(ValueError):
        T.MaxAnchor()(torch.zeros(5))


def test_dead_fraction():
    maps = np.zeros((4, *HM))
    maps[1, 3, 2] = 1e-9
    maps[2] -= 1.0
    maps[3, 0, 0] = 2.0
    assert T.dead_fraction(maps) == 0.5 and np.isnan(T.dead_fraction(np.zeros((0, *HM))))
    with pytest.raises(ValueError):
        T.dead_fraction(np.ones(3))


def test_emd_loss_pushes_the_level_down_even_for_a_centred_blob():
    # the mechanism behind the collapse: d loss / d (uniform shift of the map) > 0
    yy, xx = torch.meshgrid(torch.arange(HM[0], dtype=torch.float64),
                            torch.arange(HM[1], dtype=torch.float64), indexing="ij")
    kp = torch.tensor([[[5.3, 7.6]]], dtype=torch.float64)
    blob = torch.exp(-((xx - 5.3) ** 2 + (yy - 7.6) ** 2) / 2.0)
    for background in (0.0, 0.1):
        h = (blob + background)[None, None].clone().requires_grad_(True)
        emd_loss(h, kp, torch.ones(1, 1)).backward()
        assert float(h.grad.sum()) > 0
    one = torch.full((1, 1, *HM), -1.0, dtype=torch.float64)
    one[0, 0, 1, 1] = 0.5  # a single positive pixel, far from the keypoint: no gradient at all
    one.requires_grad_(True)
    emd_loss(one, kp, torch.ones(1, 1)).backward()
    assert float(one.grad.abs().max()) == 0.0


@pytest.mark.parametrize("max_anchor", ["auto", None])
def test_short_emd_training_collapses_only_without_the_max_anchor(max_anchor):
    """Seeded 24-step EMD training on 16 toy crops: the plain head's maps go ReLU-dead, the
    default (max-anchored) recipe keeps every map alive and lowers the loss."""
    ds = _Toy(16)
    model, hist = T.train_heatmap_model("emd", ds, max_steps=24, batch_size=8, seed=0,
                                        max_anchor=max_anchor)
    dead = T.dead_fraction(T.predict_heatmaps(model, ds, batch_size=16)["heatmaps"])
    if max_anchor is None:
        assert dead > 0.5
    else:
        assert dead == 0.0 and hist.final_loss(4) < 0.97 * hist.losses[0]


def test_build_heatmap_model_anchor_choices():
    assert isinstance(T.build_heatmap_model("emd").head[1], T.MaxAnchor)
    assert not isinstance(T.build_heatmap_model("mse").head, torch.nn.Sequential)
    assert not isinstance(T.build_heatmap_model("emd", max_anchor=None).head, torch.nn.Sequential)
    assert T.build_heatmap_model("mse", max_anchor=2.0).head[1].value == 2.0
    for bad in ({"loss": "l1"}, {"loss": "emd", "max_anchor": "max"}, {"loss": "emd", "max_anchor": 0}):
        with pytest.raises(ValueError):
            T.build_heatmap_model(**bad)


def test_level_gradient_probe_and_its_counter_case():
    probe = T.level_gradient_probe()
    assert probe["holds"] and all(g > 0 for g in probe["dL_dlevel"].values())
    assert probe["single_pixel_max_abs_grad"] == 0.0
    # blobs that do not sit on the keypoint: lowering the level raises the loss
    off = T.level_gradient_probe(blob_offset=(4.0, 5.0))
    assert not off["holds"] and all(g < 0 for g in off["dL_dlevel"].values())
    # σ = 1 without background: a kink (the far tail leaves the support when lowered); autograd
    # gives the upward derivative, the probe the downward slope it is about, checked here by hand
    key = "sigma=1.0, background=0.0"
    assert probe["dL_dlevel_autograd"][key] > 5 * probe["dL_dlevel"][key]
    yy, xx = np.mgrid[0:16, 0:12].astype(np.float64)
    blob = torch.as_tensor(np.exp(-((xx - 5.3) ** 2 + (yy - 7.6) ** 2) / 2.0))[None, None]
    kp, vis = torch.tensor([[[5.3, 7.6]]], dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64)
    for step in (1e-3, 1e-2):
        assert float(emd_loss(blob - step, kp, vis, tol=1e-12)) < float(emd_loss(blob, kp, vis, tol=1e-12))


def test_compactness_is_measured_at_the_ground_truth_not_at_the_peak():
    """A 4-pixel map 3.8 px off the joint is perfectly compact around its own peak (the old
    claim's measure scores it 1.0) but carries no mass near the ground truth."""
    maps = np.zeros((1, *HM))
    maps[0, 2:4, 2:4] = 1.0
    kp = np.array([[2.5 + 3.8, 2.5]])
    assert T.peak_compactness(maps)["mass_near_peak"][0] == 1.0
    gt = heatmap_compactness(maps, kp, radius=1.5)
    assert gt["mass_near_gt"][0] == 0.0 and gt["rms_radius_to_gt"][0] == pytest.approx(3.8, abs=0.5)
    on = heatmap_compactness(maps, np.array([[2.5, 2.5]]), radius=1.5)
    assert on["mass_near_gt"][0] == 1.0


class _Run:
    def __init__(self, recipe, seed, metrics, preset="default", still_rising=False):
        self.recipe, self.seed, self.metrics, self.preset, self.data = recipe, seed, metrics, preset, "synth"
        self.config = {"geometry": {"input_size": [64, 48], "heatmap_size": [16, 12]}}
        ap = metrics["generated val"]["AP"]
        late = ap * (0.7 if still_rising else 0.995)  # AP at 80 % of training
        self.history = {"val": [{"step": 250.0, "AP": ap * 0.5}, {"step": 500.0, "AP": late},
                                {"step": 625.0, "AP": ap}], "step_times": [0.1] * 625}


class _Table:
    """The parts of a compare() table the verdict functions read."""

    def __init__(self, values, preset="default", rising=()):
        self.results = [_Run(r, s, {"generated val": {m: v[s] for m, v in per.items()}}, preset, r in rising)
                        for r, per in values.items() for s in range(3)]
        self.recipes = list(values)

    def values(self, recipe, metric, set_name="generated val"):
        return [r.metrics[set_name][metric] for r in self.results if r.recipe == recipe]


def test_emd_vs_mse_verdict_floor_agreement_and_fast():
    strong = {"mse": {"AP": [0.50, 0.51, 0.52], "EPE_crop": [5.0, 5.1, 5.05]},
              "emd": {"AP": [0.56, 0.57, 0.58], "EPE_crop": [4.5, 4.6, 4.55]}}
    assert T.emd_vs_mse_verdict(_Table(strong)).verdict == "reproduced"
    fast = T.emd_vs_mse_verdict(_Table(strong, preset="fast"))
    assert fast.verdict == "inconclusive" and fast.reason.count("smoke test") == 1, fast.reason
    # the same gaps over an untrained baseline are no finding
    weak = {"mse": {"AP": [0.02, 0.03, 0.025], "EPE_crop": [5.0, 5.1, 5.05]},
            "emd": {"AP": [0.06, 0.07, 0.065], "EPE_crop": [4.5, 4.6, 4.55]}}
    v = T.emd_vs_mse_verdict(_Table(weak))
    assert v.verdict == "inconclusive" and "baseline too weak" in v.reason
    # AP better, EPE worse: the metrics disagree
    split = {"mse": {"AP": [0.50, 0.51, 0.52], "EPE_crop": [5.0, 5.1, 5.05]},
             "emd": {"AP": [0.56, 0.57, 0.58], "EPE_crop": [5.6, 5.7, 5.65]}}
    assert "disagree" in T.emd_vs_mse_verdict(_Table(split)).reason
    # EMD still rising at the end of training: no finding, whichever way the numbers point
    v = T.emd_vs_mse_verdict(_Table(strong, rising=("emd",)))
    assert v.verdict == "inconclusive" and "emd not converged" in v.reason


def test_compactness_verdict_dead_maps_and_direction():
    table = _Table({"mse": {"AP": [0.5, 0.5, 0.5]}, "emd": {"AP": [0.5, 0.5, 0.5]}})
    good = {"emd": {"pixels_above_truth": [1.0, 1.5, 1.2], "dead_fraction": [0.0, 0.0, 0.0]},
            "mse": {"pixels_above_truth": [6.0, 6.5, 5.8], "dead_fraction": [0.0, 0.0, 0.0]}}
    assert T.compactness_verdict(table, good).verdict == "reproduced"
    dead = {**good, "emd": {**good["emd"], "dead_fraction": [0.9, 0.8, 1.0]}}
    assert T.compactness_verdict(table, dead).verdict == "inconclusive"
    flipped = {"emd": good["mse"], "mse": good["emd"]}
    assert T.compactness_verdict(table, flipped).verdict == "not reproduced"


def test_compactness_verdict_ignores_the_sharpness_of_the_target():
    """Issue #26's counter-case: MSE maps raised to the 8th power keep their keypoints but win on
    mass_near_gt; the verdict reads pixels_above_truth, which they leave unchanged, so giving the
    sharpened maps' mass_near_gt cannot move it."""
    table = _Table({"mse": {"AP": [0.5, 0.5, 0.5]}, "emd": {"AP": [0.5, 0.5, 0.5]}})
    same = {"emd": {"pixels_above_truth": [2.0, 2.1, 1.9], "mass_near_gt": [0.45, 0.44, 0.46],
                    "dead_fraction": [0.0] * 3},
            "mse": {"pixels_above_truth": [2.0, 1.9, 2.1], "mass_near_gt": [0.25, 0.24, 0.26],
                    "dead_fraction": [0.0] * 3}}
    sharpened = {**same, "mse": {**same["mse"], "mass_near_gt": [0.52, 0.51, 0.52]}}
    assert T.compactness_verdict(table, same).verdict == T.compactness_verdict(table, sharpened).verdict
    assert T.compactness_verdict(table, same).verdict != "reproduced"


def test_emd_vs_mse_at_default_with_the_issues_curve_reads_not_converged():
    """Issue #26 item 4: EMD still improving at step 625 (val AP 0.030 -> 0.118 -> 0.136) and
    below MSE: "not converged", never "not reproduced"."""
    from fake_tables import FakeTable

    def curve(recipe, ap):
        if recipe == "emd":
            return [(208, 0.030), (417, 0.118), (625, ap)]
        return [(208, 0.40), (417, 0.54), (625, ap)]

    aps = {"mse": [0.543, 0.55, 0.54], "emd": [0.136, 0.14, 0.13]}
    table = FakeTable(aps, curve=curve)
    for run in table.results:
        run.metrics["generated val"]["EPE_crop"] = 5.0 if run.recipe == "mse" else 11.0
    v = T.emd_vs_mse_verdict(table)
    assert v.verdict == "inconclusive" and "emd not converged" in v.reason, v.reason
    assert v.summary["AP"]["verdict"] == "inconclusive"  # not "not reproduced", whatever the numbers
    # an EMD that has learnt (above the floor): still rising -> not converged; converged -> a finding
    learnt = {"mse": [0.543, 0.55, 0.54], "emd": [0.40, 0.41, 0.395]}

    def with_epe(table):
        for i, run in enumerate(table.results):
            run.metrics["generated val"]["EPE_crop"] = (5.0 if run.recipe == "mse" else 8.0) + 0.05 * i
        return table

    rising = with_epe(FakeTable(learnt, curve=lambda r, ap: [(208, ap * 0.3), (417, ap * 0.8), (625, ap)]))
    v = T.emd_vs_mse_verdict(rising)
    assert v.verdict == "inconclusive" and "not converged" in v.reason, v.reason
    flat = with_epe(FakeTable(learnt, curve=lambda r, ap: [(208, ap * 0.9), (500, ap * 0.998), (625, ap)]))
    assert T.emd_vs_mse_verdict(flat).verdict == "not reproduced"


def test_clipping_rows_show_how_often_each_recipe_was_clipped():
    """Issue #26 item 7: the same clip of 1.0 acts at every EMD step and never on MSE."""
    class Run:
        def __init__(self, recipe, norms):
            self.recipe, self.history = recipe, {"losses": [1.0] * len(norms), "grad_norms": norms}

        def training_history(self):
            from poselab.train.history import History
            return History.from_dict(self.history)

    class Table:
        recipes = ["mse", "emd"]
        results = [Run("mse", [0.004, 0.006, 0.005]), Run("mse", [0.005, 0.005]), Run("emd", [9.9, 12.0, 0.5]),
                   Run("emd", [9.0, 8.0])]

    rows = {r["recipe"]: r for r in T.clipping_rows(Table())}
    assert rows["mse"]["grad_clip"] == rows["emd"]["grad_clip"] == 1.0
    assert rows["mse"]["share of steps clipped"] == 0.0 and rows["mse"]["steps"] == 5
    assert rows["emd"]["share of steps clipped"] == pytest.approx(0.8)
    assert rows["emd"]["median gradient norm"] == 9.0 and rows["emd"]["largest gradient norm"] == 12.0
    sentence = T.clipping_sentence(list(rows.values()))
    assert "mse, emd clip the global gradient norm at 1" in sentence, sentence
    assert "emd on 80% of its 5 steps" in sentence and "mse on 0% of its 5 steps" in sentence, sentence
    rows["mse"]["grad_clip"] = None  # a recipe without clipping is named as such
    assert "mse are not clipped" in T.clipping_sentence(list(rows.values()))
    Table.results = [Run("mse", []), Run("emd", [])]  # records without gradient norms
    assert all(r["share of steps clipped"] is None for r in T.clipping_rows(Table()))
    assert "no gradient norms kept" in T.clipping_sentence(T.clipping_rows(Table()))


def test_evaluate_heatmap_model_decodes_at_the_models_own_stride(tmp_path):
    """A stride-2 EMD model (the default preset's 64×48 maps at 128×96 crops) whose maps are the
    exact bilinear dots of each crop: decoded at its own size EPE is 0 and AP 1; the stride-4
    codec of before put every keypoint at about half its coordinates (AP 0.0, EPE ≈ 78 crop px)."""
    from poselab import data as pdata
    from poselab.codecs import FourPixelCodec
    from poselab.data import TopDownDataset
    size, maps = (128, 96), (64, 48)
    src = pdata.default_dataset("val", n_images=40, progress=False)
    sub, root = T.subset_annotations(src, 6, tmp_path / "val6.json")
    ds = TopDownDataset(sub, root, input_size=size, train=False)
    dots = FourPixelCodec(size, maps, target="bilinear_dot")
    table = {ds[i]["image"].numpy().tobytes(): dots.encode(ds[i]["keypoints"][None], ds[i]["visible"][None])["target"][0]
             for i in range(len(ds))}
    first = next(iter(table.values()))

    class Oracle(torch.nn.Module):
        head_type, input_size = "heatmap", size

        def forward(self, images):
            return torch.stack([table.get(im.numpy().tobytes(), first) for im in images])

    assert T.codec_for("emd", size, heatmap_size=maps).heatmap_size == maps
    r = T.evaluate_heatmap_model(Oracle(), "emd", T.make_evaluator(sub, root, size), input_size=size)
    assert r["EPE_crop"] < 1e-3 and r["AP"] > 0.99, (r["AP"], r["EPE_crop"])


# ----------------------------------------------------------------------------- the dot straw man
_GAUSS = {"AP": [0.50, 0.53, 0.49], "EPE_crop": [5.0, 4.8, 5.2]}


def test_gaussian_beats_dot_verdict_counter_cases():
    """``hdm.training.gaussian_beats_dot`` comes out every way: reproduced when MSE-to-Gaussian
    is ahead on AP and EPE; not reproduced when the dot model is ahead; inconclusive when the dot
    model has not learnt (floor on the dot side too) or is still improving (convergence too)."""
    dot = {"AP": [0.40, 0.43, 0.385], "EPE_crop": [7.0, 6.9, 7.3]}
    v = T.gaussian_beats_dot_verdict(_Table({"mse": _GAUSS, "mse_dot": dot}))
    assert v.verdict == "reproduced", v.reason
    assert v.summary["AP"]["paired"] is True  # same seeds on both sides: paired by seed
    flipped = T.gaussian_beats_dot_verdict(_Table({"mse": dot, "mse_dot": _GAUSS}))
    assert flipped.verdict == "not reproduced", flipped.reason
    unlearnt = {"AP": [0.20, 0.25, 0.22], "EPE_crop": [9.0, 9.5, 9.2]}
    v = T.gaussian_beats_dot_verdict(_Table({"mse": _GAUSS, "mse_dot": unlearnt}))
    assert v.verdict == "inconclusive" and "mse_dot" in v.reason and "floor" in v.reason, v.reason
    v = T.gaussian_beats_dot_verdict(_Table({"mse": _GAUSS, "mse_dot": dot}, rising=("mse_dot",)))
    assert v.verdict == "inconclusive" and "mse_dot not converged" in v.reason, v.reason
    # a difference below the minimum effect (AP 0.0085) is no finding either way it points
    close = {"AP": [a - 0.002 for a in _GAUSS["AP"]], "EPE_crop": [e + 0.01 for e in _GAUSS["EPE_crop"]]}
    assert T.gaussian_beats_dot_verdict(_Table({"mse": _GAUSS, "mse_dot": close})).verdict != "reproduced"


def test_gaussian_beats_dot_pairs_over_the_common_seeds():
    """Seed-to-seed spread shared by both recipes cancels when paired (reproduced); a seed only
    one side trained is left out of the pairs (named as unpaired), not allowed to break them;
    with no seed in common there is nothing to pair: inconclusive, saying so."""
    dot = {"AP": [a - d for a, d in zip((0.45, 0.60, 0.38), (0.020, 0.022, 0.019))],
           "EPE_crop": [e + d for e, d in zip((5.5, 4.0, 6.5), (0.30, 0.32, 0.29))]}
    gauss = {"AP": [0.45, 0.60, 0.38], "EPE_crop": [5.5, 4.0, 6.5]}
    table = _Table({"mse": gauss, "mse_dot": dot})
    assert T.gaussian_beats_dot_verdict(table).verdict == "reproduced"
    extra = _Table({"mse": gauss, "mse_dot": dot})
    extra.results.append(_Run("mse", 3, {"generated val": {"AP": 0.30, "EPE_crop": 7.5}}, "default", False))
    v = T.gaussian_beats_dot_verdict(extra)       # mse seed 3 alone: unpaired, left out
    assert v.verdict == "reproduced", v.reason
    assert v.summary["AP"]["paired"] and v.summary["AP"]["seeds"] == 3
    assert v.evidence["paired_seeds"] == [0, 1, 2] and v.evidence["unpaired"] == {"mse": [3]}
    for i, run in enumerate(r for r in table.results if r.recipe == "mse_dot"):
        run.seed = 10 + i
    v = T.gaussian_beats_dot_verdict(table)
    assert v.verdict == "inconclusive" and "no seed was trained by both" in v.reason, v.reason


def test_recorded_gaussian_beats_dot_applies_convergence_to_the_dot_side(tmp_path):
    """On the committed full-preset replication (5 seeds each): the comparison alone favours the
    Gaussian, but mse_dot is still improving (seed 1 gains most), so the rule says inconclusive;
    without records the verdict says how to make them and invents nothing."""
    rec = T.recorded_gaussian_beats_dot()
    assert rec["recorded"] and rec["seeds"] == [0, 1, 2, 3, 4]
    assert rec["verdict"] == "inconclusive" and "mse_dot not converged" in rec["reason"], rec["reason"]
    assert "comparison alone said: reproduced" in rec["reason"]
    none = T.recorded_gaussian_beats_dot(root=tmp_path)
    assert none["recorded"] is False and "poselab replicate" in none["reason"]
    sentence = T.gaussian_beats_dot_sentence(claims.not_testable("x"), rec)
    assert "0.139" in sentence and "higher by 0.394" in sentence and "19.2" in sentence, sentence


def test_gaussian_beats_dot_live_without_dot_runs_is_not_testable(tmp_path):
    """A live table without mse_dot: "inconclusive" (not testable), its reason measured on the
    records — below the floor at the default preset's steps, at or above it at full's 5000."""
    table = _Table({"mse": _GAUSS, "emd": _GAUSS})
    v = T.gaussian_beats_dot_live(table, "default")
    assert v.verdict == "inconclusive" and v.reason.startswith("not testable here")
    assert "below the AP floor" in v.reason, v.reason
    assert "at or above the AP floor" in T.dot_not_trained_reason("full")
    assert "no recorded" in T.dot_not_trained_reason("default", root=tmp_path)
    with_dot = _Table({"mse": _GAUSS, "mse_dot": {"AP": [0.40, 0.43, 0.385], "EPE_crop": [7.0, 6.9, 7.3]}})
    assert T.gaussian_beats_dot_live(with_dot, "default").verdict == "reproduced"


def test_sigma_tuning_is_not_testable_and_says_what_is_recorded(tmp_path):
    """The σ-tuning claim counts chapter 06's recorded σ-sweep runs (a folder with one σ = 2 and one
    σ = 3 run counts exactly those);
    with three seeds of every σ recorded the count moves and the shortfall note goes, but a record
    still keeps no per-joint errors, so the verdict stays inconclusive — never reproduced."""
    src = json.loads(Path("results/replications/06_bcir/mse__full__seed0.json").read_text())
    folder = tmp_path / "06_bcir"
    folder.mkdir()
    (folder / "mse__full__seed0.json").write_text(json.dumps(src))
    (folder / "mse_sigma3__full__seed5.json").write_text(json.dumps({**src, "recipe": "mse_sigma3", "seed": 5}))
    v = T.sigma_tuning_verdict(root=tmp_path)
    assert v.verdict == "inconclusive" and v.reason.startswith("not testable here")
    assert v.summary["recorded_runs_per_sigma"] == {"0.5": 0, "1": 0, "2": 1, "3": 1}
    assert "fewer than 3" in v.reason
    repo = T.sigma_tuning_verdict()  # the committed records: whatever they hold, never "reproduced"
    assert repo.verdict == "inconclusive" and repo.reason.startswith("not testable here")
    (folder / "mse_sigma3__full__seed5.json").unlink()
    for name in ("mse_sigma0_5", "mse_sigma1", "mse", "mse_sigma3"):
        for seed in range(3):
            (folder / f"{name}__full__seed{seed}.json").write_text(json.dumps({**src, "recipe": name, "seed": seed}))
    full = T.sigma_tuning_verdict(root=tmp_path)
    assert full.summary["recorded_runs_per_sigma"] == {"0.5": 3, "1": 3, "2": 3, "3": 3}
    assert "fewer than" not in full.reason and "no per-joint errors" in full.reason
    assert full.verdict == "inconclusive"


# ----------------------------------------------------------------------------- consistency during training
def test_training_consistency_against_hand_counts_and_bad_inputs():
    """drop_share = total fall / total movement, counted by hand on a small curve; the order of
    the validations does not matter; a monotone curve scores 0, a flat one NaN."""
    m = T.training_consistency([0, 1, 2, 3, 4], [0.1, 0.3, 0.25, 0.4, 0.3])
    # moves: +0.2, -0.05, +0.15, -0.1 -> falls 0.15 of 0.5
    assert m["drop_share"] == pytest.approx(0.3) and m["improving_share"] == 0.5
    assert m["largest_drop"] == pytest.approx(0.1) and m["net_gain"] == pytest.approx(0.2) and m["intervals"] == 4
    shuffled = T.training_consistency([3, 0, 4, 2, 1], [0.4, 0.1, 0.3, 0.25, 0.3])
    assert shuffled == pytest.approx(m)
    assert T.training_consistency([0, 1, 2], [0.1, 0.2, 0.3])["drop_share"] == 0.0
    assert math.isnan(T.training_consistency([0, 1], [0.2, 0.2])["drop_share"])
    for steps, values, word in (([0], [0.1], "at least 2"), ([0, 1], [0.1, float("nan")], "finite"),
                                ([0, 0], [0.1, 0.2], "same step"), ([0, 1, 2], [0.1, 0.2], "one length")):
        with pytest.raises(ValueError, match=word):
            T.training_consistency(steps, values)


class _CurveRun:
    def __init__(self, recipe, seed, curve, preset, steps):
        self.recipe, self.seed, self.preset, self.data = recipe, seed, preset, "synth"
        self.metrics = {"generated val": {"AP": curve[-1]}}
        self.config = {"geometry": {"input_size": [128, 96], "heatmap_size": [64, 48]}}
        self.history = {"val": [{"step": float(s), "AP": float(v)} for s, v in zip(steps, curve)],
                        "step_times": [0.1] * int(steps[-1])}


class _CurveTable:
    """A compare() table from validation curves: ``{recipe: [AP curve per seed]}``."""

    def __init__(self, curves, preset="full", every=500):
        self.results = [_CurveRun(r, s, c, preset, [every * (i + 1) for i in range(len(c))])
                        for r, per in curves.items() for s, c in enumerate(per)]
        self.recipes = list(curves)

    def values(self, recipe, metric, set_name="generated val"):
        return [r.metrics[set_name][metric] for r in self.results if r.recipe == recipe]


def _zigzag(seed, drop=0.04):  # rises 0.1 then falls `drop`, flat over the last fifth
    d = drop + 0.01 * seed
    return [0.30, 0.45, 0.45 - d, 0.58, 0.58 - d, 0.66, 0.66 - d, 0.70, 0.70 - d / 4, 0.70]


def _monotone(seed):
    return [0.30 + 0.002 * seed + x for x in (0.0, 0.10, 0.16, 0.20, 0.23, 0.26, 0.28, 0.30, 0.305, 0.31)]


def _nearly_monotone(seed):  # one small late dip, its size varying by seed (like the records)
    c = _monotone(seed)
    c[8] = c[7] - 0.001 * seed
    return c


def test_consistency_verdict_comes_out_every_way():
    """Reproduced when MSE's curves fall back (a quarter of their movement) and EMD's never do;
    not reproduced when both rise steadily (the recorded runs' case) or MSE is the steady one;
    inconclusive when EMD is still climbing (it never fell only because it is slow), when a run
    validated too rarely, when MSE has not learnt, and on a fast run."""
    seeds = range(5)
    v = T.consistency_verdict(_CurveTable({"mse": [_zigzag(s) for s in seeds], "emd": [_monotone(s) for s in seeds]}))
    assert v.verdict == "reproduced", v.reason
    assert v.summary["paired"] is True and "paper_effect" not in v.reason
    steady = T.consistency_verdict(_CurveTable({"mse": [_nearly_monotone(s) for s in seeds],
                                                "emd": [_nearly_monotone(s) for s in (2, 0, 4, 1, 3)]}))
    assert steady.verdict == "not reproduced" and "minimum effect" in steady.reason, steady.reason
    other_way = T.consistency_verdict(_CurveTable({"mse": [_monotone(s) for s in seeds],
                                                   "emd": [_zigzag(s) for s in seeds]}))
    assert other_way.verdict == "not reproduced", other_way.reason
    climbing = [[0.05 * (i + 1) + 0.001 * s for i in range(10)] for s in seeds]
    v = T.consistency_verdict(_CurveTable({"mse": [_zigzag(s) for s in seeds], "emd": climbing}))
    assert v.verdict == "inconclusive" and "emd not converged" in v.reason, v.reason
    short = T.consistency_verdict(_CurveTable({"mse": [_zigzag(s)[-3:] for s in seeds],
                                               "emd": [_monotone(s)[-3:] for s in seeds]}))
    assert short.verdict == "inconclusive" and "validated 3 times" in short.reason, short.reason
    weak = [[x - 0.5 for x in _zigzag(s)] for s in seeds]
    v = T.consistency_verdict(_CurveTable({"mse": weak, "emd": [_monotone(s) for s in seeds]}))
    assert v.verdict == "inconclusive" and "baseline too weak" in v.reason, v.reason
    fast = T.consistency_verdict(_CurveTable({"mse": [_zigzag(s) for s in seeds], "emd": [_monotone(s) for s in seeds]},
                                             preset="fast"))
    assert fast.verdict == "inconclusive"


def test_recorded_consistency_on_the_committed_replication(tmp_path):
    """The committed 5-seed full replication: both recipes' AP rises at nearly every validation,
    so the difference in drop_share is far below the minimum effect: not reproduced (both sides
    learnt and converged). No records: says how to make them."""
    rec = T.recorded_consistency()
    assert rec["recorded"] and rec["seeds"] == [0, 1, 2, 3, 4]
    assert rec["verdict"] == "not reproduced" and "minimum effect 0.05" in rec["reason"], rec["reason"]
    assert T.recorded_consistency(root=tmp_path)["recorded"] is False


# ----------------------------------------------------------------------------- Theorem 1 during training
def _theorem1_rows(preds, gau, dot):
    from poselab.chapters.hdm.analysis import theorem1_terms
    return [{"step": i, **{k: float(v) for k, v in theorem1_terms(p, gau, dot).items()}} for i, p in enumerate(preds)]


def _gau_and_dot(n=6, size=(64, 48), seed=0):
    from poselab.chapters.hdm.analysis import dot_map, gaussian_map
    rng = np.random.default_rng(seed)
    kp = np.round(rng.uniform([4, 4], [size[1] - 5, size[0] - 5], size=(n, 17, 2)))
    return gaussian_map(kp, size, 2.0), dot_map(kp, size)


def test_theorem1_summary_sees_the_consequence_only_when_it_happens():
    """At the papers' 64×48: predictions growing toward the Gaussian (t·H_Gau, t ↑ 1) lower R_Gau
    and raise R_dot (towards C) — the consequence is seen; predictions growing toward the dot
    (t·H_dot) lower both — the counter-case, where it is not; identity residual ~ 0 in both."""
    gau, dot = _gau_and_dot()
    ts = np.linspace(0.0, 1.0, 6)
    toward_gau = T.theorem1_training_summary(_theorem1_rows([t * gau for t in ts], gau, dot))
    assert toward_gau["consequence_seen"] and toward_gau["dot_rose_while_gau_fell"] >= 4
    assert toward_gau["end"]["R_dot"] == pytest.approx(toward_gau["C"], rel=1e-12)
    assert toward_gau["max_abs_corrected_residual"] < 1e-9
    toward_dot = T.theorem1_training_summary(_theorem1_rows([t * dot for t in ts], gau, dot))
    assert toward_dot["gau_fell"] == 5 and not toward_dot["consequence_seen"]
    assert toward_dot["dot_rose_while_gau_fell"] == 0
    with pytest.raises(ValueError, match="at least 2"):
        T.theorem1_training_summary(_theorem1_rows([gau], gau, dot))
    bad = _theorem1_rows([gau, gau], gau, dot)
    bad[1]["R_dot"] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        T.theorem1_training_summary(bad)


def test_theorem1_tracker_matches_a_direct_computation_and_leaves_training_unchanged():
    """The tracker's last row equals Theorem 1's terms computed directly from the trained model
    (float32 forward, float64 terms, joints the probe does not hold zeroed), and training with it
    gives bit-identical weights to training without it."""
    from poselab.chapters.hdm.analysis import theorem1_terms

    ds = _Toy()
    batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
    batch["visible"][0, 3] = 0  # an unlabelled joint: held by neither target
    probe = T.theorem1_probe(batch["image"], batch["keypoints"], batch["visible"], INPUT, HM)
    assert not probe["mask"][0, 3] and probe["gau"][0, 3].max() == 0 and probe["dot"][0, 3].max() == 0
    tracker = T.Theorem1Tracker(probe, evaluations=2)
    tracked, _ = T.train_heatmap_model("mse", ds, max_steps=4, batch_size=4, seed=1, callbacks=[tracker])
    plain, _ = T.train_heatmap_model("mse", ds, max_steps=4, batch_size=4, seed=1)
    for a, b in zip(tracked.state_dict().values(), plain.state_dict().values()):
        assert torch.equal(a, b)
    assert [r["step"] for r in tracker.rows] == [0, 2, 4]
    with torch.no_grad():
        pred = tracked.eval()(batch["image"]).double().numpy() * probe["mask"][..., None, None]
    direct = theorem1_terms(pred, probe["gau"], probe["dot"])
    assert tracker.rows[-1]["R_dot"] == pytest.approx(direct["R_dot"], rel=1e-6)
    assert tracker.rows[-1]["R_gau"] == pytest.approx(direct["R_gau"], rel=1e-6)
    with pytest.raises(ValueError, match="evaluations"):
        T.Theorem1Tracker(probe, evaluations=0)
    with pytest.raises(ValueError, match="theorem1_probe"):
        T.Theorem1Tracker({"images": probe["images"]})


def test_sentences_of_section_7_say_what_was_measured():
    """The closing sentences print the measured numbers: the consistency one each seed's
    drop_share and the verdict (or that there are no runs); the Theorem 1 one the counts and
    both risks' ends, with C."""
    seeds = range(5)
    table = _CurveTable({"mse": [_zigzag(s) for s in seeds], "emd": [_monotone(s) for s in seeds]})
    v = T.consistency_verdict(table)
    sentence = T.consistency_sentence(table, v, "constructed")
    assert sentence._repr_markdown_() == sentence and "is reproduced" in sentence
    assert f"{T.consistency_of_runs(table)['mse']['drop_share'][0]:.3f}" in sentence
    assert "no recorded" in T.consistency_sentence(None, {"verdict": "—", "reason": "none"}, "recorded")
    gau, dot = _gau_and_dot()
    rows = _theorem1_rows([t * gau for t in np.linspace(0.0, 1.0, 4)], gau, dot)
    tracked = {"rows": rows, "summary": T.theorem1_training_summary(rows), "validation": [(2, 0.1), (3, 0.2)],
               "recipe": "mse", "seed": 0, "preset": "default", "n_crops": 6}
    s = T.theorem1_training_sentence(tracked)
    assert "R_Gau fell in 3 intervals and R_dot rose in 3 of them" in s, s
    assert f"R_dot = C = {tracked['summary']['C']:.3g}" in s and "0.100 → 0.200" in s


def test_theorem1_along_training_trains_once_then_reads_back(tmp_path, monkeypatch):
    """The tracked run enters the run cache, and re-opening the chapter reads its terms back
    instead of training again (a second call with training forbidden returns the same terms)."""
    monkeypatch.setenv("POSELAB_CACHE_DIR", str(tmp_path))
    first = T.theorem1_along_training("mse", preset="fast", seed=0, device="cpu", n_crops=8, evaluations=2)
    assert first["rows"] and first["preset"] == "fast"

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")
    monkeypatch.setattr(T, "run_recipe", no_training)
    assert T.theorem1_along_training("mse", preset="fast", seed=0, device="cpu", n_crops=8, evaluations=2) == first
    with pytest.raises(AssertionError, match="trained again"):  # another probe is another measurement
        T.theorem1_along_training("mse", preset="fast", seed=0, device="cpu", n_crops=4, evaluations=2)


# ----------------------------------------------------------------------------- hostile inputs (QA)
def _t1_row(step, gau, dot, **over):
    return {"step": step, "R_dot": dot, "R_gau": gau, "E_pred_gau": 0.1, "E_pred_dot": 0.1, "C": 1.0,
            "residual": 0.0, "corrected_residual": 0.0, **over}


def test_theorem1_training_summary_rejects_rows_it_cannot_read():
    with pytest.raises(ValueError, match="lacks"):                 # was KeyError: 'R_dot'
        T.theorem1_training_summary([{"step": 0}, {"step": 1}])
    with pytest.raises(ValueError, match="same step"):            # two runs' rows mixed: was read as one run
        T.theorem1_training_summary([_t1_row(0, 1.0, 1.0), _t1_row(0, 0.5, 2.0)])
    for bad in ({"C": float("nan")}, {"corrected_residual": float("nan")}):  # was a NaN C in the sentence
        with pytest.raises(ValueError, match="finite"):
            T.theorem1_training_summary([_t1_row(0, 1.0, 1.0), _t1_row(1, 0.5, 2.0, **bad)])
    assert T.theorem1_training_summary([_t1_row(0, 1.0, 1.0), _t1_row(1, 0.5, 2.0)])["consequence_seen"]


@pytest.mark.parametrize("n_crops", [0, -1, 2.5, True])
def test_theorem1_along_training_rejects_n_crops_before_training(n_crops):
    with pytest.raises(ValueError, match="n_crops"):               # 0 was an IndexError inside collate
        T.theorem1_along_training(preset="fast", n_crops=n_crops)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_training_consistency_takes_gpu_tensors(dtype):
    want = T.training_consistency([0, 1, 2, 3], [0.125, 0.375, 0.25, 0.5])
    got = T.training_consistency(torch.tensor([0, 1, 2, 3], dtype=dtype), torch.tensor([0.125, 0.375, 0.25, 0.5], dtype=dtype))
    assert got == want and want["drop_share"] == pytest.approx(0.2)


def test_consistency_sentence_on_a_flat_curve_says_so_instead_of_nan():
    table = _CurveTable({"mse": [[0.0] * 10, _zigzag(1)], "emd": [_monotone(0), _monotone(1)]})
    sentence = T.consistency_sentence(table, T.consistency_verdict(table), "constructed")
    assert "nan" not in sentence and "— (flat or unvalidated)" in sentence   # an AP stuck at 0 printed 'nan'


# ----------------------------------------------------------------------------- memory-bounded statistics
class _DeadJoints(torch.nn.Module):
    """A model whose maps of ``joints`` are pushed below 0 (dead), the others left as they are."""

    def __init__(self, base, joints=(0, 1, 2)):
        super().__init__()
        self.base, self.joints = base, list(joints)

    def forward(self, x):
        out = self.base(x).clone()
        out[:, self.joints] = out[:, self.joints] - 1e3
        return out


def _whole_set_statistics(model, dataset, input_size, radius=1.5):
    """Reference: every map of the set predicted first, then each measure over all maps at once
    (what heatmap_statistics did before it measured batch by batch)."""
    from poselab.chapters.hdm.analysis import pixels_above_truth
    from poselab.codecs.heatmap import input_to_heatmap
    pred = T.predict_heatmaps(model, dataset)
    size = pred["heatmaps"].shape[-2:]
    kp = input_to_heatmap(torch.as_tensor(pred["keypoints"]), tuple(input_size), size)
    vis = T.emd_visibility(kp, torch.as_tensor(pred["visible"]), size).numpy()
    used = pred["heatmaps"][vis > 0]
    gt = heatmap_compactness(pred["heatmaps"], kp.numpy(), vis, radius=radius)
    sharp = heatmap_compactness(np.maximum(pred["heatmaps"], 0.0) ** T.SHARPENING, kp.numpy(), vis, radius=radius)
    pc = T.peak_compactness(used, radius=radius)
    return {"mass_near_gt": gt["mass_near_gt"].mean(), "rms_radius_to_gt": gt["rms_radius_to_gt"].mean(),
            "mass_near_peak": pc["mass_near_peak"].mean(), "spread": pc["spread"].mean(),
            "dead_fraction": T.dead_fraction(used),
            "pixels_above_truth": pixels_above_truth(pred["heatmaps"], kp.numpy(), vis).mean(),
            "mass_near_gt_sharpened": sharp["mass_near_gt"].mean()}


@pytest.mark.parametrize("recipe", ["mse", "emd"])
def test_heatmap_statistics_batch_by_batch_equal_the_whole_set_at_once(recipe):
    """Issue 31: the compactness cell held float64 copies of a whole evaluation set (~1 GB at the
    default preset); measured batch by batch the numbers must not move, bit for bit — at the
    default preset's 64×48 maps, channels-last models as the runner trains them, a short last
    batch, and dead maps (whose share enters the result)."""
    from poselab.experiments import MODELS, Geometry, get_preset, get_recipe, resolve_run_data
    p = get_preset("default")
    _, sets = resolve_run_data("synth", p)
    full = T.make_evaluator(sets["generated val"], None, p.input_size).dataset(p.input_size)
    crops = [full[i] for i in range(37)]
    base = MODELS[get_recipe(recipe).model](get_recipe(recipe), Geometry(p.input_size, p.heatmap_size), 0)
    model = _DeadJoints(base.to(memory_format=torch.channels_last))
    want = _whole_set_statistics(model, crops, p.input_size)
    got = T.heatmap_statistics(model, crops, p.input_size, batch_size=8)
    assert got == {k: float(v) for k, v in want.items()}
    assert got["dead_fraction"] > 0.1 and T.predict_heatmaps(model, crops[:1])["heatmaps"].shape[-2:] == (64, 48)
    # the batch size of the prediction (64, as before) is the default
    assert T.heatmap_statistics(model, crops, p.input_size) == got
    with pytest.raises(ValueError, match="no crops"):
        T.heatmap_statistics(model, [], p.input_size)


def test_first_crops_are_the_preloaded_sets_first_crops():
    """theorem1_along_training reads its probe crops without preloading the whole set (issue 31);
    they must be the crops it read before, array for array."""
    from poselab.experiments import get_preset, resolve_run_data
    p = get_preset("fast")
    _, sets = resolve_run_data("synth", p)
    whole = T.make_evaluator(sets["generated val"], None, p.input_size).dataset(p.input_size)
    got = T.first_crops(sets["generated val"], p.input_size, 9)
    assert len(got) == 9
    for i, crop in enumerate(got):
        ref = whole[i]
        assert set(crop) == set(ref)
        for k in ("image", "keypoints", "visible"):
            assert np.array_equal(np.asarray(crop[k]), np.asarray(ref[k])), k
    assert len(T.first_crops(sets["generated val"], p.input_size, 10 ** 6)) == len(whole)
