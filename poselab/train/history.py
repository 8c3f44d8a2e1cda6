"""``History``: what :func:`poselab.train.fit` records (per-step losses and timings, val metrics)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class History:
    """Training record.

    Attributes:
        losses: training loss of every optimiser step (float).
        step_times: wall time of every step in seconds (forward + backward + optimiser; the data
            loading time is in ``data_times``).
        data_times: time spent building each batch (seconds).
        lrs: learning rate used at every step.
        epochs: epoch index of every step.
        batch_sizes: number of samples in every step's batch.
        terms: extra scalars returned by the loss function (``{"loss": ..., "mse": ...}``), name →
            per-step values.
        val: one dict per validation (``{"epoch": e, "step": s, **metrics}``).
        grad_norms: global gradient norm of every step **before** clipping (how often and how
            hard ``grad_clip`` acted; empty in records made before it was kept).
    """

    losses: list[float] = field(default_factory=list)
    step_times: list[float] = field(default_factory=list)
    data_times: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    terms: dict[str, list[float]] = field(default_factory=dict)
    val: list[dict[str, Any]] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return len(self.losses)

    def smoothed_loss(self, window: int = 10) -> np.ndarray:
        """Trailing moving average of the loss (window ``window`` steps, shorter at the start)."""
        x = np.asarray(self.losses, dtype=np.float64)
        if x.size == 0:
            return x
        c = np.concatenate([[0.0], np.cumsum(x)])
        idx = np.arange(1, x.size + 1)
        lo = np.maximum(idx - int(window), 0)
        return (c[idx] - c[lo]) / (idx - lo)

    def final_loss(self, window: int = 10) -> float:
        """Mean of the last ``window`` losses (NaN if nothing was recorded)."""
        return float(np.mean(self.losses[-int(window):])) if self.losses else float("nan")

    def samples_per_second(self, skip: int = 2) -> float:
        """Training throughput over the recorded steps (first ``skip`` warm-up steps ignored)."""
        t = np.asarray(self.step_times[skip:]) + np.asarray(self.data_times[skip:])
        n = np.asarray(self.batch_sizes[skip:])
        return float(n.sum() / t.sum()) if t.size and t.sum() > 0 else float("nan")

    def val_metric(self, name: str) -> tuple[list[int], list[float]]:
        """``(steps, values)`` of one validation metric."""
        rows = [r for r in self.val if name in r]
        return [int(r["step"]) for r in rows], [float(r[name]) for r in rows]

    def to_dict(self) -> dict[str, Any]:
        """Plain lists/dicts/floats (JSON- and ``torch.load(weights_only=True)``-safe)."""
        return {"losses": list(map(float, self.losses)), "step_times": list(map(float, self.step_times)),
                "data_times": list(map(float, self.data_times)), "lrs": list(map(float, self.lrs)),
                "epochs": list(map(int, self.epochs)), "batch_sizes": list(map(int, self.batch_sizes)),
                "terms": {k: list(map(float, v)) for k, v in self.terms.items()},
                "val": [{str(k): (float(v) if isinstance(v, (int, float, np.floating, np.integer))
                                  and not isinstance(v, bool) else v) for k, v in r.items()}
                        for r in self.val],
                "grad_norms": list(map(float, self.grad_norms))}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "History":
        return cls(losses=list(d.get("losses", [])), step_times=list(d.get("step_times", [])),
                   data_times=list(d.get("data_times", [])), lrs=list(d.get("lrs", [])),
                   epochs=list(d.get("epochs", [])), batch_sizes=list(d.get("batch_sizes", [])),
                   terms={k: list(v) for k, v in d.get("terms", {}).items()},
                   val=[dict(r) for r in d.get("val", [])], grad_norms=list(d.get("grad_norms", [])))
