"""Out-of-crop keypoints (SAR §3.3, Fig. 3): can a decoder place a joint outside its input crop,
and how far off are the trained models there?

The paper: SAR "does not assume fixed anchor point ... thus is general and robust to occlusion and
truncation. This property enables SAR to locate keypoints out of input image" (Fig. 3, qualitative,
no number). Two halves:

* **math** (:func:`decoder_reach`): a heatmap decoded by argmax (+ quarter shift, no shift at the
  border) returns a map pixel in ``[0, w − 1] × [0, h − 1]``, i.e. input px in
  ``[(s − 1)/2, W − (s + 1)/2]`` per axis (``s`` the stride) — inside the crop for *every* map, so
  a joint outside the crop is always missed by at least its distance to that box. A regression
  head (``(0.5 + z)·scale − 0.5``, ``z`` unbounded) and SAR's per-cell point (cell centre + an
  unbounded offset) can return any point. The check feeds each decoder the outputs that encode a
  point outside the crop and, for the heatmap, also adversarial maps (peaks on every border pixel,
  random maps) and measures the distance of its decodes beyond the crop box.
* **empirical** (:func:`cut_crops`, :func:`run_out_of_crop_errors`, :func:`out_of_crop_judge`): on
  generated val people (whose rendered truth is known for every joint, also outside the image)
  crop windows are shifted by ``shift`` × the window side up / down / left / right, so the crop
  cuts the person; the unshifted window is kept too. Per trained model: the mean error (input px)
  on the joints inside the crop and on those outside it, and the share of its points for outside
  joints that it actually puts outside. Note: our training crops give joints outside the crop
  weight 0 (``TopDownDataset.visible``), so no recipe is ever trained to place one there — what
  they do outside is extrapolation.

One rule, live and recorded: the chapter's cell and the recorded replication (``poselab replicate
05``: the derived steps of :mod:`poselab.chapters.sar.replication` call :func:`out_of_crop_record`
on each seed's cached model) compute each model's errors with :func:`run_out_of_crop_errors` on the
same cut crops and judge them with :func:`out_of_crop_judge` (:func:`out_of_crop_from_records`
rebuilds its inputs from the records, paired by seed).
"""
from __future__ import annotations

import hashlib
import math
from typing import Mapping, Sequence

import numpy as np
import torch

from poselab import claims
from poselab.chapters.sar.recipes import RegressionCodec
from poselab.codecs import SARCodec, input_to_heatmap
from poselab.codecs.heatmap import HeatmapCodec
from poselab.data import TopDownDataset
from poselab.data.transforms import affine_matrix, apply_affine, bbox_to_center_scale, warp_image
from poselab.data.dataset import IMAGENET_MEAN, IMAGENET_STD
from poselab.experiments import resolve_run_data
from poselab.experiments.presets import Preset, get_preset
from poselab.experiments.replicate import pair_by_seed
from poselab.viz.sentence import Sentence, number

__all__ = ["CUTS", "DEFAULT_PERSONS", "DEFAULT_SHIFT", "crop_box", "distance_outside", "decoder_reach", "heatmap_adversarial_maps", "cut_crops", "chapter_decoders", "reach_holds", "run_crops",
           "predict_crops", "out_of_crop_errors", "errors_table", "out_of_crop_verdict", "reach_sentence",
           "table_errors", "reach_rows", "errors_sentence", "run_out_of_crop_errors", "crops_fingerprint",
           "out_of_crop_judge", "out_of_crop_record", "out_of_crop_from_records"]

#: Window shifts: (dx, dy) in units of the window side. "up" moves the window up: the feet leave it.
CUTS = {"none": (0.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0), "left": (-1.0, 0.0), "right": (1.0, 0.0)}
#: the chapter's cut crops: its first 60 generated val people, windows shifted by 0.3 of their side
DEFAULT_PERSONS = 60
DEFAULT_SHIFT = 0.3


def _size(input_size) -> tuple[int, int]:
    if isinstance(input_size, (str, bytes)) or len(tuple(input_size)) != 2:
        raise ValueError(f"input_size must be (H, W), got {input_size!r}")
    h, w = (int(v) for v in input_size)
    if h < 1 or w < 1:
        raise ValueError(f"input_size must be positive, got {input_size!r}")
    return h, w


