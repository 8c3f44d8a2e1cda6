"""Hostile inputs to the training loop and its checkpoints (reliability probe, issue 10)."""
from __future__ import annotations

import pickle

import pytest
import torch
from torch.utils.data import Dataset

from poselab.losses import heatmap_mse_loss
from poselab.models import build_model
from poselab.train import Callback, Checkpoint, fit, load_checkpoint

SIZE = (16, 16)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class Toy(Dataset):
    def __init__(self, n=24):
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(n, 3, *SIZE, generator=g)
        self.t = torch.rand(n, 17, SIZE[0] // 4, SIZE[1] // 4, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"image": self.x[i], "target": self.t[i], "weights": torch.ones(17)}


def mse(outputs, batch):
    return heatmap_mse_loss(outputs, batch["target"], batch["weights"])


def nan_gradient_from_step(k):
    """MSE, plus from step k a term that is 0 (finite) but has a NaN gradient: sqrt at 0."""
    def loss_fn(outputs, batch):
        loss = mse(outputs, batch)
        if batch["step"] >= k:
            loss = loss + torch.sqrt((outputs - outputs.detach()).square().sum())
        return loss
    return loss_fn


def _model():
    return build_model("heatmap", SIZE, seed=0)


# ------------------------------------------------------------------ gradients

def test_finite_loss_with_nan_gradient_stops_before_writing_nan_weights(tmp_path):
    ckpt = tmp_path / "c.pt"
    model = _model()
    with pytest.raises(FloatingPointError) as e:
        fit(model, nan_gradient_from_step(2), Toy(), max_steps=5, batch_size=8,
            callbacks=[Checkpoint(ckpt, every_steps=1)])
    msg = str(e.value)
    assert "step 2" in msg and "loss is finite" in msg and "not updated" in msg and "sqrt" in msg
    assert "backbone" in msg or "head" in msg  # names the parameter
    assert all(bool(p.isfinite().all()) for p in model.parameters())
    saved = load_checkpoint(ckpt)
    assert saved["step"] == 2  # the last good state, not NaN weights
    assert all(bool(v.isfinite().all()) for v in saved["model"].values() if v.is_floating_point())
    reference = _model()
    fit(reference, mse, Toy(), max_steps=2, batch_size=8)
    current = dict(model.named_parameters())  # BN running stats saw one more forward; weights not
    for name, value in reference.named_parameters():
        assert torch.equal(value, current[name]), name


def test_nan_gradient_is_caught_without_clipping_too():
    with pytest.raises(FloatingPointError, match="step 0"):
        fit(_model(), nan_gradient_from_step(0), Toy(), max_steps=2, batch_size=8, grad_clip=None)


@pytest.mark.parametrize("grad_clip", [-1.0, 0.0, float("nan"), float("inf"), "1"])
def test_bad_grad_clip_refused(grad_clip):
    with pytest.raises(ValueError, match="grad_clip"):
        fit(_model(), mse, Toy(), max_steps=1, batch_size=8, grad_clip=grad_clip)


# ------------------------------------------------------------------ counts and rates

@pytest.mark.parametrize("kwargs, words", [
    ({"epochs": 1.7}, "epochs must be a whole number"),
    ({"epochs": "2"}, "epochs"),
    ({"epochs": True}, "epochs"),
    ({"epochs": float("nan")}, "epochs"),
    ({"max_steps": 2.5}, "max_steps"),
    ({"max_steps": -1}, "max_steps"),
    ({"max_steps": 2, "batch_size": 2.5}, "batch_size"),
    ({"max_steps": 2, "batch_size": 0}, "batch_size"),
    ({"max_steps": 2, "lr": float("nan")}, "lr"),
    ({"max_steps": 2, "lr": -1e-3}, "lr"),
    ({"max_steps": 2, "weight_decay": float("inf")}, "weight_decay"),
    ({"max_steps": 2, "warmup_steps": -3}, "warmup_steps"),
    ({"max_steps": 2, "val_every": 0}, "val_every"),
    ({"max_steps": 2, "schedule": "linear"}, "schedule"),
])
def test_bad_fit_arguments(kwargs, words):
    kwargs = {"batch_size": 8, **kwargs}
    with pytest.raises(ValueError, match=words):
        fit(_model(), mse, Toy(), **kwargs)


def test_integral_float_epochs_accepted():
    history = fit(_model(), mse, Toy(), epochs=1.0, batch_size=8)
    assert history.steps == 3


# ------------------------------------------------------------------ resume

@pytest.fixture()
def checkpoint(tmp_path):
    path = tmp_path / "ckpt.pt"
    fit(_model(), mse, Toy(), max_steps=4, batch_size=8, callbacks=[Checkpoint(path)])
    return path


@pytest.mark.parametrize("change, words", [
    ({"batch_size": 4}, "batch_size=8 (this call: 4)"),
    ({"seed": 3}, "seed=0 (this call: 3)"),
    ({"warmup_steps": 10}, "warmup_steps=50 (this call: 10)"),
    ({"schedule": "cosine"}, "schedule='constant'"),
])
def test_resume_with_other_settings_is_refused_naming_both(checkpoint, change, words):
    kwargs = {"max_steps": 8, "batch_size": 8, **change}
    with pytest.raises(ValueError) as e:
        fit(_model(), mse, Toy(), resume_from=checkpoint, **kwargs)
    assert words in str(e.value) and "same values" in str(e.value) and str(checkpoint) in str(e.value)


def _crafted(path, tmp_path, **changes):
    ckpt = torch.load(path, weights_only=True)
    for key, value in changes.items():
        if "." in key:
            outer, inner = key.split(".")
            ckpt[outer][inner] = value
        else:
            ckpt[key] = value
    out = tmp_path / "crafted.pt"
    torch.save(ckpt, out)
    return out


@pytest.mark.parametrize("changes, words", [
    ({"step": "abc"}, "'step' must be an int"),
    ({"epoch": -1}, "'epoch' must be an int >= 0"),
    ({"batch_in_epoch": 2.5}, "'batch_in_epoch' must be an int"),
    ({"rng": torch.zeros(5, dtype=torch.uint8)}, "'rng' must be a uint8 tensor"),
    ({"rng": [1, 2, 3]}, "'rng'"),
    ({"history": "lots"}, "'history' must be a dict"),
    ({"history.losses": "abc"}, "history['losses']"),
    ({"history.val": ["x"]}, "history['val']"),
    ({"history.terms": {"mse": "abc"}}, "history['terms']"),
    ({"history": {}}, "stopped at step"),  # an emptied history was silently reset before
    ({"history.losses": [0.5]}, "one entry per step"),
    ({"history.terms": {"mse": [0.1] * 1000}}, "more values than"),
    ({"history.val": [{"epoch": 0, "step": 10 ** 6}]}, "not increasing within"),
    ({"settings.schedule": "linear"}, "settings['schedule']"),
    ({"settings.batch_size": 0}, "settings['batch_size']"),
    ({"model": {"backbone.w": "x"}}, "model entries"),
    ({"optimizer": [1, 2]}, "'optimizer' must be a dict"),
])
def test_crafted_checkpoint_fields_give_clear_errors(checkpoint, tmp_path, changes, words):
    crafted = _crafted(checkpoint, tmp_path, **changes)
    with pytest.raises(ValueError) as e:
        fit(_model(), mse, Toy(), max_steps=8, batch_size=8, resume_from=crafted)
    assert words in str(e.value) and "crafted.pt" in str(e.value)


def test_checkpoint_position_beyond_the_epoch_is_refused(checkpoint, tmp_path):
    crafted = _crafted(checkpoint, tmp_path, batch_in_epoch=10 ** 6)
    with pytest.raises(ValueError, match="batches per epoch"):
        fit(_model(), mse, Toy(), max_steps=8, batch_size=8, resume_from=crafted)


class _Evil:
    def __reduce__(self):
        import pathlib
        return (pathlib.Path.touch, (pathlib.Path(_Evil.target),))


def test_malicious_pickle_is_not_executed(tmp_path):
    """Held up well in the outside probe: weights_only=True keeps it that way."""
    _Evil.target = str(tmp_path / "pwned")
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"poselab_checkpoint": 1, "model": _Evil()}, f, protocol=2)
    with pytest.raises(ValueError, match="weights_only"):
        fit(_model(), mse, Toy(), max_steps=2, batch_size=8, resume_from=path)
    assert not (tmp_path / "pwned").exists()


