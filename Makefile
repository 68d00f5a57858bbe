# amoroute: `make run` starts everything on SQLite, `make test` runs the suite.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

PROTOS := $(wildcard protos/amoroute/v1/*.proto)

.PHONY: help venv lock proto run test test-sqlite lint typecheck migrate clean

help:
	@echo "make run     start every process on SQLite (var/), Ctrl-C stops them"
	@echo "make test    run the whole test suite (PostgreSQL at TEST_PG_URL)"
	@echo "make test-sqlite  the same suite on SQLite"
	@echo "make lint    ruff over the whole repository"
	@echo "make typecheck  mypy over the production packages"
	@echo "make lock    re-resolve requirements/*.lock (hashed) after changing pins in pyproject.toml"
	@echo "make clean   remove var/ (the SQLite databases of make run) and test caches"
	@echo "make proto   regenerate Python code from protos/"
	@echo "make migrate upgrade every service database to the latest schema"
	@echo "make bench   throughput, latency and zero-loss figures of the whole stack"

# Dependencies come from the hashed lock file, the project itself without dependencies.
$(STAMP): pyproject.toml requirements/test.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --require-hashes -r requirements/test.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

# Re-resolve the lock files after a change of pins in pyproject.toml.
lock: $(STAMP)
	$(VENV)/bin/uv pip compile pyproject.toml --generate-hashes --python-version 3.11 --universal -q -o requirements/runtime.lock
	$(VENV)/bin/uv pip compile pyproject.toml --extra test --generate-hashes --python-version 3.11 --universal -q -o requirements/test.lock

venv: $(STAMP)

# Generated code is committed; tests/unit/test_generated_code.py fails when it is stale.
proto: $(STAMP)
	$(PY) -m grpc_tools.protoc -I protos --python_out=. --pyi_out=. --grpc_python_out=. $(PROTOS)

migrate: $(STAMP)
	$(PY) -m router_svc migrate
	$(PY) -m referral_svc migrate
	$(PY) -m traffic_svc migrate
	$(PY) -m notifier_svc migrate
	$(PY) -m edge migrate

run: $(STAMP)
	$(PY) -m amoroute.devrun

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# The same suite on SQLite, where a test is not PostgreSQL-specific.
test-sqlite: $(STAMP)
	AMOROUTE_TEST_DB=sqlite $(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# The type checker over the production packages (configured in pyproject.toml).
typecheck: $(STAMP)
	$(VENV)/bin/mypy

clean:
	rm -rf var .pytest_cache

# Throughput, latency, zero-loss accounting and memory of the whole stack on PostgreSQL
# (not part of `make test`). BENCH_QUICK=1: ~10 s phases; BENCH_TRACING=1: also tracing's
# cost (bench.tracing_cost). See bench/README.md.
.PHONY: bench
bench: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(PY) -m bench.run
	@# BENCH_TRACING=1: then tracing's cost, on at 10 % sampling against off (bench/README.md).
	test -z "$$BENCH_TRACING" || $(PY) -m bench.tracing_cost
