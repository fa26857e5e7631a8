"""A search's parameters, as the published hydra-optuna-sweeper reads them: Hydra's sweep syntax
(`choice`, `range`, `interval`, `tag(log, ...)`, `tag(int, ...)`) in `hydra.sweeper.params` and
on the command line becomes Optuna distributions; a plain `key=value` fixes that key.

    choice(8, 16, 32)              -> CategoricalDistribution([8, 16, 32])
    range(1, 10, 2)                -> IntDistribution(1, 9, step=2)   (the end is excluded)
    range(0.1, 0.5, 0.1)           -> FloatDistribution(0.1, 0.4, step=0.1)
    shuffle(range(1, 4))           -> CategoricalDistribution([1, 2, 3])
    interval(0.1, 0.9)             -> FloatDistribution(0.1, 0.9)
    tag(log, interval(1e-4, 1e-2)) -> FloatDistribution(1e-4, 1e-2, log=True)
    tag(int, interval(1, 64))      -> IntDistribution(1, 64)      (with log: log=True)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
    Transformer,
)
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)


class SearchSpaceError(ValueError):
    """A parameter the search cannot turn into a distribution, named with its text."""


def _choices(override: Override) -> list[Any]:
    return list(override.sweep_iterator(transformer=Transformer.encode))


def _range(value: RangeSweep) -> BaseDistribution:
    step = value.step if value.step is not None else 1
    if all(isinstance(number, int) for number in (value.start, value.stop, step)):
        last = value.start + (value.stop - value.start - 1) // step * step
        return IntDistribution(int(value.start), int(last), step=int(step))
    count = math.ceil((value.stop - value.start) / step - 1e-9)  # Hydra's range excludes stop
    return FloatDistribution(float(value.start), float(value.start + (count - 1) * step),
                             step=float(step))


def _interval(value: IntervalSweep) -> BaseDistribution:
    log = "log" in value.tags
    if "int" in value.tags:
        return IntDistribution(int(value.start), int(value.end), log=log)
    return FloatDistribution(float(value.start), float(value.end), log=log)


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution a sweep override describes."""
    value = override.value()
    if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
        return CategoricalDistribution(_choices(override))
    if isinstance(value, RangeSweep):
        return _range(value)
    if isinstance(value, IntervalSweep):
        return _interval(value)
    raise SearchSpaceError(f"'{override.input_line}': Optuna searches choice(...), range(...) "
                           "and interval(...) (with tag(log, ...) or tag(int, ...))")


def parse_params(lines: Iterable[str]) -> tuple[dict[str, BaseDistribution], dict[str, str]]:
    """`key=sweep` lines become distributions, `key=value` lines fixed values; a later line for
    the same key wins (the command line after `hydra.sweeper.params`)."""
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(list(lines)):
        key = override.get_key_element()
        space.pop(key, None)
        fixed.pop(key, None)
        if override.is_sweep_override():
            try:
                space[key] = distribution(override)
            except ValueError as error:  # Optuna's own checks (low > high, a step too big...)
                raise SearchSpaceError(f"'{override.input_line}': {error}") from None
        else:
            fixed[key] = override.get_value_element_as_str()
    return space, fixed


def params_lines(params: dict[str, Any] | None) -> list[str]:
    """`hydra.sweeper.params` as override lines (`key: choice(a, b)` -> `key=choice(a, b)`)."""
    return [f"{key}={value}" for key, value in (params or {}).items()]
