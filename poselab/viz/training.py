"""Training curves: a static ``go.Figure`` of a :class:`~poselab.train.History` and a live
``FigureWidget`` callback for :func:`poselab.train.fit`.

The static figure is what saved notebooks keep (small); the live one (:class:`LiveCurves`) is a
plotly ``FigureWidget`` updated inside ``fig.batch_update()`` at most every ``min_interval``
seconds, so a fast loop is not slowed down by redrawing.
"""
from __future__ import annotations

import time

import numpy as np
import plotly.graph_objects as go
from IPython.display import display

from poselab.train.callbacks import Callback
from poselab.train.history import History

__all__ = ["history_figure", "LiveCurves"]

_VAL_SKIP = ("epoch", "step", "n_persons")


def _layout(fig: go.Figure, title: str, val_metric: str | None) -> go.Figure:
    fig.update_layout(
        title=title, height=320, margin=dict(l=60, r=60, t=40, b=40),
        xaxis=dict(title="optimiser step"), yaxis=dict(title="train loss", type="log"),
        yaxis2=dict(title=val_metric or "val", overlaying="y", side="right", showgrid=False),
        legend=dict(orientation="h", y=-0.25))
    return fig


def _val_name(history: History, val_metric: str | None) -> str | None:
    if val_metric is not None or not history.val:
        return val_metric
    names = [k for k in history.val[-1] if k not in _VAL_SKIP]
    return "AP" if "AP" in names else (names[0] if names else None)


def history_figure(history: History, val_metric: str | None = None, window: int = 10,
                   title: str = "training") -> go.Figure:
    """Static figure: raw and smoothed (``window``-step mean) train loss on a log axis, and one
    validation metric (default "AP" if recorded, else the first) on a right axis."""
    steps = np.arange(1, history.steps + 1)
    fig = go.Figure()
    fig.add_scatter(x=steps, y=history.losses, mode="lines", name="loss",
                    line=dict(width=1, color="rgba(31,119,180,0.35)"))
    fig.add_scatter(x=steps, y=history.smoothed_loss(window), mode="lines",
                    name=f"loss ({window}-step mean)", line=dict(color="rgb(31,119,180)"))
    name = _val_name(history, val_metric)
    if name is not None:
        xs, ys = history.val_metric(name)
        fig.add_scatter(x=xs, y=ys, mode="lines+markers", name=f"val {name}", yaxis="y2",
                        line=dict(color="rgb(214,39,40)"))
    return _layout(fig, title, name)


class LiveCurves(Callback):
    """``fit`` callback showing a live ``FigureWidget`` of train loss and a val metric.

    Args:
        val_metric: validation metric to plot (default "AP" if recorded, else the first).
        min_interval: seconds between redraws (throttle); the last state is always drawn.
        window: smoothing window of the loss curve.
        display: call ``IPython.display.display`` on the widget at fit start (set False to place
            ``self.figure`` yourself).
    """

    def __init__(self, val_metric: str | None = None, min_interval: float = 0.5, window: int = 10,
                 display: bool = True, title: str = "training (live)"):
        self.val_metric, self.min_interval, self.window = val_metric, float(min_interval), int(window)
        self.display, self.title = display, title
        self.figure = None
        self._last = 0.0
        self.redraws = 0

    def on_fit_start(self, state) -> None:
        if self.figure is None:
            self.figure = go.FigureWidget(history_figure(state.history, self.val_metric,
                                                         self.window, self.title))
            if len(self.figure.data) < 3:
                self.figure.add_scatter(x=[], y=[], mode="lines+markers", name="val", yaxis="y2",
                                        line=dict(color="rgb(214,39,40)"))
            if self.display:
                display(self.figure)
        self._draw(state.history)

    def _draw(self, history: History) -> None:
        steps = np.arange(1, history.steps + 1)
        name = _val_name(history, self.val_metric)
        with self.figure.batch_update():
            self.figure.data[0].x, self.figure.data[0].y = steps, history.losses
            self.figure.data[1].x, self.figure.data[1].y = steps, history.smoothed_loss(self.window)
            if name is not None:
                xs, ys = history.val_metric(name)
                self.figure.data[2].x, self.figure.data[2].y = xs, ys
                self.figure.data[2].name = f"val {name}"
                self.figure.layout.yaxis2.title.text = name
        self._last = time.monotonic()
        self.redraws += 1

    def on_step_end(self, state) -> None:
        if time.monotonic() - self._last >= self.min_interval:
            self._draw(state.history)

    def on_validation_end(self, state) -> None:
        self._draw(state.history)

    def on_fit_end(self, state) -> None:
        self._draw(state.history)
