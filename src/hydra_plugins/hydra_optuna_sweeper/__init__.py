"""Where the published hydra-optuna-sweeper's configs point (`_target_:
hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper`): seglab's sweeper answers
there, so a search config written for that sweeper (lightning-hydra-template's, Hydra's
examples) runs unchanged. Do not install hydra-optuna-sweeper beside seglab: it needs Optuna
below 3."""
