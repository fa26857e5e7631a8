"""`python -m benchmarks.gpu`: the GPU check, for one run on a machine with a CUDA GPU.

Six parts, most valuable first, each in its own time box; a part that fails, crashes or runs
out of time is recorded with its error in one line and the check goes on with the next:

1. `training`: UNet-ResNet34 training throughput at 512²×16 through seglab's Trainer (fp32,
   bf16, + channels-last, + torch.compile), data-wait share, peak GPU memory
   (benchmarks/gpu_speed.py, in a child process);
2. `inference`: batch-1 frames/s of seglab's FCN, PSPNet, DeepLabV3, DeepLabV3+ on ResNet-50,
   fp32 and bf16, next to MMSegmentation's published V100 figures (child process);
3. `default_run`: `seglab-train trainer=gpu`, the default run on the GPU;
4. `ddp`: the same small run with `trainer=gpu` and 1-GPU `trainer=ddp`: equal metrics?
5. `fcn8s`: `model=fcn8s trainer=gpu` fast-dev runs, their exit statuses;
6. `predict`: `seglab-predict` with part 3's checkpoint over a folder of 512² JPEGs.

Without CUDA it refuses in one line (exit status 2) unless `--toy` is given: then the same
code runs on the CPU at tiny sizes, so the test suite can run it (its figures mean nothing).
It prints progress lines as it goes, then a Markdown table, and writes (after every part, so
a stopped run keeps what it measured) `<output>/<gpu>-<date>.json`: the machine, each part's
status and every row. `--deadline` bounds the whole check: parts that would start after it
are skipped and recorded as skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from benchmarks.measure import Row, progress

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("training", "inference", "default_run", "ddp", "fcn8s", "predict")
# seconds each part may take at most (the deadline may leave it less)
BUDGETS = {"training": 150, "inference": 80, "default_run": 110, "ddp": 80, "fcn8s": 170,
           "predict": 60}
DEADLINE = 400.0
MIN_PART_SECONDS = 15.0  # a part is not started with less time than this left
FCN8S_RUNS, TOY_FCN8S_RUNS = 5, 1
PICTURES, TOY_PICTURES = 64, 4
PICTURE_SIZE, TOY_PICTURE_SIZE = 512, 64
# what --toy sets in every seglab-train run: the CPU, tiny scenes, one short epoch (and no
# synchronised batch norm, which needs a GPU)
TOY_TRAIN = ["trainer.accelerator=cpu", "trainer.max_epochs=1", "data.input_size=[32,32]",
             "data.lengths={train:16,val:8,test:8}", "data.batch_size=4"]
TOY_DDP = ["trainer.sync_batchnorm=false"]
TAIL_LINES = 15  # lines of a failed run's traceback or output kept in the JSON
# part 4: the only difference between the two runs is the trainer config; precision and
# determinism are pinned because trainer/ddp.yaml inherits `${auto_precision:}` (bf16 on an
# H200) where trainer/gpu.yaml sets 32-true
DDP_RUN = ["trainer.max_epochs=2", "data.lengths={train:64,val:32,test:32}", "seed=0",
           "trainer.precision=32-true", "trainer.deterministic=warn"]
EQUAL = 1e-6
# the keys part 6 reads from seglab-predict's predictions.json
PREDICT_CASES = (("batch 8, resize auto (the training size)", ["predict.batch_size=8"]),
                 ("batch 1, resize auto (the training size)", ["predict.batch_size=1"]),
                 ("batch 8, the pictures' own size", ["predict.batch_size=8",
                                                      "predict.resize=null"]),
                 ("batch 8, the pictures' own size, masks only",
                  ["predict.batch_size=8", "predict.resize=null", "predict.overlays=false"]))


class PartError(Exception):
    """A part that could not give its result: its error in one line, and the rows it made
    before that."""

    def __init__(self, message: str, rows: Sequence[dict] = ()) -> None:
        super().__init__(message)
        self.rows = list(rows)


@dataclass
class Finished:
    """A child process's end: exit status (negative: killed by that signal), wall seconds,
    whether it ran out of time, and its last lines of output."""

    returncode: int
    seconds: float
    timed_out: bool
    tail: list[str] = field(default_factory=list)

    def last_line(self) -> str:
        lines = [line for line in self.tail if line.strip()]
        return lines[-1].strip()[:300] if lines else ""

    def error(self) -> str | None:
        """None when it exited 0 in time, else what happened in one line."""
        if self.timed_out:
            return f"timed out after {self.seconds:.0f} s; last output: {self.last_line()}"
        if self.returncode:
            return f"exit status {self.returncode}: {self.last_line()}"
        return None


@dataclass
class Context:
    """What the parts share: the options, a scratch folder, and what one part leaves for a
    later one (part 3's checkpoint for part 6)."""

    args: argparse.Namespace
    work: Path
    found: dict = field(default_factory=dict)


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu", description=__doc__.split("\n\n")[0],
        epilog=f"parts: {', '.join(f'{n + 1} {name}' for n, name in enumerate(PARTS))}")
    parser.add_argument("--only", nargs="+", metavar="PART",
                        choices=[*PARTS, *(str(n + 1) for n in range(len(PARTS)))],
                        help="run only these parts (names or numbers), in the check's order")
    parser.add_argument("--toy", action="store_true",
                        help="the same logic on the CPU at tiny sizes (figures mean nothing)")
    parser.add_argument("--deadline", type=float, default=DEADLINE, metavar="SECONDS",
                        help="parts that would start after this are skipped (default: "
                             "%(default)g)")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results",
                        metavar="FOLDER", help="folder of the JSON (default: benchmarks/results)")
    args = parser.parse_args(argv)
    chosen = {PARTS[int(name) - 1] if name.isdigit() else name for name in args.only or PARTS}
    args.parts = [name for name in PARTS if name in chosen]
    return args


