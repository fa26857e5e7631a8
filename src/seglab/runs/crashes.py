"""Runs that died without a word: a process killed by a signal (an abort or a segmentation fault
in native code, the kernel's out-of-memory kill) cannot mark its run failed, and its
metrics.json would say "running" forever.

So a running run's metrics.json names its process (`pid`, `host`, `process_start`) and its last
sign of life (`heartbeat`: the time, step and epoch, from the `Heartbeat` callback), and Python's
faulthandler writes a fatal signal's report (its name and every thread's stack) to the run's
`crash.log`. Readers (seglab-compare, `resume=`, the sweep summary) call `settled`: a "running"
run whose process is gone is "crashed", with one line saying what is known.
"""

from __future__ import annotations

import faulthandler
import os
import socket
import time
from pathlib import Path
from typing import TextIO

CRASH_LOG = "crash.log"
# a run on another machine is taken as dead after this long without a heartbeat
STALE_SECONDS = 3600
FATAL_PREFIX = "Fatal Python error: "

_crash_log: TextIO | None = None


def _start_ticks(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot (/proc/<pid>/stat's 22nd field),
    so a recycled pid is not taken for the run's process; None where unreadable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[19])


def process_identity() -> dict:
    """The keys a running run's metrics.json names its process with."""
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "process_start": _start_ticks(os.getpid())}


def heartbeat(step: int, epoch: int) -> dict:
    return {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "unix": round(time.time(), 1),
            "step": step, "epoch": epoch}


def open_crash_log(output_dir: Path, suffix: str = "") -> None:
    """From now on a fatal signal's report goes to `<output_dir>/crash<suffix>.log`."""
    global _crash_log
    close_crash_log()
    output_dir.mkdir(parents=True, exist_ok=True)
    _crash_log = open(output_dir / CRASH_LOG.replace(".log", f"{suffix}.log"), "w")
    faulthandler.enable(file=_crash_log, all_threads=True)


def close_crash_log() -> None:
    """The run ended in Python (finished, or failed and said so): no crash report to keep;
    faulthandler goes back to standard error if the user asked for it (PYTHONFAULTHANDLER)."""
    global _crash_log
    if _crash_log is None:
        return
    faulthandler.disable()
    path = Path(_crash_log.name)
    _crash_log.close()
    _crash_log = None
    if path.is_file() and path.stat().st_size == 0:
        path.unlink()
    if os.environ.get("PYTHONFAULTHANDLER"):
        faulthandler.enable()


def _alive_here(metrics: dict) -> bool:
    """Whether the process metrics.json names runs on this machine (the same pid, started at
    the same time: not a recycled pid; without /proc, whether the pid exists)."""
    if metrics.get("process_start") is None:
        try:
            os.kill(metrics["pid"], 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's process
            return True
        return True
    return _start_ticks(metrics["pid"]) == metrics["process_start"]


def _names_process(metrics: dict) -> bool:
    return isinstance(metrics.get("pid"), int) and isinstance(metrics.get("host"), str)


def live_process(metrics: dict) -> str | None:
    """"pid N on HOST" when the run's process is known to be alive (on this machine, and not
    this very process); None otherwise."""
    if not _names_process(metrics) or metrics["host"] != socket.gethostname() \
            or metrics["pid"] == os.getpid() or not _alive_here(metrics):
        return None
    return f"pid {metrics['pid']} on {metrics['host']}"


def _process_gone(metrics: dict) -> str | None:
    """How we know the run's process is gone, or None while it may be alive (or the record
    predates these keys)."""
    if not _names_process(metrics):
        return None
    if metrics["host"] == socket.gethostname():
        return None if _alive_here(metrics) else f"its process (pid {metrics['pid']}) is gone"
    silent = time.time() - ((metrics.get("heartbeat") or {}).get("unix") or 0)
    return None if silent < STALE_SECONDS else \
        f"no sign of life from host {metrics['host']} for {silent / 60:.0f} min"


def may_be_alive(metrics: dict) -> bool:
    """Whether a "running" record names a process that may still run it (alive here, or on
    another host that beat within STALE_SECONDS)."""
    return metrics.get("status") == "running" and _names_process(metrics) \
        and _process_gone(metrics) is None


def fatal_signal(run_dir: Path) -> str | None:
    """The fatal error faulthandler reported in the run's crash logs ("Segmentation fault",
    "Aborted"...), or None."""
    for log in sorted(run_dir.glob("crash*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith(FATAL_PREFIX):
                return f"{line.removeprefix(FATAL_PREFIX)} (see {log.name})"
    return None


def crash_report(run_dir: Path, metrics: dict) -> str | None:
    """One line on a run that says "running" but whose process died; None otherwise."""
    if metrics.get("status") != "running":
        return None
    gone = _process_gone(metrics)
    if gone is None:
        return None
    beat = metrics.get("heartbeat")
    last = "before its first training step ended" if not beat else \
        f"last seen at step {beat['step']} (epoch {beat['epoch']}) at {beat['time']}"
    signal = fatal_signal(run_dir) or "killed by a signal, no report (SIGKILL or the " \
                                      "out-of-memory killer?)"
    return f"{gone} without finishing: {signal}; {last}"


def settled(run_dir: Path, metrics: dict) -> dict:
    """metrics.json as readers should see it: a dead "running" run is "crashed", with the
    report as its `error`."""
    report = crash_report(run_dir, metrics)
    return metrics if report is None else {**metrics, "status": "crashed", "error": report}
