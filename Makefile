# headrace — two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
CLIENT_VENV := .venv-client
PORT ?= 4200
# Acceptance tests mostly wait on subprocesses (servers, client processes): two
# pytest workers keep both cores busy. Tests sharing the Celery brokers stay on one
# worker (xdist_group "celery-broker").
TEST_WORKERS ?= 2

.PHONY: run test check bench install install-dev client browser clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip

$(VENV)/.runtime: pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/pip install -q -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.runtime

# The real Prefect client lives in a venv of its own, as on a user's machine, so its
# pins never constrain headrace's.
$(CLIENT_VENV)/.installed: tests/client-requirements.txt
	$(PYTHON) -m venv $(CLIENT_VENV)
	$(CLIENT_VENV)/bin/pip install -q --upgrade pip
	$(CLIENT_VENV)/bin/pip install -q -r tests/client-requirements.txt
	touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev
client: $(CLIENT_VENV)/.installed

## run: install into .venv and serve on SQLite at 127.0.0.1:$(PORT)
run: install
	$(VENV)/bin/headrace server start --host 127.0.0.1 --port $(PORT)

## browser: the system Chromium for the dashboard's browser tests (apt, as root or via sudo)
browser:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else exit 0; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null \
			|| echo "could not install chromium; the browser tests will skip"; \
	fi

## test: install what the tests need and run the whole suite
test: install-dev client browser
	HEADRACE_CLIENT_PYTHON=$(abspath $(CLIENT_VENV))/bin/python $(VENV)/bin/python -m pytest \
		-n $(TEST_WORKERS) --dist loadgroup --durations=15

## check: lint, format check and type check
check: install-dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

## bench: headrace side by side with `prefect server start` (see benchmarks/README.md)
bench: install client
	$(CLIENT_VENV)/bin/python benchmarks/compare.py

clean:
	rm -rf $(VENV) $(CLIENT_VENV) .pytest_cache .ruff_cache .mypy_cache
