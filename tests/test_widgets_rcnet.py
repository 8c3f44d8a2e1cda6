"""RCNet's toy-AP widget (Fig. 1), driven like a student drags it: AP moves with the false
positive's score, AR does not, and the table shows what the analysis functions compute."""
import re

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from poselab.chapters.rcnet import analysis as R  # noqa: E402
from poselab.chapters.rcnet.widgets import toy_ap_widget  # noqa: E402


def _row(widget):
    cells = re.findall(r"<td>([^<]*)</td>", widget.table.value)
    return cells[0], [float(c) for c in cells[1:]]


def test_dragging_the_false_positive_moves_ap_not_ar():
    w = toy_ap_widget(initial=(0.9, 0.6, 0.5, 0.1))
    order, (ap3, ap_coco, trap, ar4, ar_coco) = _row(w)
    assert order.startswith("P1 (TP)") and order.endswith("P4 (FP)")
    assert ap3 == 1.0 and ap_coco == 1.0
    w.sliders[3].value = 0.7  # drag P4 (the FP) to second place: the paper's Fig. 1(b)
    order, (ap3b, ap_cocob, trapb, ar4b, ar_cocob) = _row(w)
    assert order.split(" > ")[1] == "P4 (FP)"
    want = R.toy_evaluate([0.9, 0.6, 0.5, 0.7])
    assert ap3b == round(want["ap_eq3"], 3) and ap_cocob == round(want["ap_coco"], 3) < 1.0
    assert trapb == round(55 / 72, 3)  # the paper's 0.76
    assert (ar4b, ar_cocob) == (ar4, ar_coco)  # one person per image: AR cannot move
    # the PR figure follows: its precision trace ends at 3/4 (3 TPs among 4 detections)
    ys = [np.asarray(d.y, dtype=float) for d in w.figure.data if d.y is not None and len(d.y)]
    assert any(abs(y[-1] - 0.75) < 1e-9 for y in ys)


def test_pair_term_point_cases_values_and_gradients():
    for d, order, case in ((0.3, 1, 1), (0.3, -1, 2), (-0.3, 1, 3), (-0.3, -1, 4), (0.0, 1, 1), (0.0, -1, 2)):
        assert R.pair_term_point(d, order)["case"] == case
    # closed forms at the paper's margin (c = 1): ordered (|d| - 1/2)^2 + 1/4, misordered |d| + 1/2
    p = R.pair_term_point(0.3, 1)
    assert abs(p["g"] - (0.2 ** 2 + 0.25)) < 1e-12 and abs(p["gradient"] - 2 * (0.3 - 0.5)) < 1e-12
    q = R.pair_term_point(-0.3, 1)
    assert abs(q["g"] - 0.8) < 1e-12 and abs(q["gradient"] + 1.0) < 1e-12 and not q["ordered"]
    assert R.pair_term_point(0.0, -1, c=2.0)["gradient"] == 2.0  # tied: -c * order
    with pytest.raises(ValueError, match="order"):
        R.pair_term_point(0.1, 0)


def test_loss_shape_widget_follows_its_sliders():
    from poselab.chapters.rcnet.widgets import loss_shape_widget
    w = loss_shape_widget()
    w.sliders["delta"].value = -0.4
    w.sliders["margin"].value = 1.0
    rows = re.findall(r"<tr><td>[^/]*?</td><td>(\d)</td><td>(\w+)</td><td>([-\d.]+)</td><td>([-\d.]+)</td></tr>",
                      w.table.value)
    (case_a, kind_a, g_a, grad_a), (case_b, kind_b, g_b, grad_b) = rows
    assert (case_a, kind_a, case_b, kind_b) == ("3", "misordered", "4", "ordered")
    assert float(g_a) == round(0.4 + 1.0 + 0.25, 4)  # continuous form: c|d| + m^2 + c^2/4
    assert float(g_b) == round((0.4 - 1.0) ** 2 + 0.25, 4) and float(grad_a) == -1.0
    assert w.figure.data[2].x == (-0.4,) and abs(w.figure.data[2].y[0] - 1.65) < 1e-12


def test_live_history_turns_nan_into_gaps():
    """A NaN in a FigureWidget trace is not JSON: the kernel printed a serialization warning (a
    pink stderr box) when an epoch had nothing to rank."""
    from poselab.chapters.rcnet.widgets import live_history
    fig, callback = live_history()
    callback(0, {"train_rank_loss": 0.5, "train_accuracy": float("nan"), "val_rank_loss": 0.4,
                 "val_accuracy": 0.7})
    ys = [tuple(d.y) for d in fig.data[:4]]
    assert ys[1] == (None,) and ys[0] == (0.5,) and ys[3] == (0.7,)