def crop_box(input_size) -> tuple[float, float, float, float]:
    """The crop in input px: ``(x_min, y_min, x_max, y_max) = (−0.5, −0.5, W − 0.5, H − 0.5)``
    (pixel-centre coordinates; the same box :class:`poselab.data.TopDownDataset` calls inside)."""
    h, w = _size(input_size)
    return -0.5, -0.5, w - 0.5, h - 0.5


def distance_outside(points, input_size) -> np.ndarray:
    """Euclidean distance (input px) of each ``(..., 2)`` point beyond the crop box (0 inside)."""
    p = np.asarray(points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else points,
                   dtype=np.float64)
    if p.shape[-1:] != (2,):
        raise ValueError(f"points must be (..., 2), got shape {p.shape}")
    x0, y0, x1, y1 = crop_box(input_size)
    dx = np.maximum(x0 - p[..., 0], 0) + np.maximum(p[..., 0] - x1, 0)
    dy = np.maximum(y0 - p[..., 1], 0) + np.maximum(p[..., 1] - y1, 0)
    return np.hypot(dx, dy)


def outside_targets(input_size, margin: float = 0.25) -> np.ndarray:
    """Eight points outside the crop, ``margin`` × the side beyond each edge and corner (input px)."""
    h, w = _size(input_size)
    xs = (-margin * w, (w - 1) / 2, (1 + margin) * w)
    ys = (-margin * h, (h - 1) / 2, (1 + margin) * h)
    return np.array([(x, y) for y in ys for x in xs if not (x == xs[1] and y == ys[1])], dtype=np.float64)


def heatmap_adversarial_maps(heatmap_size, n_random: int = 64, seed: int = 0) -> torch.Tensor:
    """Maps that push an argmax decoder outwards: a peak on every border pixel with a higher
    neighbour on the outer side where one exists (a ramp rising to the border), plus random maps.
    ``(N, h, w)`` float32."""
    h, w = _size(heatmap_size)
    ys, xs = np.mgrid[0:h, 0:w]
    maps = []
    for y in range(h):
        for x in range(w):
            if 0 < x < w - 1 and 0 < y < h - 1:
                continue
            ramp = -(np.abs(xs - x) + np.abs(ys - y)).astype(np.float64)
            maps.append(ramp)
    rng = np.random.default_rng(seed)
    maps.extend(rng.standard_normal((int(n_random), h, w)))
    return torch.as_tensor(np.stack(maps), dtype=torch.float32)


def decoder_reach(decoders: dict, input_size, tol: float = 1e-3, margin: float = 0.25) -> dict:
    """Can each decoder return a point outside the crop?

    ``decoders``: ``{name: (decode, encode_point)}``; ``encode_point(target (2,) input px)`` → the
    raw outputs a perfect head would give for that joint (one joint, one image), and
    ``decode(outputs)`` → its point ``(2,)`` in input px. Also ``{name: (decode, maps)}`` with
    ``maps`` a sequence of outputs to decode (adversarial heatmaps): then only how far its decodes
    go beyond the crop is measured. Per decoder: ``max_miss`` (px, the largest distance between an
    outside target and its decode), ``max_outside`` (px, the farthest decode beyond the crop) and
    ``reaches_outside`` (every outside target decoded within ``tol`` px). Targets:
    :func:`outside_targets`.
    """
    targets = outside_targets(input_size, margin)
    out = {}
    for name, (decode, source) in decoders.items():
        if not callable(decode):
            raise TypeError(f"decoder {name!r}: decode must be callable")
        if callable(source):
            pts = np.array([np.asarray(decode(source(t)), dtype=np.float64).reshape(2) for t in targets])
            miss = np.hypot(*(pts - targets).T)
            out[name] = {"max_miss": float(miss.max()), "max_outside": float(distance_outside(pts, input_size).max()),
                         "reaches_outside": bool(np.all(miss <= tol)), "targets": len(targets)}
        else:
            pts = np.array([np.asarray(decode(m), dtype=np.float64).reshape(2) for m in source])
            out[name] = {"max_miss": float("nan"), "max_outside": float(distance_outside(pts, input_size).max()),
                         "reaches_outside": bool(distance_outside(pts, input_size).max() > tol), "maps": len(pts)}
        if not np.all(np.isfinite(pts)):
            raise ValueError(f"decoder {name!r} returned non-finite points")
    return out


