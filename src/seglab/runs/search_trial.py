"""The Optuna trial a search job trains for, handed from the search worker to the training in
the same process (never through the job's config, so a trial's run folder reproduces as a plain
run).

The worker links the trial around the job (`linked`); the training then reports the optimized
metric to it at every validation and asks the study's pruner whether to stop (`TrialReport`,
seglab.engine.pruning). The other processes of a DDP job, started by Lightning from the job's
command line, inherit only the environment variable: they follow rank zero's decision.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

ENV_VARIABLE = "SEGLAB_SEARCH_TRIAL"


@dataclass
class TrialLink:
    """The trial (an `optuna.Trial`) and the metric it optimizes; `pruned` is filled with the
    step, epoch and value at which the pruner stopped it."""

    trial: Any
    metric: str
    pruned: dict[str, Any] = field(default_factory=dict)


_current: TrialLink | None = None


@contextmanager
def linked(link: TrialLink) -> Iterator[TrialLink]:
    """Run a trial's job with `link` as the current trial."""
    global _current
    _current = link
    os.environ[ENV_VARIABLE] = str(link.trial.number)
    try:
        yield link
    finally:
        _current = None
        os.environ.pop(ENV_VARIABLE, None)


def current() -> TrialLink | None:
    """The trial this process trains for: only in the search worker's own process."""
    return _current


def in_trial() -> bool:
    """Whether this process trains for a trial: the worker's, or a DDP child it started."""
    return _current is not None or ENV_VARIABLE in os.environ
