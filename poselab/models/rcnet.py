"""RCNet, the Ranked Confidence Net (RCNet Eq. 10–11, App. B), its ScoreNet-MLP rival (Table 11)
and the DEKR-style pose features both read.

    s' = sigmoid ∘ H ∘ A ∘ φ([s], [p])                                          (Eq. 11)

- φ: one linear layer from the pose features + original score to 16 dims (App. B);
- A: a single-layer, single-head Transformer encoder over the poses of one image (a sequence);
- H: one linear unit, then a sigmoid.

App. B fixes φ, H, the width 16 and "one layer, one head", not the encoder's feed-forward width.
PyTorch's default (2048) gives ≈ 0.07 M parameters with 75 input features — the paper's count —
so it is our default. Which poses form a sequence is not stated either; we attend over the poses
of one image (its detections), so a pose's refined score can depend on its duplicates and
neighbours, never on which other images share its batch.

Keypoints never change: RCNet reads poses and returns one score per pose.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._numbers import whole_number
from poselab.skeleton import LIMBS, NUM_KEYPOINTS

__all__ = ["RCNet", "ScoreNet", "pose_features", "POSE_FEATURES", "TORSO_LIMBS"]

# Torso links of LIMBS used as the size normaliser: left shoulder–left hip, right shoulder–right hip
# (DEKR normalises by the mean of its two torso links).
TORSO_LIMBS = (LIMBS.index((5, 11)), LIMBS.index((6, 12)))
POSE_FEATURES = 3 * len(LIMBS) + NUM_KEYPOINTS + 1
"""75 = 19 links × (Δx, Δy, length) + 17 joint scores + the original instance score."""


def pose_features(coords, keypoint_scores, instance_scores) -> np.ndarray:
    """DEKR-style rule-based pose features (DEKR ``rescore.py``; RCNet App. B) + the original score.

    Per pose: for each of the 19 COCO links (a, b) the offset p_b − p_a (x, y) and its length,
    all divided by the torso size (mean length of the two shoulder–hip links, clamped to ≥ 1 px
    as DEKR does), then the 17 joint scores, then the instance score: 19·3 + 17 + 1 = 75 numbers.

    Args:
        coords: (N, 17, 2) predicted keypoints (image pixels).
        keypoint_scores: (N, 17) joint scores. instance_scores: (N,) original pose scores.

    Returns (N, 75) float32 ((0, 75) for no pose). A pose whose joints all coincide has zero
    link features (finite).

    Raises:
        ValueError: wrong shapes or NaN/Inf values (naming the argument).

    Example:
        >>> pose_features(np.zeros((2, 17, 2)), np.ones((2, 17)), np.ones(2)).shape
        (2, 75)
    """
    xy = np.asarray(coords, dtype=np.float64)
    ks = np.asarray(keypoint_scores, dtype=np.float64)
    inst = np.asarray(instance_scores, dtype=np.float64)
    if xy.ndim != 3 or xy.shape[1:] != (NUM_KEYPOINTS, 2):
        raise ValueError(f"coords must be (N, {NUM_KEYPOINTS}, 2), got shape {xy.shape}")
    n = xy.shape[0]
    if ks.shape != (n, NUM_KEYPOINTS):
        raise ValueError(f"keypoint_scores must be (N, {NUM_KEYPOINTS}) = ({n}, {NUM_KEYPOINTS}), "
                         f"got {ks.shape}")
    if inst.shape != (n,):
        raise ValueError(f"instance_scores must be (N,) = ({n},), got {inst.shape}")
    for name, arr in (("coords", xy), ("keypoint_scores", ks), ("instance_scores", inst)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or Inf; RCNet needs finite poses and scores "
                             f"(replace undefined scores by 0 before calling)")
    a = np.array([l[0] for l in LIMBS])
    b = np.array([l[1] for l in LIMBS])
    offsets = xy[:, b] - xy[:, a]  # (N, 19, 2)
    lengths = np.linalg.norm(offsets, axis=-1)  # (N, 19)
    torso = np.maximum(lengths[:, list(TORSO_LIMBS)].mean(axis=1), 1.0)[:, None]
    feats = np.concatenate([(offsets / torso[..., None]).reshape(n, 2 * len(LIMBS)), lengths / torso, ks,
                            inst[:, None]], axis=1)
    return feats.astype(np.float32)


def _as_batch(x: torch.Tensor, mask: torch.Tensor | None, name: str):
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor (N, F) or (B, L, F)")
    single = x.dim() == 2
    if single:
        x = x.unsqueeze(0)
        mask = None if mask is None else mask.unsqueeze(0)
    if x.dim() != 3:
        raise ValueError(f"{name} must be (N, F) or (B, L, F), got shape {tuple(x.shape)}")
    if mask is not None and tuple(mask.shape) != tuple(x.shape[:2]):
        raise ValueError(f"padding_mask must be (B, L) = {tuple(x.shape[:2])}, got {tuple(mask.shape)}")
    return x, mask, single


class RCNet(nn.Module):
    """Ranked Confidence Net: φ (linear) → 1-layer 1-head self-attention → H (linear) → sigmoid.

    Args:
        in_features: feature size per pose (:data:`POSE_FEATURES` = 75 for :func:`pose_features`).
        hidden: width of φ and of the encoder (16, App. B).
        feedforward: the encoder's feed-forward width (PyTorch's default 2048 → 0.07 M params).
        dropout: encoder dropout (PyTorch's default 0.1; off in ``eval()``).

    ``forward(features, padding_mask=None)``: features ``(N, F)`` (one image's poses) or
    ``(B, L, F)`` (B images padded to L poses, ``padding_mask (B, L)`` True at padding) →
    refined scores in (0, 1) of shape ``(N,)`` or ``(B, L)`` (padding gets 0).

    Example:
        >>> net = RCNet(75)
        >>> net(torch.zeros(3, 75)).shape
        torch.Size([3])
    """

    def __init__(self, in_features: int, hidden: int = 16, feedforward: int = 2048,
                 dropout: float = 0.1):
        super().__init__()
        in_features = whole_number(in_features, "in_features", 1)
        hidden = whole_number(hidden, "hidden", 1)
        self.in_features, self.hidden = int(in_features), int(hidden)
        self.embed = nn.Linear(self.in_features, self.hidden)  # φ
        self.encoder = nn.TransformerEncoderLayer(self.hidden, nhead=1, dim_feedforward=whole_number(feedforward, "feedforward", 1),
                                                  dropout=float(dropout), batch_first=True)  # A
        self.head = nn.Linear(self.hidden, 1)  # H

    def forward(self, features: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        x, mask, single = _as_batch(features, padding_mask, "features")
        if x.shape[-1] != self.in_features:
            raise ValueError(f"features must have {self.in_features} features per pose, got {x.shape[-1]}")
        if x.shape[1] == 0:
            out = x.new_zeros(x.shape[:2])
            return out[0] if single else out
        a = self.encoder(self.embed(x), src_key_padding_mask=mask)
        out = torch.sigmoid(self.head(a).squeeze(-1))
        if mask is not None:
            out = out.masked_fill(mask, 0.0)
        return out[0] if single else out


class ScoreNet(nn.Module):
    """DEKR's rescoring MLP (``RescoreNet``: F → H → H → 1, ReLU), each pose on its own (Table 11).

    A sigmoid on the output keeps it in (0, 1) like RCNet so both train under the same rank loss
    (DEKR itself regresses OKS with MSE and no sigmoid). Same call signature as :class:`RCNet`;
    ``padding_mask`` only zeroes padded outputs (there is no interaction between poses).

    Example:
        >>> ScoreNet(75)(torch.zeros(2, 4, 75)).shape
        torch.Size([2, 4])
    """

    def __init__(self, in_features: int, hidden: int = 256):
        super().__init__()
        in_features = whole_number(in_features, "in_features", 1)
        hidden = whole_number(hidden, "hidden", 1)
        self.in_features = int(in_features)
        self.mlp = nn.Sequential(nn.Linear(self.in_features, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        x, mask, single = _as_batch(features, padding_mask, "features")
        if x.shape[-1] != self.in_features:
            raise ValueError(f"features must have {self.in_features} features per pose, got {x.shape[-1]}")
        out = torch.sigmoid(self.mlp(x).squeeze(-1))
        if mask is not None:
            out = out.masked_fill(mask, 0.0)
        return out[0] if single else out
