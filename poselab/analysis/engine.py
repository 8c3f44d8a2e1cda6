"""Pure functions behind chapter 01 "train in a minute": checks of the training engine itself.

- :func:`codec_roundtrip_report` — encode → decode error of every codec against tight bounds
  (:data:`ROUNDTRIP_BOUNDS_MEASURED`, what the code achieves, not a loose guarantee);
- :func:`known_coordinate_check` — the pixel convention checked against coordinates known from
  first principles (a wrong but self-consistent convention passes any round trip; it fails here);
- :class:`OracleHeatmaps` — a "model" returning exact targets, to score a representation's ceiling;
- :func:`mean_heatmap_baseline` — the MSE of an image-blind per-joint mean heatmap, the floor a
  trained model must beat before "the loss decreased" means it learnt anything from images.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch

from ..codecs import ROUNDTRIP_UNITS, HeatmapCodec, encode_gaussian, input_to_heatmap, roundtrip_max_error
from ..losses import heatmap_mse_loss

__all__ = ["ROUNDTRIP_BOUNDS_MEASURED", "codec_roundtrip_report", "known_coordinate_check",
           "OracleHeatmaps", "oracle_heatmaps", "mean_heatmap_baseline"]

# What the code achieves (n = 2000 random keypoints, seeds 0-2, float32, torch 2.13 CPU, measured
# 2026-11-24 by `codec_roundtrip_report`): quantising codecs at their exact quantisation bound
# (argmax: 0.5 px, quarter shift on unbiased maps: 0.25 px, SimCC split 2: 0.25 input px), the
# others at ~2x the measured maximum (float32 round-off or the stated approximation).
ROUNDTRIP_BOUNDS_MEASURED: dict[str, float] = {
    "gaussian_argmax": 0.5 + 1e-5,
    "gaussian_quarter": 0.5 + 1e-5,
    "unbiased_quarter": 0.25 + 1e-5,
    "unbiased_dark": 1e-5,
    "unbiased_dark_blur": 1.5e-2,
    "dot_argmax": 0.5 + 1e-5,
    "simcc": 0.25 + 1e-5,
    "integral_compensated": 7e-3,
    "sar": 1e-5,
}


def codec_roundtrip_report(n: int = 2000, seed: int = 0) -> dict[str, dict]:
    """``{codec: {"max_error", "bound", "unit", "holds"}}`` from :func:`poselab.codecs.roundtrip_max_error`
    against :data:`ROUNDTRIP_BOUNDS_MEASURED`."""
    out = {}
    for name, bound in ROUNDTRIP_BOUNDS_MEASURED.items():
        err = roundtrip_max_error(name, n=n, seed=seed)
        out[name] = {"max_error": err, "bound": bound, "unit": ROUNDTRIP_UNITS[name],
                     "holds": bool(err <= bound)}
    return out


def known_coordinate_check(n: int = 200, seed: int = 0, sigma: float = 2.0,
                           to_heatmap: Callable | None = None, input_size=(256, 192),
                           heatmap_size=(64, 48)) -> dict:
    """The pixel convention against coordinates known without poselab's conversion functions.

    With stride ``s``, heatmap pixel ``j`` covers input pixels ``s·j … s·j + s − 1``, so its centre
    is input ``x = s·j + (s − 1)/2``. Keypoints are placed at ``x_in = s·(j + δx) + (s − 1)/2`` for
    random pixels ``(j, i)`` and offsets ``δ ∈ (−0.45, 0.45)``: their heatmap coordinates are
    ``(j + δx, i + δy)`` by construction. Checked: the MSRA Gaussian (centre rounded) peaks at
    ``(i, j)`` with value 1; the unbiased Gaussian has value ``exp(−(δx² + δy²)/2σ²)`` there; the
    unbiased + DARK codec decodes to ``x_in`` (input px). ``to_heatmap`` replaces the library's
    input → heatmap map (a test passes a wrong convention, e.g. MMPose's ``x / s``, to see it fail).

    Returns ``peak_pixel_errors`` (count of MSRA peaks off ``(i, j)``), ``unbiased_value_error``,
    ``decode_error_px`` (input px) and ``holds``.
    """
    to_heatmap = to_heatmap or (lambda xy: input_to_heatmap(xy, input_size, heatmap_size))
    rng = np.random.default_rng(seed)
    H, W = heatmap_size
    s = input_size[1] / W
    if input_size[0] / H != s:
        raise ValueError(f"input_size {input_size} and heatmap_size {heatmap_size} need one stride")
    pix = np.stack([rng.integers(1, W - 1, n), rng.integers(1, H - 1, n)], 1).astype(np.float64)
    delta = rng.uniform(-0.45, 0.45, size=(n, 2))
    kp_in = torch.as_tensor(s * (pix + delta) + (s - 1) / 2)[:, None]           # (n, 1, 2)
    kp_hm = torch.as_tensor(to_heatmap(kp_in)).to(torch.float64)
    msra, _ = encode_gaussian(kp_hm, None, heatmap_size, sigma)
    unbiased, _ = encode_gaussian(kp_hm, None, heatmap_size, sigma, unbiased=True)
    flat = msra.reshape(n, -1).argmax(1).numpy()
    peak = np.stack([flat % W, flat // W], 1)
    wrong_peaks = int(np.any(peak != pix.astype(int), axis=1).sum())
    rows, cols = pix[:, 1].astype(int), pix[:, 0].astype(int)
    value = unbiased[np.arange(n), 0, rows, cols].double().numpy()
    expected = np.exp(-(delta ** 2).sum(1) / (2 * sigma ** 2))
    codec = HeatmapCodec(input_size, heatmap_size, sigma=sigma, unbiased=True, decoder="dark",
                         dark_kernel=None)
    got, _ = codec.decode(unbiased.to(torch.float32))
    decode_err = float((got.double() - kp_in).abs().max())
    value_err = float(np.abs(value - expected).max())
    return {"peak_pixel_errors": wrong_peaks, "unbiased_value_error": value_err,
            "decode_error_px": decode_err, "n": int(n),
            "holds": bool(wrong_peaks == 0 and value_err <= 1e-6 and decode_err <= 4e-5 * s)}


class OracleHeatmaps(torch.nn.Module):
    """A "model" that returns given outputs in call order — exact targets, to measure what a
    representation could score with perfect predictions (and to test an evaluator end to end).

    Args:
        outputs: ``(N, ...)`` tensor, one row per crop in the order the evaluator asks.
        head_type: the head kind the evaluator expects (``"heatmap"``).
        input_size: crop ``(H, W)``.
    Calls past the last row raise IndexError; :meth:`rewind` starts again.

    Example:
        >>> oracle = OracleHeatmaps(torch.zeros(3, 17, 16, 12), input_size=(64, 48))
        >>> oracle(torch.zeros(2, 3, 64, 48)).shape, oracle(torch.zeros(1, 3, 64, 48)).shape
        (torch.Size([2, 17, 16, 12]), torch.Size([1, 17, 16, 12]))
    """

    def __init__(self, outputs: torch.Tensor, head_type: str = "heatmap", input_size=(64, 48)):
        super().__init__()
        self.outputs, self.i = outputs, 0
        self.head_type, self.input_size = head_type, tuple(input_size)
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # so .parameters() / device lookups work

    def rewind(self) -> None:
        self.i = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.i + len(images) > len(self.outputs):
            raise IndexError(f"the oracle holds {len(self.outputs)} outputs; asked for rows "
                             f"{self.i}..{self.i + len(images) - 1} (call rewind() to start again)")
        out = self.outputs[self.i:self.i + len(images)]
        self.i += len(images)
        return out


def oracle_heatmaps(dataset, codec) -> OracleHeatmaps:
    """:class:`OracleHeatmaps` holding ``codec.encode``'s exact target of every crop of ``dataset``
    (items with ``keypoints`` (K, 2) input px and ``visible`` (K,))."""
    targets = torch.stack([codec.encode(dataset[i]["keypoints"], dataset[i]["visible"])["target"]
                           for i in range(len(dataset))])
    return OracleHeatmaps(targets, "heatmap", getattr(codec, "input_size", (64, 48)))


def mean_heatmap_baseline(targets: torch.Tensor, weights: torch.Tensor,
                          evaluate_on: Sequence[torch.Tensor] | None = None) -> dict[str, float]:
    """MSE of the image-blind predictor "each joint's mean target heatmap" (no image used).

    ``targets (N, K, H, W)``, ``weights (N, K)``: the mean per joint is taken over labelled crops
    (weight > 0). Its loss is :func:`heatmap_mse_loss` (the training loss, MMPose normalisation)
    against ``targets`` — or against ``evaluate_on = (targets2, weights2)``. A model whose loss is
    not below this learnt nothing from images beyond where joints usually are.

    Returns ``{"loss": float, "zero_loss": float}`` (``zero_loss``: predicting all zeros).
    """
    t = torch.as_tensor(targets, dtype=torch.float64)
    w = torch.as_tensor(weights, dtype=torch.float64)
    if t.ndim != 4 or w.shape != t.shape[:2]:
        raise ValueError(f"targets must be (N, K, H, W) and weights (N, K), got {tuple(t.shape)} "
                         f"and {tuple(w.shape)}")
    lab = (w > 0).to(t.dtype)
    mean = (t * lab[..., None, None]).sum(0) / lab.sum(0).clamp_min(1)[..., None, None]
    t2, w2 = (t, w) if evaluate_on is None else (torch.as_tensor(evaluate_on[0], dtype=torch.float64),
                                                 torch.as_tensor(evaluate_on[1], dtype=torch.float64))
    pred = mean.expand_as(t2)
    loss = float(heatmap_mse_loss(pred, t2, w2))
    zero = float(heatmap_mse_loss(torch.zeros_like(t2), t2, w2))
    if not (math.isfinite(loss) and math.isfinite(zero)):
        raise ValueError("targets give a non-finite loss")
    return {"loss": loss, "zero_loss": zero}


def blind_baseline_for_runs(results, data="synth", device="cpu", last: int = 10,
                            min_effect: float = 0.1) -> dict:
    """``engine.training.loss_decreases`` for heatmap runs of one recipe (one per seed).

    The image-blind predictor (:func:`mean_heatmap_baseline`: each joint's mean target over the
    un-augmented training crops) is scored on the training crops and on the first evaluation
    set's crops. Each run contributes its final training loss (mean of the ``last`` steps) and its
    model's loss on the evaluation crops (the training loss function, MMPose normalisation).
    The verdict (:func:`poselab.claims.compare_seeds`) asks whether the models' evaluation loss
    is below the blind predictor's by at least ``min_effect`` × the blind loss; fast presets and
    fewer than 3 seeds are "inconclusive".

    Returns ``rows`` (one per seed), ``blind`` (the blind losses), ``verdict`` (a
    :class:`poselab.claims.Verdict` with its evidence).
    """
    from .. import claims
    from ..data import TopDownDataset
    from ..experiments import Preset, resolve_run_data
    results = list(results)
    first = results[0]
    preset = Preset(**first.config["preset"])  # the run's own budget (also for unnamed presets)
    codec = first.codec()
    train_json, sets = resolve_run_data(data, preset)
    size = preset.input_size

    def crops(ann):
        ds = TopDownDataset(ann, input_size=size, train=False, target_fn=codec)
        items = [ds[i] for i in range(len(ds))]
        return (torch.stack([torch.as_tensor(it["image"]) for it in items]),
                torch.stack([torch.as_tensor(it["target"]) for it in items]),
                torch.stack([torch.as_tensor(it["weights"]) for it in items]))

    _, t_train, w_train = crops(train_json)
    set_name, ann = next(iter(sets.items()))
    images, t_val, w_val = crops(ann)
    blind = {"train crops": mean_heatmap_baseline(t_train, w_train)["loss"],
             "evaluation crops": mean_heatmap_baseline(t_train, w_train, evaluate_on=(t_val, w_val))["loss"]}
    rows = []
    for run in results:
        model = run.model(device).eval()
        with torch.no_grad():
            pred = torch.cat([model(images[i:i + 64].to(device)).float().cpu()
                              for i in range(0, len(images), 64)])
        hist = run.training_history()
        rows.append({"seed": run.seed, "first training loss": float(hist.losses[0]),
                     "final training loss": float(hist.final_loss(min(last, hist.steps))),
                     "model loss on evaluation crops": float(heatmap_mse_loss(pred.double(), t_val.double(),
                                                                              w_val.double()))})
    model_losses = [r["model loss on evaluation crops"] for r in rows]
    evidence = claims.evidence(preset=preset, seeds=[r["seed"] for r in rows],
                               per_seed={"model loss": model_losses,
                                         "final training loss": [r["final training loss"] for r in rows]},
                               input_size=preset.input_size, heatmap_size=preset.heatmap_size,
                               data=f"{data} ({set_name})", blind_losses=blind)
    verdict = claims.compare_seeds(model_losses, [blind["evaluation crops"]] * len(rows), lower_is_better=True,
                                   min_effect=min_effect * blind["evaluation crops"], metric="MSE",
                                   evidence=evidence)
    return {"rows": rows, "blind": blind, "verdict": verdict}


def oracle_ceilings(ann_json, input_size=(64, 48), heatmap_size=(16, 12), sigma: float = 2.0) -> dict:
    """AP/EPE of *exact* targets scored like a model (:class:`OracleHeatmaps`): what each
    representation could reach at this size. ``{"MSRA target + quarter": {...},
    "unbiased target + DARK": {...}}`` with AP, AP50, EPE_crop."""
    from ..train import Evaluator
    out = {}
    for name, kw in (("MSRA target + quarter decoder", dict(decoder="quarter")),
                     ("unbiased target + DARK (no blur)", dict(unbiased=True, decoder="dark", dark_kernel=None))):
        codec = HeatmapCodec(tuple(input_size), tuple(heatmap_size), sigma=sigma, **kw)
        ev = Evaluator(ann_json, head="heatmap", codec=codec, input_size=tuple(input_size),
                       return_predictions=False, device="cpu")
        oracle = oracle_heatmaps(ev.dataset(tuple(input_size)), codec)
        oracle.input_size = tuple(input_size)
        r = ev(oracle)
        out[name] = {"AP": r["AP"], "AP50": r["AP50"], "EPE_crop": r["EPE_crop"]}
    return out


DECODERS = {"argmax": dict(decoder="argmax"), "argmax + quarter": dict(decoder="quarter"),
            "DARK (blur 11)": dict(decoder="dark", dark_kernel=11),
            "DARK (no blur)": dict(decoder="dark", dark_kernel=None)}


def decoder_comparison(model, sets: dict, input_size=(64, 48), heatmap_size=(16, 12),
                       sigma: float = 2.0, device="cpu") -> dict:
    """EPE (crop px) of one heatmap model's outputs decoded four ways (:data:`DECODERS`) on each
    evaluation set ``{name: ann_json}``. Returns ``{decoder: {set name: EPE}}``."""
    from ..metrics import end_point_error
    from ..train import Evaluator, predict_crops
    out: dict[str, dict] = {name: {} for name in DECODERS}
    for set_name, ann in sets.items():
        ds = Evaluator(ann, input_size=tuple(input_size)).dataset(tuple(input_size))
        for name, kw in DECODERS.items():
            codec = HeatmapCodec(tuple(input_size), tuple(heatmap_size), sigma=sigma, **kw)
            p = predict_crops(model, ds, "heatmap", codec, device=device)
            out[name][set_name] = float(end_point_error(p["coords_crop"], p["keypoints_crop"], p["visible"] > 0))
    return out


def largest_persons(predictions: dict, n: int) -> np.ndarray:
    """Indices of the ``n`` persons with the largest boxes in a ``RunResult.predictions`` dict."""
    box = np.asarray(predictions["bbox"], dtype=np.float64)
    return np.argsort(-box[:, 2] * box[:, 3], kind="stable")[: int(n)]


def example_training_item(recipe: str = "mse", preset="default", data="synth", seed: int = 0,
                          index: int = 0) -> dict:
    """One augmented training crop as ``run_recipe`` builds it: ``image`` (H, W, 3) uint8, the
    recipe codec's ``target`` (K, h, w) and ``keypoints`` (K, 2) crop px."""
    from ..data import TopDownDataset
    from ..data.dataset import denormalize_image
    from ..experiments import CODECS, Geometry, get_preset, get_recipe, resolve_run_data
    r, p = get_recipe(recipe), get_preset(preset)
    codec = CODECS[r.codec](Geometry(p.input_size, p.heatmap_size), **dict(r.codec_params))
    train_json, _ = resolve_run_data(data, p)
    ds = TopDownDataset(train_json, input_size=p.input_size, train=True, target_fn=codec, seed=seed,
                        flip_prob=p.flip_prob)
    item = ds[int(index)]
    return {"image": denormalize_image(item["image"]), "target": item["target"],
            "keypoints": item["keypoints"]}
