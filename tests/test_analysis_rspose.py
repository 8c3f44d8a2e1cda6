"""poselab.chapters.rspose.analysis: imbalance counts (independent closed forms), gradient splits, the
reference loop, Theorem 1 numerics and counter-cases, min-max scaling and AP re-evaluation."""
import json
import math

import numpy as np
import pytest
import torch

from poselab.chapters.rspose import analysis as A
from poselab.codecs import encode_gaussian
from poselab.losses import spatial_rank_loss, spatial_sort_loss


def test_imbalance_counts_match_closed_forms():
    assert A.heatmap_imbalance((64, 48), target="dot")["ratio"] == 3071
    g = A.heatmap_imbalance((64, 48), 2.0)
    assert g["positives"] == 13 * 13 and g["ratio"] == (3072 - 169) / 169
    assert round(g["ratio"]) == 17
    assert A.heatmap_imbalance((64, 48), 3.0)["positives"] == 19 * 19   # σ changes it
    d = A.simcc_imbalance((256, 192), 2.0, target="dot")
    assert (d["x"]["ratio"], d["y"]["ratio"]) == (383, 511)
    # float32 underflow of exp(-d²/2σ²)/(σ√2π): nonzero iff it exceeds half the smallest subnormal
    tiny = 2.0 ** -149
    dmax = max(dd for dd in range(200)
               if np.float32(np.exp(np.float32(-dd * dd / 72.0))) / np.float32(6 * math.sqrt(2 * math.pi)) > 0)
    s = A.simcc_imbalance((256, 192), 2.0, 6.0, target="gaussian")
    assert s["x"]["positives"] == 2 * dmax + 1 and dmax * dmax / 72.0 > -math.log(tiny) - 10
    assert round(s["x"]["ratio"], 1) == 1.2 and round(s["y"]["ratio"]) == 2
    s3 = A.simcc_imbalance((256, 192), 2.0, 6.0, target="gaussian", count="3sigma")
    assert s3["x"]["positives"] == 37
    with pytest.raises(ValueError, match="count"):
        A.simcc_imbalance(count="all")
    with pytest.raises(ValueError, match="target"):
        A.heatmap_imbalance(target="box")


