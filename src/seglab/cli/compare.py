"""seglab-compare: run folders (a sweep, several runs, a glob) become one table and one chart;
`--dashboard` serves optuna-dashboard on a search's study instead.

It only reads folders, so it never imports torch, lightning or hydra.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from seglab.core.significance import DEFAULT_RESAMPLES
from seglab.reports.compare import build_comparison
from seglab.reports.compare_chart import render_chart
from seglab.reports.compare_report import Column, display_columns, markdown_report, markdown_table
from seglab.reports.run_folders import CompareError, find_runs, read_runs, status_summary
from seglab.sweeps.dashboard import DashboardError, serve

MAX_WIDTH = 100  # the terminal view fits 100 columns, or the terminal if it is narrower
TESTED_LEGEND = ("[low, high]: 95% interval; marked test mIoU: not significantly below the best "
                 "(see comparison.md)")
STATUS_STYLES = {"pruned": "cyan", "failed": "red", "running": "yellow", "unfinished": "yellow"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; argparse itself answers --help and a missing PATH (exit 2)."""
    parser = argparse.ArgumentParser(
        prog="seglab-compare",
        description="Compare run folders: writes comparison.md, .csv and .png and prints the "
                    "table.")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="a multirun folder, run folders, or a glob (quoted)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="folder for the three files (default: the first PATH, or the "
                             "common parent of what a glob matches)")
    parser.add_argument("--metric", metavar="KEY",
                        help="headline metric for the default order and the chart "
                             "(metrics.json key or CSV column; default: val/mIoU_best, or "
                             "test/mIoU when no run has it)")
    parser.add_argument("--sort", metavar="KEY",
                        help="column to sort by (a score sorts best first)")
    parser.add_argument("--group-by", default="", metavar="KEYS",
                        help="override keys, comma-separated (e.g. seed): one row per group "
                             "with mean ± std and n")
    parser.add_argument("--resamples", type=positive_int, default=DEFAULT_RESAMPLES,
                        metavar="N",
                        help="bootstrap resamples and random swaps of the test intervals and "
                             f"paired tests (default: {DEFAULT_RESAMPLES})")
    dashboard = parser.add_argument_group(
        "dashboard", "serve optuna-dashboard on a search's study (PATH: the sweep folder, with "
                     "optuna.journal or optuna.db) until Ctrl-C, instead of writing the table")
    dashboard.add_argument("--dashboard", action="store_true",
                           help="trials, intermediate values and pruned trials in the browser "
                                "(needs seglab[optuna])")
    dashboard.add_argument("--host", default="127.0.0.1",
                           help="address to listen on (default: 127.0.0.1, this machine only)")
    dashboard.add_argument("--port", type=int, default=8080,
                           help="port to listen on (default: 8080)")
    args = parser.parse_args(argv)
    if args.dashboard and len(args.paths) != 1:
        parser.error("--dashboard takes one sweep folder")
    return args


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return number


def _style(column: Column, row: int) -> str:
    if column.best[row]:
        return "bold green"
    return STATUS_STYLES.get(column.cells[row], "") if column.name == "status" else ""


def _rich_table(columns: Sequence[Column]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", show_edge=False)
    for column in columns:
        table.add_column(column.header, justify="right" if column.numeric else "left",
                         no_wrap=column.name != "error",
                         max_width=40 if column.name == "error" else None)
    for row in range(len(columns[0].cells)):
        table.add_row(*(Text(column.cells[row], style=_style(column, row))
                        for column in columns))
    return table


def fitted_table(console: Console, columns: Sequence[Column]) -> tuple[Table, list[str]]:
    """A rich table no wider than the console: the least important columns, widest first,
    are dropped (the files keep them); returns it with the dropped headers."""
    shown, dropped = list(columns), []
    unlimited = console.options.update_width(100_000)
    table = _rich_table(shown)
    while console.measure(table, options=unlimited).maximum > console.width:
        candidates = [column for column in shown if column.priority > 0]
        if not candidates:
            break
        widest = max(candidates, key=lambda column: (
            column.priority, max(len(text) for text in (column.header, *column.cells))))
        shown.remove(widest)
        dropped.append(widest.header)
        table = _rich_table(shown)
    return table, dropped


def dropped_note(dropped: Sequence[str], width: int) -> str:
    """One line, at most `width` long, naming the columns left out of the terminal view."""
    ious = [header for header in dropped if header.startswith("IoU ")]
    names = ([f"{len(ious)} per-class IoU"] if len(ious) > 1 else ious) + \
        [header for header in dropped if header not in ious]
    for count in range(len(names), 0, -1):
        more = f", {len(names) - count} more" if count < len(names) else ""
        note = f"not shown (see comparison.md): {', '.join(names[:count])}{more}"
        if len(note) <= width:
            break
    return note


def print_table(columns: Sequence[Column], summary: str) -> None:
    """A fitted rich table on a terminal; plain Markdown lines in a pipe or file."""
    console = Console()
    console.width = min(console.width, MAX_WIDTH)
    if not console.is_terminal:
        print(summary)
        print(markdown_table(columns))
        return
    table, dropped = fitted_table(console, columns)
    console.print(summary, highlight=False)
    console.print(table)
    if dropped:
        console.print(dropped_note(dropped, console.width), highlight=False, no_wrap=True)


def serve_dashboard(args: argparse.Namespace) -> None:
    """`--dashboard`: serve until Ctrl-C, which is the normal way to stop (exit 0)."""
    try:
        serve(Path(args.paths[0]).expanduser(), args.host, args.port)
    except DashboardError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(error.code) from None
    except KeyboardInterrupt:
        print("dashboard stopped", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    """The `seglab-compare` console script; a bad path or key is one line on stderr."""
    args = parse_args(argv)
    if args.dashboard:
        serve_dashboard(args)
        return
    try:
        sources = find_runs(args.paths)
        runs = read_runs(sources)
        group_by = [key.strip() for key in args.group_by.split(",") if key.strip()]
        comparison = build_comparison(runs, args.metric, args.sort, group_by, args.resamples)
        out_dir = args.out or sources.out_dir
        if out_dir.exists() and not out_dir.is_dir():
            raise CompareError(f"--out {out_dir} is a file, not a folder", code=2)
        summary = status_summary(runs)
        files = {"comparison.md": markdown_report(comparison, summary).encode(),
                 "comparison.csv": comparison.frame.to_csv(index=False).encode(),
                 "comparison.png": render_chart(comparison)}
        columns = display_columns(comparison)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (out_dir / name).write_bytes(content)
    except CompareError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(error.code) from None
    except OSError as error:
        print(f"error: cannot write {error.filename}: {error.strerror}", file=sys.stderr)
        raise SystemExit(1) from None
    try:
        print_table(columns, summary)
        if "p_holm" in comparison.frame:
            print(TESTED_LEGEND)
        for note in comparison.notes:
            print(f"note: {note}")
        for name in files:
            print(f"wrote {out_dir / name}")
    except BrokenPipeError:  # `| head` stopped reading: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
    main()
