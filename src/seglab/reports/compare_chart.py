"""comparison.png: the headline metric per run, and against model size, training time and,
when some run measured it, test throughput (images/s); when runs kept per-image test counts,
a last panel draws each row's test mIoU with its 95% interval as error bars, the rows not
significantly below the best in the dark colour.

The scatter panels name their points: colour = model, marker = encoder, explained by two legends
beside the panels. Rows without a model or encoder (e.g. grouped by model) get the bar panel's
label written next to the point instead.
"""

from __future__ import annotations

import io

import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from seglab.reports.compare import Comparison, Metric
from seglab.reports.run_folders import natural_key

BAR_COLOUR, BEST_COLOUR = "#8fa8c8", "#2a6f3f"
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "p", "h")  # cycled beyond 12
LEGEND_ROWS = 10  # entries per legend column


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


def _in_order(names: pd.Series) -> list[str]:
    """The distinct names, in natural order (`resnet18` before `resnet101`)."""
    return sorted(names.unique(), key=natural_key)


def point_styles(frame: pd.DataFrame) -> pd.DataFrame | None:
    """Model, encoder, colour (one per model) and marker (one per encoder) of each row's
    point; None when a row has no model or encoder, or the frame has no such columns."""
    if not {"model", "encoder"} <= set(frame.columns) \
            or frame[["model", "encoder"]].isna().to_numpy().any():
        return None
    names = frame[["model", "encoder"]].astype(str)
    models, encoders = _in_order(names["model"]), _in_order(names["encoder"])
    palette = colormaps["tab10" if len(models) <= 10 else "tab20"]
    colours = {model: to_hex(palette(i % palette.N)) for i, model in enumerate(models)}
    markers = {encoder: MARKERS[i % len(MARKERS)] for i, encoder in enumerate(encoders)}
    return names.assign(colour=names["model"].map(colours),
                        marker=names["encoder"].map(markers))