def test_resume_stays_bit_identical(tmp_path):
    """Held up well: seeded + resumed == uninterrupted, with the new gradient check in place."""
    path = tmp_path / "half.pt"
    full_model = _model()
    full = fit(full_model, mse, Toy(), max_steps=6, batch_size=8, warmup_steps=2, grad_clip=0.5)

    class Stop(Callback):
        def on_step_end(self, state):
            state.stop = state.step >= 4

    fit(_model(), mse, Toy(), max_steps=6, batch_size=8, warmup_steps=2, grad_clip=0.5,
        callbacks=[Checkpoint(path), Stop()])
    resumed_model = build_model("heatmap", SIZE, seed=7)
    resumed = fit(resumed_model, mse, Toy(), max_steps=6, batch_size=8, warmup_steps=2,
                  grad_clip=0.5, resume_from=path)
    assert resumed.losses == full.losses
    assert all(torch.equal(v, resumed_model.state_dict()[k]) for k, v in full_model.state_dict().items())


# ------------------------------------------------------------------ found by our own probe

def test_loss_without_a_graph_is_a_clear_error():
    """E.g. a loss that returns a fresh zero when every joint is invisible (was: a raw
    'element 0 of tensors does not require grad' from deep inside autograd)."""
    with pytest.raises(ValueError, match="no gradient at step 0.*outputs.sum\\(\\) \\* 0"):
        fit(_model(), lambda o, b: torch.tensor(0.0), Toy(), max_steps=1, batch_size=8)
    with pytest.raises(ValueError, match="no gradient"):
        fit(_model(), lambda o, b: mse(o, b).detach(), Toy(), max_steps=1, batch_size=8)


