# otelres developer tasks. `make test` works on a fresh machine: it creates .venv, installs the
# project with every extra and the dev group, installs the Debian packages the integration
# tests need when they are missing, and runs the whole suite.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
# Debian packages the integration tests need (binary:package).
DEB_NEEDS := redis-server:redis-server promtool:prometheus prometheus:prometheus chromium:chromium

.PHONY: help install deb-deps test test-fast lint bench demo clean

help:
	@echo "make demo       run the demo (~40 s: a trading bot rides out a bad day on a local exchange; live table, status page)"
	@echo "make test       install everything needed and run the whole test suite"
	@echo "make lint       ruff + mypy"
	@echo "make bench      run the benchmarks (ratios against the libraries users pick instead)"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=25.1"
	$(PIP) install -q -e '.[prometheus,redis,zstd,ccxt]' --group dev
	@if [ -d instrumentation/otelres-instrumentation-ccxt ]; then \
		$(PIP) install -q -e instrumentation/otelres-instrumentation-ccxt; fi
	touch $(STAMP)

install: $(STAMP)

deb-deps:
	@missing=""; for pair in $(DEB_NEEDS); do bin=$${pair%%:*}; pkg=$${pair##*:}; \
		if ! command -v $$bin >/dev/null 2>&1 && [ ! -x /usr/sbin/$$bin ] && [ ! -x /usr/bin/$$bin ]; then \
			missing="$$missing $$pkg"; fi; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

test: install deb-deps
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not integration and not slow"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: install
	@for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

.PHONY: dashboards
dashboards: install  ## regenerate collector/grafana/dashboards/*.json from generate.py
	$(PY) collector/grafana/generate.py

demo: install
	$(PY) -m otelres demo

.PHONY: health-check health-check-json
health-check: install  ## run the health checks: GREEN / YELLOW / RED table, exit status 0 / 1 / 2
	$(PY) -m otelres health

health-check-json: install  ## the same, as the JSON report (docs/HEALTH_CHECKS.md)
	$(PY) -m otelres health --json

.PHONY: backup backup-list restore restore-backup
backup: install  ## back up backup.files / backup.sqlite (or BACKUP_ARGS, e.g. --from state.json)
	$(PY) -m otelres backup create --type manual $(BACKUP_ARGS)

backup-list: install  ## list backups, newest first, with their status
	$(PY) -m otelres backup list

restore: install  ## restore the newest valid backup into ./restored/<id> (RESTORE_ARGS: --to DIR, --dry-run)
	$(PY) -m otelres backup restore latest $(RESTORE_ARGS)

restore-backup: install  ## restore one backup: make restore-backup BACKUP_ID=<id>
	@test -n "$(BACKUP_ID)" || { echo "usage: make restore-backup BACKUP_ID=<id> (see make backup-list)" >&2; exit 2; }
	$(PY) -m otelres backup restore "$(BACKUP_ID)" $(RESTORE_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
