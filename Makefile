# Everything a fresh Debian machine needs, in two commands: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ROOT := $(shell id -u)

.PHONY: demo test lint toolchains lock clean

demo: $(STAMP) toolchains
	$(BIN)/tvmq demo

test: $(STAMP) toolchains
	$(BIN)/ruff check tvmq tests bench
	$(BIN)/ruff format --check tvmq tests bench
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n auto --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check tvmq tests bench
	$(BIN)/ruff format --check tvmq tests bench
	$(BIN)/lint-imports

# The virtual environment, rebuilt when the pins change.
$(STAMP): pyproject.toml setup.py requirements.lock
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  rm -rf $(VENV); \
	  [ "$(ROOT)" = 0 ] || { echo "python3-venv is missing: run 'apt-get install python3-venv' as root"; exit 1; }; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

# Debian toolchains and emulators, installed only when missing (needs root).
toolchains:
	@missing="$$($(PYTHON) tvmq/doctor.py --missing-apt)"; \
	if [ -n "$$missing" ]; then \
	  if [ "$(ROOT)" = 0 ]; then \
	    echo "installing $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "missing toolchains; as root run: apt-get install -y --no-install-recommends $$missing"; exit 1; fi; \
	fi

# Re-pin every package after changing pyproject.toml.
lock:
	rm -rf /tmp/tvmq-lock && $(PYTHON) -m venv /tmp/tvmq-lock
	/tmp/tvmq-lock/bin/pip install -q '.[test]'
	/tmp/tvmq-lock/bin/pip freeze --all --exclude tvmq --exclude pip > requirements.lock

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .import_linter_cache
