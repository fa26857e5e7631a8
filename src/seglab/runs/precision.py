"""The precision `trainer.precision` resolves to: `${auto_precision:...}` (trainer/default.yaml)
and `${amp_precision:}` (trainer/gpu_amp.yaml). Imports torch only when resolved.

On a CPU, bf16 instructions do not make bf16 faster: the default run's training steps ran
1.5 times faster in bf16-mixed than in fp32 on 2 cores of an AMD EPYC (Zen 4, AVX512-BF16;
`make bench`, 107 against 69 images/s) and 1.3 times slower on 2 cores of an Intel Xeon with
AVX512-BF16 but no AMX (`make bench`, 77 against 101 images/s; torch 2.14.1 on both). So
where the CPU has bf16 instructions, the faster precision is measured once and kept
(`cpu_bf16_is_faster`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import statistics
import time
from pathlib import Path

from omegaconf import OmegaConf

from seglab.core.atomic import write_atomically

BF16_FLAGS = ("avx512_bf16", "amx_bf16")
BF16_MARGIN = 1.1  # bf16 is chosen when a step is at least this much faster than in fp32
MEASURED_STEPS = 5  # per precision, interleaved, after one unmeasured step each


def auto_precision(accelerator: str = "auto") -> str:
    """"bf16-mixed" where bf16 runs natively and fast on the chosen accelerator (Ampere+ GPUs;
    CPUs with bf16 instructions where a measured step says so), else "32-true"."""
    import torch

    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "bf16-mixed" if _native_bf16_gpu() else "32-true"
    flags = cpu_info("flags")
    if not any(flag in flags.split() for flag in BF16_FLAGS):
        return "32-true"
    return "bf16-mixed" if cpu_bf16_is_faster() else "32-true"


def _native_bf16_gpu() -> bool:
    """Whether the GPU runs bf16 in hardware (Ampere and newer); torch's default check also
    counts the slow emulation older GPUs offer."""
    import torch

    return torch.cuda.is_bf16_supported(including_emulation=False)


def amp_precision() -> str:
    """`${amp_precision:}` (trainer/gpu_amp.yaml): "bf16-mixed" on GPUs with native bf16,
    else "16-mixed", for which Lightning scales the loss with a GradScaler."""
    import torch

    if torch.cuda.is_available() and not _native_bf16_gpu():
        return "16-mixed"
    return "bf16-mixed"


def cpu_info(field: str) -> str:
    """The first value of `field` in /proc/cpuinfo ("" where there is none)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == field:
            return value.strip()
    return ""


def cache_file() -> Path | None:
    """Where measured answers are kept: $XDG_CACHE_HOME/seglab (default ~/.cache/seglab)."""
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = Path.home() / ".cache"
        except RuntimeError:  # no home folder: nothing kept, measured in each process
            return None
    return Path(base) / "seglab" / "cpu_precision.json"


@functools.cache
def cpu_bf16_is_faster() -> bool:
    """Whether a convolution training step runs at least `BF16_MARGIN` times faster under bf16
    autocast than in fp32 on this CPU, with this torch and thread count: measured once (about
    half a second) and kept in `cache_file()`, so every later run on the machine resolves the
    same precision (each run's config records the one it used); within a process it is
    asked once. Delete the file to measure again (say, after a measurement taken while other
    work loaded the machine)."""
    import torch

    threads = torch.get_num_threads()
    key = f"{cpu_info('model name')} | torch {torch.__version__} | {threads} threads"
    path = cache_file()
    try:
        known = json.loads(path.read_text()) if path else {}
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):
        known = {}
    if not isinstance(known.get(key), dict) or "bf16" not in known[key]:
        fp32, bf16 = measure_conv_steps()
        known[key] = {"bf16": fp32 / bf16 >= BF16_MARGIN, "fp32_ms": round(fp32 * 1e3, 2),
                      "bf16_ms": round(bf16 * 1e3, 2)}
        if path is not None:  # not writable: measured again by the next process
            with contextlib.suppress(OSError):
                path.parent.mkdir(parents=True, exist_ok=True)
                write_atomically(path, json.dumps(known, indent=1))
    return bool(known[key]["bf16"])


def measure_conv_steps() -> tuple[float, float]:
    """Median seconds of one training step (forward, backward) of a small channels-last
    convolution block, batch 16 of 64×32×32 (the default run's shapes), in fp32 and under
    bf16 autocast, taken in turns; torch's random state is left as it was."""
    import torch

    with torch.random.fork_rng():
        return _conv_step_seconds()


def _conv_step_seconds() -> tuple[float, float]:
    import torch
    from torch import nn

    generator = torch.Generator().manual_seed(0)
    block = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
                          nn.Conv2d(64, 64, 3, padding=1)).to(memory_format=torch.channels_last)
    images = torch.randn(16, 64, 32, 32, generator=generator).to(
        memory_format=torch.channels_last)

    def step(bf16: bool) -> float:
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            output = block(images)
        output.float().square().mean().backward()
        return time.perf_counter() - started

    step(False), step(True)
    times = {False: [], True: []}
    for _ in range(MEASURED_STEPS):
        for bf16 in times:
            times[bf16].append(step(bf16))
    return statistics.median(times[False]), statistics.median(times[True])


OmegaConf.register_new_resolver("auto_precision", auto_precision, replace=True)
OmegaConf.register_new_resolver("amp_precision", amp_precision, replace=True)
