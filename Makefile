# Quick start: `make demo` (embedded broker + DuckDB, no services needed) and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test lint bench install clean

$(BIN)/streamscore: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,train]'
	touch $@

install: $(BIN)/streamscore

demo: install
	$(BIN)/streamscore demo

# two workers, a test file each: the suite mostly waits on brokers and subprocesses (12 -> 6 min here)
test: install
	$(BIN)/pytest -n 2 --dist loadfile

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/mypy

bench: install
	$(BIN)/streamscore bench

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
