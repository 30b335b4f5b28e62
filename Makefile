# regcli: two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# `make run` installs what running needs (regcli and TensorFlow: the dependencies in
# pyproject.toml); `make test` adds the extras the tests need: dev (pytest, hypothesis, ruff,
# playwright), jax (the second backend CI tests), ray (the Ray executor's tests start a real
# local Ray cluster) and mlflow (tracking, read back in tests).
TEST_EXTRAS ?= dev,jax,ray,mlflow

.PHONY: install install-run run test test-fast lint bench clean

# Each stamp is rebuilt when pyproject.toml changes, so `make run` / `make test` install only when needed.
$(BIN)/.installed-run: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(BIN)/.installed-test: $(BIN)/.installed-run
	$(BIN)/python -m pip install --quiet -e ".[$(TEST_EXTRAS)]"
	touch $@

install-run: $(BIN)/.installed-run
install: $(BIN)/.installed-test

run: install-run
	$(BIN)/regcli train configs/quickstart.yaml

# tests/test_report.py checks the HTML report in a real headless Chromium: Debian's `chromium`
# package, driven by Playwright (never `playwright install`, which downloads its own browser).
.PHONY: browser
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser:
	command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

test: install browser
	$(BIN)/python -m pytest -q

# Lint includes mccabe complexity (C901, max 12 on regcli/: pyproject.toml) and the size rules
# of docs/architecture.md (no module over 600 lines, no function over 60) via tests/test_layout.py.
lint: install
	$(BIN)/ruff check regcli tests benchmarks docs
	$(BIN)/python -m pytest -q tests/test_layout.py

bench: install
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/advice.py --write
	$(BIN)/python benchmarks/tune.py
	$(BIN)/python benchmarks/recorder.py
	$(BIN)/python benchmarks/sweep_costs.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