def test_gradient_split_balance_and_counter_case():
    kp = torch.rand(2, 17, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 40 + 4
    labels, vis = encode_gaussian(kp, None, (64, 48), 2.0, dtype=torch.float64)
    x = torch.randn(2, 17, 64, 48, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    pos = labels > 0
    rank = A.gradient_split(A.loss_gradient("spatial_rank", x, labels, vis), pos)
    assert rank["balance_error"] <= 1e-9 and rank["pos_sum"] < 0
    mse = A.gradient_split(A.loss_gradient("mse", 0.1 * x, labels, vis), pos)
    assert mse["balance_error"] > 0.1 and mse["neg_abs"] > mse["pos_abs"]
    # counter-case: a zero prediction gets no MSE gradient on negatives at all
    zero = A.gradient_split(A.loss_gradient("mse", torch.zeros_like(x), labels, vis), pos)
    assert zero["neg_abs"] == 0.0 and zero["pos_abs"] > 0
    with pytest.raises(ValueError, match="loss must be"):
        A.loss_gradient("l1", x, labels, vis)


def test_model_gradient_split_and_probe():
    from poselab.models import build_model
    model = build_model("heatmap", (64, 48), "tiny", num_keypoints=17, seed=0)
    images = torch.randn(2, 3, 64, 48)
    kp = torch.rand(2, 17, 2) * 10 + 2
    labels, vis = encode_gaussian(kp, None, (16, 12), 2.0)
    out = A.model_gradient_split(model, images, labels, vis)
    assert set(out) == {"mse", "spatial_rank", "spatial_rs"}
    assert out["spatial_rank"]["balance_error"] <= 1e-6

    class State:
        step = 0
    State.model = model
    probe = A.GradientBalanceProbe(images, labels, vis, every=2, losses=("mse",))
    probe.on_fit_start(State)
    State.step = 2
    probe.on_step_end(State)
    State.step = 3
    probe.on_step_end(State)
    assert [r["step"] for r in probe.records] == [0, 2]


def test_reference_loop_matches_the_library():
    kp = torch.rand(2, 2, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 20 + 2
    labels, vis = encode_gaussian(kp, None, (24, 24), 2.0, dtype=torch.float64)
    x = torch.randn(labels.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    ref = A.reference_rank_sort_loop(x, labels, vis, 0.4, 1.5)
    xx = x.clone().requires_grad_(True)
    loss = spatial_rank_loss(xx, labels, vis, 0.4)
    loss.backward()
    assert abs(loss.item() - ref["rank"]) <= 1e-12
    assert (xx.grad - ref["grad_rank"]).abs().max() <= 1e-12
    xx = x.clone().requires_grad_(True)
    loss = spatial_sort_loss(xx, labels, vis, 1.5)
    loss.backward()
    assert abs(loss.item() - ref["sort"]) <= 1e-12
    assert (xx.grad - ref["grad_sort"]).abs().max() <= 1e-12
    # counter-case: a different δ is detected
    assert abs(spatial_rank_loss(x, labels, vis, 0.8).item() - ref["rank"]) > 1e-4


def test_updates_on_one_heatmap():
    u = A.updates_on_one_heatmap()
    pos = u["target"] > 0
    assert abs(u["spatial_rank"].sum()) <= 1e-12                      # balanced
    assert (u["spatial_sort"][~pos] == 0).all()                        # sort touches positives only
    assert np.count_nonzero(u["instance_sort"]) == 1                   # IS: the arg-max pixel only
    # person 1 is under-confident for its KS (person 2, worse localised, has the higher maximum):
    # the Instance-Sort update is negative there, i.e. gradient descent raises its maximum
    assert u["confidence"][1] < u["confidence"][2] and u["ks"][1] > u["ks"][2]
    assert u["instance_sort"].sum() < 0


def test_theorem1_identity_and_the_paper_factor():
    rng = np.random.default_rng(0)
    L, C = rng.random((500, 17)), rng.random((500, 17))
    t = A.theorem1_check(L, C)
    assert t["identity_error"] <= 1e-12
    assert math.isclose(t["paper_b5"], 17 * t["diagonal"])
    # with C a function of its own keypoint only and independent keypoints, the diagonal dominates
    Ci = L + 0.1 * rng.random((500, 17))
    ti = A.theorem1_check(L, Ci)
    assert ti["cross_share"] < 0.5
    assert abs(ti["cov"] - ti["diagonal"]) < abs(ti["cov"] - ti["paper_b5"])
    with pytest.raises(ValueError):
        A.theorem1_check(L, C[:, :3])


def test_theorem1_counterexample():
    ce = A.theorem1_counterexample()
    assert ce["diagonal_increases"] and ce["cov_decreases"]
    assert ce["A"]["identity_error"] <= 1e-12 and ce["B"]["identity_error"] <= 1e-12


def test_minmax_scaling():
    s = np.array([[1.0, -3.0], [3.0, 5.0], [2.0, 1.0]])
    lo, hi = A.minmax_fit(s)
    assert lo.tolist() == [1.0, -3.0] and hi.tolist() == [3.0, 5.0]
    scaled = A.minmax_apply(s, lo, hi)
    assert scaled.min() == 0.0 and scaled.max() == 1.0
    assert (np.argsort(scaled, 0) == np.argsort(s, 0)).all()            # monotone per keypoint
    assert A.minmax_apply([[10.0, -10.0]], lo, hi).tolist() == [[1.0, 0.0]]
    assert A.minmax_apply([[10.0, -10.0]], lo, hi, clip=False)[0, 0] == 4.5
    # counter-case: per-keypoint scaling can reorder instance scores (mean over keypoints)
    raw = np.array([[1.0, 0.0], [0.0, 0.6]])
    lo2, hi2 = np.array([0.0, 0.0]), np.array([10.0, 1.0])
    assert np.argmax(raw.mean(1)) != np.argmax(A.minmax_apply(raw, lo2, hi2).mean(1))
    with pytest.raises(ValueError):
        A.minmax_fit(np.zeros((0, 3)))


def _tiny_coco(tmp_path):
    kps, anns = [], []
    rng = np.random.default_rng(0)
    for i in range(4):
        xy = rng.uniform(20, 80, size=(17, 2))
        kps.append(xy)
        flat = np.concatenate([xy, np.full((17, 1), 2.0)], 1).reshape(-1).tolist()
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "area": 3600.0,
                     "bbox": [10, 10, 80, 80], "iscrowd": 0, "keypoints": flat, "num_keypoints": 17})
    gt = {"images": [{"id": i + 1, "width": 100, "height": 100, "file_name": f"{i}.jpg"}
                     for i in range(4)], "annotations": anns,
          "categories": [{"id": 1, "name": "person"}]}
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    return path, np.stack(kps)


def test_keypoint_quality_and_ap_with_scores(tmp_path):
    path, kps = _tiny_coco(tmp_path)
    coords = kps.copy()
    coords[3] += 15.0                                         # person 4 badly localised
    pred = {"coords": coords, "keypoints": kps, "visible": np.ones((4, 17)),
            "ann_id": np.arange(1, 5), "image_id": np.arange(1, 5),
            "scores": np.full((4, 17), 0.9)}
    L, C = A.keypoint_quality(pred, path)
    assert L.shape == (4, 17) and np.allclose(L[:3], 1.0) and (L[3] < 0.5).all()
    good = np.array([[0.9] * 17] * 3 + [[0.3] * 17])           # the bad person ranked last
    bad = np.array([[0.3] * 17] * 3 + [[0.9] * 17])            # ... or first
    ap_good = A.ap_with_keypoint_scores(pred, path, good)
    ap_bad = A.ap_with_keypoint_scores(pred, path, bad)
    assert ap_good["AP"] > ap_bad["AP"] and ap_good["spearman"] > 0 > ap_bad["spearman"]


def test_equivalence_verdict():
    same = A.equivalence_verdict([0.50, 0.51, 0.49], [0.50, 0.51, 0.495], margin=0.05)
    assert same.verdict == "reproduced"
    apart = A.equivalence_verdict([0.60, 0.61, 0.59], [0.50, 0.51, 0.49], margin=0.05)
    assert apart.verdict == "not reproduced"
    assert A.equivalence_verdict([0.5], [0.5], margin=0.05).verdict == "inconclusive"
    assert A.equivalence_verdict([0.50, 0.51, 0.49], [0.50, 0.51, 0.495], margin=0.05,
                                 preset="fast").verdict == "inconclusive"
    # App. C: one model's AP with raw and with min-max scaled confidences differ by ~0.0007 while
    # the seeds differ by ~0.02: unpaired this can never be "unchanged within 0.005"; paired it is
    raw, scaled = [0.5430, 0.5130, 0.5600], [0.5420, 0.5128, 0.5591]
    assert A.equivalence_verdict(scaled, raw, margin=0.005).verdict == "inconclusive"
    paired = A.equivalence_verdict(scaled, raw, margin=0.005, paired=True)
    assert paired.verdict == "reproduced"
    moved = A.equivalence_verdict([0.553, 0.522, 0.571], raw, margin=0.005, paired=True)
    assert moved.verdict == "not reproduced"


def _chain_table(aps: dict, rising=()):
    from fake_tables import FakeTable
    return FakeTable(aps, preset="full", curve=lambda r, ap: [(2500, ap * 0.6), (4000, ap * (0.8 if r in rising else 0.998)),
                                                            (5000, ap)])


def test_ablation_chain_records_every_link():
    """Table 6's chain was reduced to its endpoints: a clearly broken or clearly held link was
    hidden. Each link now has its own verdict, with the paper's effect for that link."""
    # the links pair by seed: each recipe's seed noise differs (equal noise makes every paired
    # difference one number, a tie no test decides on three seeds)
    ok = {"mse": [0.500, 0.5002, 0.4998], "spatial_rank": [0.510, 0.5099, 0.5103],
          "spatial_rs": [0.530, 0.5303, 0.5299], "spatial_rs_is": [0.540, 0.5401, 0.5397]}
    v = A.ablation_chain_verdict(_chain_table(ok))
    assert v.verdict == "reproduced" and set(v.summary["links"]) == {
        "spatial_rank > mse", "spatial_rs > spatial_rank", "spatial_rs_is > spatial_rs"}
    broken = {**ok, "spatial_rs": [0.505, 0.5052, 0.5048]}
    b = A.ablation_chain_verdict(_chain_table(broken))
    assert b.verdict == "not reproduced" and "broken at spatial_rs > spatial_rank" in b.reason
    assert "holds: spatial_rank > mse" in b.reason
    spread = {"mse": (0, 0.03, -0.03), "spatial_rank": (0.03, -0.03, 0), "spatial_rs": (-0.03, 0, 0.03),
              "spatial_rs_is": (0, -0.03, 0.03)}
    noisy = {k: [v[0] + d for d in spread[k]] for k, v in ok.items()}
    n = A.ablation_chain_verdict(_chain_table(noisy))
    assert n.verdict == "inconclusive" and "under-powered" in n.reason
    assert all(link["seeds_needed"] is None or link["seeds_needed"] > 3 for link in n.summary["links"].values())
    rising = A.ablation_chain_verdict(_chain_table(ok, rising=("spatial_rank",)))
    assert rising.verdict == "inconclusive" and "spatial_rank not converged" in rising.reason


def test_figures_and_widget():
    from poselab.chapters.rspose import figures as V
    from poselab.chapters.rspose.widgets import imbalance_explorer
    fig = V.imbalance_figure(A.imbalance_table())
    assert len(fig.data) == 2 and fig.layout.width <= 900
    u = A.updates_on_one_heatmap(size=(16, 12))
    assert len(V.updates_figure({"p": u["prediction"], "rank": u["spatial_rank"]}).data) == 2
    recs = [{"step": 0, "mse": A.gradient_split(np.ones((2, 2)), np.eye(2, dtype=bool)),
             "spatial_rank": A.gradient_split(np.array([[1.0, -1.0]]), np.array([[False, True]]))}]
    assert len(V.gradient_balance_figure(recs).data) == 4
    w = imbalance_explorer()
    w.sliders["sigma"].value = 3.0
    assert "|P| = 361" in w.readout.value
    w.sliders["target"].value = "dot"
    assert "|N|/|P| = 3071" in w.readout.value


def test_probe_batch_targets_match_the_model_output_size(tmp_path):
    from poselab.data import synth
    ann = synth.generate(tmp_path / "val", 3, seed=5, split="val")
    images, labels, weights = A.probe_batch(ann, (64, 48), 2.0, 2, heatmap_size=(32, 24))
    assert images.shape == (2, 3, 64, 48) and labels.shape == (2, 17, 32, 24) and weights.shape == (2, 17)
    assert A.probe_batch(ann, (64, 48), 2.0, 2)[1].shape == (2, 17, 16, 12)   # default: stride 4
    with pytest.raises(ValueError, match="heatmap_size"):
        A.probe_batch(ann, (64, 48), 2.0, 2, heatmap_size=(0, 24))


def test_combined_path_is_checked_against_the_loop(monkeypatch):
    """A combined loss that sorts with the rank δ passed the old check of the two parts alone
    (off by 0.094, reported 1e-15); the combined path is now compared with rank + w·sort."""
    from poselab import losses
    from poselab.codecs import encode_gaussian
    rng = np.random.default_rng(0)
    kp = torch.as_tensor(rng.uniform(2, 44, size=(2, 17, 2)))
    labels, vis = encode_gaussian(kp, None, (64, 48), 2.0, dtype=torch.float64)
    scores = 2 * torch.roll(labels, 2, -1) + 0.3 * torch.as_tensor(rng.standard_normal(labels.shape))
    good = A.combined_path_errors(scores, labels, vis)
    assert max(v for e in good.values() for v in e.values()) < 1e-9
    real = losses.spatial_rank_sort_loss

    def wrong(x, y, v, rank_delta=0.4, sort_delta=1.5, **kw):  # sorts with the rank δ
        return real(x, y, v, rank_delta=rank_delta, sort_delta=rank_delta, **kw)
    monkeypatch.setattr(A, "spatial_rank_sort_loss", wrong)  # where the analysis looks it up
    bad = A.combined_path_errors(scores, labels, vis)
    assert bad["spatial_rank_sort"]["loss"] > 1e-3


# ----------------------------------------------------------------------------- flat plateaus (#24 item 6)
def test_rank_is_blind_inside_the_window_and_the_check_can_fail():
    from poselab.losses import spatial_rank_sort_loss
    r = A.rank_blind_inside_window((64, 48), 2.0)
    assert r["holds"]
    assert r["rank"] == {"centred": 0.0, "corner": 0.0} and max(r["rank_update"].values()) == 0.0
    assert r["argmax_error_px"]["centred"] == 0.0 and math.isclose(r["argmax_error_px"]["corner"], 6 * math.sqrt(2))
    assert r["sort"]["corner"] > r["sort"]["centred"]
    # float32, the training dtype: the same
    f32 = A.rank_blind_inside_window(rank_fn=lambda x, y, v, d: spatial_rank_loss(x.float(), y.float(), v.float(), d),
                                     sort_fn=lambda x, y, v, d: spatial_sort_loss(x.float(), y.float(), v.float(), d))
    assert f32["holds"]
    # counter-cases: a "rank" loss that reads the labels inside the window, a "sort" loss that does not
    reads = A.rank_blind_inside_window(rank_fn=lambda x, y, v, d: spatial_rank_sort_loss(x, y, v, d, 1.5, 2.0))
    assert not reads["holds"] and reads["rank"]["corner"] > 0
    blind_sort = A.rank_blind_inside_window(sort_fn=spatial_rank_loss)
    assert not blind_sort["holds"]
    with pytest.raises(ValueError, match="margin"):
        A.rank_blind_inside_window(margin=0.3)


def _uniform_window_distance(labels):
    """Mean distance from the label peak to the window's pixels, by a loop (independent)."""
    H, W = labels.shape
    py, px = np.unravel_index(int(labels.argmax()), labels.shape)
    d = [math.hypot(x - px, y - py) for y in range(H) for x in range(W) if labels[y, x] > 0]
    return sum(d) / len(d)


def test_plateau_statistics_tell_a_flat_top_from_a_peak():
    rng = np.random.default_rng(0)
    kp = torch.as_tensor(rng.uniform(8, 40, size=(4, 17, 2)))
    labels, vis = encode_gaussian(kp, None, (64, 48), 2.0)
    window = (labels > 0).float()
    flat = window + 0.01 * torch.as_tensor(rng.random(labels.shape), dtype=torch.float32)   # a noisy plateau
    peaked = labels.clone()
    sf, sp = A.plateau_statistics(flat, labels, vis), A.plateau_statistics(peaked, labels, vis)
    assert sp["hit"] == 1.0 and sp["error_px"] == 0.0
    assert sf["near_top"] == pytest.approx(sf["window"]) and sf["hit"] < 0.1
    want = np.mean([_uniform_window_distance(labels[b, k].numpy()) for b in range(4) for k in range(17)])
    assert sf["uniform_error_px"] == pytest.approx(want, rel=1e-9)
    assert sf["error_px"] > 0.8 * sf["uniform_error_px"]
    # blurring finds the centre of a symmetric flat top (and keeps a Gaussian's peak)
    assert sf["blurred_error_px"] < 0.5 and sp["blurred_error_px"] == 0.0
    flat_text = A.plateau_sentence({"spatial_rank": sf, "mse": sp}, "inconclusive")
    peak_text = A.plateau_sentence({"spatial_rank": sp, "mse": sp}, "reproduced")
    assert "flat on top" in flat_text and "peaked" in peak_text and "'reproduced'" in peak_text
    # an invisible map is left out
    vis0 = vis.clone(); vis0[:, 1:] = 0
    assert A.plateau_statistics(flat, labels, vis0)["maps"] == 4
    with pytest.raises(ValueError, match="shape"):
        A.plateau_statistics(flat[:, :3], labels, vis)
    with pytest.raises(ValueError, match="finite"):
        A.plateau_statistics(flat * float("nan"), labels, vis)
    with pytest.raises(ValueError, match="positives"):
        A.plateau_statistics(flat, labels, torch.zeros_like(vis))


def test_model_heatmaps_example_maps_and_figure(tmp_path):
    from poselab.data import synth
    from poselab.experiments.registry import Geometry
    from poselab.models import build_model
    from poselab.chapters.rspose import figures as V
    ann = synth.generate(tmp_path / "val", 3, seed=5, split="val")

    class Run:
        def geometry(self):
            return Geometry((64, 48), (16, 12))

        def model(self, device="cpu"):
            return build_model("heatmap", (64, 48), "tiny", num_keypoints=17, seed=0, autocast="bfloat16")
    maps, labels, weights = A.model_heatmaps(Run(), ann, 2)
    assert maps.shape == labels.shape == (2, 17, 16, 12) and maps.dtype == torch.float32
    ex = A.example_maps({"a": (maps, labels, weights), "b": (maps + 1, labels, weights)})
    assert set(ex["maps"]) == {"a", "b"} and ex["labels"][ex["keypoint"][1], ex["keypoint"][0]] == 1.0
    fig = V.plateau_figure(ex["maps"], ex["labels"], ex["keypoint"])
    assert len(fig.data) == 6 and fig.layout.width <= 820
    with pytest.raises(ValueError, match="index"):
        A.example_maps({"a": (maps, labels, weights)}, index=10_000)


# ----------------------------------------------------------------------------- Fig. 3 over training (#24 item 2)
def test_peak_framing_and_share_over_training():
    kp = torch.tensor([[[5.0, 6.0], [20.0, 30.0]]])
    labels, vis = encode_gaussian(kp, None, (64, 48), 2.0, dtype=torch.float64)
    peak = A.peak_pixels(labels, torch.tensor([[1.0, 0.0]]))
    assert peak.sum() == 1 and bool(peak[0, 0, 6, 5])
    # MSE with a perfect window but a background of 0.05: the window framing and the peak framing disagree
    pred = labels + 0.05 * (labels == 0)
    g = A.loss_gradient("mse", pred + 0.01, labels, vis)
    window = A.gradient_split(g, labels > 0)
    dot = A.gradient_split(g, A.peak_pixels(labels, vis))
    assert dot["neg_share"] > 0.9 and dot["neg_share"] > window["neg_share"]
    recs = [{"step": 0, "mse": {"neg_share": 0.0}}, {"step": 10, "mse": {"neg_share": 0.6}},
            {"step": 20, "mse": {"neg_share": 0.8}}]
    assert A.share_over_training(recs) == pytest.approx(0.7)
    assert A.share_over_training(recs, skip_initial=False) == pytest.approx(1.4 / 3)
    with pytest.raises(ValueError, match="after step 0"):
        A.share_over_training(recs[:1])
    more = A.gradient_share_sentence({"peak pixel": [0.97, 0.98], "window": [0.3, 0.4]}, [0.03, 0.03])
    assert "(the negatives dominate)" in more and "(the positives dominate)" in more and "0.03 with the window" in more
    assert "neither side" in A.gradient_share_sentence({"window": [0.4, 0.6]})


def test_model_gradient_split_with_the_peak_framing():
    from poselab.models import build_model
    model = build_model("heatmap", (64, 48), "tiny", num_keypoints=17, seed=0)
    kp = torch.rand(2, 17, 2, generator=torch.Generator().manual_seed(0)) * 10 + 2
    labels, vis = encode_gaussian(kp, None, (16, 12), 2.0)
    out = A.model_gradient_split(model, torch.randn(2, 3, 64, 48), labels, vis, ("mse",), peak=True)
    assert set(out) == {"mse", "mse" + A.PEAK}
    assert out["mse"]["pos_abs"] + out["mse"]["neg_abs"] == pytest.approx(
        out["mse" + A.PEAK]["pos_abs"] + out["mse" + A.PEAK]["neg_abs"])


# ----------------------------------------------------------------------------- Theorem 1 can fail (#24 item 8)
def test_theorem1_identity_accepts_b4_and_rejects_wrong_forms():
    rng = np.random.default_rng(1)
    L = rng.random((400, 17))
    C = L + 0.5 * rng.standard_normal((400, 17))
    forms = {f: A.theorem1_identity(L, C, f) for f in A.THEOREM1_FORMS}
    assert forms["B.4"]["holds"] and forms["B.4"]["relative_error"] < 1e-12
    assert not forms["B.5 as printed"]["holds"] and forms["B.5 as printed"]["relative_error"] > 10
    assert not forms["B.5 corrected"]["holds"]          # finite sample: cross-covariances are not 0
    # exactly uncorrelated keypoints (centred orthogonal columns): the corrected B.5 is exact, the printed is not
    Lo = np.array([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    assert A.theorem1_identity(Lo, Lo, "B.5 corrected")["holds"]
    assert not A.theorem1_identity(Lo, Lo, "B.5 as printed")["holds"]
    with pytest.raises(ValueError, match="form"):
        A.theorem1_identity(L, C, "B.6")


def test_theorem1_counterexample_fails_without_the_cross_term():
    assert A.theorem1_counterexample()["holds"]
    independent = A.theorem1_counterexample(cross=0.0)
    assert independent["diagonal_increases"] and not independent["cov_decreases"] and not independent["holds"]


# ----------------------------------------------------------------------------- the update explorer (#24 Add)
def test_single_map_updates():
    r = A.single_map_updates((32, 24), 2.0, offset=(0.0, 0.0), sharpness=1.0, noise=0.0)
    # Spatial Rank's update balanced; a displaced blob gets more MSE gradient and more rank loss
    assert abs(r["spatial_rank"].sum()) < 1e-12 and r["prediction"].shape == (32, 24)
    moved = A.single_map_updates((32, 24), 2.0, offset=(4.0, 0.0), rank_delta=0.4, noise=0.0)
    assert np.abs(moved["mse"]).max() > 2 * np.abs(r["mse"]).max()
    assert moved["loss"]["spatial_rank"] > r["loss"]["spatial_rank"]
    # a wider δ_sort smooths the step: the sort update changes
    wide = A.single_map_updates((32, 24), 2.0, offset=(4.0, 0.0), sort_delta=5.0, noise=0.0)
    assert not np.allclose(wide["spatial_sort"], moved["spatial_sort"])
    with pytest.raises(ValueError, match="sharpness"):
        A.single_map_updates(sharpness=0.0)


def test_update_explorer_driven():
    from poselab.chapters.rspose.widgets import update_explorer
    w = update_explorer()
    assert len(w.figure.data) == 8
    before = np.array(w.figure.data[4].z, dtype=float)          # Spatial Rank's panel
    w.sliders["dx"].value = -5.0
    after = np.array(w.figure.data[4].z, dtype=float)
    np.testing.assert_allclose(after, A.single_map_updates((32, 24), 2.0, (-5.0, 1.0), 1.0, 0.4, 1.5)["spatial_rank"])
    assert not np.allclose(before, after)
    w.sliders["rank_delta"].value = 2.0
    assert w.result["loss"]["spatial_rank"] != A.single_map_updates((32, 24), 2.0, (-5.0, 1.0), 1.0, 0.4, 1.5)["loss"]["spatial_rank"]
    assert "Spatial Rank" in w.readout.value
    w.sliders["sharpness"].value = 3.0
    assert float(w.figure.data[2].zmax) == pytest.approx(np.abs(w.result["mse"]).max())


def test_ablation_chain_with_a_blind_baseline_decides_the_flat_top_link(tmp_path):
    """Spatial Rank alone converges below an AP floor set for MSE (flat tops): with the floor alone
    its link could never be decided. With the blind guess as its learnt-check it can, both ways;
    MSE still needs the floor, and a recipe no better than the blind guess has not learnt."""
    aps = {"mse": [0.739, 0.742, 0.736], "spatial_rank": [0.274, 0.270, 0.279],
           "spatial_rs": [0.70, 0.71, 0.705], "spatial_rs_is": [0.71, 0.715, 0.712]}
    floor_only = A.ablation_chain_verdict(_chain_table(aps))
    link = floor_only.summary["links"]["spatial_rank > mse"]
    assert link["verdict"] == "inconclusive" and "spatial_rank has not learnt" in link["reason"]
    v = A.ablation_chain_verdict(_chain_table(aps), blind=0.003)
    assert v.verdict == "not reproduced" and "broken at spatial_rank > mse" in v.reason
    assert v.summary["links"]["spatial_rs > spatial_rank"]["verdict"] == "reproduced"
    blind_like = {**aps, "spatial_rank": [0.002, 0.003, 0.0025]}
    b = A.ablation_chain_verdict(_chain_table(blind_like), blind=0.003)
    assert "spatial_rank has not learnt" in b.summary["links"]["spatial_rank > mse"]["reason"]
    weak = {**aps, "mse": [0.2, 0.21, 0.19]}
    w = A.ablation_chain_verdict(_chain_table(weak), blind=0.003)
    assert "baseline too weak" in w.summary["links"]["spatial_rank > mse"]["reason"]
    # the links pair by seed: each recipe's seed noise differs (equal noise makes every paired
    # difference one number, a tie no test decides on three seeds)
    ok = {"mse": [0.500, 0.5002, 0.4998], "spatial_rank": [0.510, 0.5099, 0.5103],
          "spatial_rs": [0.530, 0.5303, 0.5299], "spatial_rs_is": [0.540, 0.5401, 0.5397]}
    assert A.ablation_chain_verdict(_chain_table(ok), blind=0.003).verdict == "reproduced"
    rising = A.ablation_chain_verdict(_chain_table(ok, rising=("spatial_rank",)), blind=0.003)
    assert rising.verdict == "inconclusive" and "spatial_rank not converged" in rising.reason
    # readiness is read on the seeds each link compares: spatial_rank's seed 3, a run still
    # climbing steeply that no other recipe has, is left out of its links as the test leaves it out
    from fake_tables import FakeTable
    climbing = lambda r, ap: ([(2500, ap * 0.1), (4000, ap * 0.2), (5000, ap)] if ap == 0.2031 else
                              [(2500, ap * 0.6), (4000, ap * 0.998), (5000, ap)])
    extra = {**ok, "spatial_rank": ok["spatial_rank"] + [0.2031]}
    v = A.ablation_chain_verdict(FakeTable(extra, preset="full", curve=climbing), blind=0.003)
    assert v.verdict == "reproduced", v.reason
    paired = {r: vals + [vals[0] + 0.0003] for r, vals in ok.items()}
    paired["spatial_rank"] = extra["spatial_rank"]          # seed 3 now paired: its climb counts
    v = A.ablation_chain_verdict(FakeTable(paired, preset="full", curve=climbing), blind=0.003)
    assert "spatial_rank not converged" in v.summary["links"]["spatial_rs > spatial_rank"]["reason"], v.reason


def test_blind_ap_is_low_and_a_perfect_guess_is_not(tmp_path):
    from poselab.data import synth
    from poselab.metrics import coco_keypoint_eval
    ann = synth.generate(tmp_path / "val", 6, seed=3, split="val")
    blind = A.blind_ap(ann)
    gt = json.loads(open(ann).read())
    perfect = [{"image_id": a["image_id"], "category_id": 1, "score": 1.0, "keypoints": a["keypoints"]}
               for a in gt["annotations"] if a.get("num_keypoints", 0) > 0]
    assert 0.0 <= blind < 0.2 < coco_keypoint_eval(gt, perfect)["AP"]
    empty = dict(gt, annotations=[])
    (tmp_path / "empty.json").write_text(json.dumps(empty))
    with pytest.raises(ValueError, match="no person"):
        A.blind_ap(tmp_path / "empty.json")


def test_table_e8_rows_and_the_recipes_that_use_them(monkeypatch):
    import poselab.experiments  # noqa: F401  (registers the chapter's recipes)
    rows = {r["model"]: r for r in A.table_e8_rows()}
    assert len(rows) == 4 and rows["ViTPose ViT-B"]["settings match"] and rows["SimCC ResNet-50"]["settings match"]
    assert rows["ViTPose ViT-H"]["settings match"] is None and rows["SimCC HRNet-W48"]["instance_delta"] == 0.5
    assert A.recipe_loss_settings("spatial_rs_is") == {"rank_delta": 0.4, "rank_weight": 1.0, "sort_delta": 1.5,
                                                       "sort_weight": 2.0, "instance_delta": 3.0, "instance_weight": 0.25}
    real = A.recipe_loss_settings
    monkeypatch.setattr(A, "recipe_loss_settings",   # a recipe that sorts with the rank δ
                        lambda name: {**real(name), "sort_delta": 0.4} if name == "spatial_rs" else real(name))
    assert {r["model"]: r for r in A.table_e8_rows()}["ViTPose ViT-B"]["settings match"] is False


def test_step_cost_verdict_counter_cases():
    mse = [1.00, 1.01, 0.99, 1.02, 1.00]
    equal = A.step_cost_verdict(list(mse), mse)                   # equal costs
    assert equal.verdict == "reproduced" and equal.summary["interval"][1] <= 1.3
    paper = A.step_cost_verdict([m * A.PAPER_STEP_RATIO for m in mse], mse)
    assert paper.verdict == "reproduced" and abs(paper.summary["ratio"] - 1.52 / 1.427) < 1e-12
    slow = A.step_cost_verdict([1.8 * m * (1 + 0.01 * i) for i, m in enumerate(mse)], mse)   # 1.8x
    assert slow.verdict == "not reproduced" and slow.summary["interval"][0] > 1.3
    assert "benchmarks/train_step.py" in slow.reason and "noisy" in slow.reason
    # an interval that straddles the margin decides nothing
    wide = A.step_cost_verdict([1.1, 1.5, 1.25], [1.0, 1.0, 1.0])
    assert wide.verdict == "inconclusive" and wide.summary["interval"][0] < 1.3 < wide.summary["interval"][1]
    # missing step times (a run without history, a NaN) → inconclusive, naming the seed
    for bad in (None, float("nan"), 0.0):
        v = A.step_cost_verdict([1.0, bad, 1.0], [1.0, 1.0, 1.0], seeds=[0, 5, 7])
        assert v.verdict == "inconclusive" and "[5]" in v.reason
        assert [r["ratio"] for r in v.summary["rows"]] == [1.0, None, 1.0]
    # too few seeds, the fast preset: inconclusive even at equal costs
    assert A.step_cost_verdict([1.0, 1.0], [1.0, 1.0]).verdict == "inconclusive"
    assert A.step_cost_verdict([1.0], [1.0]).verdict == "inconclusive"
    fast = A.step_cost_verdict([1.0] * 3, [1.0] * 3, preset="fast")
    assert fast.verdict == "inconclusive" and "reproduced" in fast.reason
    # bad arguments
    with pytest.raises(ValueError, match="paired"):
        A.step_cost_verdict([1.0, 1.0], [1.0])
    with pytest.raises(ValueError, match="paper's own ratio"):
        A.step_cost_verdict([1.0] * 3, [1.0] * 3, margin=1.01)
    with pytest.raises(ValueError, match="margin"):
        A.step_cost_verdict([1.0] * 3, [1.0] * 3, margin=float("nan"))


class _Run:
    def __init__(self, recipe, seed, steps=None, data=None, sps=float("nan")):
        self.recipe, self.seed, self.preset, self.data, self.device = recipe, seed, "default", "synth", "cpu"
        self.history = {} if steps is None else {"step_times": steps, "data_times": data or [0.0] * len(steps)}
        self.seconds_per_step = sps
        self.config = {"geometry": {"input_size": [128, 96], "heatmap_size": [64, 48]}}


class _Table:
    def __init__(self, runs):
        self.results = runs

    def result(self, recipe, seed):
        return next(r for r in self.results if r.recipe == recipe and r.seed == seed)


def test_run_step_seconds_and_step_cost_from_a_table():
    # the first two steps are skipped, data time is added, the median is taken
    run = _Run("mse", 0, steps=[9.0, 9.0, 1.0, 2.0, 3.0, 100.0, 2.0], data=[0.5] * 7)
    assert A.run_step_seconds(run) == 2.5
    assert A.run_step_seconds(_Run("mse", 0, sps=0.7)) == 0.7          # no history: seconds_per_step
    assert A.run_step_seconds(_Run("mse", 0)) is None                   # nothing: missing
    assert A.run_step_seconds(_Run("mse", 0, steps=[float("nan")] * 3)) is None
    steps = [0.1] * 2 + [0.2] * 10
    table = _Table([_Run("mse", s, steps=steps) for s in (0, 1, 2)]
                   + [_Run("spatial_rs_is", s, steps=[t * (1.7 + 0.01 * s) for t in steps]) for s in (0, 1, 2)])
    v = A.step_cost(table)
    assert v.verdict == "not reproduced" and v.evidence["seeds"] == [0, 1, 2]
    assert abs(v.summary["ratios"][2] - 1.72) < 1e-9
    table.results[-1] = _Run("spatial_rs_is", 2)                        # one run lost its step times
    assert A.step_cost(table).verdict == "inconclusive"
    from poselab.chapters.rspose.figures import step_cost_sentence
    assert "1.71×" in step_cost_sentence(v) and "not reproduced" in step_cost_sentence(v)
    assert "no ratio" in step_cost_sentence(A.step_cost_verdict([None], [1.0]))
    with pytest.raises(KeyError, match="spatial_rs_is"):
        A.step_cost(_Table([_Run("mse", 0, steps=steps)]))
