"""How tests/data/optuna_2_10_study.db was made: the study file of a search by the previous seglab
version (optuna 2.10.1, SQLite, alembic schema v2.6.0.a). Run it with that optuna, not seglab's:

    python3 -m venv /tmp/optuna210 && /tmp/optuna210/bin/pip install optuna==2.10.1 \\
        sqlalchemy==1.4.54
    /tmp/optuna210/bin/python tests/data/make_optuna_2_10_study.py tests/data/optuna_2_10_study.db

Three trials made with ask/tell, with the search's parameters `optimizer.lr` (log-uniform
1e-4..1e-2) and `loss` (ce, dice): 0 COMPLETE 0.31, 1 FAIL, 2 COMPLETE 0.42. optuna 5 refuses to
open it until `optuna storage upgrade --storage sqlite:///<file>` has run (keep this file at the
old schema: upgrade a copy).
"""

import sqlite3
import sys
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution, LogUniformDistribution
from optuna.trial import TrialState

OUTCOMES = [(TrialState.COMPLETE, 0.31), (TrialState.FAIL, None), (TrialState.COMPLETE, 0.42)]


def main(path: Path) -> None:
    """Write the study, then VACUUM the file to keep it small."""
    path.unlink(missing_ok=True)
    study = optuna.create_study(study_name="synthetic_optuna", storage=f"sqlite:///{path}",
                                direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=0))
    for state, value in OUTCOMES:
        trial = study.ask()
        trial._suggest("optimizer.lr", LogUniformDistribution(1e-4, 1e-2))
        trial._suggest("loss", CategoricalDistribution(["ce", "dice"]))
        study.tell(trial, value, state=state)
    del study
    connection = sqlite3.connect(path)
    connection.execute("VACUUM")
    connection.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
