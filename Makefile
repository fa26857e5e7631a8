# seglab: `make train` and `make test` set everything up on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: help install train test lint bench clean distclean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install seglab with its dev tools (editable)

train: $(STAMP) ## train the default model (UNet + ResNet-18 on synthetic shapes); ARGS="model=... data=..."
	$(BIN)/seglab-train $(ARGS)

test: $(STAMP) ## run the whole test suite (offline, CPU)
	$(BIN)/pytest $(ARGS)

lint: $(STAMP) ## check style with ruff
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP) ## speed and memory benchmarks: Markdown table + benchmarks/results/*.json; ARGS="--only training"
	$(BIN)/python -m benchmarks $(ARGS)

clean: ## remove caches and build files (keeps .venv and outputs/)
	rm -rf build dist .pytest_cache .ruff_cache src/*.egg-info
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +

distclean: clean ## also remove .venv and outputs/
	rm -rf $(VENV) outputs
