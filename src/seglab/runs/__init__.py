"""A run folder's life: the config composed and checked (`config`), the folder started, taken
up by a resumed run and finished (`folder`, `resume`), the header that says what ran
(`header`), its `metrics.json` contract (`results`), a trained run's saved config and
checkpoint reloaded (`run_config`), crash records (`crashes`), errors made one line (`task`),
reproduction records, logger setup and the end-of-run summary. Imports core and models.
`config`, `header`, `results`, `resume`, `crashes` and `wandb_setup` import no torch, so the
console scripts check their command line with them before torch is imported."""
