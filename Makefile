# Two commands a new machine needs: `make demo` and `make test` (see README.md).
# Each creates the virtual environment and installs what it needs on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo run match-sample test lint typecheck pytest bench clean lock

# The exact versions the suite passed with (requirements.lock, with hashes); the package itself
# keeps lower bounds in pyproject.toml. `make lock` refreshes the lock from those bounds.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

## Refresh requirements.lock: the newest releases within pyproject.toml's bounds, with hashes.
lock:
	test -x $(VENV)-tools/bin/pip-compile || { $(PYTHON) -m venv $(VENV)-tools && \
		$(VENV)-tools/bin/pip install --quiet pip-tools; }
	$(VENV)-tools/bin/pip-compile --quiet --upgrade --generate-hashes --allow-unsafe \
		--strip-extras --no-emit-index-url --no-emit-find-links --extra dev \
		--output-file requirements.lock pyproject.toml

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

# The suite waits on real servers and clocks more than it computes (one process keeps about half
# a core busy): two workers, each taking whole files so a file's servers start once.
PYTEST_WORKERS ?= 2
pytest: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

## Benchmarks; each prints one JSON line per result.
bench: $(STAMP)
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(VENV)-tools .pytest_cache .mypy_cache .ruff_cache .hypothesis