def test_zero_loss_connected_to_the_outputs_trains_fine():
    history = fit(_model(), lambda o, b: o.sum() * 0, Toy(), max_steps=2, batch_size=8)
    assert history.losses == [0.0, 0.0]


@pytest.mark.parametrize("device", ["cuda:7", "mps"])
def test_unavailable_device_names_the_alternatives(device):
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    with pytest.raises(ValueError, match="device='auto'"):
        fit(_model(), mse, Toy(), max_steps=1, batch_size=8, device=device)


def test_callbacks_must_be_callbacks():
    with pytest.raises(ValueError, match="callbacks must be poselab.train.Callback"):
        fit(_model(), mse, Toy(), max_steps=1, batch_size=8, callbacks=["progress"])


@pytest.mark.parametrize("kwargs", [{"every_steps": -1}, {"every_steps": 1.5}, {"every_epochs": 0}])
def test_checkpoint_intervals_checked(tmp_path, kwargs):
    with pytest.raises(ValueError, match="Checkpoint every_"):
        Checkpoint(tmp_path / "c.pt", **kwargs)


def test_checkpoint_path_naming_a_folder(tmp_path):
    with pytest.raises(ValueError, match="is a folder"):
        Checkpoint(tmp_path)


@pytest.mark.parametrize("size", [(64,), (64.5, 48), (0, 48)])
def test_evaluate_default_codec_input_size(size):
    from poselab.train.evaluate import default_codec
    with pytest.raises(ValueError, match="input_size"):
        default_codec("heatmap", size, heatmap_size=(16, 12))


def test_evaluate_default_codec_needs_the_models_map_size():
    from poselab.train.evaluate import default_codec
    with pytest.raises(ValueError, match="heatmap_size"):   # no default stride
        default_codec("integral", (64, 48))
    with pytest.raises(ValueError, match="heatmap_size"):
        default_codec("heatmap", (64, 48), heatmap_size=(16.5, 12))


@pytest.mark.parametrize("kwargs, words", [
    ({"batch_size": 0}, "batch_size"), ({"max_persons": -1}, "max_persons"),
    ({"max_persons": 0}, "max_persons"), ({"score_threshold": float("nan")}, "score_threshold"),
    ({"score_fn": "mean"}, "score_fn must be callable"),
])
def test_evaluator_arguments(tmp_path, kwargs, words):
    from poselab.train import Evaluator
    with pytest.raises(ValueError, match=words):
        Evaluator(tmp_path / "person_keypoints_val.json", **kwargs)


@pytest.fixture(scope="module")
def tiny_val(tmp_path_factory):
    from poselab.data import synth
    return synth.generate(tmp_path_factory.mktemp("val"), n_images=2, seed=3, split="val")


@pytest.mark.parametrize("score_fn", [lambda s: s.mean(1) * float("nan"), lambda s: s[:1, 0]])
def test_evaluator_score_fn_output_checked(tiny_val, score_fn):
    from poselab.train import Evaluator
    model = build_model("heatmap", (64, 48), seed=0)
    with pytest.raises(ValueError, match="score_fn must return"):
        Evaluator(tiny_val, score_fn=score_fn, device="cpu")(model)


def test_evaluator_on_a_diverged_model_names_the_network_output(tiny_val):
    from poselab.train import Evaluator
    model = build_model("heatmap", (64, 48), seed=0)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    with pytest.raises(ValueError, match="NaN or Inf; check the network output"):
        Evaluator(tiny_val, device="cpu")(model)
