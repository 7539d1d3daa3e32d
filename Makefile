# modelcycle: the two commands of the README, and the lock that pins them.
#   make demo   create the environment, install the pinned dependencies, run the demo
#   make test   create the environment if needed (with the torch extra), run lint (ruff), types (mypy)
#               and the test suite
#   make screenshots   photograph both dashboards into docs/screenshots (needs chromium; a few minutes)
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
STAMP := $(VENV)/.installed-stamp
TORCH_STAMP := $(VENV)/.torch-stamp

export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true
# Python keeps what it compiles (in __pycache__ folders: the environment's, and the sources' that
# git ignores), even where the machine sets PYTHONDONTWRITEBYTECODE: the installs below compile
# nothing ahead, and the demo and the tests start many Python processes that would otherwise
# compile the same modules again, each time.
export PYTHONDONTWRITEBYTECODE :=

.PHONY: demo test env lock clean-demo bench screenshots help

help:
	@echo "make demo   - build the environment and run the demo in ./demo"
	@echo "make test   - build the environment if needed; run ruff, mypy and the test suite"
	@echo "make lock   - re-resolve requirements.lock from pyproject.toml"
	@echo "make bench  - run the demo benchmark (scripts/bench_demo.py)"
	@echo "make screenshots - photograph the Prefect and MLflow dashboards into docs/screenshots"

env: $(STAMP)

$(STAMP): requirements.lock requirements-bootstrap.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] >= (3, 11), "modelcycle needs Python 3.11 or newer; set PYTHON=/path/to/python3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements-bootstrap.txt
	$(UV) pip install --quiet --python $(BIN)/python --require-hashes -r requirements.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The `torch` extra (image classifiers) for the tests: the CPU build of torch 2.13.0, with pip,
# which finds it where the machine keeps it (uv does not look there).
$(TORCH_STAMP): $(STAMP) requirements-torch.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile --require-hashes --no-deps -r requirements-torch.lock
	touch $(TORCH_STAMP)

demo: $(STAMP)
	$(BIN)/modelcycle demo demo

# ruff first; then mypy (about 45 s of both cores without its cache) beside the tests, which
# leave a core idle at times: its report follows theirs, and either failing fails the target.
test: $(STAMP) $(TORCH_STAMP)
	scripts/postgres_programs.sh
	$(BIN)/ruff check src tests scripts
	$(BIN)/mypy > $(VENV)/mypy.out 2>&1 & types=$$!; \
	$(BIN)/python -m pytest; tests=$$?; \
	wait $$types; typed=$$?; echo "mypy:"; cat $(VENV)/mypy.out; \
	exit $$(( tests || typed ))

bench: $(STAMP)
	$(BIN)/python scripts/bench_demo.py

screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py

lock: $(STAMP)
	$(UV) pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 \
		--no-header --annotation-style line -o requirements.lock
	$(UV) pip compile requirements-bootstrap.in --generate-hashes --python-version 3.11 \
		--no-header --annotation-style line -o requirements-bootstrap.txt
	$(BIN)/python scripts/lock_torch.py

clean-demo:
	rm -rf demo