def _one(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).reshape(-1, 2)[0].cpu().numpy()


def chapter_decoders(input_size, heatmap_size, sigma: float = 2.0, heatmap_decoder: str = "quarter") -> dict:
    """The chapter's decoders for :func:`decoder_reach`, one joint each:

    - ``heatmap``: :class:`poselab.codecs.HeatmapCodec` with ``heatmap_decoder`` ("quarter":
      argmax + quarter shift, the ``mse`` recipe's; "argmax"; "dark"), fed its own Gaussian target
      of the outside point (``encode`` → ``decode``);
    - ``heatmap, any map``: the same decoder on :func:`heatmap_adversarial_maps`;
    - ``regression``: :class:`poselab.chapters.sar.recipes.RegressionCodec`, fed the point itself;
    - ``SAR``: :class:`poselab.codecs.SARCodec` (top-1 cell + its offset), fed a selector peaked on
      the border cell nearest the point and that cell's offset to it.
    """

    size = _size(input_size)
    hh, hw = _size(heatmap_size)
    hm = HeatmapCodec(size, (hh, hw), sigma=sigma, decoder=heatmap_decoder)
    reg = RegressionCodec(size, (hh, hw))
    sar = SARCodec(size, (hh, hw))

    def to_hm(t):
        return input_to_heatmap(torch.as_tensor(np.asarray(t, dtype=np.float64)[None], dtype=torch.float32), size, (hh, hw))[0]

    def hm_point(t):
        return hm.encode(torch.as_tensor(np.asarray(t)[None], dtype=torch.float32), torch.ones(1))["target"][None]

    def sar_point(t):
        p = to_hm(t)
        j, i = int(np.clip(round(float(p[0])), 0, hw - 1)), int(np.clip(round(float(p[1])), 0, hh - 1))
        sel = torch.full((1, 1, hh, hw), -10.0)
        sel[0, 0, i, j] = 10.0
        off = torch.zeros(1, 1, 2, hh, hw)
        off[0, 0, :, i, j] = p - torch.tensor([j, i], dtype=torch.float32)
        return {"selector": sel, "offsets": off}

    return {"heatmap": (lambda o: _one(hm.decode(o)[0]), hm_point),
            "heatmap, any map": (lambda o: _one(hm.decode(o[None, None])[0]), heatmap_adversarial_maps((hh, hw))),
            "regression": (lambda o: _one(reg.decode(o)[0]), lambda t: {"coords": to_hm(t)[None, None]}),
            "SAR": (lambda o: _one(sar.decode(o)[0]), sar_point)}


def reach_holds(reach: dict) -> bool:
    """The math claim: the heatmap decoder stays in the crop for every map (and misses outside
    targets), while regression and SAR decode outside targets exactly (:func:`decoder_reach`)."""
    return (reach["heatmap, any map"]["max_outside"] == 0.0 and not reach["heatmap"]["reaches_outside"]
            and reach["regression"]["reaches_outside"] and reach["SAR"]["reaches_outside"])


# --------------------------------------------------------------------------------------------
# Cut crops of generated val people