# --- child processes ------------------------------------------------------------------------

def child_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment for a child that runs in another folder: PYTHONPATH's entries made
    absolute, the source tree and the repository root (the `benchmarks` package) on it."""
    environment = dict(os.environ)
    entries = [str(Path(entry).resolve())
               for entry in environment.get("PYTHONPATH", "").split(os.pathsep) if entry]
    entries += [str(ROOT / "src"), str(ROOT)]
    environment["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(entries))
    environment["PYTHONUNBUFFERED"] = "1"
    return {**environment, **(extra or {})}


def kill_group(process: subprocess.Popen) -> None:
    """End the child's process group (its loader workers, compile workers, DDP helpers)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_command(argv: Sequence[str], cwd: Path, seconds: float, log: Path, echo: bool = False,
                environment: dict[str, str] | None = None) -> Finished:
    """Run `argv` in `cwd` for at most `seconds` in a process group of its own, its output in
    `log` (and on stderr when `echo`); the group is ended afterwards in any case."""
    started = time.perf_counter()
    process = subprocess.Popen(list(argv), cwd=cwd, env=child_environment(environment),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               errors="replace", process_group=0)
    tail: deque[str] = deque(maxlen=40)

    def pump() -> None:
        with open(log, "w") as file:
            for line in process.stdout:
                file.write(line)
                tail.append(line.rstrip())
                if echo:
                    sys.stderr.write(line)
                    sys.stderr.flush()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        process.wait(timeout=max(seconds, 1.0))
    except subprocess.TimeoutExpired:
        timed_out = True
    kill_group(process)
    process.wait()
    reader.join(timeout=10)
    return Finished(process.returncode, time.perf_counter() - started, timed_out, list(tail))


def seglab_command(command: str, overrides: Sequence[str]) -> list[str]:
    """A seglab console script run as a module of the source tree (`seglab-train` is
    `python -m seglab.cli.train`), so nothing needs installing."""
    return [sys.executable, "-m", f"seglab.cli.{command}", *overrides]


def read_json(path: Path) -> dict | list | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# --- parts 1 and 2: in a child process --------------------------------------------------------

def speed_part(name: str) -> Callable[[Context, float], list[dict]]:
    """Part `name` of benchmarks/gpu_speed.py in a child process, its progress shown live; the
    rows it wrote before a failure or its time limit are kept."""
    def run(context: Context, seconds: float) -> list[dict]:
        rows_file = context.work / f"{name}_rows.json"
        argv = [sys.executable, "-m", "benchmarks.gpu_speed", name, "--rows", str(rows_file),
                "--seconds", f"{max(seconds - 10, 1):.0f}", *(["--toy"] if context.args.toy
                                                               else [])]
        finished = run_command(argv, context.work, seconds, context.work / f"{name}.log",
                               echo=True)
        rows = read_json(rows_file) or []
        if finished.error():
            raise PartError(finished.error(), rows)
        return rows
    return run


