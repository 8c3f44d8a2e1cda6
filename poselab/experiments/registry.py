"""Recipes and the registries they name: codecs, losses, instance-score rules, models.

A :class:`Recipe` is a frozen, named description of one way to train a pose model: the head,
the target codec (which also decodes), the loss with its hyper-parameters, the instance-score
rule, the model builder, the backbone and the optimiser settings. Everything a recipe names is
looked up in a registry, so a chapter adds a method by registering its parts and then the recipe:

    from poselab.experiments import Recipe, register_loss, register_recipe

    @register_loss("my_l1")
    def build_my_l1(geometry, **params):
        def loss_fn(outputs, batch):
            ...
        return loss_fn

    register_recipe(Recipe(name="my_l1", head="integral", codec="integral", loss="my_l1"))

Builders (the contract every chapter codes against):

- codec ``builder(geometry, **codec_params) -> codec``, a :class:`poselab.codecs.Codec`:
  ``codec.encode(keypoints (B, K, 2) input px, visible (B, K)) -> dict`` of batched tensors (at
  least ``"weights" (B, K)``) and ``codec.decode(outputs) -> (coords (B, K, 2) input px, scores
  (B, K))`` with ``outputs`` what the model returns; the runner attaches it to the model
  (:func:`poselab.codecs.attach_codec`), so ``poselab.train.evaluate(model, json)`` decodes with it;
- loss ``builder(geometry, **loss_params) -> loss_fn(outputs, batch)`` returning a scalar tensor
  or ``{"loss": total, "<term>": value}``; ``batch`` holds ``"image"``, ``"keypoints"`` (input
  px), ``"visible"``, every entry of ``codec.encode`` and ``"step"``/``"epoch"``;
- score ``fn(keypoint_scores (N, K) ndarray) -> (N,)`` instance scores;
- model ``builder(recipe, geometry, seed) -> nn.Module`` (with ``head_type``, ``input_size``).

Builders are referenced by name from the recipe, and the cache key of a run covers the recipe's
fields and the source of the package (see :mod:`poselab.experiments.cache`), so a changed
hyper-parameter or a changed loss never reuses a stale result.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

from ..models.pose_model import HEADS

__all__ = ["Geometry", "Recipe", "RECIPES", "CODECS", "LOSSES", "SCORES", "MODELS",
           "register_recipe", "register_codec", "register_loss", "register_score",
           "register_model", "get_recipe", "register_preset_adapter", "adapt_to_preset",
           "PRESET_ADAPTERS"]


@dataclass(frozen=True)
class Geometry:
    """Sizes of one run: input crop ``(H, W)``, model output map ``(h, w)`` and ``K``."""

    input_size: tuple[int, int]
    heatmap_size: tuple[int, int]
    num_keypoints: int = 17

    @property
    def stride(self) -> float:
        """Input pixels per heatmap pixel (along H; equal along W for the presets)."""
        return self.input_size[0] / self.heatmap_size[0]


def _check_finite(value: Any, where: str) -> None:
    """Raise ValueError on a NaN/Inf number anywhere in ``value`` (lists, tuples, dicts too)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"{where} must be finite, got {value}")
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _check_finite(v, f"{where}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_finite(v, f"{where}[{i}]")


def _frozen(params: Mapping[str, Any] | None, what: str) -> Mapping[str, Any]:
    if params is None:
        return MappingProxyType({})
    if not isinstance(params, Mapping):
        raise TypeError(f"{what} must be a mapping of hyper-parameter name to value, got "
                        f"{type(params).__name__}")
    for key, value in params.items():
        if not isinstance(key, str):
            raise TypeError(f"{what} keys must be strings, got {key!r}")
        _check_finite(value, f"{what}[{key!r}]")
    return MappingProxyType(dict(sorted(params.items())))


@dataclass(frozen=True)
class Recipe:
    """A named, frozen training recipe (see the module docstring for what each name refers to).

    Attributes:
        name: registry name (letters, digits, ``_``, ``-``).
        head: model head, one of ``"heatmap"``, ``"integral"``, ``"simcc"``, ``"sar"``.
        codec, codec_params: target codec (encode + decode) and its hyper-parameters.
        loss, loss_params: loss builder and its hyper-parameters.
        model: model builder (``"standard"``: :func:`poselab.models.build_model`).
        score: instance-score rule applied to the decoded keypoint scores.
        backbone: ``"tiny"`` (CPU) or ``"resnet18"``; a preset may override it.
        lr, weight_decay, warmup_steps, grad_clip: AdamW settings (schedule from the preset).
        paper, description: what the recipe replays, for tables and ``poselab recipes``.
    """

    name: str
    head: str
    codec: str
    loss: str
    codec_params: Mapping[str, Any] = field(default_factory=dict)
    loss_params: Mapping[str, Any] = field(default_factory=dict)
    model: str = "standard"
    score: str = "bbox_keypoint"
    backbone: str = "tiny"
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    grad_clip: float | None = 1.0
    paper: str = ""
    description: str = ""

    def __post_init__(self):
        # the name is a cache folder name and a CLI argument: ASCII letters, digits, '_', '-'
        if not isinstance(self.name, str) or not self.name or len(self.name) > 100 or not all(
                (c.isascii() and c.isalnum()) or c in "_-" for c in self.name):
            raise ValueError(f"recipe name must be 1-100 ASCII letters, digits, '_' or '-', got "
                             f"{self.name!r}")
        if self.head not in HEADS:
            raise ValueError(f"recipe {self.name!r}: head must be one of {HEADS}, got {self.head!r}")
        for attr in ("codec", "loss", "model", "score", "backbone"):
            if not isinstance(getattr(self, attr), str) or not getattr(self, attr):
                raise ValueError(f"recipe {self.name!r}: {attr} must be a registered name (str)")
        object.__setattr__(self, "codec_params", _frozen(self.codec_params, "codec_params"))
        object.__setattr__(self, "loss_params", _frozen(self.loss_params, "loss_params"))
        for attr in ("lr", "weight_decay"):
            value = getattr(self, attr)
            if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(
                    value) or value < 0 or (
                    attr == "lr" and value == 0):
                raise ValueError(f"recipe {self.name!r}: {attr} must be a finite number "
                                 f"{'> 0' if attr == 'lr' else '>= 0'}, got {value!r}")
        if not isinstance(self.warmup_steps, numbers.Integral) or isinstance(
                self.warmup_steps, bool) or self.warmup_steps < 0:
            raise ValueError(f"recipe {self.name!r}: warmup_steps must be an int >= 0, got "
                             f"{self.warmup_steps!r}")
        if self.grad_clip is not None and not (
                isinstance(self.grad_clip, numbers.Real) and not isinstance(self.grad_clip, bool)
                and math.isfinite(self.grad_clip) and self.grad_clip > 0):
            raise ValueError(f"recipe {self.name!r}: grad_clip must be None or a number > 0, "
                             f"got {self.grad_clip!r}")
        for attr in ("paper", "description"):
            if not isinstance(getattr(self, attr), str):
                raise ValueError(f"recipe {self.name!r}: {attr} must be a string, got "
                                 f"{type(getattr(self, attr)).__name__}")

    def replace(self, **changes) -> "Recipe":
        """A copy with some fields changed (e.g. ``loss_params={"reg": 0.5}``); any change gives
        a different cache key. Keep ``name`` or pass a new one."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"Recipe has no field(s) {sorted(unknown)}; fields: "
                            f"{[f.name for f in dataclasses.fields(self)]}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-able fields (hyper-parameter mappings as sorted dicts)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = dict(value) if isinstance(value, Mapping) else value
        return out


class _Registry(dict):
    """A name → builder dict whose ``register`` refuses a taken name."""

    def __init__(self, what: str):
        super().__init__()
        self.what = what

    def register(self, name: str, obj: Any = None):
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.what} name must be a non-empty string, got {name!r}")

        def add(o):
            if name in self:
                raise ValueError(f"a {self.what} named {name!r} is already registered; pick "
                                 "another name")
            if not callable(o):
                raise TypeError(f"a {self.what} must be callable, got {type(o).__name__}")
            self[name] = o
            return o

        return add if obj is None else add(obj)

    def lookup(self, name: str, recipe: str) -> Any:
        if name not in self:
            raise KeyError(f"recipe {recipe!r} names the {self.what} {name!r}, which is not "
                           f"registered; registered: {sorted(self)}")
        return self[name]


CODECS = _Registry("codec")
LOSSES = _Registry("loss")
SCORES = _Registry("score rule")
MODELS = _Registry("model builder")
RECIPES: dict[str, Recipe] = {}


def register_codec(name: str, builder: Callable | None = None):
    """Register ``builder(geometry, **codec_params) -> codec`` (usable as a decorator)."""
    return CODECS.register(name, builder)


def register_loss(name: str, builder: Callable | None = None):
    """Register ``builder(geometry, **loss_params) -> loss_fn(outputs, batch)`` (decorator too)."""
    return LOSSES.register(name, builder)


def register_score(name: str, fn: Callable | None = None):
    """Register an instance-score rule ``fn(keypoint_scores (N, K)) -> (N,)`` (decorator too)."""
    return SCORES.register(name, fn)


def register_model(name: str, builder: Callable | None = None):
    """Register ``builder(recipe, geometry, seed) -> nn.Module`` (decorator too)."""
    return MODELS.register(name, builder)


def register_recipe(recipe: Recipe) -> Recipe:
    """Add ``recipe`` to :data:`RECIPES`; a name already taken raises ``ValueError``."""
    if not isinstance(recipe, Recipe):
        raise TypeError(f"register_recipe takes a Recipe, got {type(recipe).__name__}")
    if recipe.name in RECIPES:
        raise ValueError(f"a recipe named {recipe.name!r} is already registered; use "
                         f"RECIPES[{recipe.name!r}].replace(name=...) for a variant")
    RECIPES[recipe.name] = recipe
    return recipe


def get_recipe(recipe: Recipe | str) -> Recipe:
    """A :class:`Recipe` or the registered recipe of that name."""
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, str) and recipe in RECIPES:
        return RECIPES[recipe]
    raise KeyError(f"unknown recipe {recipe!r}; registered recipes: {sorted(RECIPES)} "
                   "(poselab recipes lists them)")


#: loss name → ``adapter(recipe, preset) -> Recipe``: how a recipe of that loss adapts to the
#: preset it trains under (e.g. BCIR's prior switched off at the paper's share of the epochs)
PRESET_ADAPTERS: dict[str, Callable] = {}


def register_preset_adapter(loss: str, adapter: Callable | None = None):
    """Register how recipes of ``loss`` adapt to a preset (decorator too). The runner applies it
    to every run (:func:`adapt_to_preset`), so ``poselab train``, ``compare``, the arena and the
    chapters train the same recipe under the same preset (one cache key)."""
    def add(fn: Callable) -> Callable:
        if not callable(fn):
            raise TypeError(f"a preset adapter must be callable, got {type(fn).__name__}")
        PRESET_ADAPTERS[loss] = fn
        return fn
    return add(adapter) if adapter is not None else add


def adapt_to_preset(recipe: Recipe, preset) -> Recipe:
    """``recipe`` as it trains under ``preset`` (a Preset): its loss's registered adapter applied,
    or the recipe itself. Adapting twice changes nothing more."""
    adapter = PRESET_ADAPTERS.get(recipe.loss)
    if adapter is None:
        return recipe
    adapted = adapter(recipe, preset)
    if not isinstance(adapted, Recipe) or adapted.name != recipe.name:
        raise TypeError(f"the preset adapter of loss {recipe.loss!r} must return the same-named "
                        f"Recipe, got {adapted!r:.80}")
    return adapted
