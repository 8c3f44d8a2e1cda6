"""Chapter 06, §4.3 on trained models: the best-fit σ of a predicted map in a window around its
peak (App. G), §4.3's prediction for a detection map given the label σ and σ_true, and Fig. 5(d)
(AP against the training σ) judged on replication records — each shown failing on a counter-case."""
import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from poselab.chapters.bcir import analysis as B
from poselab.chapters.bcir import figures as F
from poselab.experiments.replicate import recorded_table, recorded_verdict

SIZE = (64, 48)
YS, XS = np.mgrid[0:SIZE[0], 0:SIZE[1]].astype(np.float64)
RECORD = Path(__file__).resolve().parents[1] / "results" / "replications" / "06_bcir" / "mse__full__seed0.json"


def gaussian(cx, cy, sigma, amplitude=1.0, background=0.0):
    return amplitude * np.exp(-((XS - cx) ** 2 + (YS - cy) ** 2) / (2 * sigma ** 2)) + background


# --------------------------------------------------------------------------- the fit
CASES = [(20.3, 30.7, 2.0, 1.0, 0.0), (10.0, 10.0, 1.0, 0.7, 0.0), (24.4, 40.2, 3.0, 1.0, 0.05),
         (1.2, 2.6, 2.0, 1.0, 0.0), (30.0, 50.0, 5.0, 0.3, 0.01), (20.0, 30.0, 0.5, 1.0, 0.0),
         (46.6, 62.9, 2.5, 2.0, -0.02)]


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-6), (np.float32, 1e-4)])
@pytest.mark.parametrize("s", [4, 8])
def test_fit_recovers_sigma_and_centre_at_64x48(dtype, tol, s):
    """Sub-pixel centres, maps at the border (the window clipped), a background, σ 0.5 to 5."""
    maps = np.stack([gaussian(*c) for c in CASES]).astype(dtype)
    fit = B.fit_peak_sigma(maps, s)
    want = np.array([c[2] for c in CASES])
    assert np.abs(fit["sigma"] - want).max() <= tol * want.max()
    assert np.abs(fit["centre"] - np.array([c[:2] for c in CASES])).max() <= 10 * tol
    assert not fit["at_bound"].any()
    assert fit["sigma"].dtype == np.float64


@pytest.mark.parametrize("dtype, tol", [(torch.float16, 2e-3), (torch.bfloat16, 2e-2), (torch.float32, 1e-4)])
def test_fit_takes_half_precision_torch_maps(dtype, tol):
    """A GPU's autocast gives float16 / bfloat16 maps: the fit takes the tensor as it is."""
    maps = torch.from_numpy(np.stack([gaussian(*c) for c in CASES[:4]])).to(dtype)
    fit = B.fit_peak_sigma(maps, 4)
    assert np.abs(fit["sigma"] / np.array([c[2] for c in CASES[:4]]) - 1).max() <= tol


def test_fit_is_unbiased_under_noise_and_one_map_works():
    rng = np.random.default_rng(0)
    maps = gaussian(20.3, 30.7, 2.0)[None] + rng.normal(0, 0.02, (300, *SIZE))
    sig = B.fit_peak_sigma(maps, 4)["sigma"]
    assert abs(sig.mean() - 2.0) < 0.01 and sig.std() < 0.05
    assert B.fit_peak_sigma(gaussian(20.0, 20.0, 1.5), 4)["sigma"].shape == (1,)


def test_the_window_matters_counter_case():
    """A σ = 2 blob on a broad σ = 10 bump: inside the s = 4 window the bump is nearly flat and
    the fit finds the blob; a fit that ignores the window (the whole map) does not."""
    m = gaussian(20.0, 20.0, 2.0) + gaussian(24.0, 30.0, 10.0, 0.3)
    windowed = B.fit_peak_sigma(m, 4)["sigma"][0]
    whole = B.fit_peak_sigma(m, 64, sigma_range=(0.1, 40))["sigma"][0]
    assert abs(windowed - 2.0) < 0.1
    assert abs(whole - 2.0) > 0.5
    assert abs(B.fit_peak_sigma(m, 64, background=False, sigma_range=(0.1, 40))["sigma"][0] - 2.0) > 5


