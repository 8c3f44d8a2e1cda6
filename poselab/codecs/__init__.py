"""poselab.codecs — encode keypoints into training targets and decode predictions back.

One module per representation; all share the pixel-centre convention documented in
:mod:`poselab.codecs.heatmap` (pixel ``(i, j)`` has its centre at ``x = j, y = i``;
``x_heat = (x_in + 0.5) / stride - 0.5``).

- :mod:`.heatmap` — 2-D Gaussian (MSRA / unbiased) and dot targets; argmax, quarter-pixel and
  DARK decoding; :class:`HeatmapCodec`.
- :mod:`.simcc` — SimCC 1-D labels and decoding; :class:`SimCCCodec`.
- :mod:`.integral` — soft-argmax and BCIR's bias compensation; :class:`IntegralCodec`.
- :mod:`.sar` — SAR grid priors and top-m decoding; :class:`SARCodec`.
- :mod:`.hdm` — HDM sub-pixel demanders and four-pixel decoding.

Codec objects follow one protocol (:class:`Codec`, :mod:`.base`): ``codec.encode(keypoints
(..., K, 2) input px, visible (..., K)) -> dict`` of tensors (also ``codec(keypoints, visible)``,
a dataset ``target_fn``) with at least ``"weights" (..., K)``; ``codec.decode(outputs) ->
(coords (..., K, 2) input px, scores (..., K))`` where ``outputs`` is whatever the matching model
head returns (tensor, SimCC's tuple, SAR's dict); ``input_size``, ``heatmap_size`` and ``stride``;
``spec()`` / :func:`codec_from_spec` to save and rebuild it with a model (:func:`attach_codec`).

Round trips: :data:`ROUNDTRIP_BOUNDS_PX` holds the guaranteed max per-axis error of encode ->
decode for each codec setting below, in :data:`ROUNDTRIP_UNITS`; :func:`roundtrip_max_error`
measures it.
"""
from __future__ import annotations


import torch

from .._numbers import whole_number
from .heatmap import (HeatmapCodec, decode_argmax, decode_dark, encode_dot, encode_gaussian,
                      heatmap_stride, heatmap_to_input, input_to_heatmap)
from .integral import IntegralCodec, compensate_softargmax_bias, soft_argmax
from .integral import compensated_soft_argmax, softmax_log_normalizer, spatial_softmax
from .sar import SARCodec, decode_sar, sar_cell_centres, sar_cell_points, sar_top_m
from .simcc import (POSITIVE_THRESHOLD_3SIGMA, SimCCCodec, decode_simcc, encode_simcc, positives,
                    simcc_bins)
from .hdm import FourPixelCodec, subpixel_demanders, decode_four_pixel
from .base import Codec, attach_codec, codec_from_spec, model_codec

# Round-trip settings: input 256x192, heatmap 64x48 (stride 4), σ = 2 heatmap px, K = 1,
# float32; keypoints uniform over the pixel-centre hull [margin, W-1-margin] x [margin, H-1-margin]
# of the heatmap (SimCC: of the input). Error = max over keypoints and axes of |decoded - true|.
_RT_INPUT, _RT_HEATMAP, _RT_SIGMA = (256, 192), (64, 48), 2.0
_RT_SETTINGS = {
    # name: (description, margin in heatmap px)
    "gaussian_argmax": ("MSRA Gaussian (rounded centre, 6σ+1 window) + argmax", 0.0),
    "gaussian_quarter": ("MSRA Gaussian + argmax with quarter shift (no shift: the target is "
                         "symmetric about its integer centre)", 0.0),
    "unbiased_quarter": ("unbiased Gaussian + argmax with quarter shift (border pixels unshifted)", 0.5),
    "unbiased_dark": ("unbiased Gaussian + DARK without blur (exact Newton step on log)", 0.0),
    "unbiased_dark_blur": ("unbiased Gaussian + DARK, blur kernel 11 (σ_blur 2); the blur's zero "
                           "padding biases maxima within ~3 px of the border", 4.0),
    "dot_argmax": ("one-hot dot at the rounded pixel + argmax", 0.0),
    "simcc": ("SimCC, split 2, σ = 6 bins, rounded centre + argmax (input px)", 0.0),
    "integral_compensated": ("unbiased Gaussian used as logits, soft-argmax β=10 + BCIR "
                             "compensation (aliasing of the sharp exp(βh) limits exactness)", 6.0),
    "sar": ("SAR with ideal outputs: selector peaked at the nearest cell, offsets = keypoint - "
            "cell centre", 0.0),
}
# Measured maxima (n = 5000, seeds 0-2, float32; torch 2.13 CPU): gaussian_argmax 0.49999,
# gaussian_quarter 0.49999, unbiased_quarter 0.24999, unbiased_dark 2.9e-6, unbiased_dark_blur
# 7.7e-3, dot_argmax 0.49999, simcc 0.24999 input px, integral_compensated 3.4e-3 (uncompensated
# soft-argmax on the same maps: ~1.2 px), sar 2.9e-6.
ROUNDTRIP_BOUNDS_PX: dict[str, float] = {
    "gaussian_argmax": 0.5 + 1e-5,
    "gaussian_quarter": 0.5 + 1e-5,
    "unbiased_quarter": 0.25 + 1e-5,
    "unbiased_dark": 1e-3,
    "unbiased_dark_blur": 0.05,
    "dot_argmax": 0.5 + 1e-5,
    "simcc": 1.0 / (2 * 2.0) + 1e-5,
    "integral_compensated": 0.01,
    "sar": 1e-3,
}
ROUNDTRIP_UNITS: dict[str, str] = {k: ("input px" if k == "simcc" else "heatmap px")
                                   for k in ROUNDTRIP_BOUNDS_PX}


