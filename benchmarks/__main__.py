"""`python -m benchmarks [options]` (`make bench`): run the selected benchmarks on this machine,
print one Markdown table of their rows and write them with a description of the machine to
`benchmarks/results/<machine>-<date>.json`. Each benchmark is a module with
`add_arguments(parser)` and `run(args) -> list[Row]`, imported only when selected."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import platform
import re
import sys
import time
from datetime import date
from pathlib import Path
from types import ModuleType

from benchmarks.measure import Row, progress
from seglab.runs.results import package_version

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = {"training": "benchmarks.training", "startup": "benchmarks.startup",
              "memory": "benchmarks.memory", "data": "benchmarks.data_pipeline",
              "inference": "benchmarks.inference", "significance": "benchmarks.significance"}
PRECISIONS = ("32-true", "bf16-mixed")
# the shared parameters of a full run, and of the test suite's tiny one
DEFAULTS = {"size": [64, 256], "batch": [16, 8], "precision": list(PRECISIONS), "steps": 1,
            "repeats": 3, "warmup": 1}
TOY = {"size": [32], "batch": [4], "precision": ["32-true"], "steps": 1, "repeats": 2,
       "warmup": 0}
COLUMNS = ("benchmark", "case", "side A", "side B", "ratio", "goal", "met")


def base_parser(add_help: bool) -> argparse.ArgumentParser:
    """The options every benchmark shares."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", add_help=add_help,
        description="Run seglab's benchmarks on this machine: a Markdown table on stdout, "
                    "the rows and the machine in benchmarks/results/<machine>-<date>.json.")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), metavar="NAME",
                        help=f"run only these benchmarks, of: {' '.join(BENCHMARKS)}")
    parser.add_argument("--toy", action="store_true",
                        help="tiny sizes and few steps, for the test suite: 32² batch 4, fp32, "
                             "1 step, 2 repeats, no warm-up (options given still apply)")
    parser.add_argument("--model", default="unet", help="model config (default: %(default)s)")
    parser.add_argument("--encoder", default="resnet18",
                        help="encoder config (default: %(default)s)")
    parser.add_argument("--size", type=int, nargs="+", metavar="PIXELS",
                        help=f"square input sizes (default: {DEFAULTS['size']})")
    parser.add_argument("--batch", type=int, nargs="+", metavar="N",
                        help=f"batch size per input size (default: {DEFAULTS['batch']})")
    parser.add_argument("--precision", nargs="+", choices=PRECISIONS,
                        help=f"Lightning precisions (default: {' '.join(PRECISIONS)})")
    parser.add_argument("--steps", type=int, metavar="N",
                        help=f"training steps per measurement at least (default: "
                             f"{DEFAULTS['steps']})")
    parser.add_argument("--repeats", type=int, metavar="N",
                        help=f"measured repeats per side; figures are their medians "
                             f"(default: {DEFAULTS['repeats']})")
    parser.add_argument("--warmup", type=int, metavar="N",
                        help=f"unmeasured calls per side first (default: {DEFAULTS['warmup']})")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results",
                        metavar="FOLDER",
                        help="folder of the JSON results (default: benchmarks/results)")
    return parser


def parse_arguments(argv: list[str]) -> tuple[argparse.Namespace, dict[str, ModuleType]]:
    """The options and the selected benchmarks' modules: the selection is read first, so only
    the selected modules are imported and add their own options."""
    known, _ = base_parser(add_help=False).parse_known_args(argv)
    modules = {name: importlib.import_module(BENCHMARKS[name])
               for name in known.only or BENCHMARKS}
    parser = base_parser(add_help=True)
    for module in modules.values():
        module.add_arguments(parser)
    args = parser.parse_args(argv)
    for key, value in (TOY if args.toy else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if len(args.size) != len(args.batch):
        parser.error(f"--size and --batch pair up: got {len(args.size)} sizes and "
                     f"{len(args.batch)} batch sizes")
    return args, modules


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    """The checked-out commit, read from .git's files (no git process; None outside a
    plain checkout)."""
    git = ROOT / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head.removeprefix("ref: ")
        if (git / ref).is_file():
            return (git / ref).read_text().strip()
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(f" {ref}"):
                return line.split()[0]
    except OSError:
        return None
    return None


def describe_machine() -> dict:
    """What the figures depend on: CPU, cores, GPU, library versions, seglab's commit."""
    import torch

    return {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {name: package_version(name) for name in
                     ("torch", "torchvision", "lightning", "segmentation-models-pytorch",
                      "seglab")},
        "git_commit": git_commit(),
    }


def machine_slug(machine: dict) -> str:
    """A file-name-safe name of the machine: CPU model, usable cores, GPU."""
    text = f"{machine['cpu']} {machine['usable_cores']}c {machine['gpu'] or ''}".lower()
    text = re.sub(r"\((r|tm)\)|\bprocessor\b|\bcpu\b|@.*?ghz|\d+-core", " ", text)
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def figure(value: float) -> str:
    """Three significant digits, thousands grouped."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def cells(row: Row) -> list[str]:
    """The table cells of one row: each side as `name value unit`."""
    sides = [f"{figure(value)} {row.unit}" if name == "value" else
             f"{name} {figure(value)} {row.unit}" for name, value in row.values.items()]
    sides += [""] * (2 - len(sides))
    met = {True: "yes", False: "**no**", None: ""}[row.met]
    ratio = "" if row.ratio is None else f"{row.ratio:.3f}"
    return [row.benchmark, row.case, sides[0], sides[1], ratio, row.goal or "", met]


def markdown_table(rows: list[Row]) -> str:
    lines = [f"| {' | '.join(COLUMNS)} |", f"|{'|'.join('---' for _ in COLUMNS)}|"]
    lines += [f"| {' | '.join(cells(row))} |" for row in rows]
    return "\n".join(lines)


def write_results(folder: Path, machine: dict, args: argparse.Namespace, rows: list[Row],
                  seconds: float) -> Path:
    """benchmarks/results/<machine>-<date>.json: the machine, the options and every row."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{machine_slug(machine)}-{date.today().isoformat()}.json"
    results = {"machine": machine, "date": date.today().isoformat(), "arguments": vars(args),
               "seconds": round(seconds, 1), "rows": [row.as_dict() for row in rows]}
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n")
    return path


def quiet_libraries() -> None:
    """Lightning's per-Trainer notices (GPU available, seed set...) would bury the progress."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args, modules = parse_arguments(sys.argv[1:] if argv is None else argv)
    quiet_libraries()
    started = time.perf_counter()
    rows: list[Row] = []
    for name, module in modules.items():
        progress(f"{name}: starting")
        rows += module.run(args)
    seconds = time.perf_counter() - started
    path = write_results(args.output, describe_machine(), args, rows, seconds)
    print(markdown_table(rows))
    print(f"\n{len(rows)} rows in {seconds / 60:.1f} min ({seconds:.0f} s); written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
