"""Training and testing with Lightning: the LightningModule, losses, metrics, schedules,
callbacks, the builders that make each piece from the config, the plots made while a run
trains, and `training.train`, the one way through a `seglab-train` run. Imports runs, models,
data and core."""