# --- parts 3 to 6: seglab's commands in child processes --------------------------------------

def override_key(override: str) -> str:
    return override.lstrip("+~").partition("=")[0]


def merged(overrides: Sequence[str], later: Sequence[str]) -> list[str]:
    """`overrides` without the keys that `later` sets, then `later`."""
    keys = {override_key(override) for override in later}
    return [override for override in overrides if override_key(override) not in keys] + \
        list(later)


def train_run(context: Context, name: str, overrides: Sequence[str], seconds: float,
              environment: dict[str, str] | None = None,
              toy_extra: Sequence[str] = ()) -> tuple[Finished, dict, Path]:
    """One `seglab-train` into `<work>/<name>`: how it ended, its metrics.json (empty when
    there is none; a failed run's traceback or output tail added as `tail`), its run folder.
    Under --toy, TOY_TRAIN and `toy_extra` replace what they set."""
    folder = context.work / name
    if context.args.toy:
        overrides = merged(overrides, [*TOY_TRAIN, *toy_extra])
    finished = run_command(seglab_command("train", [*overrides, f"hydra.run.dir={folder}"]),
                           context.work, seconds, context.work / f"{name}.log",
                           environment=environment)
    metrics = read_json(folder / "metrics.json") or {}
    if run_error(finished, metrics):
        traceback = folder / "traceback.txt"
        lines = traceback.read_text().splitlines() if traceback.is_file() else finished.tail
        metrics["tail"] = lines[-TAIL_LINES:]
    return finished, metrics, folder


def run_error(finished: Finished, metrics: dict) -> str | None:
    """Why a training run did not complete, in one line; None when it did."""
    if metrics.get("status") == "failed" and metrics.get("error"):
        return re.sub(r" \(traceback: [^)]*\)$", "", str(metrics["error"]))[:300]
    if finished.error():
        return finished.error()
    if metrics.get("status") != "completed":
        return f"metrics.json says status {metrics.get('status')!r}"
    return None


def scores(metrics: dict) -> dict[str, float | None]:
    return {key: metrics.get(key) for key in ("val/mIoU", "test/mIoU")}


def default_run(context: Context, seconds: float) -> list[dict]:
    """Part 3: `seglab-train trainer=gpu`; its checkpoint is kept for part 6."""
    finished, metrics, folder = train_run(context, "default_run", ["trainer=gpu"], seconds)
    error = run_error(finished, metrics)
    if error:
        raise PartError(error, [Row("default_run", "seglab-train trainer=gpu (the default run)",
                                    "s", {}, extra={"error": error, "tail": metrics.get("tail")}
                                    ).as_dict()])
    context.found["checkpoint"] = metrics.get("checkpoint")
    row = Row("default_run", "seglab-train trainer=gpu (the default run)", "s",
              {"wall": finished.seconds, "train_seconds": metrics.get("train_seconds")},
              extra={**scores(metrics), "epochs": metrics.get("epochs"),
                     **{key: metrics.get(key) for key in ("test/images_per_s",
                                                          "train/peak_memory_mib",
                                                          "test/peak_memory_mib",
                                                          "peak_memory_kind")},
                     "model": metrics.get("model"), "encoder": metrics.get("encoder"),
                     "input_size": metrics.get("input_size"), "params": metrics.get("params"),
                     "run_dir": str(folder)})
    return [row.as_dict()]


