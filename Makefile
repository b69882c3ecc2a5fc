# The two commands of the quick start: `make demo` and `make test`.
# Each creates .venv and installs Keel into it when needed; nothing else is required.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test sandbox lint typecheck unit test-slow test-chaos bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# bubblewrap (bwrap) is the sandbox run_command uses: install it when it is missing and
# apt-get can, as root; otherwise say so and go on (Keel then refuses sandboxed commands).
sandbox:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null 2>&1 && \
	        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null 2>&1; }; }; \
	  then echo "installed bubblewrap (bwrap), the sandbox for run_command"; \
	  else echo "bubblewrap (bwrap) is missing and cannot be installed here (needs root and apt-get): Keel will refuse sandboxed commands"; fi; }

demo: $(STAMP) sandbox
	$(BIN)/keel demo

test: $(STAMP) sandbox lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

test-slow: $(STAMP)
	$(BIN)/pytest -m slow

test-chaos: $(STAMP)
	$(BIN)/pytest -m chaos -v

$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $@

bench: $(VENV)/.bench-installed
	$(BIN)/python bench/durable_flow.py
	$(BIN)/python bench/concurrency.py
	$(BIN)/python bench/fanout.py
	$(BIN)/python bench/sse_fanout.py
	$(BIN)/python bench/pg_workers.py

clean:
	rm -rf $(VENV) .keel .pytest_cache .mypy_cache .ruff_cache
