"""The ImageNet ResNet-18 SimpleBaseline without torchvision: torchvision's names and shapes, the
weights file's loading (hub cache, env, explicit path) with locally made files — never a
download — and the coco preset end to end on the real COCO sample."""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import pytest
import torch

from poselab.models import build_model
from poselab.models import imagenet_resnet as ir
from poselab.models.imagenet_resnet import (RESNET18_FILE, RESNET18_URL, ImageNetResNet18Backbone,
                                            load_imagenet_weights)


def torchvision_resnet18_shapes() -> dict[str, tuple]:
    """torchvision's resnet18 state-dict names and shapes, written out from its architecture
    (stem conv 7×7, BasicBlocks [2, 2, 2, 2] at 64/128/256/512, 1×1 downsample where the stride
    or width changes, fc 512 → 1000), independently of the module under test."""
    shapes = {"conv1.weight": (64, 3, 7, 7)}

    def bn(prefix, c):
        shapes.update({f"{prefix}.weight": (c,), f"{prefix}.bias": (c,),
                       f"{prefix}.running_mean": (c,), f"{prefix}.running_var": (c,),
                       f"{prefix}.num_batches_tracked": ()})

    bn("bn1", 64)
    cin = 64
    for layer, cout in enumerate((64, 128, 256, 512), start=1):
        for block in (0, 1):
            p = f"layer{layer}.{block}"
            first_in = cin if block == 0 else cout
            shapes[f"{p}.conv1.weight"] = (cout, first_in, 3, 3)
            bn(f"{p}.bn1", cout)
            shapes[f"{p}.conv2.weight"] = (cout, cout, 3, 3)
            bn(f"{p}.bn2", cout)
            if block == 0 and layer > 1:
                shapes[f"{p}.downsample.0.weight"] = (cout, cin, 1, 1)
                bn(f"{p}.downsample.1", cout)
        cin = cout
    shapes["fc.weight"], shapes["fc.bias"] = (1000, 512), (1000,)
    return shapes


