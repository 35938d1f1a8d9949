# Two commands a new machine needs: `make run` and `make test` (see README.md).
# Each creates the virtual environment and installs what it needs on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo run match-sample test lint typecheck pytest bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## The main job: m365pbx against a simulated Microsoft 365 tenant, people acting (Ctrl-C stops).
demo: $(STAMP)
	$(BIN)/m365pbx demo

run: demo

## The matching report on the bundled sample directory.
match-sample: $(STAMP)
	$(BIN)/m365pbx match \
		--teams src/m365pbx/samples/teams-users.json \
		--pbx src/m365pbx/samples/pbx-users.csv \
		--rule cn=displayName --rule email=mail --rule email=proxyAddresses \
		--phone-region DE

## Everything CI checks: lint, types, the whole test suite (SQLite and PostgreSQL).
test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

## Benchmarks; each prints one JSON line per result.
bench: $(STAMP)
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
