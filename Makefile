# The mesh: build, run and test. GNU make.
#   make run     start every process under supervisord and wait until the gateway is ready
#   make test    ruff, mypy and the whole pytest suite (unit, integration, e2e)
# Every variable below can be overridden from the environment or the command line.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
# supervisord.conf runs the programs from .venv too, so this is fixed.
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mesh-installed
# Every dependency pinned with its hashes (make lock writes it from pyproject.toml).
LOCK := requirements.lock
UV_VERSION := 0.13.9
LOCK_FIND_LINKS ?= $(or $(PIP_FIND_LINKS),$(shell $(PY) -m pip config get global.find-links 2>/dev/null))

# Where logs, pid files, the supervisord socket, databases and mail live.
MESH_VAR_DIR ?= $(CURDIR)/var
override MESH_VAR_DIR := $(abspath $(MESH_VAR_DIR))
# The embedded MongoDB-wire server runs only when MONGO_URL is unset or empty.
MONGO_EMBEDDED_PORT ?= 27027
MESH_EMBEDDED_MONGO := $(if $(strip $(MONGO_URL)),false,true)
ifdef BENCH
export REGISTER_RATE_IP := 1000000/minute
export LOGIN_RATE_IP := 1000000/minute
export API_RATE_IP := 1000000/minute
# The order benchmark leaves its orders unpaid: lift the cap on one shopper's pending orders.
export ORDER_MAX_PENDING_PER_USER := 0
endif
GATEWAY_HOST ?= 127.0.0.1
GATEWAY_PORT ?= 8000
# Processes of each service and of the workers (README, "Scaling out"); above 1, supervisord
# includes supervisord.d/replicas.conf, which numbers their names (users:users-0) and logs.
MESH_REPLICAS ?= 1
MESH_LAYOUT := $(if $(filter 1,$(MESH_REPLICAS)),single,replicas)
READY_TIMEOUT ?= 120
PYTEST_ARGS ?=

# supervisord.conf reads these as %(ENV_...)s; the mesh processes read them as Settings.
export MESH_VAR_DIR MESH_EMBEDDED_MONGO MONGO_EMBEDDED_PORT GATEWAY_HOST GATEWAY_PORT \
       MESH_REPLICAS MESH_LAYOUT

SUPERVISORD := $(VENV)/bin/supervisord -c $(CURDIR)/supervisord.conf
SUPERVISORCTL := $(VENV)/bin/supervisorctl -c $(CURDIR)/supervisord.conf
PROGRAMS := $(if $(filter true,$(MESH_EMBEDDED_MONGO)),mongo) users catalog orders notifications courses content assistant analytics workers mirror gateway
GATEWAY_URL := http://$(GATEWAY_HOST):$(GATEWAY_PORT)

.PHONY: help venv install lock run stop restart status ctl shell admin logs lint format typecheck \
        test e2e bench bench-cpu bench-rpc bench-gateway bench-sql bench-floor bench-pipeline bench-assistant clean distclean dirs faults soak

help:
	@echo "make run        start the mesh (supervisord) and wait until it is ready"
	@echo "make run MESH_REPLICAS=2   two processes of each service and of the workers"
	@echo "make test       ruff + mypy + pytest (unit, integration, e2e)"
	@echo "make stop       stop every process (supervisorctl shutdown)"
	@echo "make status     supervisorctl status"
	@echo "make ctl ARGS=\"restart users\"   any supervisorctl command"
	@echo "make logs       follow var/log/*.log"
	@echo "make shell      nameko shell against the running mesh (n.rpc.users.get_user(1))"
	@echo "make admin EMAIL=you@example.com   create or promote an admin (asks for the password)"
	@echo "make bench      benchmark figures against the running mesh (see the Makefile)"
	@echo "make faults     schemathesis over a live mesh, then broker, Redis and MongoDB outages"
	@echo "make soak       ten minutes of orders against the running mesh: errors and memory"
	@echo "make lint | typecheck | format | e2e | install | lock | clean | distclean"

# ---------------------------------------------------------------- install

$(PY):
	$(PYTHON) -m venv $(VENV)

# Every package, the transitive ones too, comes from $(LOCK) at the version and with the hash
# written there (--require-hashes: a file whose hash is not listed is refused, so a CUDA torch
# never comes in). torch is the CPU build 2.13.0+cpu, which pip takes from its find-links
# directory. Then the project itself, editable, without resolving anything more.
# Re-installs when pyproject.toml or the lock changes; otherwise a no-op.
$(STAMP): pyproject.toml $(LOCK) | $(PY)
	$(PY) -m pip install --quiet --require-hashes -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@# A dependency in pyproject.toml but not in the lock is missing now: say so (make lock).
	@$(PY) -m pip check >/dev/null || { $(PY) -m pip check; echo "$(LOCK) is out of date: make lock"; exit 1; }
	@touch $@

