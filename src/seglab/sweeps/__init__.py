"""What Hydra's multirun needs from seglab: the end-of-sweep summary callback (`summary`) and
the resumable Optuna search (`search`) behind the sweeper shim in `hydra_plugins/`. Imports
runs and core."""
