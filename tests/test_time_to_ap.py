"""benchmarks/time_to_ap.py: training seconds to an AP threshold, read from a run's history."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "time_to_ap.py"
spec = importlib.util.spec_from_file_location("time_to_ap", SCRIPT)
tta = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tta)


def history(step_times, data_times, val):
    return {"step_times": step_times, "data_times": data_times, "val": val}


def test_curve_sums_step_and_data_time_before_each_validation():
    h = history([1.0, 2.0, 4.0, 8.0], [0.5, 0.5, 0.5, 0.5],
                [{"step": 2, "AP": 0.31}, {"step": 4, "AP": 0.52}])
    points = tta.curve(h)
    assert [p["train_s"] for p in points] == [4.0, 17.0]   # 1.5 + 2.5; + 4.5 + 8.5
    assert tta.time_to(points, 0.3) == 4.0
    assert tta.time_to(points, 0.5) == 17.0
    assert tta.time_to(points, 0.6) is None                # never reached: None, not the last time


def test_verdict_needs_both_ap_and_time():
    fast_enough = tta.summary("default", tta.curve(history([10.0] * 6, [0.0] * 6,
                                                           [{"step": 5, "AP": 0.51}])), 2, "test")
    too_slow = tta.summary("default", tta.curve(history([11.0] * 6, [0.0] * 6,
                                                        [{"step": 6, "AP": 0.51}])), 2, "test")
    too_weak = tta.summary("default", tta.curve(history([1.0] * 6, [0.0] * 6,
                                                        [{"step": 6, "AP": 0.49}])), 2, "test")
    assert ": MET" in tta.table([fast_enough])
    assert "NOT MET" in tta.table([too_slow]) and "NOT MET" in tta.table([too_weak])


def test_a_validation_past_the_history_is_refused():
    with pytest.raises(ValueError, match="step 7"):
        tta.curve(history([1.0] * 3, [0.0] * 3, [{"step": 7, "AP": 0.1}]))


def test_recorded_full_run_is_read_from_its_history():
    full = tta.recorded_full()
    assert full["source"].startswith("recorded: mse_full.json")
    assert len(full["curve"]) == 10 and full["curve"][-1]["step"] == 5000
    assert full["train_s"] > 500                     # 5000 one-thread steps, not a typed number
    assert "AP ≥ 0.65: MET" in tta.table([full])     # the record's own final AP is 0.745
