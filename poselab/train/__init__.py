"""poselab.train — one fit loop with callbacks, checkpoints and the evaluation helper.

    from poselab.train import fit, ProgressBar, Checkpoint
    history = fit(model, loss_fn, train_set, epochs=3, callbacks=[ProgressBar()])
"""
from .callbacks import Callback, Checkpoint, ProgressBar, StopAfter
from .checkpoint import load_checkpoint, save_checkpoint
from .history import History
from .loop import FitState, fit, lr_factor, resolve_device, to_device

__all__ = ["fit", "History", "FitState", "Callback", "ProgressBar", "Checkpoint", "StopAfter",
           "load_checkpoint", "save_checkpoint", "resolve_device", "to_device", "lr_factor"]
from .evaluate import Evaluator, codec_for_model, default_codec, evaluate, instance_scores, predict_crops

__all__ += ["evaluate", "Evaluator", "default_codec", "codec_for_model", "instance_scores", "predict_crops"]
