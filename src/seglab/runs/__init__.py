"""A run folder's life: the config composed and checked (`config`), the folder started,
resumed and finished (`task`, `resume`), its `metrics.json` contract (`results`), a trained
run's saved config reloaded (`run_config`), crash records (`crashes`), reproduction records,
logger setup and the end-of-run summary. Imports core, models and data; never torch at
import time (the console scripts check their command line with `config` before torch)."""
