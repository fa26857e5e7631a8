"""The published sweeper's class path, answered by seglab's sweeper (see __init__.py)."""

from hydra_plugins.seglab_optuna_sweeper import SeglabOptunaSweeper


class OptunaSweeper(SeglabOptunaSweeper):
    """hydra-optuna-sweeper's `OptunaSweeper`: the same keys, on seglab's search."""