venv: $(PY)

install: $(STAMP)

# Re-resolves pyproject.toml (with the dev extra) into $(LOCK), keeping the locked versions
# that still fit; `make lock UPGRADE=1` takes the newest that fit. uv is installed on demand.
# torch must resolve to the CPU wheel in LOCK_FIND_LINKS (pip's find-links by default).
lock: | $(PY)
	@[ "$$($(VENV)/bin/uv --version 2>/dev/null)" = "uv $(UV_VERSION)" ] || \
		$(PY) -m pip install --quiet "uv==$(UV_VERSION)"
	@[ -z "$(LOCK_FIND_LINKS)" ] || [ -d "$(LOCK_FIND_LINKS)" ] || \
		{ echo "LOCK_FIND_LINKS=$(LOCK_FIND_LINKS) is not a directory"; exit 1; }
	@if [ -f $(LOCK) ]; then cp $(LOCK) $(LOCK).new; fi
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --generate-hashes --quiet \
		--python $(PY) --custom-compile-command "make lock" -o $(LOCK).new \
		$(if $(LOCK_FIND_LINKS),--find-links $(LOCK_FIND_LINKS)) $(if $(UPGRADE),--upgrade)
	@grep -Eq '^torch==[^ ]+\+cpu ' $(LOCK).new || { rm -f $(LOCK).new; \
		echo "torch did not resolve to a +cpu build: set LOCK_FIND_LINKS to the CPU wheel's directory"; exit 1; }
	@! grep -Eiq '^(nvidia|triton)' $(LOCK).new || { rm -f $(LOCK).new; \
		echo "the lock names CUDA packages (nvidia-*, triton): refused"; exit 1; }
	@mv $(LOCK).new $(LOCK)
	@echo "$(LOCK): $$(grep -Ec '^[A-Za-z0-9]' $(LOCK)) packages, every one with its hashes"

# ---------------------------------------------------------------- run

dirs:
	@mkdir -p $(MESH_VAR_DIR)/log $(MESH_VAR_DIR)/run $(MESH_VAR_DIR)/mongo $(MESH_VAR_DIR)/mail

run: install dirs
	@[[ "$(MESH_REPLICAS)" =~ ^[1-9][0-9]*$$ ]] || { echo "MESH_REPLICAS=$(MESH_REPLICAS): a whole number from 1"; exit 1; }
	@$(VENV)/bin/mesh check-services
	@if $(SUPERVISORCTL) pid >/dev/null 2>&1; then \
		echo "supervisord is already running: applying supervisord.conf changes"; \
		$(SUPERVISORCTL) update; \
		$(SUPERVISORCTL) start $(addsuffix :*,$(PROGRAMS)); \
	else \
		echo "starting supervisord (logs in $(MESH_VAR_DIR)/log)"; \
		$(SUPERVISORD); \
	fi
	@$(VENV)/bin/mesh wait-ready --timeout $(READY_TIMEOUT) || { \
		$(SUPERVISORCTL) status; \
		echo "The mesh is not ready: see 'make logs' or $(MESH_VAR_DIR)/log/<program>.log"; \
		exit 1; }
	@echo
	@echo "The mesh is running."
	@echo "  gateway   $(GATEWAY_URL)"
	@echo "  API docs  $(GATEWAY_URL)/api/docs"
	@echo "  metrics   $(GATEWAY_URL)/metrics"
	@echo
	@echo "Next: make status | make logs | make shell | make admin EMAIL=... | make stop"

# supervisord stops the programs in reverse priority order (gateway first, mongo last) and
# exits when the last is gone; wait for that, so that `make stop run` starts afresh.
stop:
	@if $(SUPERVISORCTL) pid >/dev/null 2>&1; then \
		pid=$$(cat $(MESH_VAR_DIR)/run/supervisord.pid 2>/dev/null); \
		$(SUPERVISORCTL) shutdown; \
		echo "waiting for every program to stop..."; \
		for _ in $$(seq 1 240); do \
			[ -n "$$pid" ] && kill -0 "$$pid" 2>/dev/null || break; sleep 0.5; \
		done; \
		if [ -n "$$pid" ] && kill -0 "$$pid" 2>/dev/null; then \
			echo "supervisord (pid $$pid) is still stopping; see $(MESH_VAR_DIR)/log/supervisord.log"; \
			exit 1; \
		fi; \
		echo "stopped"; \
	else \
		echo "the mesh is not running"; \
	fi
	@# Whatever outlived supervisord (a worker whose master was SIGKILLed, say) goes too.
	@if [ -x $(VENV)/bin/mesh ]; then $(VENV)/bin/mesh reap; fi

