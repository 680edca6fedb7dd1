# Everything installs from the project's own files, on first use: the line into .venv from pyproject.toml,
# and (for the tests) NHS England's MESH sandbox into .venv-mesh.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The old setuptools that python3 -m venv seeds (65.5 on Python 3.11) puts a distutils shim in front of every
# program, which warns ("Setuptools is replacing distutils", "... not an editable install") whenever a library
# imports distutils; the line uses neither, so its commands run without the shim.
FLASK := SETUPTOOLS_USE_DISTUTILS=stdlib $(BIN)/flask --app app
STAMP := $(VENV)/.installed-from-pyproject
# NHS England's local MESH, for the tests of `flask register national`, in a venv of its own: it asks for
# gunicorn<27, which the line's own pin rules out (tests/requirements/mesh-sandbox.txt pins all of it).
MESH_VENV := .venv-mesh
MESH_STAMP := $(MESH_VENV)/.installed-from-requirements
# The staff console's NHS.UK frontend CSS, JavaScript and images, from the npm registry (and axe-core, a
# development dependency, for the browser tests' accessibility checks).
NODE_STAMP := node_modules/.installed-from-package-lock
PORT ?= 5000
# The local Twilio stand-in `make run` sends the line's texts to, and the terminal phone reads them from.
TEXTS_PORT ?= 5001
LINE_URL := http://127.0.0.1:$(PORT)
# The number the terminal phone calls or texts from, in any UK form (make call FROM="07700 900002").
FROM ?= 07700 900001

.PHONY: install run call text lint test bench bench-understanding bench-register bench-console bench-effort drill

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24,<27"
	@# -qq: setuptools' build of an editable install of a flat layout always prints an information-only
	@# "Editable installation ... folders with the same name as your package" notice; errors still print.
	$(BIN)/python -m pip install -qq -e '.[test]'
	touch $(STAMP)

$(MESH_STAMP): tests/requirements/mesh-sandbox.txt
	$(PYTHON) -m venv $(MESH_VENV)
	$(MESH_VENV)/bin/python -m pip install --quiet -r tests/requirements/mesh-sandbox.txt
	touch $(MESH_STAMP)

$(NODE_STAMP): package-lock.json
	npm ci --include=dev --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

install: $(STAMP) $(NODE_STAMP)

# Serve the line on the embedded default (SQLite in instance/, no Twilio account needed), with the
# outbox worker alongside it and, without a Twilio account, a local Twilio stand-in for its texts; the demo
# people let anyone try it with `make call` or `make text` in another terminal.
run: install
	$(FLASK) db upgrade
	$(FLASK) demo seed
	@echo "The line: $(LINE_URL)/twilio/voice and /twilio/sms (try it with 'make call' or 'make text' in another terminal)."
	@echo "The staff console: $(LINE_URL)/staff/ (first admin: $(BIN)/flask --app app staff create you@example.org --role admin)"
	$(FLASK) demo serve --port $(PORT) --texts-port $(TEXTS_PORT)

# A phone in the terminal: call the line `make run` serves, key in digits, see the texts it sends.
call: install
	$(FLASK) call --url $(LINE_URL) --texts-url http://127.0.0.1:$(TEXTS_PORT) --from "$(FROM)"

# Text the line `make run` serves from the terminal.
text: install
	$(FLASK) text --url $(LINE_URL) --texts-url http://127.0.0.1:$(TEXTS_PORT) --from "$(FROM)"

# tests/browser drives Debian's chromium package (Playwright's own browsers are never downloaded).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	apt-get update -qq && apt-get install -y -qq chromium

# Lint and type checks (settings in pyproject.toml); ruff skips .venv and node_modules (.gitignore).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# The lint and type checks, then the whole suite, on SQLite and on the local PostgreSQL (a throwaway
# database per run); tests/browser drives Debian's chromium, and fails, rather than skips, without it.
test: install $(MESH_STAMP) $(CHROMIUM)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/webhook_latency.py

# The intent model learned from its examples and judged on the held-out sentences: accuracy, the line's
# decisions (none harmful), latency per sentence; prints each target with PASS or FAIL (about ten seconds).
bench-understanding: install
	$(BIN)/python bench/understanding.py

# Apply the register to 10,000,000 generated rows, as CSV against a plain csv-module baseline and as Parquet against a
# DuckDB anti-join (a few minutes; the Parquet data sets are cached in bench/out/).
bench-register: install
	$(BIN)/python bench/register_apply.py

# The console's conversation pages with 1,000,000 steps against 1,000, on SQLite and on the local
# PostgreSQL (throwaway databases; about five minutes).
bench-console: install
	$(BIN)/python bench/console_scale.py

# Each path through the line driven through its webhooks (throwaway SQLite, the Twilio stand-in on loopback):
# the words it speaks, the keys pressed and the texts sent, each against its budget with PASS or FAIL (a few seconds;
# EFFORT_ARGS=--json for JSON).
bench-effort: install
	$(BIN)/python bench/caller_effort.py $(EFFORT_ARGS)

# Load, Twilio faults, a database outage and the races, against the production command on the local
# PostgreSQL (a throwaway database); prints each figure with PASS or FAIL (about two minutes; --quick: one).
drill: install
	$(BIN)/python bench/drill.py $(DRILL_ARGS)
