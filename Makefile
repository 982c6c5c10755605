# Conveyor developer commands. `make test` works on a fresh machine: it builds the virtualenv,
# installs the package with its test extras, makes sure a redis-server binary exists (the test
# suite starts its own throwaway server on a free port and never touches 6379) and Debian's
# chromium (the dashboard's browser tests drive it), then runs the linters and the suite.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
# Three pytest-xdist workers: most tests wait on real processes and deadlines, not on the CPU
# (the suite used a third of two cores with two workers), so three at a time cut the wall time
# even on a loaded 2-core machine: 11.4-11.9 min of pytest with a CPU hog beside it, against 16.8
# with two (each worker starts its own throwaway servers). PYTEST_WORKERS=0: one process.
PYTEST_WORKERS ?= 3

.PHONY: test lint typecheck demo bench chaos clean redis-server chromium venv

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

redis-server:
	@scripts/ensure-redis-server.sh

# Debian's chromium for the dashboard's browser tests (skipped, with the reason, without it).
chromium:
	@scripts/ensure-chromium.sh

LINTED = $(wildcard src tests bench examples chaos)

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# Bytecode first: where PYTHONDONTWRITEBYTECODE is set (as on CI machines) nothing is cached at
# import, and each of the hundreds of worker processes the suite starts would compile Conveyor
# from source again (0.05-0.1 s each). Python checks each .pyc against its source's mtime.
test: $(STAMP) redis-server chromium lint typecheck
	@$(PY) -m compileall -q src tests >/dev/null
	$(PY) -m pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) examples/demo.py

bench: $(STAMP) redis-server
	$(PY) bench/run.py $(BENCH_ARGS)

# The fault-injection suite (chaos/README.md): real workers, throwaway redis-servers on free
# ports, real SIGKILLs and outages, every task counted. Kept out of `make test` (about 10
# minutes). Narrow it with CHAOS_ARGS, e.g. CHAOS_ARGS="--quick --broker redis --only poison".
chaos: $(STAMP) redis-server
	$(PY) chaos/run.py $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache src/*.egg-info
