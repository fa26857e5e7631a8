"""A run folder's life: the config composed and checked (`config`), the folder started, taken
up by a resumed run and finished (`folder`, `resume`), the header that says what ran
(`header`), its `metrics.json` contract (`results`), a trained run's saved config and
checkpoint reloaded (`run_config`), crash records (`crashes`), errors made one line (`task`),
reproduction records, logger setup, the end-of-run summary and the per-image test counts
(`per_image`). Imports core and models. `config`, `header`, `results`, `resume`, `crashes`,
`per_image` and `wandb_setup` import no torch, so the
console scripts check their command line with them before torch is imported."""
