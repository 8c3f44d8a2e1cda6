"""RCNet's toy-AP widget (Fig. 1), driven like a student drags it: AP moves with the false
positive's score, AR does not, and the table shows what the analysis functions compute."""
import re

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from poselab.analysis import rcnet as R  # noqa: E402
from poselab.widgets.rcnet import toy_ap_widget  # noqa: E402


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
