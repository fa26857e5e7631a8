"""What Hydra's multirun needs from seglab: the end-of-sweep summary callback (`summary`) and
the resumable Optuna search (`search`) and the Ray launcher (`ray_launcher`), behind the shims
Hydra finds in `hydra_plugins/`. Imports runs and core."""
