# birthright — `make demo` runs a simulated production run; `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := softhsm2 opensc openssl curl swtpm swtpm-tools libtss2-dev pkg-config \
  libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core poppler-utils chromium
WORKSPACE ?= demo-workspace
DEVICES ?= 25
RECONCILE_ROWS ?= 10000000

.PHONY: setup system-deps venv demo test redteam fuzz bench lint typecheck clean

setup: system-deps venv

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(BIN)/birthright: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

venv: $(BIN)/birthright

demo: setup
	$(BIN)/birthright demo --workspace $(WORKSPACE) --devices $(DEVICES) --reset

test: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	PYTHONPATH=. $(BIN)/pytest -p tests.redteam

redteam: setup
	PYTHONPATH=. BIRTHRIGHT_REDTEAM=1 $(BIN)/pytest -q -p tests.redteam $$($(BIN)/python -m tests.redteam)

# A longer API fuzzing campaign than CI's (examples per operation; random seeds).
FUZZ_EXAMPLES ?= 1000
fuzz: setup
	PYTHONPATH=. BIRTHRIGHT_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) BIRTHRIGHT_FUZZ_RANDOM=1 \
	  $(BIN)/pytest -q -s tests/integration/test_api_fuzz.py

# Benchmarks: not part of `make test`. PostgreSQL figures use a database of their own
# (BENCH_DATABASE, created if missing; its schema is dropped), skipped when no server answers.
BENCH_APT_PACKAGES := golang-cfssl
BENCH_DATABASE ?= birthright_bench
BENCH_PG := postgresql+psycopg://postgres@127.0.0.1:5432/$(BENCH_DATABASE)
REVOCATION_ENTRIES ?= 1000000
bench: setup
	@dpkg -s $(BENCH_APT_PACKAGES) >/dev/null 2>&1 || { SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(BENCH_APT_PACKAGES); }
	rm -f bench/results.json
	if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then \
	  psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$(BENCH_DATABASE)'" | grep -q 1 || \
	    psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $(BENCH_DATABASE)"; \
	  export BIRTHRIGHT_BENCH_DATABASE_URL=$(BENCH_PG); fi; \
	set -e; \
	PYTHONPATH=. $(BIN)/python -m bench.enroll; \
	PYTHONPATH=. $(BIN)/python -m bench.station; \
	PYTHONPATH=. $(BIN)/python -m bench.attest; \
	PYTHONPATH=. $(BIN)/python -m bench.device_auth; \
	PYTHONPATH=. $(BIN)/python -m bench.revocation --entries $(REVOCATION_ENTRIES); \
	PYTHONPATH=. $(BIN)/python -m bench.reconcile --rows $(RECONCILE_ROWS); \
	PYTHONPATH=. $(BIN)/python -m bench.policy_hook; \
	PYTHONPATH=. $(BIN)/python -m bench.webhooks; \
	if [ -n "$${BIRTHRIGHT_BENCH_DATABASE_URL:-}" ]; then PYTHONPATH=. $(BIN)/python -m bench.concurrency; fi
	PYTHONPATH=. $(BIN)/python -m bench.summary

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

clean:
	rm -rf $(WORKSPACE) .pytest_cache .mypy_cache .ruff_cache