def roundtrip_max_error(codec_name: str, n: int = 2000, seed: int = 0) -> float:
    """Max per-axis encode -> decode error of ``codec_name`` over ``n`` random sub-pixel keypoints.

    Settings per name are described in ``_RT_SETTINGS`` (and the module docstring); the result
    is in ``ROUNDTRIP_UNITS[codec_name]`` and should not exceed ``ROUNDTRIP_BOUNDS_PX[codec_name]``.
    The keypoints are drawn in heatmap px (SimCC: input px) and encoded from input px through the
    codec objects, so the input <-> heatmap conversion is part of the round trip.
    """
    if codec_name not in _RT_SETTINGS:
        raise ValueError(f"unknown codec {codec_name!r}; choose one of {sorted(_RT_SETTINGS)}")
    n = whole_number(n, "n", 1)
    if n <= 0:
        raise ValueError(f"n must be a positive int, got {n}")
    g = torch.Generator().manual_seed(whole_number(seed, "seed", 0))
    margin = _RT_SETTINGS[codec_name][1]
    if codec_name == "simcc":
        H, W = _RT_INPUT
    else:
        H, W = _RT_HEATMAP
    lo = torch.tensor([margin, margin], dtype=torch.float64)
    span = torch.tensor([W - 1 - 2 * margin, H - 1 - 2 * margin], dtype=torch.float64)
    kp = lo + torch.rand(n, 1, 2, generator=g, dtype=torch.float64) * span  # (n, K=1, 2)
    if codec_name == "simcc":
        codec = SimCCCodec(_RT_INPUT, split_ratio=2.0, sigma=6.0)
        t = codec.encode(kp)
        got, _ = codec.decode(t["target_x"], t["target_y"])
        return float((got.double() - kp).abs().max())
    kp_in = heatmap_to_input(kp, _RT_INPUT, _RT_HEATMAP)
    if codec_name == "sar":
        codec = SARCodec(_RT_INPUT, _RT_HEATMAP)
        kp_hm = codec.encode(kp_in)["target"]
        centres = sar_cell_centres(_RT_HEATMAP, dtype=torch.float32)       # (H, W, 2)
        offsets = (kp_hm[..., None, None, :] - centres).movedim(-1, -3)   # (n, 1, 2, H, W)
        near = torch.floor(kp_hm + 0.5).long()
        logits = torch.full((n, 1, H, W), -10.0)
        logits.reshape(n, H * W)[torch.arange(n), near[:, 0, 1] * W + near[:, 0, 0]] = 10.0
        got_in, _ = codec.decode(logits, offsets)
    elif codec_name == "integral_compensated":
        codec = IntegralCodec(_RT_INPUT, _RT_HEATMAP, beta=10.0, compensate=True)
        kp_hm = codec.encode(kp_in)["target"]
        logits, _ = encode_gaussian(kp_hm, None, _RT_HEATMAP, _RT_SIGMA, unbiased=True)
        got_in, _ = codec.decode(logits)
    else:
        kw = {
            "gaussian_argmax": dict(decoder="argmax"),
            "gaussian_quarter": dict(decoder="quarter"),
            "unbiased_quarter": dict(unbiased=True, decoder="quarter"),
            "unbiased_dark": dict(unbiased=True, decoder="dark", dark_kernel=None),
            "unbiased_dark_blur": dict(unbiased=True, decoder="dark", dark_kernel=11),
            "dot_argmax": dict(target="dot", decoder="argmax"),
        }[codec_name]
        codec = HeatmapCodec(_RT_INPUT, _RT_HEATMAP, sigma=_RT_SIGMA, **kw)
        got_in, _ = codec.decode(codec.encode(kp_in)["target"])
    got = input_to_heatmap(got_in.double(), _RT_INPUT, _RT_HEATMAP)
    return float((got - kp).abs().max())


__all__ = [
    "heatmap_stride", "input_to_heatmap", "heatmap_to_input",
    "encode_gaussian", "encode_dot", "decode_argmax", "decode_dark", "HeatmapCodec",
    "simcc_bins", "encode_simcc", "decode_simcc", "positives", "POSITIVE_THRESHOLD_3SIGMA",
    "SimCCCodec",
    "soft_argmax", "compensate_softargmax_bias", "IntegralCodec",
    "spatial_softmax", "softmax_log_normalizer", "compensated_soft_argmax",
    "sar_cell_centres", "sar_cell_points", "sar_top_m", "decode_sar", "SARCodec",
    "subpixel_demanders", "decode_four_pixel", "FourPixelCodec",
    "Codec", "attach_codec", "codec_from_spec", "model_codec",
    "ROUNDTRIP_BOUNDS_PX", "ROUNDTRIP_UNITS", "roundtrip_max_error",
]