def cut_crops(ann_json, input_size, n_persons: int = DEFAULT_PERSONS, shift: float = DEFAULT_SHIFT,
              cuts: Sequence[str] = tuple(CUTS)) -> dict:
    """Evaluation crops that cut people: each of the first ``n_persons`` people of ``ann_json``
    (order of :class:`poselab.data.TopDownDataset`) with its window shifted by ``shift`` × the
    window side in each direction of ``cuts`` (:data:`CUTS`; "none" = the ordinary crop).

    Returns ``{"images" (N, 3, H, W) float32 normalised, "truth" (N, K, 2) crop px, "known" (N, K)
    bool, "inside" (N, K) bool, "cut" [N names], "input_size"}``. The truth is the rendered joint
    (``keypoints_true``, known for every joint, also outside the image) where the file has it,
    else the label (known where v > 0).
    """
    h, w = _size(input_size)
    if not (isinstance(shift, (int, float)) and math.isfinite(shift) and 0 <= shift <= 1):
        raise ValueError(f"shift must be in [0, 1] (a share of the window side), got {shift!r}")
    unknown = [c for c in cuts if c not in CUTS]
    if unknown or not cuts:
        raise ValueError(f"cuts must be a non-empty subset of {sorted(CUTS)}, got {list(cuts)!r}")
    n = int(n_persons)
    if n < 1:
        raise ValueError(f"n_persons must be >= 1, got {n_persons!r}")
    ds = TopDownDataset(ann_json, input_size=(h, w), train=False)
    images, truth, known, names = [], [], [], []
    for i in range(min(n, len(ds))):
        p = ds.persons[i]
        img = ds.image(i)
        centre, scale = bbox_to_center_scale(p.bbox, (h, w), ds.padding)
        if p.keypoints_true is not None:
            kp, ok = p.keypoints_true[:, :2], np.ones(len(p.keypoints_true), dtype=bool)
        else:
            kp, ok = p.keypoints[:, :2], p.keypoints[:, 2] > 0
        for cut in cuts:
            dx, dy = CUTS[cut]
            c = np.asarray(centre, dtype=np.float64) + shift * np.array([dx, dy]) * np.asarray(scale, dtype=np.float64)
            m = affine_matrix(c, scale, (h, w))
            crop = warp_image(img, m, (h, w)).astype(np.float32) / 255.0
            images.append(((crop - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1))
            truth.append(apply_affine(np.asarray(kp, dtype=np.float64), m))
            known.append(ok)
            names.append(cut)
    truth = np.stack(truth)
    return {"images": torch.from_numpy(np.ascontiguousarray(np.stack(images), dtype=np.float32)),
            "truth": truth, "known": np.stack(known), "inside": distance_outside(truth, (h, w)) == 0,
            "cut": names, "input_size": (h, w)}


def run_crops(result, n_persons: int = DEFAULT_PERSONS, shift: float = DEFAULT_SHIFT,
              set_name: str = "generated val") -> dict:
    """:func:`cut_crops` of a trained run's own evaluation set at its input size."""
    preset = Preset(**{k: tuple(v) if isinstance(v, list) else v for k, v in result.config["preset"].items()})
    _, sets = resolve_run_data(result.data, preset)
    if set_name not in sets:
        raise KeyError(f"no evaluation set {set_name!r}; sets: {sorted(sets)}")
    return cut_crops(sets[set_name], preset.input_size, n_persons, shift)


def predict_crops(model, codec, crops: dict, batch_size: int = 64) -> np.ndarray:
    """Decoded points ``(N, K, 2)`` input px of ``model`` + ``codec`` on :func:`cut_crops`' images."""
    model.eval()
    pts = []
    with torch.no_grad():
        for i in range(0, len(crops["images"]), batch_size):
            out = model(crops["images"][i:i + batch_size])
            coords, _ = codec.decode(out)
            pts.append(coords.detach().to(torch.float64).cpu().numpy())
    return np.concatenate(pts)


def out_of_crop_errors(pred, crops: dict) -> dict:
    """Mean error (input px) of ``pred`` ``(N, K, 2)`` on the known joints inside and outside the
    crop, their counts, and ``share_placed_outside``: of the joints outside, the share whose point
    the decoder put outside the crop too. NaN means where a group is empty."""
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(crops["truth"], dtype=np.float64)
    if p.shape != t.shape:
        raise ValueError(f"pred must have the truth's shape {t.shape}, got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("pred holds non-finite points")
    err = np.hypot(*(p - t).transpose(2, 0, 1))
    known, inside = np.asarray(crops["known"], bool), np.asarray(crops["inside"], bool)
    out_mask, in_mask = known & ~inside, known & inside
    placed = distance_outside(p, crops["input_size"]) > 0

    def mean(a, m):
        return float(a[m].mean()) if m.any() else float("nan")

    return {"epe_inside": mean(err, in_mask), "epe_outside": mean(err, out_mask),
            "n_inside": int(in_mask.sum()), "n_outside": int(out_mask.sum()),
            "share_placed_outside": mean(placed.astype(np.float64), out_mask),
            "outside_beyond_px": mean(distance_outside(t, crops["input_size"]), out_mask)}


def run_out_of_crop_errors(run, crops: dict) -> dict:
    """:func:`out_of_crop_errors` of one trained run (its model and codec, on the CPU) on
    :func:`cut_crops`' crops: the per-run values of ``sar.out_of_crop.error``, live
    (:func:`table_errors`) and recorded (:func:`out_of_crop_record`) alike."""
    return out_of_crop_errors(predict_crops(run.model(), run.codec(), crops), crops)


def crops_fingerprint(crops: dict) -> str:
    """A short sha256 of the crops' truth (rounded to 1e-6 px), known/inside masks, cut names and
    input size: two records scored on the same crops carry the same fingerprint."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(np.round(np.asarray(crops["truth"], dtype=np.float64), 6)).tobytes())
    h.update(np.ascontiguousarray(np.asarray(crops["known"], dtype=bool)).tobytes())
    h.update(np.ascontiguousarray(np.asarray(crops["inside"], dtype=bool)).tobytes())
    h.update(("|".join(map(str, crops["cut"])) + f"|{tuple(crops['input_size'])}").encode())
    return h.hexdigest()[:16]


def out_of_crop_record(run, preset=None, n_persons: int = DEFAULT_PERSONS, shift: float = DEFAULT_SHIFT,
                       set_name: str = "generated val") -> dict:
    """The derived record of one seed's trained ``run`` for ``poselab replicate 05``
    (``compute(run, preset)`` of a :class:`poselab.experiments.replicate.DerivedStep`): its errors
    on the cut crops of its own evaluation set (:func:`run_crops`, :func:`run_out_of_crop_errors`),
    its AP there (for the floor) and which crops they were (:func:`crops_fingerprint`: the judge
    pairs only records scored on the same crops). ``preset`` is unused: the run knows its own."""
    crops = run_crops(run, n_persons, shift, set_name)
    metrics = (run.metrics or {}).get(set_name) or {}
    if "AP" not in metrics:
        raise KeyError(f"run {run.recipe} seed {run.seed} has no AP on {set_name!r}")
    return {"recipe": str(run.recipe), "seed": int(run.seed), "set": set_name, "AP": float(metrics["AP"]),
            "errors": run_out_of_crop_errors(run, crops),
            "crops": {"n_persons": int(n_persons), "shift": float(shift), "n_crops": len(crops["cut"]),
                      "input_size": [int(v) for v in crops["input_size"]], "fingerprint": crops_fingerprint(crops)}}


def out_of_crop_judge(errors: dict, aps: Mapping[str, Sequence[float]], ours: str, theirs: str, preset=None,
                      data="synth", seeds=None, floor: float | None = 0.05, min_effect: float = 1.0,
                      min_joints: int = 30) -> claims.Verdict:
    """The rule of ``sar.out_of_crop.error``, live and recorded: :func:`out_of_crop_verdict` on
    ``errors`` (``{recipe: [out_of_crop_errors per seed]}``, paired by seed), standing only when
    ``ours`` and ``theirs`` have both learnt: their mean AP (``aps``: ``{recipe: [AP per seed]}``)
    reaches ``floor`` (:func:`poselab.claims.has_learnt`; None: no floor). A side that has not
    learnt makes the verdict "inconclusive", naming it — never "not reproduced"."""
    for name in (ours, theirs):
        if name not in aps:
            raise KeyError(f"no AP of {name!r} for the floor; have {sorted(aps)}")
    learnt = [claims.has_learnt(r, aps[r], floor=floor) for r in (ours, theirs)] if floor is not None else []
    v = out_of_crop_verdict(errors, ours, theirs, preset, data, seeds, min_effect=min_effect,
                            min_joints=min_joints, learnt=learnt)
    return v.replace(summary={**v.summary, "AP": {r: [float(x) for x in aps[r]] for r in (ours, theirs)}})


def _nan(x):
    return float("nan") if x is None else float(x)


_RECORD_KEYS = {"recipe", "seed", "AP", "errors", "crops"}
_ERROR_KEYS = {"epe_inside", "epe_outside", "n_inside", "n_outside", "share_placed_outside", "outside_beyond_px"}


def _record_problem(r) -> str | None:
    """What makes ``r`` no derived record of :func:`out_of_crop_record` (None: it is one)."""
    ok = isinstance(r, Mapping) and {"seed", "preset", "values"} <= set(r) and isinstance(r["values"], Mapping)
    vals = r["values"] if ok else {}
    if not (ok and _RECORD_KEYS <= set(vals) and isinstance(vals["errors"], Mapping)
            and _ERROR_KEYS <= set(vals["errors"]) and isinstance(vals["crops"], Mapping)
            and "fingerprint" in vals["crops"]):
        return (f"is not an out-of-crop record (needs seed, preset and values with {sorted(_RECORD_KEYS)}: "
                "out_of_crop.out_of_crop_record)")
    if vals["seed"] != r["seed"]:
        return f"holds {vals['recipe']} seed {vals['seed']}"
    return None


def out_of_crop_from_records(records: Mapping[str, Sequence[dict]], ours: str, theirs: str,
                             floor: float | None = 0.05, min_effect: float = 1.0,
                             min_joints: int = 30) -> claims.Verdict:
    """:func:`out_of_crop_judge` on the recorded replication: ``records`` ``{recipe: [derived
    records of :func:`out_of_crop_record`, by seed]}``. The two recipes are paired by seed (the
    seeds recorded for both; those recorded for one side only are named in the reason). KeyError
    when a recipe has no record yet, ValueError when no seed has both, a record is not one of
    :func:`out_of_crop_record` (naming the recipe and seed), a recipe holds a seed twice, or the
    paired records were scored on other crops or presets
    (:func:`poselab.experiments.replicate.pair_by_seed`;
    :func:`poselab.experiments.replicate.recorded_derived_group_verdict` reports both as "cannot
    answer yet")."""
    for name in (ours, theirs):
        if not records.get(name):
            raise KeyError(f"no recorded out-of-crop errors of {name!r} yet")
    pairs = pair_by_seed(records, (ours, theirs), check=_record_problem, side_of=lambda r: r["values"]["recipe"],
                         same=[("preset", lambda r: str(r["preset"])),
                               ("the crops they were scored on", lambda r: r["values"]["crops"]["fingerprint"])])
    seeds, sides = pairs.seeds, pairs.sides
    errors = {n: [{k: _nan(r["values"]["errors"][k]) for k in _ERROR_KEYS} for r in sides[n]] for n in sides}
    aps = {n: [_nan(r["values"]["AP"]) for r in sides[n]] for n in sides}
    first = sides[ours][0]
    data = str((first.get("base") or {}).get("data", "synth"))
    v = out_of_crop_judge(errors, aps, ours, theirs, get_preset(str(first["preset"])), data, seeds, floor=floor,
                          min_effect=min_effect, min_joints=min_joints)
    alone = pairs.unpaired
    if alone:
        v = v.replace(reason=f"{v.reason} (seeds {alone} recorded for one side only are left out)",
                      summary={**v.summary, "seeds_one_side_only": alone})
    return v


def errors_table(errors: dict) -> list[dict]:
    """Rows for a table: ``errors`` ``{recipe: [per-seed out_of_crop_errors dicts]}`` → seed means.
    "truth beyond the crop" is how far outside the crop the outside joints lie on average: the
    error of a perfect prediction clamped to the crop, the floor of any heatmap decoder."""
    rows = []
    for recipe, per_seed in errors.items():
        if not per_seed:
            raise ValueError(f"no per-seed errors for {recipe!r}")

        def m(key):
            return float(np.mean([e[key] for e in per_seed]))
        rows.append({"recipe": recipe, "seeds": len(per_seed), "EPE inside (px)": m("epe_inside"),
                     "EPE outside (px)": m("epe_outside"), "joints outside": int(per_seed[0]["n_outside"]),
                     "placed outside (share)": m("share_placed_outside"),
                     "truth beyond the crop (px)": m("outside_beyond_px")})
    return rows


def out_of_crop_verdict(errors: dict, ours: str, theirs: str, preset=None, data="synth", seeds=None,
                        min_effect: float = 1.0, min_joints: int = 30, learnt: Sequence | None = None) -> claims.Verdict:
    """"``ours`` locates joints outside the crop better than ``theirs``": ``claims.compare_seeds``
    on the per-seed EPE of the outside joints (lower is better, paired: the same crops and seeds),
    by at least ``min_effect`` px. "inconclusive" when fewer than ``min_joints`` joints fall outside,
    and unless every side in ``learnt`` (:func:`poselab.claims.has_learnt` results) has learnt.
    The paper gives no number (Fig. 3 is qualitative), so there is no ``paper_effect``.
    ``preset``: the runs' :class:`poselab.experiments.Preset` (evidence; "fast" → inconclusive)."""
    for name in (ours, theirs):
        if name not in errors or not errors[name]:
            raise ValueError(f"no errors for {name!r}; have {sorted(errors)}")
    a = [e["epe_outside"] for e in errors[ours]]
    b = [e["epe_outside"] for e in errors[theirs]]
    ev = None
    if preset is not None:
        ev = claims.evidence(preset=preset, seeds=list(seeds if seeds is not None else range(len(a))),
                             per_seed={f"{r} EPE outside": [e["epe_outside"] for e in errors[r]] for r in errors}
                             | {f"{r} EPE inside": [e["epe_inside"] for e in errors[r]] for r in errors},
                             input_size=preset.input_size, heatmap_size=preset.heatmap_size, data=data,
                             metric="EPE outside the crop (input px)", set="cut crops of generated val")
    v = claims.compare_seeds(a, b, lower_is_better=True, min_effect=min_effect, paired=len(a) == len(b),
                             metric=f"EPE on joints outside the crop, {ours} vs {theirs} (px)",
                             preset=getattr(preset, "name", preset), evidence=ev)
    n = min(e["n_outside"] for e in (*errors[ours], *errors[theirs]))
    placed = float(np.mean([e["share_placed_outside"] for e in errors[ours]]))
    v = v.replace(summary={**v.summary, "joints_outside": n, "ours_share_placed_outside": placed})
    if placed == 0.0 and n > 0:
        v = v.replace(reason=f"{v.reason}; {ours} placed none of its points for outside joints outside the crop "
                             "(its reach is unused: training gives joints outside the crop weight 0)")
    if n < int(min_joints):
        return v.replace(verdict="inconclusive",
                         reason=f"only {n} joints fall outside the crops (< {int(min_joints)}): too few to judge")
    return claims.require_ready(v, list(learnt or []))


def table_errors(table, recipes: Sequence[str], crops: dict, set_name: str = "generated val") -> dict:
    """``{recipe: [out_of_crop_errors per seed]}`` for the trained runs of a
    :class:`poselab.experiments.ComparisonTable` on the same :func:`cut_crops` (paired by crop)."""
    seeds = sorted({r.seed for r in table.results})
    return {name: [run_out_of_crop_errors(table.result(name, seed), crops) for seed in seeds] for name in recipes}


def reach_rows(reach: dict) -> list[dict]:
    """Rows for a table of :func:`decoder_reach`."""
    return [{"decoder": k, "outside targets decoded exactly": r["reaches_outside"] if "targets" in r else "—",
             "largest miss (px)": r["max_miss"], "farthest decode beyond crop (px)": r["max_outside"]}
            for k, r in reach.items()]


def reach_sentence(reach: dict) -> Sentence:
    """One sentence from :func:`decoder_reach`: which decoders can return a point outside the crop."""
    yes = [k for k, r in reach.items() if r["reaches_outside"]]
    no = [f"{k} (farthest decode {number(r['max_outside'])} px beyond the crop)" for k, r in reach.items()
          if not r["reaches_outside"]]
    return Sentence(f"The table shows which decoders can return a point outside the crop: "
                    f"{', '.join(yes) or 'none'}; confined to it: {', '.join(no) or 'none'}.")


def errors_sentence(errors: dict, verdict, ours: str, theirs: str, recorded: Mapping | None = None) -> Sentence:
    """The section's closing sentence: the outside/inside errors of ``ours`` and ``theirs``, the
    verdict of :func:`out_of_crop_judge` and, with ``recorded`` (the recorded replication's
    verdict, :func:`poselab.chapters.sar.replication.recorded_verdicts`), that one beside it."""
    def m(name, key):
        return number(float(np.mean([e[key] for e in errors[name]])))
    v = getattr(verdict, "verdict", None) or verdict["verdict"]
    reason = str(getattr(verdict, "reason", None) or verdict.get("reason", "")).rstrip(".")
    return Sentence(f"The table shows each model's error on joints inside and outside the cut crops: "
                    f"{ours} {m(ours, 'epe_outside')} px outside ({m(ours, 'epe_inside')} inside, "
                    f"{m(ours, 'share_placed_outside')} of its points for outside joints placed outside), "
                    f"{theirs} {m(theirs, 'epe_outside')} px ({m(theirs, 'epe_inside')}); "
                    f"{ours} locates outside joints better: **{v}** — {reason}."
                    + (f" On the recorded replication: {claims.recorded_text(recorded).rstrip('.')}." if recorded is not None else ""))
