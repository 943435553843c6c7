# Two commands on a fresh machine: `make demo` and `make test`. Each bootstraps .venv when needed.
PYTHON ?= python3
VENV ?= .venv
AIRFLOW_VERSION ?= 3.3.2
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-airflow-$(AIRFLOW_VERSION)
# Pins a given Airflow version needs beside it (test-floor sets them; see README, Airflow versions).
EXTRA_PINS ?=

.PHONY: venv demo local-s3 test lint package pytest e2e e2e-cluster bench bench-quick test-floor clean

venv: $(STAMP)

# uv resolves and installs Airflow in seconds; pip is the fallback where uv cannot be had.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q uv || true
	if [ -x $(VENV)/bin/uv ]; then \
	  $(VENV)/bin/uv pip install --python $(PY) -q -e ".[dev,emulator]" "apache-airflow==$(AIRFLOW_VERSION)" $(EXTRA_PINS); \
	else \
	  $(PY) -m pip install -q -e ".[dev,emulator]" "apache-airflow==$(AIRFLOW_VERSION)" $(EXTRA_PINS); \
	fi
	rm -f $(VENV)/.installed-airflow-*
	touch $@

demo: venv
	$(PY) scripts/demo.py

# A local S3 (moto) with the example DAGs' buckets, for running them offline; prints aws_default to export.
local-s3: venv
	$(PY) scripts/local_s3.py

lint: venv
	$(VENV)/bin/ruff check airflow_wavespeed tests example_dags bench scripts
	$(VENV)/bin/mypy

pytest: venv
	$(PY) -m pytest -q

e2e: venv
	$(PY) -m pytest -q -m e2e

# Airflow's production shape: PostgreSQL, CeleryExecutor on Redis, two triggerers, two workers (needs
# Debian's postgresql and redis-server; .ci/run installs them).
e2e-cluster: venv
	$(PY) -m pytest -q -s -m cluster tests/cluster

# The package users install: built from a clean copy of the sources, its metadata checked.
package: venv
	rm -rf dist
	$(PY) -m build --sdist --wheel --outdir dist . >/dev/null
	$(PY) -m twine check --strict dist/*

test: lint package pytest

bench: venv
	$(PY) bench/run_all.py

# The wait cost at small sizes (about a minute), on every change to the trigger or the transport: CI runs
# it and keeps the figures in $(BENCH_RECORD). Never a verdict that fails the build: a shared machine is noisy.
BENCH_RECORD ?= bench-records/wait_cost-quick.json
bench-quick: venv
	$(PY) bench/wait_cost.py --quick --record $(BENCH_RECORD)

# The same suite on the oldest Airflow the package declares, in its own virtualenv (CI runs both).
# Airflow 3.1 sets an attribute on cryptography's MultiFernet, which cryptography 51 made a Rust type
# that takes none: every connection lookup fails there ("no attribute 'is_encrypted'"), so pin below 51.
test-floor:
	$(MAKE) pytest VENV=.venv-floor AIRFLOW_VERSION=3.1.8 EXTRA_PINS='"cryptography<51"'

clean:
	rm -rf $(VENV) .venv-floor demo-output dist build .pytest_cache .mypy_cache .ruff_cache
