"""The ranking losses after the speed work of issue 32 (numpy's row sort, the sort update kept on
the positives, the rank update stored in the output dtype, prefix sums without concatenation)
against the values the previous implementation gave (commit 619098c) on the papers' size:
B = 16, K = 17, 64×48 heatmaps, σ = 2 (13×13 windows), Spatial RS + Instance-Sort with Table E.8's
deltas and coefficients, one invisible joint, per-person areas. Noisy maps (labels + 0.3·noise,
the case the per-positive loop comparison of ``benchmarks/ranking.py`` names) and random maps.

The previous implementation's numbers were bit-identical to the new one's when this was written
(every dtype); float64 is held to 1e-12 relative, float32 to 1e-6 and half precision to 1e-2
(room for another CPU's exp and rounding, not for a change of the arithmetic: the counter-case
shows a δ changed by 2.5 % moves every float64 number by far more)."""
import pytest
import torch

from poselab.codecs import encode_gaussian
from poselab.losses import rspose_loss

B, K, H, W = 16, 17, 64, 48
KEYS = ("loss", "spatial_rank", "spatial_sort", "instance_sort", "sum |grad|", "grad · r",
        "max |grad|")

# rspose_loss terms, then the gradient's L1 norm, its dot product with r, its largest entry,
# computed by the implementation before issue 32's changes
PREVIOUS = {
    (torch.float64, "noisy"): [1.3509385903644824, 0.9037816937642346, 0.2047713530164031,
                               0.15045676226976656, 1.842801566720941, 0.0021041127566421495,
                               0.000578995255262833],
    (torch.float64, "random"): [1.3890356495630485, 0.9524394972881917, 0.21316169970584145,
                                0.04109101145269539, 1.9568150769477408, -0.0011550182617262163,
                                0.000783859061417802],
    (torch.float32, "noisy"): [1.3508780002593994, 0.9037816524505615, 0.20477133989334106,
                               0.15021471679210663, 1.8428015891498661, 0.0021123469844854005,
                               0.0005789953866042197],
    (torch.float32, "random"): [1.3889957666397095, 0.9524394273757935, 0.21316169202327728,
                                0.04093189164996147, 1.9568150989927662, -0.0011575010132498014,
                                0.0007838589372113347],
    (torch.float16, "noisy"): [1.3505859375, 0.90380859375, 0.204833984375, 0.1494140625,
                               1.8431562781333923, 0.002138981938362122, 0.0005784034729003906],
    (torch.float16, "random"): [1.38671875, 0.9521484375, 0.2132568359375, 0.032470703125,
                                1.9559104442596436, -0.0012814444899559036, 0.0007839202880859375],
    (torch.bfloat16, "noisy"): [1.3515625, 0.90234375, 0.2041015625, 0.150390625,
                                1.837969423379377, 0.0021676663622949943, 0.00058746337890625],
    (torch.bfloat16, "random"): [1.3828125, 0.94921875, 0.2119140625, 0.0419921875,
                                 1.9499759454131436, -0.0011835959717028572, 0.000789642333984375],
}
TOL = {torch.float64: 1e-12, torch.float32: 1e-6, torch.float16: 1e-2, torch.bfloat16: 1e-2}


def problem(kind: str):
    """Quantised labels (multiples of 1/1024: ties that do not depend on a CPU's exp)."""
    g = torch.Generator().manual_seed(1 if kind == "noisy" else 2)
    kp = torch.rand(B, K, 2, generator=g, dtype=torch.float64) * torch.tensor([W - 1.0, H - 1.0])
    labels, vis = encode_gaussian(kp, None, (H, W), 2.0, dtype=torch.float64)
    labels = torch.round(labels * 1024) / 1024
    vis[3, 5] = 0
    noise = torch.randn(B, K, H, W, generator=g, dtype=torch.float64)
    scores = noise if kind == "random" else labels + 0.3 * noise
    areas = 200.0 + 40.0 * torch.arange(B, dtype=torch.float64)
    return scores, labels, vis, kp, areas


def numbers(dtype, kind, **kw):
    s, lab, vis, kp, areas = problem(kind)
    x = s.to(dtype).requires_grad_(True)
    out = rspose_loss(x, lab.to(dtype), vis.to(dtype), kp.to(dtype), areas.to(dtype),
                      return_terms=True, **kw)
    out["loss"].backward()
    assert x.grad.dtype == dtype
    grad = x.grad.double().reshape(-1)
    r = ((torch.arange(grad.numel(), dtype=torch.float64) * 7919) % 1000) / 1000 - 0.5
    return [out[k].item() for k in KEYS[:4]] + [grad.abs().sum().item(), (grad * r).sum().item(),
                                               grad.abs().max().item()]


def worst(got, want):
    return max(abs(a - b) / abs(b) for a, b in zip(got, want))


@pytest.mark.parametrize("dtype,kind", list(PREVIOUS))
def test_rspose_equals_the_previous_implementation(dtype, kind):
    got = numbers(dtype, kind)
    for key, a, b in zip(KEYS, got, PREVIOUS[dtype, kind]):
        assert abs(a - b) <= TOL[dtype] * abs(b), (key, a, b)


def test_counter_case_a_changed_delta_is_caught():
    """What the comparison detects: rank δ 0.41 instead of 0.4 moves the float64 numbers by
    far more than the tolerance (and so would any change of the arithmetic beyond rounding)."""
    got = numbers(torch.float64, "noisy", rank_delta=0.41)
    assert worst(got, PREVIOUS[torch.float64, "noisy"]) > 1e3 * TOL[torch.float64]