restart: stop run

status:
	@if $(SUPERVISORCTL) pid >/dev/null 2>&1; then \
		$(SUPERVISORCTL) status || true; \
	else \
		echo "the mesh is not running (make run)"; exit 1; \
	fi

# Any supervisorctl command, with the environment supervisord.conf needs: make ctl ARGS="restart users"
ctl:
	@$(SUPERVISORCTL) $(ARGS)

shell: install
	@$(VENV)/bin/nameko shell --config mesh/nameko.yaml

# The password comes from MESH_ADMIN_PASSWORD or a prompt, never from a command line (ps and
# the shell history would show it).
admin: install
	$(if $(EMAIL),,$(error usage: make admin EMAIL=you@example.com (asks for the password, or set MESH_ADMIN_PASSWORD)))
	$(if $(filter command line,$(origin PASSWORD)),$(error PASSWORD= on the command line is refused: ps and the shell history show it. Leave it out to be asked, or set MESH_ADMIN_PASSWORD in the environment))
	@$(VENV)/bin/mesh create-admin --email "$(EMAIL)"

logs:
	@ls $(MESH_VAR_DIR)/log/*.log >/dev/null 2>&1 || { echo "no logs in $(MESH_VAR_DIR)/log yet"; exit 1; }
	tail -n 50 -F $(MESH_VAR_DIR)/log/*.log

# ---------------------------------------------------------------- checks

lint: install
	$(VENV)/bin/ruff check .

format: install
	$(VENV)/bin/ruff format .

typecheck: install
	$(VENV)/bin/mypy

# pytest exits 5 when it collected no test. Under CI (CI set, not "false" or "0") that fails
# the run: a suite that tests nothing must not pass. Elsewhere (a PYTEST_ARGS=-k that matched
# nothing) it is only reported.
test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	@rc=0; $(PY) -m pytest -q $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then \
		case "$${CI:-}" in \
			""|false|0) echo "pytest collected no tests (not a failure outside CI)"; rc=0;; \
			*) echo "pytest collected no tests: a failure under CI=$$CI";; \
		esac; \
	fi; \
	exit $$rc

e2e: install
	$(PY) -m pytest -q -m e2e tests/e2e $(PYTEST_ARGS)

# Schemathesis over a live mesh (tests/live), then the fault suite (tests/faults): a mesh on a
# private RabbitMQ node and Redis that the tests stop and start. Minutes; `make test` skips both.
faults: install
	$(PY) -m pytest -q tests/live $(PYTEST_ARGS)
	$(PY) -m pytest -q tests/faults $(PYTEST_ARGS)

# Figures against the running mesh; it sends thousands of requests from one address, so
# start the mesh with the limits raised:  make stop; make run BENCH=1; make bench
# The order rows need wrk (apt-get install wrk). BENCH_ARGS="--check" exits 1 on a missed goal.
bench: install
	$(PY) -m tests.bench.bench_register
	$(PY) -m tests.bench.bench_orders $(BENCH_ARGS)

# CPU per order of every process, orders placed one after another (ORDERS, 300).
bench-cpu: install
	$(PY) -m tests.bench.cpu_per_order $(if $(ORDERS),--orders $(ORDERS))

# RabbitMQ's CPU per RPC call with persistent requests against transient ones.
bench-rpc: install
	$(PY) -m tests.bench.rpc_delivery

# The gateway's CPU per request in process: /health and a cached order read.
bench-gateway: install
	$(PY) -m tests.bench.gateway_cpu

# The CPU of an order's database work on SQLite, in process (no mesh needed).
bench-sql: install
	$(PY) -m tests.bench.sql_paths

# What one RPC call and one event delivery cost the framework, with no work in the service.
bench-floor: install
	$(PY) -m tests.bench.framework_floor

# Publishes a generated 100-page course and compares the pipeline with a raw model.encode.
bench-pipeline: install
	$(PY) -m tests.bench.bench_pipeline

# Time to the first SSE event and to done, over 50 questions at 1 and 4 askers.
bench-assistant: install
	$(PY) -m tests.bench.bench_assistant

# Orders at half the highest rate for SOAK_SECONDS (600), or at RATE per second, against the
# running mesh (make run BENCH=1): errors, dead letters, every program's memory at start and end.
soak: install
	$(PY) -m tests.bench.soak $(if $(SOAK_SECONDS),--seconds $(SOAK_SECONDS)) $(if $(RATE),--rate $(RATE))

# ---------------------------------------------------------------- clean

clean: stop
	rm -rf $(MESH_VAR_DIR) .pytest_cache .mypy_cache .ruff_cache
	find . -path ./.venv -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) *.egg-info
