"""CropCache: same persons, augmentation, keypoints and (nearly) pixels as TopDownDataset; fit's
batch order; batched targets; exact resume through fit; the cache covers every augmented window."""
import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from poselab.codecs import HeatmapCodec
from poselab.data import TopDownDataset, find_coco_sample, resolve_dataset
from poselab.data.crop_cache import CropCache, batched_crop_matrices
from poselab.data.synth import generate
from poselab.data.transforms import _compose, affine_matrix, flip_matrix
from poselab.losses import heatmap_mse_loss
from poselab.models import build_model
from poselab.train import Checkpoint, fit
from poselab.train.loop import _epoch_batches

SIZE = (64, 48)
STD255 = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def synth_json(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    generate(out, 12, seed=5, split="train")
    return out / "annotations" / "person_keypoints_train.json"


def _reference(ann, idx, epoch, **kw):
    ds = TopDownDataset(ann, input_size=kw.pop("input_size", SIZE), train=kw.pop("train", True), **kw)
    ds.set_epoch(epoch)
    return default_collate([ds[i] for i in idx])


def _pixel_diff(a, b):
    """|a - b| in grey levels (0..255) of the un-normalised images."""
    return (a - b).abs() * STD255


def test_batch_matches_topdown_dataset_item_for_item(synth_json):
    cache = CropCache(synth_json, input_size=SIZE, batch_size=8, seed=3, flip_prob=0.5)
    idx = cache.order(2)[0]
    b = cache.batch(idx, epoch=2)
    ref = _reference(synth_json, idx, 2, seed=3, flip_prob=0.5)
    assert bool(b["flipped"].any()) and bool((b["rotation"] != 0).any())  # the draw exercises both
    assert torch.equal(b["flipped"], ref["flipped"])
    assert torch.allclose(b["rotation"].double(), ref["rotation"].double(), atol=1e-5)
    assert (b["keypoints"] - ref["keypoints"]).abs().max() < 1e-4
    assert (b["keypoints_true"] - ref["keypoints_true"]).abs().max() < 1e-4
    assert torch.equal(b["visible"], ref["visible"]) and torch.equal(b["v"], ref["v"])
    assert b["image"].dtype == torch.float32 and b["image"].shape == (8, 3, *SIZE)
    d = _pixel_diff(b["image"], ref["image"])
    assert d.mean() < 8.0  # a second bilinear interpolation: a slight blur, no shift
    # counter-case: another epoch's augmentation is far from this one
    other = _reference(synth_json, idx, 3, seed=3, flip_prob=0.5)
    assert (b["keypoints"] - other["keypoints"]).abs().max() > 1.0
    assert _pixel_diff(b["image"], other["image"]).mean() > 2 * d.mean()


def test_finer_cache_is_closer_to_the_direct_crop(synth_json):
    idx = list(range(8))
    ref = _reference(synth_json, idx, 1, seed=0)
    diffs = []
    for res in (1.0, 2.0):
        cache = CropCache(synth_json, input_size=SIZE, batch_size=8, seed=0, resolution=res)
        diffs.append(_pixel_diff(cache.batch(idx, 1)["image"], ref["image"]).mean())
    assert diffs[1] < diffs[0]


def test_unaugmented_crop_is_exact(synth_json):
    # train=False: the cache grid is the output grid shifted by whole pixels -> same pixels
    cache = CropCache(synth_json, input_size=SIZE, batch_size=8, train=False, shuffle=False)
    idx = list(range(min(8, cache.num_persons)))
    b = cache.batch(idx)
    ref = _reference(synth_json, idx, 0, train=False)
    assert _pixel_diff(b["image"], ref["image"]).max() <= 1.01
    assert (b["keypoints"] - ref["keypoints"]).abs().max() < 1e-4


def _black_where_reference_is_not(image, reference):
    """Fraction of pixels black (< 0.5 grey) in ``image`` but not (> 20) in ``reference``."""
    mean255 = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
    a = (image * STD255 + mean255).amax(1)
    r = (reference * STD255 + mean255).amax(1)
    return float(((a < 0.5) & (r > 20)).float().mean())


def test_extreme_augmentation_stays_inside_the_cache(synth_json, monkeypatch):
    """Largest scale factor and rotations up to 60°: the whole window is cached (no black band).
    Counter-case: a cache built for no scale jitter is too small for factor 1.25."""
    def extreme(self, index):
        return 1.25, [60.0, -60.0, 45.0, -30.0][index % 4], False
    idx = list(range(8))
    monkeypatch.setattr(TopDownDataset, "augmentation", extreme)
    ref = _reference(synth_json, idx, 0)
    cache = CropCache(synth_json, input_size=SIZE, batch_size=8, seed=0, scale_jitter=0.25)
    good = cache.batch(idx)["image"]
    small = CropCache(synth_json, input_size=SIZE, batch_size=8, seed=0, scale_jitter=0.0)
    bad = small.batch(idx)["image"]
    assert _black_where_reference_is_not(good, ref["image"]) == 0.0
    assert _pixel_diff(good, ref["image"]).mean() < 8.0
    assert _black_where_reference_is_not(bad, ref["image"]) > 0.005


def test_batched_matrices_equal_affine_matrix_with_flip():
    rng = np.random.default_rng(0)
    n = 20
    center = rng.uniform(20, 200, (n, 2))
    scale = rng.uniform(30, 150, (n, 2))
    rot = rng.uniform(-60, 60, n)
    flip = rng.random(n) < 0.5
    width = rng.integers(220, 400, n).astype(float)
    got = batched_crop_matrices(torch.from_numpy(center), torch.from_numpy(scale), torch.from_numpy(rot),
                                torch.from_numpy(flip), torch.from_numpy(width), SIZE).numpy()
    for i in range(n):
        if flip[i]:
            c = np.array([width[i] - 1 - center[i, 0], center[i, 1]])
            ref = _compose(affine_matrix(c, scale[i], SIZE, rot[i]), flip_matrix(width[i]))
        else:
            ref = affine_matrix(center[i], scale[i], SIZE, rot[i])
        np.testing.assert_allclose(got[i], ref, atol=1e-9)


def test_order_is_fits_order_and_deterministic(synth_json):
    cache = CropCache(synth_json, input_size=SIZE, batch_size=4, seed=7)
    n = cache.num_persons
    for epoch in (0, 1, 5):
        assert cache.order(epoch) == _epoch_batches(n, 4, 7, epoch, True, True)
    assert len(cache) == len(cache.order(0)) == n // 4
    a = list(cache.epoch(1))
    b = list(CropCache(synth_json, input_size=SIZE, batch_size=4, seed=7).epoch(1))
    assert all(torch.equal(x["image"], y["image"]) for x, y in zip(a, b))
    c = list(CropCache(synth_json, input_size=SIZE, batch_size=4, seed=8).epoch(1))
    assert not torch.equal(a[0]["image"], c[0]["image"])
    skipped = list(cache.epoch(1, skip=2))
    assert len(skipped) == len(a) - 2 and torch.equal(skipped[0]["keypoints"], a[2]["keypoints"])
    keep = CropCache(synth_json, input_size=SIZE, batch_size=4, seed=7, drop_last=False)
    assert len(keep) == -(-n // 4) and sum(len(x) for x in keep.order(0)) == n


def test_batched_targets_equal_per_item_encoding(synth_json):
    codec = HeatmapCodec(SIZE, (32, 24), sigma=2.0)
    cache = CropCache(synth_json, input_size=SIZE, batch_size=6, seed=1, target_fn=codec.encode)
    b = next(iter(cache.epoch(0)))
    for i in range(6):
        one = codec.encode(b["keypoints"][i], b["visible"][i])
        assert torch.equal(one["target"], b["target"][i]) and torch.equal(one["weights"], b["weights"][i])
    assert b["target"].shape == (6, 17, 32, 24)


def test_fit_trains_on_a_cache_and_resumes_exactly(synth_json, tmp_path):
    codec = HeatmapCodec(SIZE, (32, 24))
    cache = CropCache(synth_json, input_size=SIZE, batch_size=4, seed=2, target_fn=codec.encode)

    def loss(out, batch):
        return heatmap_mse_loss(out, batch["target"], batch["weights"])

    steps = len(cache) + 2  # crosses an epoch boundary
    full_model = build_model("heatmap", SIZE, seed=0, heatmap_stride=2)
    full = fit(full_model, loss, cache, max_steps=steps, warmup_steps=2, device="cpu")
    assert len(full.losses) == steps and all(np.isfinite(full.losses))
    assert set(full.batch_sizes) == {4}
    path = tmp_path / "c.pt"
    fit(build_model("heatmap", SIZE, seed=0, heatmap_stride=2), loss, cache, max_steps=steps - 1,
        warmup_steps=2, device="cpu", callbacks=[Checkpoint(path)])
    fresh = build_model("heatmap", SIZE, seed=9, heatmap_stride=2)
    resumed = fit(fresh, loss, cache, max_steps=steps, warmup_steps=2, device="cpu", resume_from=path)
    assert resumed.losses == full.losses
    sa, sb = fresh.state_dict(), full_model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_channels_last_batches_and_bad_arguments(synth_json):
    cache = CropCache(synth_json, input_size=SIZE, batch_size=4, memory_format=torch.channels_last)
    img = cache.batch([0, 1])["image"]
    assert img.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ValueError, match="batch_size"):
        CropCache(synth_json, batch_size=0)
    with pytest.raises(ValueError, match="resolution"):
        CropCache(synth_json, resolution=float("nan"))
    with pytest.raises(ValueError, match="target_fn"):
        CropCache(synth_json, target_fn=3)
    with pytest.raises(ValueError, match="flip_prob"):
        CropCache(synth_json, flip_prob=2.0)
    with pytest.raises(IndexError, match="person indices"):
        cache.batch([10_000])
    clash = CropCache(synth_json, batch_size=2, target_fn=lambda k, v: {"image": k})
    with pytest.raises(ValueError, match="collide"):
        clash.batch([0, 1])


def test_real_coco_sample_with_flip():
    sample = find_coco_sample()
    if sample is None:
        pytest.skip("real COCO sample not present")
    ann = resolve_dataset(sample, "val")
    cache = CropCache(ann, input_size=SIZE, batch_size=8, seed=0, flip_prob=0.5)
    idx = cache.order(0)[0]
    b = cache.batch(idx, 0)
    ref = _reference(ann, idx, 0, seed=0, flip_prob=0.5)
    assert (b["keypoints"] - ref["keypoints"]).abs().max() < 1e-4
    assert torch.equal(b["visible"], ref["visible"])
    assert _pixel_diff(b["image"], ref["image"]).mean() < 10.0


def test_every_batch_path_carries_each_persons_area_for_instance_sort(synth_json):
    """RSPose's Instance-Sort trained with one constant area (1966 heatmap px² at 64x48) because
    crop-cache batches carried no area: its KS was far more lenient than the evaluated OKS. Both
    batch paths now carry each person's COCO area and crop window, and the recipe's areas follow
    them person by person (computed here independently from the json and the box)."""
    import json as _json
    from poselab.data.transforms import bbox_to_center_scale
    from poselab.experiments.registry import Geometry
    from poselab.chapters.rspose.recipes import heatmap_areas

    size = (128, 96)
    geometry = Geometry(size, (64, 48), 17)
    cache = CropCache(synth_json, input_size=size, batch_size=8, seed=3, train=True)
    idx = list(range(8))
    batch = cache.batch(idx, epoch=2)
    ref = _reference(synth_json, idx, 2, input_size=size, seed=3)
    np.testing.assert_allclose(batch["area"].numpy(), ref["area"].numpy(), rtol=1e-6)
    np.testing.assert_allclose(batch["scale"].numpy(), ref["scale"].numpy(), rtol=1e-5)
    got = heatmap_areas(batch, geometry).numpy()
    np.testing.assert_allclose(got, heatmap_areas(ref, geometry).numpy(), rtol=1e-5)
    anns = {a["id"]: a for a in _json.loads(synth_json.read_text())["annotations"]}
    people = [cache.persons[i] for i in idx]
    want = []
    for p, factor in zip(people, batch["scale_factor"].numpy()):
        a = anns[p.ann_id]
        _, s = bbox_to_center_scale(np.asarray(a["bbox"], dtype=np.float64), size, 1.25)
        window = np.asarray(s) * factor
        want.append(a["area"] * (96 / window[0]) * (128 / window[1]) / 4.0)
    np.testing.assert_allclose(got, want, rtol=1e-4)
    assert np.ptp(got) > 0.1 * got.mean()  # per person, not one constant
    assert got.max() < 64 * 48 / 1.25 ** 2  # smaller than the whole box (the old constant)
    with pytest.raises(ValueError, match="needs each person's area"):
        heatmap_areas({k: v for k, v in batch.items() if k != "area"}, geometry)


def test_crops_kept_on_another_device_warp_there(synth_json):
    """``CropCache.to(device)``: the warp runs where the crops are (image on that device, the
    keypoints and targets on the CPU). Simulated on the CPU with torch's ``meta`` device (shapes
    and devices without data); ``to("cpu")`` gives the very same batches."""
    codec = HeatmapCodec(input_size=(64, 48), heatmap_size=(16, 12))
    plain = CropCache(synth_json, input_size=(64, 48), target_fn=codec.encode, batch_size=4,
                      seed=3, rotation=30, scale_jitter=0.25, flip_prob=0.5)
    moved = CropCache(synth_json, input_size=(64, 48), target_fn=codec.encode, batch_size=4,
                      seed=3, rotation=30, scale_jitter=0.25, flip_prob=0.5).to("cpu")
    a, b = plain.batch([0, 1, 2], epoch=1), moved.batch([0, 1, 2], epoch=1)
    assert all(torch.equal(a[k], b[k]) for k in a if isinstance(a[k], torch.Tensor))
    meta = plain.to("meta")
    assert meta is plain and plain.device.type == "meta"
    batch = plain.batch([0, 1, 2], epoch=1)
    assert batch["image"].device.type == "meta" and batch["image"].shape == (3, 3, 64, 48)
    assert {v.device.type for k, v in batch.items() if isinstance(v, torch.Tensor) and k != "image"} == {"cpu"}
    assert "weights" in batch  # the codec's targets are there, made on the CPU
    assert torch.equal(batch["keypoints"], a["keypoints"])
