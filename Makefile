# scimd — developer commands. The first use creates .venv and installs scimd with its
# test and lint tools; later runs reuse it (re-installs when pyproject.toml changes).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= scimd.toml
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench install clean format

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/scimd serve -c $(CONFIG)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check scimd tests bench
	$(BIN)/ruff format --check scimd tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format scimd tests bench
	$(BIN)/ruff check --fix scimd tests bench

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