def ddp_versus_gpu(context: Context, seconds: float) -> list[dict]:
    """Part 4: the same small run with trainer=gpu and with 1-GPU trainer=ddp."""
    started, rows, runs = time.perf_counter(), [], {}
    # a deterministic cuBLAS needs this before CUDA starts (Lightning sets it too)
    environment = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    for trainer in ("gpu", "ddp"):
        left = seconds - (time.perf_counter() - started)
        overrides = [f"trainer={trainer}", *DDP_RUN]
        finished, metrics, _ = train_run(context, f"ddp_{trainer}", overrides, left, environment,
                                         TOY_DDP if trainer == "ddp" else ())
        runs[trainer] = (finished, metrics)
        if trainer == "gpu" and metrics.get("checkpoint"):
            context.found.setdefault("fallback_checkpoint", metrics["checkpoint"])
        rows.append(Row("ddp", f"trainer={trainer}, {' '.join(DDP_RUN)}", "mIoU",
                        scores(metrics), extra={"wall_s": finished.seconds,
                                                "train_seconds": metrics.get("train_seconds"),
                                                "error": run_error(finished, metrics),
                                                "tail": metrics.get("tail")}).as_dict())
    errors = [f"trainer={name}: {run_error(*run)}" for name, run in runs.items()
              if run_error(*run)]
    if errors:
        raise PartError("; ".join(errors), rows)
    missing = [f"{name} {key}" for name, (_, metrics) in runs.items()
               for key, value in scores(metrics).items() if value is None]
    if missing:
        raise PartError(f"metrics.json lacks {', '.join(missing)}", rows)
    differences = {key: abs(runs["ddp"][1][key] - runs["gpu"][1][key])
                   for key in ("val/mIoU", "test/mIoU")}
    equal = all(difference <= EQUAL for difference in differences.values())
    rows.append(Row("ddp", "ddp vs gpu: |difference|", "mIoU", differences, goal=f"≤ {EQUAL:g}",
                    met=equal, extra={"equal": equal}).as_dict())
    return rows


def fcn8s_runs(context: Context, seconds: float) -> list[dict]:
    """Part 5: FCN-8s fast-dev runs on the GPU, one process each; their exit statuses (a
    native crash shows as 134/139 from a shell, -6/-11 here)."""
    count = TOY_FCN8S_RUNS if context.args.toy else FCN8S_RUNS
    started, statuses, walls, errors, tails = time.perf_counter(), [], [], [], {}
    overrides = ["model=fcn8s", "trainer=gpu", "++trainer.fast_dev_run=true", "logger=none"]
    for index in range(count):
        left = seconds - (time.perf_counter() - started)
        if left < max([5.0, *walls]):  # a run cut short would read as a hang
            errors.append(f"run {index + 1}: not started, {left:.0f} s left in the time box")
            continue
        progress(f"fcn8s: run {index + 1} of {count}")
        finished, metrics, _ = train_run(context, f"fcn8s_{index + 1}", overrides, left)
        statuses.append(finished.returncode if not finished.timed_out else "timeout")
        walls.append(round(finished.seconds, 1))
        error = run_error(finished, metrics)
        if error:
            errors.append(f"run {index + 1}: {error}")
            tails[f"run {index + 1}"] = metrics.get("tail")
    completed = sum(status == 0 for status in statuses)
    row = Row("fcn8s", f"model=fcn8s trainer=gpu fast_dev_run, {count} processes", "runs",
              {"exit 0": completed, "runs": len(statuses)}, goal=f"{count} of {count}",
              met=completed == count,
              extra={"exit_statuses": statuses, "wall_s": walls, "errors": errors,
                     "tails": tails})
    return [row.as_dict()]


def predict_runs(context: Context, seconds: float) -> list[dict]:
    """Part 6: seglab-predict with part 3's checkpoint (else part 4's) over 512² JPEGs."""
    from benchmarks.scenes import write_pictures

    checkpoint = context.found.get("checkpoint") or context.found.get("fallback_checkpoint")
    if not checkpoint:
        raise PartError("no checkpoint: part default_run (or ddp) did not leave one")
    toy = context.args.toy
    count, side = (TOY_PICTURES, TOY_PICTURE_SIZE) if toy else (PICTURES, PICTURE_SIZE)
    pictures = context.work / "pictures"
    write_pictures(pictures, count, side, side)
    started, rows = time.perf_counter(), []
    for index, (label, overrides) in enumerate(PREDICT_CASES):
        left = seconds - (time.perf_counter() - started)
        if left < max([5.0, *(row["extra"]["wall_s"] for row in rows)]):
            break
        output = context.work / f"predicted_{index}"
        argv = seglab_command("predict", [f"ckpt_path={checkpoint}", f"input={pictures}",
                                          f"output={output}", *overrides])
        progress(f"predict: {label}")
        finished = run_command(argv, context.work, left, context.work / f"predict_{index}.log")
        record = read_json(output / "predictions.json") or {}
        error = finished.error() or (None if record.get("status") == "completed"
                                     else f"predictions.json status {record.get('status')!r}")
        rows.append(Row("predict", f"seglab-predict {count} JPEGs {side}², {label}", "images/s",
                        {} if error else {"predict's clock": record.get("images_per_s"),
                                          "whole command": count / finished.seconds},
                        extra={"error": error, "wall_s": finished.seconds,
                               "tail": finished.tail[-TAIL_LINES:] if error else None,
                               "seconds": record.get("seconds"), "images": record.get("images"),
                               "failed_count": record.get("failed_count"),
                               "checkpoint": checkpoint}).as_dict())
    failures = [row["extra"]["error"] for row in rows if row["extra"]["error"]]
    if failures:
        raise PartError(failures[0], rows)
    return rows


