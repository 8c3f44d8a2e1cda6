"""Engine checks behind chapter 01: codec bounds, the pixel convention, the oracle, the blind
baseline — each shown failing on a constructed counter-case."""
import numpy as np
import pytest
import torch

from poselab.chapters.engine import analysis as E
from poselab.codecs import HeatmapCodec, ROUNDTRIP_BOUNDS_PX


def test_measured_bounds_are_tight_and_hold():
    report = E.codec_roundtrip_report(n=400, seed=1)
    assert set(report) == set(ROUNDTRIP_BOUNDS_PX)
    assert all(r["holds"] for r in report.values())
    for name, r in report.items():
        assert r["bound"] <= ROUNDTRIP_BOUNDS_PX[name]
        # a bound is within 5x of what the code achieves (or the exact quantisation step)
        assert r["bound"] <= max(5 * r["max_error"], r["max_error"] + 1e-3), name


def test_known_coordinates_catch_a_self_consistent_wrong_convention():
    ok = E.known_coordinate_check(n=100)
    assert ok["holds"] and ok["peak_pixel_errors"] == 0
    # MMPose's plain x / s: encode and decode would be mutually consistent, the targets are not
    wrong = E.known_coordinate_check(n=100, to_heatmap=lambda xy: xy / 4.0)
    assert not wrong["holds"] and wrong["peak_pixel_errors"] > 10


def test_oracle_returns_rows_in_order_and_refuses_overrun():
    out = torch.arange(5.0)[:, None, None, None].expand(5, 1, 2, 2)
    oracle = E.OracleHeatmaps(out)
    assert torch.equal(oracle(torch.zeros(2, 3, 8, 8))[:, 0, 0, 0], torch.tensor([0.0, 1.0]))
    assert torch.equal(oracle(torch.zeros(3, 3, 8, 8))[:, 0, 0, 0], torch.tensor([2.0, 3.0, 4.0]))
    with pytest.raises(IndexError, match="rewind"):
        oracle(torch.zeros(1, 3, 8, 8))
    oracle.rewind()
    assert oracle(torch.zeros(1, 3, 8, 8))[0, 0, 0, 0] == 0.0


def test_oracle_heatmaps_encodes_each_crop():
    codec = HeatmapCodec((64, 48), (16, 12), sigma=2.0)
    items = [{"keypoints": torch.tensor([[10.0, 20.0]] * 17), "visible": torch.ones(17)},
             {"keypoints": torch.tensor([[30.0, 40.0]] * 17), "visible": torch.ones(17)}]
    oracle = E.oracle_heatmaps(items, codec)
    assert oracle.outputs.shape == (2, 17, 16, 12)
    coords, _ = codec.decode(oracle.outputs)
    assert float((coords[1, 0] - torch.tensor([30.0, 40.0])).abs().max()) <= 2.0


def test_mean_heatmap_baseline_against_a_direct_computation():
    rng = np.random.default_rng(0)
    t = torch.as_tensor(rng.random((6, 3, 4, 5)))
    w = torch.ones(6, 3)
    w[0, 1] = 0
    got = E.mean_heatmap_baseline(t, w)
    mean = [t[w[:, k] > 0, k].mean(0) for k in range(3)]
    ref = np.mean([[float(((mean[k] - t[i, k]) ** 2).mean()) * float(w[i, k]) for k in range(3)]
                   for i in range(6)])
    assert got["loss"] == pytest.approx(ref, rel=1e-12)
    assert got["loss"] < got["zero_loss"]
    # counter-case: targets that do not depend on the crop at all — the blind mean is perfect,
    # so no model can beat it by learning from images
    same = E.mean_heatmap_baseline(t[:1].expand(6, -1, -1, -1), torch.ones(6, 3))
    assert same["loss"] < 1e-30
    with pytest.raises(ValueError):
        E.mean_heatmap_baseline(t[0], w)


def test_the_blind_baseline_chunk_by_chunk_equals_the_whole_set_at_64x48():
    """The chapter reads the training set in chunks (its maps are ~0.4 GB in float32 at the default
    preset): same loss as the whole set, float32 maps, ragged last chunk, unlabelled joints."""
    g = torch.Generator().manual_seed(1)
    t = torch.rand(150, 17, 64, 48, generator=g, dtype=torch.float32)
    w = (torch.rand(150, 17, generator=g) > 0.2).float()
    te, we = t[:37] * 0.5, torch.ones(37, 17)
    whole = E.mean_heatmap_baseline(t, w)
    held = E.mean_heatmap_baseline(t, w, evaluate_on=(te, we))
    calls = []

    def train():
        calls.append("train")
        return [(t[i:i + 64], w[i:i + 64]) for i in range(0, 150, 64)]
    chunked = E.mean_heatmap_baseline_chunks(train)
    assert calls == ["train", "train"]                 # read twice: the mean, then its loss
    assert chunked["loss"] == pytest.approx(whole["loss"], rel=1e-12)
    assert chunked["zero_loss"] == pytest.approx(whole["zero_loss"], rel=1e-12)
    other = E.mean_heatmap_baseline_chunks(train, lambda: [(te[:20], we[:20]), (te[20:], we[20:])])
    assert other["loss"] == pytest.approx(held["loss"], rel=1e-12) and other["loss"] != chunked["loss"]
    # a chunk of another map size is refused, and so is an empty set
    with pytest.raises(ValueError, match="one map shape"):
        E.mean_heatmap_baseline_chunks(lambda: [(t[:4], w[:4]), (t[:4, :, :32], w[:4])])
    with pytest.raises(ValueError, match="no crop"):
        E.mean_heatmap_baseline_chunks(lambda: [])