def _weights_file(folder: Path, seed: int = 0, name: str | None = None, drop=(), reshape=()) -> Path:
    """A fake torchvision-format resnet18 file (random values), named ``resnet18-<sha8>.pth``."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in torchvision_resnet18_shapes().items():
        if key in drop:
            continue
        if key in reshape:
            shape = (shape[0] + 1,) + shape[1:]
        state[key] = (torch.tensor(7) if key.endswith("num_batches_tracked")
                      else torch.randn(shape, generator=g))
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "tmp.pth"
    torch.save(state, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    path = folder / (name or f"resnet18-{digest[:8]}.pth")
    tmp.rename(path)
    return path


def test_backbone_has_torchvision_names_and_shapes():
    net = ImageNetResNet18Backbone(weights=None)
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items() if not k.startswith("deconvs.")}
    theirs = {k: v for k, v in torchvision_resnet18_shapes().items() if not k.startswith("fc.")}
    assert ours == theirs
    out = net(torch.randn(1, 3, 256, 192))
    assert out.shape == (1, 256, 64, 48)  # SimpleBaseline: 256×192 → 64×48
    assert ImageNetResNet18Backbone(weights=None, stride=2)(torch.randn(1, 3, 64, 48)).shape[-2:] == (32, 24)


def test_loads_a_local_file_into_the_trunk(tmp_path):
    path = _weights_file(tmp_path)
    net = ImageNetResNet18Backbone(weights=path)
    state = torch.load(path, weights_only=True)
    assert net.weights_file == hashlib.sha256(path.read_bytes()).hexdigest()
    for key in ("conv1.weight", "layer3.0.downsample.0.weight", "layer4.1.bn2.running_var"):
        assert torch.equal(net.state_dict()[key], state[key]), key
    # counter-case: a random trunk is not the file
    assert not torch.equal(ImageNetResNet18Backbone(weights=None).state_dict()["conv1.weight"],
                           state["conv1.weight"])


def test_auto_finds_the_file_in_torch_hubs_cache_and_the_env(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    path = _weights_file(hub / "checkpoints", seed=1, name=RESNET18_FILE)
    monkeypatch.delenv("POSELAB_RESNET18_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    # the real file's name carries the real hash prefix: a different file is refused
    with pytest.raises(ValueError, match="does not start with f37072fd"):
        build_model("heatmap", (256, 192), "resnet18_imagenet")
    good = _weights_file(tmp_path / "elsewhere", seed=2)
    monkeypatch.setenv("POSELAB_RESNET18_WEIGHTS", str(good))
    model = build_model("heatmap", (256, 192), "resnet18_imagenet", seed=0)
    assert model.backbone.weights_file.startswith(good.name.split("-")[1][:8])
    assert model(torch.randn(1, 3, 256, 192)).shape == (1, 17, 64, 48)
    assert path.is_file()


def test_missing_and_wrong_files_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv("POSELAB_RESNET18_WEIGHTS", str(tmp_path / "none.pth"))
    with pytest.raises(FileNotFoundError, match=RESNET18_URL.replace(".", r"\.")):
        ImageNetResNet18Backbone()
    net = ImageNetResNet18Backbone(weights=None)
    with pytest.raises(ValueError, match="missing.*layer2.0.downsample.0.weight"):
        load_imagenet_weights(net, _weights_file(tmp_path / "a", drop={"layer2.0.downsample.0.weight"}))
    with pytest.raises(ValueError, match="shapes differ.*conv1.weight"):
        load_imagenet_weights(net, _weights_file(tmp_path / "b", reshape={"conv1.weight"}))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a torch state dict"):
        load_imagenet_weights(net, junk)
    # a file without num_batches_tracked (older torchvision files) loads
    old = _weights_file(tmp_path / "c", drop={k for k in torchvision_resnet18_shapes()
                                               if k.endswith("num_batches_tracked")})
    load_imagenet_weights(net, old)


def _coco_subset(sample: Path, out: Path, n_train: int, n_val: int) -> Path:
    """A COCO folder of the sample's first images (annotations rewritten, images linked)."""
    (out / "annotations").mkdir(parents=True)
    for split, n in (("train2017", n_train), ("val2017", n_val)):
        d = json.loads((sample / "annotations" / f"person_keypoints_{split}.json").read_text())
        with_kp = sorted({a["image_id"] for a in d["annotations"] if a.get("num_keypoints", 0) > 0})
        keep = set(with_kp[:n])
        d["images"] = [im for im in d["images"] if im["id"] in keep]
        d["annotations"] = [a for a in d["annotations"] if a["image_id"] in keep]
        (out / "annotations" / f"person_keypoints_{split}.json").write_text(json.dumps(d))
        os.symlink(sample / split, out / split)
    return out


def test_coco_preset_trains_and_evaluates_on_the_real_sample(tmp_path, monkeypatch):
    """End to end: the coco preset (256×192, 64×48 heatmaps, the ImageNet trunk from a local
    file, flips, autocast where native) trains a few steps on a COCO folder and is scored by
    pycocotools on its val split with ground-truth boxes."""
    from poselab.data import find_coco_sample
    from poselab.experiments import PRESETS, run_recipe
    sample = find_coco_sample()
    if sample is None:
        pytest.skip("no real COCO sample (../shared/coco_sample or POSELAB_COCO_SAMPLE)")
    data = _coco_subset(sample, tmp_path / "coco", n_train=2, n_val=2)
    weights = _weights_file(tmp_path / "weights")
    monkeypatch.setenv("POSELAB_RESNET18_WEIGHTS", str(weights))
    monkeypatch.setenv("POSELAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("POSELAB_COCO_SAMPLE", str(data))  # no extra evaluation on the full sample
    coco = PRESETS["coco"]
    assert (coco.input_size, coco.heatmap_size, coco.backbone) == ((256, 192), (64, 48), "resnet18_imagenet")
    preset = coco.replace(max_steps=2, batch_size=2, val_every=None)
    res = run_recipe("mse", data=str(data), preset=preset, seed=0, device="cpu", cache=False)
    assert len(res.history["losses"]) == 2 and all(math.isfinite(v) for v in res.history["losses"])
    assert list(res.metrics) == ["val"]
    ap = res.metrics["val"]["AP"]
    assert 0.0 <= ap <= 1.0 and res.metrics["val"]["n_persons"] >= 2
    assert res.config["preset"]["flip_prob"] == 0.5
    assert res.config["geometry"]["heatmap_size"] == [64, 48]
    model = res.model()
    assert model.backbone_name == "resnet18_imagenet"
    assert model(torch.zeros(1, 3, 256, 192)).shape == (1, 17, 64, 48)