def test_fit_bad_input_and_flat_maps():
    with pytest.raises(ValueError, match="finite"):
        B.fit_peak_sigma(np.full((1, 8, 8), np.nan), 2)
    with pytest.raises(ValueError, match="maps must be"):
        B.fit_peak_sigma(np.zeros((2, 3, 4, 5)), 2)
    with pytest.raises(ValueError, match="sigma_range"):
        B.fit_peak_sigma(np.zeros((1, 8, 8)), 2, sigma_range=(2.0, 1.0))
    with pytest.raises(ValueError):
        B.fit_peak_sigma(np.zeros((1, 8, 8)), 0)
    flat = B.fit_peak_sigma(np.zeros((1, *SIZE)), 4)
    assert np.isnan(flat["sigma"][0]) and not flat["at_bound"][0]
    # a single hot pixel: any σ below ~0.15 px fits it exactly (the grid cannot resolve it)
    spike = np.zeros((1, *SIZE))
    spike[0, 30, 20] = 1.0
    fit = B.fit_peak_sigma(spike, 4)
    assert 0.1 <= fit["sigma"][0] < 0.2 and fit["rmse"][0] < 1e-12


# --------------------------------------------------------------------------- §4.3's prediction
def test_predicted_sigma():
    p = B.predicted_sigma(2.0, 1.5, 0.0)
    assert p["sigma_eff"] == pytest.approx(2.5) and p["sigma_star"] == pytest.approx(2.5)
    off = B.predicted_sigma(2.0, 0.0, np.array([0.5, 1.0, 3.0]))
    assert np.all(np.diff(off["sigma_star"]) > 0) and np.all(off["sigma_star"] > 2.0)
    # Eq. 12's minimum, by search, at the effective σ
    assert off["sigma_star"][2] == pytest.approx(B.sigma_star(2.0, 3.0), rel=1e-6)
    with pytest.raises(ValueError, match="label_sigma"):
        B.predicted_sigma(0.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="sigma_true_px"):
        B.predicted_sigma(2.0, -1.0, 0.0)


def _study(easy_sigma, hard_sigma, offsets=(0.5, 0.0), far=0):
    n_e, n_h = len(easy_sigma), len(hard_sigma)
    off = np.array([offsets] * (n_e + n_h), dtype=np.float64)
    off[:far] = (9.0, 0.0)
    return {"sigma": np.array([*easy_sigma, *hard_sigma], dtype=np.float64),
            "split": np.array(["easy"] * n_e + ["hard"] * n_h, dtype=object),
            "window": np.array([4] * n_e + [8] * n_h), "offset": off,
            "sigma_true_px": np.zeros(n_e + n_h), "at_bound": np.zeros(n_e + n_h, dtype=bool)}


def test_rows_and_sentence_both_ways():
    rows = B.peak_sigma_rows(_study([2.0, 2.1, 2.2], [2.6, 2.9, 3.5]), 2.0)
    assert rows["easy"]["best-fit σ, median (px)"] == pytest.approx(2.1)
    assert rows["hard"]["window s"] == 8 and rows["easy"]["RMS offset Δ per axis (px)"] == pytest.approx(0.5 / math.sqrt(2))
    assert rows["easy"]["Eq. 12–14 σ* at Δ"] > rows["easy"]["σ_eff = √(σ_L² + σ_true²)"] == 2.0
    text = B.peak_sigma_sentence(rows, 2.0, 0.0)
    assert "the hard split is wider" in text and "σ_true = 0" in text
    narrower = B.peak_sigma_sentence(B.peak_sigma_rows(_study([2.0, 2.1, 2.2], [1.0, 1.1, 1.2]), 2.0), 2.0, 0.0)
    assert "not wider" in narrower and "below the predicted range" in narrower
    # a peak off the window is another mode: left out of Δ, and counted
    far = B.peak_sigma_rows(_study([2.0, 2.1, 2.2], [2.5], far=1), 2.0)
    assert far["easy"]["peaks off the window"] == pytest.approx(1 / 3)
    assert far["easy"]["RMS offset Δ per axis (px)"] == pytest.approx(0.5 / math.sqrt(2))
    empty = B.peak_sigma_rows(_study([2.0], []), 2.0)
    assert empty["hard"]["joints"] == 0 and "no hard joints" in B.peak_sigma_sentence(empty, 2.0, None)


