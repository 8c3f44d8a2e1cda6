"""Chapter 04's extra recipe: MSE to the dot heatmap (HDM's second straw man)."""
import torch

from poselab.experiments import get_preset
from poselab.experiments.registry import CODECS, Geometry, get_recipe
from poselab.experiments.replicate import chapter_recipes


def test_mse_dot_is_registered_and_replicated_by_chapter_04():
    assert [r.name for r in chapter_recipes("04")] == ["mse", "emd", "mse_dot"]
    rec = get_recipe("mse_dot")
    assert rec.loss == get_recipe("mse").loss and rec.model == get_recipe("mse").model


def test_mse_dot_target_is_one_hot_at_the_rounded_pixel():
    """Fails if the recipe used the Gaussian target (the counter-case: MSE's own codec)."""
    preset = get_preset("default")
    geometry = Geometry(preset.input_size, preset.heatmap_size)
    rec = get_recipe("mse_dot")
    codec = CODECS[rec.codec](geometry, **dict(rec.codec_params))
    kp = torch.tensor([[[21.0, 33.0], [50.5, 70.2]]])  # input px of a 128x96 crop
    target = codec.encode(kp[0], torch.ones(2))["target"]
    assert target.shape[-2:] == tuple(preset.heatmap_size)
    for k in range(2):
        assert int((target[k] > 0).sum()) == 1 and float(target[k].max()) == 1.0
    gauss = CODECS[get_recipe("mse").codec](geometry, **dict(get_recipe("mse").codec_params))
    assert int((gauss.encode(kp[0], torch.ones(2))["target"][0] > 0).sum()) > 1