RUNNERS: dict[str, Callable[[Context, float], list[dict]]] = {
    "training": speed_part("training"), "inference": speed_part("inference"),
    "default_run": default_run, "ddp": ddp_versus_gpu, "fcn8s": fcn8s_runs,
    "predict": predict_runs}


# --- the machine, the report ----------------------------------------------------------------

def nvidia_smi() -> dict:
    """Driver version, GPU name and memory as nvidia-smi reports them ({} without it)."""
    try:
        answer = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,name,memory.total",
                                 "--format=csv,noheader"], capture_output=True, text=True,
                                timeout=20)
    except (OSError, subprocess.SubprocessError):
        return {}
    fields = [text.strip() for text in answer.stdout.splitlines()[0].split(",")] \
        if answer.returncode == 0 and answer.stdout.strip() else []
    return dict(zip(("driver", "name", "memory"), fields, strict=False))


def describe_gpu() -> dict:
    """The GPU, CUDA and torch as torch sees them, and the driver from nvidia-smi."""
    import torch

    gpu = {"torch": torch.__version__, "cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version(), "available": torch.cuda.is_available(),
           "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
           "float32_matmul_precision": torch.get_float32_matmul_precision(),
           "nvidia_smi": nvidia_smi()}
    if gpu["available"]:
        properties = torch.cuda.get_device_properties(0)
        gpu.update(name=properties.name, count=torch.cuda.device_count(),
                   capability=f"{properties.major}.{properties.minor}",
                   memory_gib=round(properties.total_memory / 2**30, 1),
                   multiprocessors=properties.multi_processor_count,
                   bf16=torch.cuda.is_bf16_supported())
    return gpu


def describe(toy: bool) -> dict:
    """The machine as benchmarks/__main__.py describes it, the GPU, and the versions of what
    seglab needs beyond torch (carried as wheels where they are missing)."""
    from benchmarks.__main__ import describe_machine
    from seglab.runs.results import package_version

    machine = describe_machine()
    machine["gpu_details"] = describe_gpu()
    machine["versions"].update({name: package_version(name) for name in (
        "hydra-core", "omegaconf", "albumentations", "pydantic", "typing_extensions",
        "torchdata", "timm", "torchmetrics", "pycocotools")})
    machine["toy"] = toy
    return machine


def results_path(folder: Path, machine: dict) -> Path:
    """<folder>/<gpu name>-<date>.json, e.g. nvidia-h200-2026-12-04.json (cpu-toy-... for a
    --toy run without a GPU)."""
    name = machine["gpu_details"].get("name") or "cpu"
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if machine["toy"]:
        slug += "-toy"
    return folder / f"{slug}-{date.today().isoformat()}.json"


class Report:
    """The JSON, rewritten after every part: machine, options, each part's status, rows."""

    def __init__(self, path: Path, machine: dict, args: argparse.Namespace) -> None:
        self.path, self.started = path, time.perf_counter()
        self.results = {"machine": machine, "date": date.today().isoformat(),
                        "arguments": {key: str(value) if isinstance(value, Path) else value
                                      for key, value in vars(args).items()},
                        "seconds": 0.0, "complete": False, "parts": {}, "rows": []}

    def record(self, part: str, status: str, seconds: float, rows: Sequence[dict] = (),
               error: str | None = None) -> None:
        self.results["parts"][part] = {"status": status, "seconds": round(seconds, 1),
                                       "error": error}
        self.results["rows"] += list(rows)
        self.write()

    def write(self, complete: bool = False) -> None:
        self.results["seconds"] = round(time.perf_counter() - self.started, 1)
        self.results["complete"] = complete
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(self.results, indent=2, ensure_ascii=False, default=str)
                           + "\n")
        partial.replace(self.path)


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:300]}" if text else type(error).__name__


