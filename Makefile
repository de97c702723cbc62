# Two commands: `make run` (set up + start on the embedded default) and `make test` (set up + run all tests).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test check setup services bench fuzz clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || (apt-get update && apt-get install -y python3 python3-venv python3-pip)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# uv installs in ~40 s what pip takes ~95 s for (from pip's own sources and caps), bytecode compiled as pip does
	# (without it every process imports ~2x slower where PYTHONDONTWRITEBYTECODE is set); pip if uv cannot.
	$(PY) -m pip install --quiet uv && $(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) \
	    $$(bash deploy/local/uv-sources.sh $(PY)) -e '.[test]' \
	  || $(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

setup: $(STAMP)

## Start Stackyard on the embedded default: SQLite, the SQLite broker, milvus-lite; no servers needed.
run: setup
	$(VENV)/bin/stackyard up

## Set up (venv, Redis, PostgreSQL, Chromium when absent) and run the whole test suite.
test: setup services
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -p no:cacheprovider -n 3 --dist loadscope --durations=15

## The fast lane for the edit loop: unit tests only (no worker processes, browsers or slow cases).
check: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -p no:cacheprovider -n 2 -m "not integration and not browser and not slow"

services:
	bash deploy/local/ensure-services.sh

bench: setup services
	@command -v ab >/dev/null || (apt-get update && apt-get install -y apache2-utils)  # P2's C load generator
	for script in $(filter-out bench/_% bench/fuzz.py,$(wildcard bench/*.py)); do HF_HUB_OFFLINE=1 $(PY) $$script || exit 1; done

## Schemathesis over the whole HTTP API (every check, with and without a login): fails on any 5xx or undocumented answer.
fuzz: setup services
	HF_HUB_OFFLINE=1 $(PY) bench/fuzz.py

clean:
	rm -rf $(VENV) .pytest_cache