def _legends(figure: Figure, styles: pd.DataFrame) -> None:
    """Beside the scatter panels: a colour per model above, a marker per encoder below."""
    colours = dict(zip(styles["model"], styles["colour"], strict=True))
    markers = dict(zip(styles["encoder"], styles["marker"], strict=True))
    models = [Patch(color=colours[model], label=model) for model in _in_order(styles["model"])]
    encoders = [Line2D([], [], color="dimgrey", marker=markers[encoder], linestyle="none",
                       label=encoder) for encoder in _in_order(styles["encoder"])]
    for handles, title, loc in ((models, "model", "upper"), (encoders, "encoder", "lower")):
        figure.legend(handles=handles, title=title, loc=f"outside right {loc}", fontsize=8,
                      ncols=-(-len(handles) // LEGEND_ROWS))


def _styled_points(axes: Axes, x: pd.Series, y: pd.Series, errors: pd.Series | None,
                   styles: pd.DataFrame) -> None:
    """The points, coloured by model and shaped by encoder."""
    for (colour, marker), rows in styles.groupby(["colour", "marker"], sort=False).groups.items():
        axes.errorbar(x[rows], y[rows], yerr=None if errors is None else errors[rows],
                      color=colour, marker=marker, linestyle="none", capsize=3, markersize=7)


def _labelled_points(axes: Axes, x: pd.Series, y: pd.Series, errors: pd.Series | None,
                     labels: pd.Series) -> None:
    """The points in one colour, each with its label written beside it."""
    axes.errorbar(x, y, yerr=errors, fmt="o", capsize=3, color=BEST_COLOUR)
    for label, x_value, y_value in zip(labels, x, y, strict=True):
        axes.annotate(label, (x_value, y_value), xytext=(4, 4), textcoords="offset points",
                      fontsize=8)


def _scatter(axes: Axes, x: pd.Series, y: pd.Series, errors: pd.Series | None,
             styles: pd.DataFrame | None, labels: pd.Series, x_label: str,
             y_label: str) -> None:
    """One point per row that has both numbers: styled when `styles` is given, else labelled."""
    present = x.notna() & y.notna()
    title = f"{y_label} vs {x_label.split(' (')[0]}"
    if not present.any():
        _no_data(axes, title, f"no runs with {x_label.split(' (')[0]}")
        return
    x, y, errors = x[present], y[present], None if errors is None else errors[present]
    if styles is None:
        _labelled_points(axes, x, y, errors, labels[present])
    else:
        _styled_points(axes, x, y, errors, styles[present])
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


def _intervals(axes: Axes, labels: pd.Series, frame: pd.DataFrame) -> None:
    """Test mIoU with its interval per row, in the bars' order; rows tied with the best dark."""
    values, low, high = frame["test_mIoU_point"], frame["test_mIoU_low"], frame["test_mIoU_high"]
    positions = list(range(len(values)))
    tied = frame["same_as_best"].fillna(False).astype(bool) if "same_as_best" in frame \
        else pd.Series(False, index=frame.index)
    for position, value, lower, upper, best in zip(positions, values, low, high, tied,
                                                  strict=True):
        if pd.notna(lower):
            axes.errorbar(value, position, xerr=[[value - lower], [upper - value]], fmt="o",
                          capsize=3, color=BEST_COLOUR if best else BAR_COLOUR)
    axes.set_yticks(positions, labels, fontsize=8)
    axes.set_ylim(len(positions) - 0.5, -0.5)
    axes.set_xlabel("test mIoU")
    axes.set_title("test mIoU, 95% interval (dark: not below the best)")
    axes.grid(axis="x", alpha=0.3)


def chart_figure(comparison: Comparison) -> Figure:
    """The bars, the scatter panels (three or four) and the intervals' panel when there are
    intervals; failed and unfinished runs are left out."""
    metric = comparison.headline
    values = comparison.numbers(metric.column)
    rows = comparison.finished() & values.notna()
    values = values[rows]
    spread = comparison.spread(metric.column)
    errors = None if spread is None else spread[rows].fillna(0)
    labels = comparison.labels()[rows]
    best = values.eq(values.max() if metric.better != "min" else values.min())
    seconds, time_label = _time_axis(comparison.numbers("train_seconds")[rows])
    costs = [(comparison.numbers("params_M")[rows], "parameters (M)"), (seconds, time_label)]
    speed = comparison.numbers("images_per_s")[rows]
    if speed.notna().any():  # runs from before images/s was measured have none
        costs.append((speed, "test images/s"))

    frame = comparison.frame
    intervals = frame.loc[rows] if "test_mIoU_low" in frame else None
    if intervals is not None:  # a group's interval is around its pooled counts' mIoU
        intervals = intervals.assign(test_mIoU_point=intervals.get(
            "test_mIoU_pooled", comparison.numbers("test_mIoU")[rows]))
    noun = "group" if comparison.grouped else "run"
    extra = intervals is not None
    figure = Figure(figsize=(7 + 5 * (len(costs) + extra), max(4.5, 1.6 + 0.32 * len(values))),
                    layout="constrained")
    FigureCanvasAgg(figure)
    bars, *panels = figure.subplots(1, 1 + len(costs) + extra,
                                    width_ratios=[1.3] + [1] * (len(costs) + extra))
    if extra:
        *panels, interval_axes = panels
    if values.empty:
        for axes in (bars, *panels, *([interval_axes] if extra else [])):
            _no_data(axes, metric.header, f"no completed runs with {metric.header}")
    else:
        _bars(bars, labels, values, errors, metric, best, noun)
        styles = point_styles(comparison.frame[rows])
        short = comparison.frame.loc[values.index, "run"] if not comparison.grouped else labels
        for axes, (x, x_label) in zip(panels, costs, strict=True):
            _scatter(axes, x, values, errors, styles, short, x_label, metric.header)
        if extra:
            _intervals(interval_axes, labels, intervals)
        if styles is not None:
            _legends(figure, styles)
    direction = " (lower is better)" if metric.better == "min" else ""
    figure.suptitle(f"{metric.header}{direction}: {len(values)} {noun}(s) with a result")
    return figure


def render_chart(comparison: Comparison) -> bytes:
    """The chart as PNG bytes."""
    buffer = io.BytesIO()
    chart_figure(comparison).savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()