def run_part(name: str, context: Context, report: Report, deadline: float) -> None:
    """Part `name` in its time box (its budget or what is left before the deadline); its
    outcome recorded whatever happens."""
    left = deadline - time.perf_counter()
    if left < MIN_PART_SECONDS:
        report.record(name, "skipped", 0.0, error=f"skipped: the check's deadline "
                      f"({context.args.deadline:g} s) leaves {max(left, 0):.0f} s")
        progress(f"part {name}: skipped, the deadline is near")
        return
    seconds = min(BUDGETS[name], left)
    progress(f"part {name}: starting, time box {seconds:.0f} s")
    started = time.perf_counter()
    try:
        rows = RUNNERS[name](context, seconds)
        status, error = "ok", None
    except PartError as failure:
        rows, status, error = failure.rows, "failed", str(failure)
    except Exception as failure:  # a bug in one part must not cost the others
        rows, status, error = [], "failed", one_line(failure)
    if error and "timed out" in error:
        status = "timed out"
    elapsed = time.perf_counter() - started
    report.record(name, status, elapsed, rows, error)
    progress(f"part {name}: {status} in {elapsed:.0f} s" + (f": {error}" if error else ""))


# --- the table ------------------------------------------------------------------------------

def figure(value) -> str:
    """Numbers to three significant digits (thousands grouped); anything else as it is."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


NOTES = ("error", "step_ms", "data_wait_share", "peak_memory_gib", "compile_seconds", "compiled",
         "output_stride", "params", "params_run", "mmseg_config", "val/mIoU", "test/mIoU",
         "exit_statuses", "errors", "loader_workers", "ms_per_scene_per_process", "equal")


def cells(row: dict) -> list[str]:
    """part | case | figures | notes of one row."""
    figures = "; ".join(f"{'' if name == 'value' else name + ' '}{figure(value)}"
                        for name, value in row["values"].items())
    if figures:
        figures += f" {row['unit']}"
    if row.get("ratio") is not None:
        figures += f" (ratio {row['ratio']:.3g})"
    if row.get("met") is not None:
        figures += f" — {'yes' if row['met'] else '**no**'} ({row['goal']})"
    extra = row.get("extra") or {}
    notes = "; ".join(f"{key} {figure(extra[key])}" for key in NOTES
                      if extra.get(key) not in (None, [], ""))
    return [row["benchmark"], row["case"], figures, notes.replace("|", "/")]


def markdown(results: dict) -> str:
    """The parts' outcomes, then every row, as Markdown tables."""
    lines = ["| part | status | seconds | error |", "|---|---|---|---|"]
    lines += [f"| {name} | {part['status']} | {part['seconds']:.0f} | "
              f"{(part['error'] or '').replace('|', '/')} |"
              for name, part in results["parts"].items()]
    lines += ["", "| part | case | figures | notes |", "|---|---|---|---|"]
    lines += [f"| {' | '.join(cells(row))} |" for row in results["rows"]]
    return "\n".join(lines)


# --- the command ----------------------------------------------------------------------------

def refusal() -> str | None:
    """Why there is nothing to measure here (no CUDA GPU for torch), or None."""
    import torch

    if torch.cuda.is_available():
        return None
    return (f"benchmarks.gpu: no CUDA GPU visible to torch {torch.__version__} (CUDA "
            f"{torch.version.cuda}); nothing measured. --toy runs the check on the CPU at "
            "tiny sizes.")


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    if not args.toy and (reason := refusal()):
        print(reason, file=sys.stderr)
        return 2
    started = time.perf_counter()
    deadline = started + args.deadline
    machine = describe(args.toy)
    report = Report(results_path(args.output, machine), machine, args)
    progress(f"GPU check: {', '.join(args.parts)}; deadline {args.deadline:g} s; "
             f"writing {report.path}")
    with tempfile.TemporaryDirectory(prefix="seglab-gpu-check-") as work:
        context = Context(args, Path(work))
        for name in args.parts:
            run_part(name, context, report, deadline)
    report.write(complete=True)
    print(markdown(report.results))
    seconds = time.perf_counter() - started
    print(f"\n{len(report.results['rows'])} rows in {seconds:.0f} s; written to {report.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