def test_study_on_generated_people_with_label_noise(tmp_path):
    """A stand-in model draws a σ = 1.5 Gaussian at the same place for every joint; the study
    recovers σ per split, uses App. G's windows, and converts the generator's σ_true to heatmap px."""
    from poselab.data import TopDownDataset, synth
    from poselab.skeleton import OKS_SIGMAS

    ann = synth.generate(tmp_path / "noisy", n_images=6, seed=3, split="val", sigma_true=0.2,
                         occlusion_prob=0.9)
    assert B.annotation_noise(ann) == pytest.approx(0.2)

    class Fixed(torch.nn.Module):
        def forward(self, x):
            ys, xs = torch.meshgrid(torch.arange(16.0), torch.arange(12.0), indexing="ij")
            g = torch.exp(-((xs - 5.3) ** 2 + (ys - 7.6) ** 2) / (2 * 1.5 ** 2))
            return g.expand(x.shape[0], 17, 16, 12).clone()

    st = B.peak_sigma_study(Fixed(), ann, (64, 48), max_persons=None, batch_size=4)
    assert set(st["split"]) == {"easy", "hard"}
    assert np.all(st["window"] == np.where(st["split"] == "hard", 8, 4))
    assert np.all(st["split"] == np.where(st["v"] == 2, "easy", "hard"))
    assert np.abs(st["sigma"] - 1.5).max() < 1e-4
    ds = TopDownDataset(ann, input_size=(64, 48), train=False)
    i = int(np.flatnonzero(st["person"] == 0)[0])
    it = ds[0]
    want = 0.2 * 2 * OKS_SIGMAS[st["joint"][i]] * math.sqrt(float(it["area"])) * 12 / float(it["scale"][0])
    assert st["sigma_true_px"][i] == pytest.approx(want, rel=1e-5)
    assert st["sigma_true_px"].min() > 0
    coco = tmp_path / "coco.json"
    coco.write_text(json.dumps({"info": {"description": "COCO 2017"}, "images": [], "annotations": []}))
    assert B.annotation_noise(coco) is None
    with pytest.raises(ValueError, match="windows"):
        B.peak_sigma_study(Fixed(), ann, (64, 48), windows={"easy": 4})


# --------------------------------------------------------------------------- Fig. 5(d) from records
def _write_records(root, aps):
    """Records made from the committed ``mse`` record: recipe, seed and AP changed (``aps``: recipe
    -> a list of seed 0, 1, ... or a dict seed -> AP; the whole
    validation curve scaled with the AP, so each run converged as that run did)."""
    base = json.loads(RECORD.read_text())
    folder = root / "06_bcir"
    folder.mkdir(parents=True, exist_ok=True)
    final = base["run"]["metrics"]["generated val"]["AP"]
    for recipe, values in aps.items():
        for seed, ap in (values.items() if isinstance(values, dict) else enumerate(values)):
            rec = copy.deepcopy(base)
            rec["recipe"] = rec["run"]["recipe"] = recipe
            rec["seed"] = rec["run"]["seed"] = seed
            rec["run"]["metrics"]["generated val"]["AP"] = ap
            for row in rec["run"]["history"]["val"]:
                row["AP"] = row["AP"] * ap / final
            (folder / f"{recipe}__full__seed{seed}.json").write_text(json.dumps(rec))


def _sweep(ap):
    """Three seeds a σ; the seed-to-seed noise differs between the σs (equal noise would make
    every paired difference the same number, which no test can decide on three seeds)."""
    noise = {0.5: (0.001, -0.002, 0.002), 1.0: (0.002, -0.001, 0.004), 2.0: (0.0, 0.003, -0.003),
             3.0: (-0.002, 0.001, 0.003)}
    return {name: [ap[s] + d for d in noise[s]]
            for s, name in {0.5: "mse_sigma0_5", 1.0: "mse_sigma1", 2.0: "mse", 3.0: "mse_sigma3"}.items()}


def test_recorded_sweep_verdict_both_ways(tmp_path):
    _write_records(tmp_path / "yes", _sweep({0.5: 0.55, 1.0: 0.68, 2.0: 0.74, 3.0: 0.70}))
    _write_records(tmp_path / "no", _sweep({0.5: 0.55, 1.0: 0.80, 2.0: 0.74, 3.0: 0.70}))
    yes = recorded_verdict("06_bcir", B.detection_sigma_verdict, root=tmp_path / "yes")
    no = recorded_verdict("06_bcir", B.detection_sigma_verdict, root=tmp_path / "no")
    assert yes["recorded"] and yes["verdict"] == "reproduced"
    assert no["verdict"] == "not reproduced" and "σ = 1" in no["reason"]
    pts = B.sigma_sweep_points(recorded_table("06_bcir", root=tmp_path / "yes"))
    assert pts["missing"] == [] and pts["values"][2.0][1] == pytest.approx(0.743)
    assert "no cell is missing" in B.sigma_sweep_sentence(pts, yes)


