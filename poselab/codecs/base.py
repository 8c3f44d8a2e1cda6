"""The one codec protocol every codec of poselab follows (:class:`Codec`).

A codec turns keypoints into a model's training targets and a model's outputs back into
keypoints, at one geometry:

- ``codec.encode(keypoints (..., K, 2) input px, visible (..., K)) -> dict`` of tensors with at
  least ``"weights" (..., K)`` (``codec(keypoints, visible)`` is the same call, so a codec is a
  dataset ``target_fn``);
- ``codec.decode(outputs) -> (coords (..., K, 2) input px, scores (..., K))``, where ``outputs``
  is exactly what the matching model head returns — a tensor (heatmap / integral heads), a
  ``(x_logits, y_logits)`` tuple (SimCC), a dict (SAR: ``{"selector", "offsets"}``);
- ``codec.input_size`` ``(H, W)``, ``codec.heatmap_size`` ``(h, w)`` of the maps it decodes (None
  for a codec without maps, e.g. SimCC) and ``codec.stride`` (input px per output cell along H);
- ``codec.spec()``: a plain, JSON-able description (class and constructor arguments) from which
  :func:`codec_from_spec` rebuilds an equal codec — how a model carries its codec through a
  checkpoint (:func:`attach_codec`).

A codec whose maps have another size than the model's outputs would decode every keypoint at the
wrong scale (a stride-2 model decoded as stride 4 lands at half its coordinates: AP 0), so every
map codec checks the size it is given (:meth:`Codec.check_map_size`) and names both sizes.
"""
from __future__ import annotations

import importlib
from typing import Any, Mapping

__all__ = ["Codec", "attach_codec", "codec_from_spec", "model_codec"]


class Codec:
    """Base class of the codecs (module docstring). Subclasses set ``input_size`` and
    ``heatmap_size`` and record their constructor arguments with :meth:`_remember`."""

    input_size: tuple[int, int]
    heatmap_size: tuple[int, int] | None = None
    _spec_kwargs: dict[str, Any]

    def _remember(self, **kwargs) -> None:
        """Record the constructor arguments :meth:`spec` returns (plain values only)."""
        self._spec_kwargs = {k: _plain(v) for k, v in kwargs.items()}

    @property
    def stride(self) -> float:
        """Input pixels per output cell along H (``input_size[0] / heatmap_size[0]``)."""
        if self.heatmap_size is None:
            raise AttributeError(f"{type(self).__name__} decodes no maps and has no heatmap stride")
        return self.input_size[0] / self.heatmap_size[0]

    def spec(self) -> dict[str, Any]:
        """``{"class": "<module>.<name>", "kwargs": {...}}``: plain values that
        :func:`codec_from_spec` turns back into an equal codec."""
        kwargs = getattr(self, "_spec_kwargs", None)
        if kwargs is None:
            raise TypeError(f"{type(self).__name__} did not record its arguments (call "
                            "self._remember(...) in __init__), so it cannot be saved with a model")
        cls = type(self)
        return {"class": f"{cls.__module__}.{cls.__qualname__}", "kwargs": dict(kwargs)}

    def check_map_size(self, maps, name: str = "output") -> None:
        """Raise ValueError unless the last two dims of ``maps`` are :attr:`heatmap_size`."""
        if self.heatmap_size is None:
            return
        got = tuple(int(v) for v in maps.shape[-2:])
        if got != tuple(self.heatmap_size):
            sx = self.input_size[1] / got[1] if got[1] else float("nan")
            raise ValueError(
                f"the {name} maps are {got[0]}×{got[1]} but this {type(self).__name__} decodes "
                f"{self.heatmap_size[0]}×{self.heatmap_size[1]} maps (stride {self.stride:g} at input "
                f"{self.input_size[0]}×{self.input_size[1]}; the model's maps are stride {sx:g}): build "
                f"the codec at the model's output size, e.g. poselab.train.codec_for_model(model)")

    def __call__(self, keypoints, visible=None) -> dict:
        return self.encode(keypoints, visible)

    def encode(self, keypoints, visible=None) -> dict:  # pragma: no cover - every codec overrides
        raise NotImplementedError

    def decode(self, outputs):  # pragma: no cover - every codec overrides
        raise NotImplementedError

    def __eq__(self, other) -> bool:
        if not isinstance(other, Codec) or type(other) is not type(self):
            return NotImplemented
        return self.spec() == other.spec()

    __hash__ = None  # mutable settings: equal codecs need not hash alike


def _plain(value):
    """Tuples → lists, recursively; numbers, strings, None, bools, lists and dicts stay."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    raise TypeError(f"a codec argument must be a plain value to be saved with a model, got "
                    f"{type(value).__name__}")


def codec_from_spec(spec: Mapping[str, Any]) -> Codec:
    """The codec a :meth:`Codec.spec` describes. Only :class:`Codec` subclasses defined in
    poselab are built (a checkpoint names a class; nothing else is imported or called)."""
    if not isinstance(spec, Mapping) or not isinstance(spec.get("class"), str) or not isinstance(
            spec.get("kwargs", {}), Mapping):
        raise ValueError(f"a codec spec is {{'class': 'poselab....Name', 'kwargs': {{...}}}}, got {spec!r:.120}")
    path = spec["class"]
    module_name, _, name = path.rpartition(".")
    if not module_name.startswith("poselab.") or not name.isidentifier():
        raise ValueError(f"a codec spec must name a poselab codec class, got {path!r}")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"the codec class {path!r} of this spec does not exist (moved or renamed?): "
                         f"{exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Codec)):
        raise ValueError(f"{path!r} is not a poselab codec class")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(spec.get("kwargs", {})).items()}
    return cls(**kwargs)


def attach_codec(model, codec):
    """Give ``model`` its codec: ``model.codec`` (what :func:`poselab.train.evaluate` decodes with)
    and, for a :class:`Codec` on a model with a ``config`` dict (a
    :class:`poselab.models.PoseModel`), ``model.config["codec"] = codec.spec()``, which a training
    checkpoint saves with the model (``build_model(**config)`` rebuilds both). A codec of one's
    own that is not a :class:`Codec` (any object with ``decode``) is attached without a spec.
    Returns the model."""
    if not callable(getattr(codec, "decode", None)):
        raise TypeError(f"codec must have a decode(outputs) method (poselab.codecs.Codec), got "
                        f"{type(codec).__name__}")
    spec = codec.spec() if isinstance(codec, Codec) else None
    model.codec = codec
    config = getattr(model, "config", None)
    if isinstance(config, dict):
        if spec is None:
            config.pop("codec", None)
        else:
            config["codec"] = spec
    return model


def model_codec(model):
    """The codec a model carries (:func:`attach_codec`): ``model.codec``, else the one its
    ``config["codec"]`` spec describes, else None."""
    codec = getattr(model, "codec", None)
    if codec is not None and callable(getattr(codec, "decode", None)):
        return codec
    config = getattr(model, "config", None)
    spec = config.get("codec") if isinstance(config, dict) else None
    return codec_from_spec(spec) if spec is not None else None
