# Every target bootstraps .venv itself, so `make demo` / `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-lowest lint bench clean install uninstall lock

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q -e '.[test,bench,ccxt,postgres,browser-tls,telegram]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/watcher demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Six workers on two cores, and an idle one steals queued tests (the daemon tests are
# long): most tests wait on sockets and subprocesses, not the CPU. Coverage follows every
# subprocess (the daemon, the demo, the simulator), so the figure printed last
# includes them.
test: lint
	rm -f .coverage .coverage.*
	$(BIN)/python -m coverage run -m pytest -q -n 6 --dist worksteal
	@$(BIN)/python -m coverage combine -q
	@$(BIN)/python -m coverage report --format=total | sed 's/^/coverage (with subprocesses): /; s/$$/%/'

# Every direct dependency at the lowest version pyproject.toml allows (uv's lowest-direct
# resolution), in a venv of its own; the tests that touch those libraries run against it:
# settings and the rules file, delivery through apprise, the sources (ccxt and curl_cffi
# too), the store on SQLite and PostgreSQL (psycopg), the Telegram bot.
LOWEST := .venv-lowest
test-lowest:
	test -x $(LOWEST)/bin/python || $(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install -q uv
	$(LOWEST)/bin/uv pip install -q --python $(LOWEST)/bin/python --resolution lowest-direct \
		-e '.[ccxt,postgres,browser-tls,telegram]'
	$(LOWEST)/bin/uv pip install -q --python $(LOWEST)/bin/python pytest pytest-xdist aiosmtpd \
		hypothesis jsonschema
	@$(LOWEST)/bin/uv pip list --python $(LOWEST)/bin/python 2>/dev/null | grep -iE \
		'^(apscheduler|requests|urllib3|python-dotenv|pydantic|pydantic-settings|apprise|structlog|pyyaml|prometheus-client|ccxt|psycopg|psycopg-binary|curl-cffi|python-telegram-bot) ' \
		| sed 's/^/lowest: /'
	$(LOWEST)/bin/python -m pytest -q -n 6 -p no:cacheprovider tests/config tests/core \
		tests/notify/test_adapter.py tests/notify/test_notify.py tests/sources tests/store \
		tests/telegram

# sudo make install [DESTDIR=...]; sudo make uninstall [PURGE=yes]: see packaging/.
install:
	sh packaging/install.sh

uninstall:
	sh packaging/uninstall.sh

# Refresh the pinned runtime dependencies after changing pyproject.toml.
lock: $(STAMP)
	$(BIN)/python -m pip install -q pip-tools
	$(BIN)/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links \
		--output-file requirements.lock pyproject.toml

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) $(LOWEST) .pytest_cache .ruff_cache
