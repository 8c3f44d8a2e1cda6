"""HDM codec: sub-pixel demanders (Eq. 4) and four-pixel decoding (§3.4)."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from poselab.codecs.hdm import decode_four_pixel, naive_demanders, subpixel_demanders

coord = st.floats(min_value=-5.0, max_value=100.0, allow_nan=False, width=64)


@settings(max_examples=200, deadline=None)
@given(coord, coord)
def test_subpixel_demanders_reconstruct_keypoint(x, y):
    kp = torch.tensor([x, y], dtype=torch.float64)
    pos, m = subpixel_demanders(kp)
    assert abs(float(m.sum()) - 1.0) <= 1e-12
    assert float((m >= 0).all()) == 1.0
    assert float(((m[:, None] * pos).sum(0) - kp).abs().max()) <= 1e-9
    # positions are the unit cell of pixel centres containing the keypoint
    assert pos[:, 0].min() == math.floor(x) and pos[:, 1].min() == math.floor(y)
    assert float((pos.max(0).values - pos.min(0).values - 1).abs().max()) == 0.0


def test_subpixel_demanders_match_paper_formula_by_loop():
    rng = np.random.default_rng(1)
    for x, y in rng.uniform(0, 20, size=(50, 2)):
        # paper: pixel containing the dot (round), its sub-pixel, and the 3 adjacent pixels
        px, py = math.floor(x + 0.5), math.floor(y + 0.5)
        nx = px + (1 if x >= px else -1)
        ny = py + (1 if y >= py else -1)
        expected = {(cx, cy): (1 - abs(x - cx)) * (1 - abs(y - cy)) for cx in (px, nx) for cy in (py, ny)}
        pos, m = subpixel_demanders(torch.tensor([x, y], dtype=torch.float64))
        got = {(int(p[0]), int(p[1])): float(w) for p, w in zip(pos, m)}
        assert got.keys() == expected.keys()
        for key in expected:
            assert abs(got[key] - expected[key]) < 1e-12


def test_naive_demander_is_rounded_pixel_and_batched_shapes():
    kp = torch.tensor([[[2.4, 3.6], [7.5, 0.49]]], dtype=torch.float64)
    pos, m = naive_demanders(kp)
    assert pos.shape == (1, 2, 4, 2) and m.shape == (1, 2, 4)
    centre = (m[..., None] * pos).sum(-2)
    assert torch.equal(centre, torch.tensor([[[2.0, 4.0], [8.0, 0.0]]], dtype=torch.float64))


def test_demanders_reject_bad_input():
    with pytest.raises(ValueError):
        subpixel_demanders(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError):
        subpixel_demanders(torch.zeros(3, 3))


def _four_pixel_loop(h):
    H, W = h.shape
    h = np.maximum(h, 0)
    best, arg = -1.0, None
    for i in range(H - 1):
        for j in range(W - 1):
            s = h[i, j] + h[i, j + 1] + h[i + 1, j] + h[i + 1, j + 1]
            if s > best:
                best, arg = s, (i, j)
    i, j = arg
    vals = [(h[i, j], j, i), (h[i, j + 1], j + 1, i), (h[i + 1, j], j, i + 1), (h[i + 1, j + 1], j + 1, i + 1)]
    tot = sum(v for v, _, _ in vals)
    if tot <= 0:
        return np.array([j + 0.5, i + 0.5])
    return np.array([sum(v * x for v, x, _ in vals) / tot, sum(v * y for v, _, y in vals) / tot])


def test_decode_four_pixel_matches_naive_loop():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(3, 5, 9, 7))
    got = decode_four_pixel(torch.as_tensor(maps)).numpy()
    assert got.shape == (3, 5, 2)
    for idx in np.ndindex(3, 5):
        np.testing.assert_allclose(got[idx], _four_pixel_loop(maps[idx]), atol=1e-12)


def test_decode_four_pixel_inverts_demanders():
    rng = np.random.default_rng(2)
    kp = torch.as_tensor(rng.uniform(0, 10, size=(40, 2)))
    pos, m = subpixel_demanders(kp)
    maps = torch.zeros(40, 12, 12, dtype=torch.float64)
    for n in range(40):
        for c in range(4):
            maps[n, int(pos[n, c, 1]), int(pos[n, c, 0])] += m[n, c]
    assert float((decode_four_pixel(maps) - kp).abs().max()) < 1e-12


def test_decode_four_pixel_all_negative_and_errors():
    out, score = decode_four_pixel(-torch.ones(4, 5), return_scores=True)
    assert torch.equal(out, torch.tensor([0.5, 0.5])) and float(score) == 0.0
    with pytest.raises(ValueError):
        decode_four_pixel(torch.ones(1, 5))
