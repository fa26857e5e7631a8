"""comparison.png: the headline metric per run, and against model size and training time."""

from __future__ import annotations

import io

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from seglab.reports.compare import Comparison, Metric

BAR_COLOUR, BEST_COLOUR = "#8fa8c8", "#2a6f3f"


def _no_data(axes: Axes, title: str, message: str) -> None:
    axes.set_title(title)
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes,
              color="grey")
    axes.set_xticks([])
    axes.set_yticks([])


def _bars(axes: Axes, labels: pd.Series, values: pd.Series, errors: pd.Series | None,
          metric: Metric, best: pd.Series, noun: str) -> None:
    """Horizontal bars, first row on top, the best in a darker colour, values at the ends."""
    positions = range(len(values))
    axes.barh(positions, values, xerr=errors, capsize=3,
              color=[BEST_COLOUR if flag else BAR_COLOUR for flag in best])
    ends = values if errors is None else values + errors
    for position, value, end in zip(positions, values, ends, strict=True):
        axes.text(end, position, f" {metric.show(value)}", va="center", fontsize=8)
    axes.set_yticks(list(positions), labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel(metric.header)
    axes.set_title(f"{metric.header} per {noun}")
    axes.margins(x=0.15)
    axes.grid(axis="x", alpha=0.3)


def _scatter(axes: Axes, x: pd.Series, y: pd.Series, errors: pd.Series | None,
             labels: pd.Series, x_label: str, y_label: str) -> None:
    """One labelled point per row that has both numbers."""
    present = x.notna() & y.notna()
    title = f"{y_label} vs {x_label.split(' (')[0]}"
    if not present.any():
        _no_data(axes, title, f"no runs with {x_label.split(' (')[0]}")
        return
    axes.errorbar(x[present], y[present], yerr=None if errors is None else errors[present],
                  fmt="o", capsize=3, color=BEST_COLOUR)
    for label, x_value, y_value in zip(labels[present], x[present], y[present], strict=True):
        axes.annotate(label, (x_value, y_value), xytext=(4, 4), textcoords="offset points",
                      fontsize=8)
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.set_title(title)
    axes.margins(0.15)
    axes.grid(alpha=0.3)


def _time_axis(seconds: pd.Series) -> tuple[pd.Series, str]:
    """Training time in the unit that keeps the numbers short."""
    longest = seconds.max()
    if pd.isna(longest) or longest < 120:
        return seconds, "train time (s)"
    if longest < 7200:
        return seconds / 60, "train time (min)"
    return seconds / 3600, "train time (h)"


def render_chart(comparison: Comparison) -> bytes:
    """The three panels as PNG bytes; failed and unfinished runs are left out."""
    metric = comparison.headline
    values = comparison.numbers(metric.column)
    rows = comparison.finished() & values.notna()
    values = values[rows]
    spread = comparison.spread(metric.column)
    errors = None if spread is None else spread[rows].fillna(0)
    labels = comparison.labels()[rows]
    best = values.eq(values.max() if metric.better != "min" else values.min())
    seconds, time_label = _time_axis(comparison.numbers("train_seconds")[rows])

    noun = "group" if comparison.grouped else "run"
    figure = Figure(figsize=(17, max(4.5, 1.6 + 0.32 * len(values))), layout="constrained")
    FigureCanvasAgg(figure)
    bars, size, time = figure.subplots(1, 3, width_ratios=[1.3, 1, 1])
    if values.empty:
        for axes in (bars, size, time):
            _no_data(axes, metric.header, f"no completed runs with {metric.header}")
    else:
        _bars(bars, labels, values, errors, metric, best, noun)
        short = comparison.frame.loc[values.index, "run"] if not comparison.grouped else labels
        _scatter(size, comparison.numbers("params_M")[rows], values, errors, short,
                 "parameters (M)", metric.header)
        _scatter(time, seconds, values, errors, short, time_label, metric.header)
    direction = " (lower is better)" if metric.better == "min" else ""
    figure.suptitle(f"{metric.header}{direction}: {len(values)} {noun}(s) with a result")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()
