"""Every registered recipe builds, steps and decodes at both output strides the presets use.

The `fast` preset (CI) trains at stride 4, the `default` and `full` presets at stride 2: a part
that assumed one stride (a model, codec or loss sized for stride 4) would pass CI and fail a
student's default run. This builds each recipe's model, codec and loss through the registries at
a stride-4 and a stride-2 geometry and runs one forward + loss + backward + decode.
"""
import pytest
import torch

from poselab.experiments import CODECS, LOSSES, MODELS, RECIPES, Geometry

GEOMETRIES = {"stride 4": Geometry((64, 48), (16, 12)), "stride 2": Geometry((64, 48), (32, 24))}


def _loss_value(out):
    return out["loss"] if isinstance(out, dict) else out


@pytest.mark.parametrize("stride", sorted(GEOMETRIES))
@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_steps_at_every_preset_stride(name, stride):
    torch.manual_seed(0)
    geom = GEOMETRIES[stride]
    r = RECIPES[name]
    model = MODELS[r.model](r, geom, 0)
    codec = CODECS[r.codec](geom, **dict(r.codec_params))
    loss_fn = LOSSES[r.loss](geom, **dict(r.loss_params))
    kp = torch.rand(2, 17, 2) * torch.tensor([40.0, 56.0]) + 4.0
    vis = torch.ones(2, 17)
    batch = {"image": torch.randn(2, 3, 64, 48), "keypoints": kp, "visible": vis, "step": 0, "epoch": 0,
             "area": torch.tensor([900.0, 2500.0]), "scale": torch.tensor([[60.0, 80.0], [90.0, 120.0]]),
             **codec.encode(kp, vis)}
    out = model(batch["image"])
    loss = _loss_value(loss_fn(out, batch))
    assert torch.isfinite(loss), (name, stride)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad():
        out = model(batch["image"])
    coords, scores = codec.decode(out)  # one protocol: whatever the head returns
    assert coords.shape == (2, 17, 2) and scores.shape == (2, 17)
    assert torch.isfinite(coords).all()
    # the older argument forms decode the same
    if isinstance(out, dict) and "selector" in out:
        old = codec.decode(out["selector"], out["offsets"])
    elif isinstance(out, (tuple, list)):
        old = codec.decode(*out)
    else:
        old = codec.decode(out)
    assert torch.equal(old[0], coords) and torch.equal(old[1], scores)
    # the codec knows its geometry and rebuilds from its spec
    assert codec.input_size == geom.input_size
    assert codec.spec() == type(codec)(**{k: tuple(v) if isinstance(v, list) else v
                                          for k, v in codec.spec()["kwargs"].items()}).spec()
    if codec.heatmap_size is not None and r.codec != "sar_strided" and r.codec != "sar_regression":
        assert codec.stride == geom.stride