@pytest.fixture(scope="module")
def two_step_runs(tmp_path_factory):
    """mse and emd trained 2 steps on the fast preset's data (cache in a temporary folder)."""
    import os
    from poselab.experiments import PRESETS, compare
    old = os.environ.get("POSELAB_CACHE_DIR")
    os.environ["POSELAB_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    try:
        preset = PRESETS["fast"].replace(name="two-steps", max_steps=2, val_every=None)
        yield compare(["mse", "emd"], seeds=(0,), preset=preset, device="cpu", progress=False), preset
    finally:
        if old is None:
            os.environ.pop("POSELAB_CACHE_DIR", None)
        else:
            os.environ["POSELAB_CACHE_DIR"] = old


def test_blind_baseline_for_runs_on_an_untrained_model(two_step_runs):
    runs, preset = two_step_runs
    out = E.blind_baseline_for_runs([runs.result("mse", 0)])
    row = out["rows"][0]
    # two steps from a near-zero head: the model is no better than predicting each joint's mean map
    assert row["model loss on evaluation crops"] > out["blind"]["evaluation crops"]
    assert out["verdict"].verdict == "inconclusive"           # one seed, and not the fast rule only
    assert set(out["verdict"].evidence) >= {"preset", "seeds", "per_seed", "input_size", "heatmap_size", "data"}


def test_compactness_and_example_heatmaps_of_runs(two_step_runs):
    from poselab.chapters.hdm import training as hdm_training
    runs, preset = two_step_runs
    comp = hdm_training.compactness_of_runs(runs, preset=preset)
    assert set(comp) == {"mse", "emd"} and all(len(v) == 1 for per in comp.values() for v in per.values())
    assert comp["emd"]["dead_fraction"][0] == 0.0  # max-anchored: every map keeps a positive pixel
    assert 0.0 <= comp["mse"]["mass_near_gt"][0] <= 1.0
    shown = hdm_training.example_heatmaps(runs, preset=preset, joint=9)
    assert set(shown["maps"]) == {"mse", "emd"} and shown["maps"]["emd"].shape == tuple(preset.heatmap_size)
    assert (shown["maps"]["emd"] >= 0).all()


def test_recorded_emd_vs_mse_reads_the_replication_and_never_invents_one(two_step_runs, tmp_path):
    from poselab.chapters.hdm import training as hdm_training
    from poselab.experiments.replicate import _write_run, replication_folder
    runs, _ = two_step_runs
    none = hdm_training.recorded_emd_vs_mse(root=tmp_path, preset=runs.results[0].preset)
    assert none["recorded"] is False and "poselab replicate 04_hdm" in none["reason"]
    folder = replication_folder("04_hdm", tmp_path)
    for res in runs.results:
        _write_run(folder, res, started={"commit": "abc", "dirty": False}, wall=1.0, cpu=1.0, command="test")
    rec = hdm_training.recorded_emd_vs_mse(root=tmp_path, preset=runs.results[0].preset)
    assert rec["recorded"] and rec["verdict"] == "inconclusive" and rec["seeds"] == [0]
    assert rec["current"] and rec["commits"] == ["abc"]


def test_oracle_ceilings_decoders_and_prediction_figures(two_step_runs, tmp_path):
    from poselab.data import synth
    from poselab.viz.poses import prediction_figures
    ann = synth.generate(tmp_path / "val", n_images=3, seed=11, split="val")
    ceilings = E.oracle_ceilings(ann, (64, 48), (16, 12))
    exact, msra = ceilings["unbiased target + DARK (no blur)"], ceilings["MSRA target + quarter decoder"]
    assert exact["EPE_crop"] < 1e-3 and exact["AP"] >= 0.8 and msra["EPE_crop"] > 0.3
    runs, preset = two_step_runs
    model = runs.result("mse", 0).model()
    dec = E.decoder_comparison(model, {"tiny": ann}, preset.input_size, preset.heatmap_size)
    assert set(dec) == set(E.DECODERS) and all(np.isfinite(v["tiny"]) for v in dec.values())
    pred = runs.result("mse", 0).predictions(next(iter(runs.result("mse", 0).metrics)))
    order = E.largest_persons(pred, 2)
    box = pred["bbox"][:, 2] * pred["bbox"][:, 3]
    assert len(order) == 2 and box[order[0]] == box.max()
    from poselab.experiments import resolve_run_data
    set_name = next(iter(runs.result("mse", 0).metrics))
    figs = prediction_figures(pred, resolve_run_data("synth", preset)[1][set_name], order)
    assert len(figs) == 2 and figs[0].layout.width <= 900


def test_simcc_known_coordinates_hold_and_catch_a_self_consistent_quarter_pixel_shift():
    """Issue #26 item 6: a SimCC convention shifted by 0.25 px in both encode and decode passes the
    round trip but not the check against input-pixel coordinates of known points."""
    from poselab.chapters.engine.analysis import simcc_known_coordinate_check
    from poselab.codecs.simcc import SimCCCodec
    for k in (2, 3):
        assert simcc_known_coordinate_check(split_ratio=k)["holds"]

    class Shifted(SimCCCodec):
        def encode(self, keypoints, visible=None):
            return super().encode(torch.as_tensor(keypoints) + 0.25, visible)

        def decode(self, simcc_x, simcc_y):
            coords, scores = super().decode(simcc_x, simcc_y)
            return coords - 0.25, scores

    shifted = lambda unbiased: Shifted((256, 192), 2, 6.0, unbiased=unbiased)  # noqa: E731
    kp = torch.tensor([[[10.3, 20.7], [100.1, 50.45]]])
    coords, _ = shifted(False).decode(*[shifted(False).encode(kp)[n] for n in ("target_x", "target_y")])
    assert (coords - kp).abs().max() <= 0.25 + 1e-5  # the round trip cannot see the shift
    bad = simcc_known_coordinate_check(codec=shifted)
    assert not bad["holds"] and bad["peak_bin_errors"] > 0


def test_training_is_deterministic_across_processes_and_the_check_sees_a_different_seed():
    """Issue #26 item 9: chapter 01's determinism claim across two fresh processes (different
    PYTHONHASHSEED, own caches); the counter-case is two different seeds."""
    from poselab.chapters.engine.analysis import training_losses_in_processes
    from poselab.experiments import get_preset
    short = get_preset("fast").replace(name="determinism", max_steps=3, val_every=None)
    a, b, other = training_losses_in_processes("mse", preset=short, seeds=(0, 0, 1))
    assert len(a) == 3 and a == b
    assert other != a  # the counter-case: a different seed is seen
    with pytest.raises(TypeError, match="registered recipe name"):
        training_losses_in_processes(object(), preset=short)


def test_compare_first_seed_live_trains_the_others_in_workers_with_the_same_numbers(tmp_path, monkeypatch):
    """Issue #26 item 9: chapter 01's seeds side by side — the first live (callbacks), the others
    at the same time in one-thread workers; a worker's run equals the same run trained here."""
    from poselab.chapters.engine.analysis import compare_first_seed_live
    from poselab.experiments import get_preset, run_recipe
    from poselab.train.callbacks import Callback

    class Steps(Callback):
        def __init__(self):
            self.n = 0

        def on_step_end(self, state):
            self.n += 1

    monkeypatch.setenv("POSELAB_CACHE_DIR", str(tmp_path / "cache"))
    short = get_preset("fast").replace(name="live-first", max_steps=3, val_every=None)
    # where memory (or POSELAB_JOBS) allows one job only — Binder's 2 GB — no worker starts
    monkeypatch.setenv("POSELAB_JOBS", "1")
    monkeypatch.setenv("POSELAB_CACHE_DIR", str(tmp_path / "alone"))
    alone = Steps()
    compare_first_seed_live("mse", [0, 1], preset=short, device="cpu", callbacks=[alone], progress=False)
    assert alone.n == 6                                                  # both seeds trained here
    monkeypatch.setenv("POSELAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("POSELAB_JOBS", "2")                              # a default: live plots still work
    steps = Steps()
    table = compare_first_seed_live("mse", [0, 1], preset=short, device="cpu", callbacks=[steps], progress=False)
    assert [r.seed for r in table.results] == [0, 1] and steps.n == 3  # callbacks saw the first seed only
    assert table.results[1].config["threads"] == 1
    here = run_recipe("mse", preset=short, seed=1, device="cpu", cache=False, threads=1)
    assert here.training_history().losses == table.results[1].training_history().losses
    with pytest.raises(ValueError, match="at least one seed"):
        compare_first_seed_live("mse", [], preset=short)


def _blind_records(model_losses, blind=1.0, sets=None):
    sets = sets or ["generated val"] * len(model_losses)
    return [{"seed": i, "preset": "full",
             "values": {"row": {"seed": i, "model loss on evaluation crops": m, "final training loss": m},
                        "blind": {"train crops": blind, "evaluation crops": blind}, "set": s,
                        "data": "synth", "preset": "full"}}
            for i, (m, s) in enumerate(zip(model_losses, sets))]


def test_blind_rule_on_records_comes_out_both_ways():
    learnt = E.blind_from_records(_blind_records([0.50, 0.52, 0.49, 0.51, 0.50]))
    assert learnt.verdict == "reproduced"
    blind_only = E.blind_from_records(_blind_records([1.01, 1.02, 0.99, 1.03, 1.00]))
    assert blind_only.verdict == "not reproduced"
    # below the blind loss but by less than 10 % of it: the claim's minimum effect rules it out
    near = E.blind_from_records(_blind_records([0.97, 0.96, 0.975, 0.965, 0.97]))
    assert near.verdict != "reproduced"
    assert E.blind_from_records(_blind_records([0.5, 0.5])).verdict == "inconclusive"  # 2 seeds


def test_blind_records_scored_against_different_predictors_are_refused():
    recs = _blind_records([0.5, 0.5, 0.5])
    recs[2]["values"]["blind"] = {"train crops": 2.0, "evaluation crops": 2.0}
    with pytest.raises(ValueError, match=r"seeds \[2\]"):
        E.blind_from_records(recs)


def test_recorded_blind_verdict_reads_the_chapter_folder(tmp_path):
    import json
    assert E.recorded_blind_verdict(root=tmp_path)["recorded"] is False   # nothing recorded yet
    folder = tmp_path / "01_train_in_a_minute"
    folder.mkdir()
    for rec in _blind_records([0.50, 0.52, 0.49]):
        rec.update(kind="poselab-replication-derived", name=E.BLIND_DERIVED, chapter=folder.name)
        (folder / f"{E.BLIND_DERIVED}__full__seed{rec['seed']}.json").write_text(json.dumps(rec))
    out = E.recorded_blind_verdict(root=tmp_path)
    assert out["recorded"] is True and out["verdict"] == "reproduced" and out["seeds"] == [0, 1, 2]


def test_blind_record_matches_the_live_rule(two_step_runs):
    runs, preset = two_step_runs
    run = runs.result("mse", 0)
    live = E.blind_baseline_for_runs([run])
    rec = E.blind_record(run)
    assert rec["row"] == live["rows"][0] and rec["blind"] == live["blind"]
    assert [s.name for s in E.derived_steps()] == [E.BLIND_DERIVED]


# ----------------------------------------------------------------------------- hostile inputs (QA)
_BLIND = {"train crops": 0.0185, "evaluation crops": 0.0208}


def _blind_rec(seed, preset="full", data="synth", blind=_BLIND, row_seed=None):
    row = {"seed": seed if row_seed is None else row_seed, "model loss on evaluation crops": 0.010 + 0.0005 * seed,
           "final training loss": 0.01, "first training loss": 0.06}
    return {"seed": seed, "preset": preset, "values": {"row": row, "blind": blind, "set": "generated val", "data": data}}


def test_blind_from_records_refuses_mixed_presets_data_and_repeated_seeds():
    assert E.blind_from_records([_blind_rec(s) for s in range(3)]).verdict == "reproduced"
    with pytest.raises(ValueError, match="another blind predictor"):   # a fast record pooled with full ones
        E.blind_from_records([_blind_rec(0), _blind_rec(1, preset="fast"), _blind_rec(2)])
    with pytest.raises(ValueError, match="another blind predictor"):
        E.blind_from_records([_blind_rec(0), _blind_rec(1, data="coco"), _blind_rec(2)])
    with pytest.raises(ValueError, match="once"):                      # one seed thrice was 'three seeds'
        E.blind_from_records([_blind_rec(0), _blind_rec(0), _blind_rec(0)])
    with pytest.raises(ValueError, match="another seed's row"):
        E.blind_from_records([_blind_rec(0), _blind_rec(1, row_seed=2), _blind_rec(2)])
    with pytest.raises(ValueError, match="not blind_mse records"):     # was KeyError: 'values'
        E.blind_from_records([{"seed": 0}])


def test_blind_verdict_needs_a_blind_loss_and_rows():
    rows = [_blind_rec(s)["values"]["row"] for s in range(3)]
    with pytest.raises(ValueError, match="evaluation crops"):          # was KeyError / ClaimError on min_effect
        E.blind_verdict(rows, {}, "full", "synth", "generated val")
    with pytest.raises(ValueError, match="evaluation crops"):
        E.blind_verdict(rows, {"evaluation crops": float("nan")}, "full", "synth", "generated val")
    with pytest.raises(ValueError, match="at least one"):
        E.blind_verdict([], _BLIND, "full", "synth", "generated val")
