# seglab: `make train` and `make test` set everything up on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=
# The exact versions seglab is tested with, inside pyproject.toml's ranges: `make install`
# installs them as pip constraints; `make lock` renews them.
LOCK := requirements.lock
# `make lock` uses pip-compile (pip-tools), the tool made for this, rather than `pip freeze` of
# a scratch install: it resolves from the packages' metadata in about 30 s instead of installing
# ~6 GB, keeps the current pins unless asked to upgrade (a changed range moves only what it
# must), and notes under each pin what pulled it in. It runs in a new temporary venv, so the
# developer's .venv doesn't decide the result.
PIP_TOOLS := pip-tools==7.7.0
# Held whatever ARGS say: this torch/torchvision pair runs on CPU-only and CUDA machines.
LOCK_HOLD := torch==2.14.1 torchvision==0.29.1

.PHONY: help install lock train test lint bench clean distclean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -c $(LOCK) -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv: seglab (editable) and its dev tools at the locked versions

# pip-compile keeps the current pins that still fit the ranges; ARGS=--upgrade takes the newest
# release of each package (but LOCK_HOLD), ARGS="--upgrade-package timm" of one. seglab itself
# comes back from dev's seglab[...] as an "unsafe" package, commented out: that tail is dropped.
lock: ## renew requirements.lock from pyproject.toml's ranges; ARGS=--upgrade takes new releases
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(PYTHON) -m venv "$$tmp/venv" && \
	"$$tmp/venv/bin/pip" install --disable-pip-version-check -q $(PIP_TOOLS) && \
	{ [ ! -f $(LOCK) ] || cp $(LOCK) "$$tmp/lock.txt"; } && \
	"$$tmp/venv/bin/pip-compile" -q --no-header --extra dev --strip-extras \
	  --unsafe-package seglab --no-emit-index-url --no-emit-trusted-host --no-emit-find-links \
	  $(foreach pin,$(LOCK_HOLD),--upgrade-package $(pin)) $(ARGS) \
	  -o "$$tmp/lock.txt" pyproject.toml && \
	{ printf '%s\n' \
	  "# The exact set seglab is tested with, resolved by \`make lock\` for Python $$($$tmp/venv/bin/python -c 'import platform; print(platform.python_version())') on $$(uname -sm)." \
	  "# \`make install\` runs: pip install -c $(LOCK) -e '.[dev]'" \
	  '# Ranges live in pyproject.toml; renew this file with `make lock` (pip-compile), not by hand.' \
	  '# torch pulls the nvidia-*, cuda-* and triton wheels on x86_64 Linux only. As constraints they' \
	  '# only pin what gets installed: where torch needs none of them, none is installed.' \
	  ''; \
	  sed '/^# The following packages are considered to be unsafe/,$$d' "$$tmp/lock.txt"; \
	} > $(LOCK)
	@echo "$(LOCK) renewed: run make install and make test, then commit it"

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