def test_recorded_sweep_with_missing_cells_is_inconclusive_and_says_which(tmp_path):
    _write_records(tmp_path, {"mse": [0.74]})          # today's records: seed 0 of mse only
    rv = recorded_verdict("06_bcir", B.detection_sigma_verdict, root=tmp_path)
    assert rv["verdict"] == "inconclusive"
    assert all(name in rv["reason"] for name in ("mse_sigma0_5", "mse_sigma1", "mse_sigma3"))
    pts = B.sigma_sweep_points(recorded_table("06_bcir", root=tmp_path))
    assert (2.0, "mse", 1) in pts["missing"] and (2.0, "mse", 0) not in pts["missing"]
    assert len(pts["missing"]) == 11
    fig = F.sigma_sweep_figure(pts)
    assert any(t.name == "missing cell (no record)" and len(t.x) == 11 for t in fig.data)
    assert "σ = 0.5 (mse_sigma0_5) seed 0, 1, 2" in fig.layout.annotations[0].text
    text = B.sigma_sweep_sentence(pts, rv)
    assert "missing: σ = 0.5 (mse_sigma0_5) seed(s) 0, 1, 2" in text and "inconclusive" in text
    none = B.sigma_sweep_points(None)
    assert len(none["missing"]) == 12 and all(not v for v in none["values"].values())
    assert "every cell" not in F.sigma_sweep_figure(none).layout.annotations[0].text


# ----------------------------------------------------------------------------- hostile inputs (QA)
def test_fit_peak_sigma_on_no_maps_and_bad_max_iter():
    out = B.fit_peak_sigma(np.zeros((0, 64, 48)))            # was numpy's "cannot reshape array of size 0"
    assert out["sigma"].shape == (0,) and out["centre"].shape == (0, 2) and out["at_bound"].dtype == bool
    with pytest.raises(ValueError, match="max_iter"):        # -1 was silently no iteration
        B.fit_peak_sigma(np.zeros((1, 8, 8)), max_iter=-1)


def test_predicted_sigma_rejects_nan_and_non_scalar_label():
    for st, off in ((float("nan"), 0.0), (0.0, float("nan")), (0.0, float("inf"))):  # were NaN / inf σ*
        with pytest.raises(ValueError, match="finite"):
            B.predicted_sigma(2.0, st, off)
    for label in (np.array([1.0, 2.0]), None, "2"):          # were numpy's ambiguous-truth / ufunc errors
        with pytest.raises(ValueError, match="label_sigma"):
            B.predicted_sigma(label, 0.0, 0.0)
    assert B.predicted_sigma(np.float32(2.0), 0.0, 0.0)["sigma_star"] == 2.0


def test_the_recorded_figure_takes_the_seeds_the_sweep_has_runs_of(tmp_path):
    """The records: detection (σ = 2) on seeds 0-7 (0-4 in another forward precision), the sweep's
    other σs on seed 5 only. The figure's cells are seeds 5, 6, 7 (the sweep's seed and the next
    two a verdict needs); σ = 2's seeds 0-4 are another comparison and are not drawn."""
    _write_records(tmp_path, {"mse": [0.70 + 0.001 * i for i in range(8)], "mse_sigma0_5": {5: 0.63},
                              "mse_sigma3": {5: 0.69}})
    pts = B.sigma_sweep_points(recorded_table("06_bcir", root=tmp_path))
    assert pts["seeds"] == [5, 6, 7]
    assert sorted(pts["values"][2.0]) == [5, 6, 7] and sorted(pts["values"][0.5]) == [5]
    assert sorted(pts["missing"]) == [(0.5, "mse_sigma0_5", 6), (0.5, "mse_sigma0_5", 7),
                                      (1.0, "mse_sigma1", 5), (1.0, "mse_sigma1", 6), (1.0, "mse_sigma1", 7),
                                      (3.0, "mse_sigma3", 6), (3.0, "mse_sigma3", 7)]
    # explicit seeds are taken as given (the live run passes its own)
    assert B.sigma_sweep_points(recorded_table("06_bcir", root=tmp_path), seeds=[0, 1])["seeds"] == [0, 1]
