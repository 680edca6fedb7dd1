# Everything installs into .venv from pyproject.toml; each target sets it up on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app app
STAMP := $(VENV)/.installed-from-pyproject
# The staff console's NHS.UK frontend CSS, JavaScript and images, from the npm registry.
NODE_STAMP := node_modules/.installed-from-package-lock
PORT ?= 5000

.PHONY: install run call text test bench bench-register drill

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24,<27"
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(NODE_STAMP): package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

install: $(STAMP) $(NODE_STAMP)

# Serve the line on the embedded default (SQLite in instance/, no Twilio account needed), with the
# outbox sender alongside it; the demo people let anyone try it with `make call`.
run: install
	$(FLASK) db upgrade
	$(FLASK) demo seed
	$(FLASK) outbox send --watch & trap 'kill $$! 2>/dev/null' EXIT INT TERM; $(FLASK) run --port $(PORT)

# A phone in the terminal: call the line, key in digits, see the texts it sends.
call: install
	$(FLASK) db upgrade >/dev/null
	$(FLASK) demo seed >/dev/null
	$(FLASK) call

# Text the line from the terminal.
text: install
	$(FLASK) db upgrade >/dev/null
	$(FLASK) demo seed >/dev/null
	$(FLASK) text

# The whole suite, on SQLite and on the local PostgreSQL (a throwaway database per run).
test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/webhook_latency.py

# Apply the register to 10,000,000 generated rows, against a plain csv-module baseline (about a minute).
bench-register: install
	$(BIN)/python bench/register_apply.py

# Load, Twilio faults, a database outage and the races, against the production command on the local
# PostgreSQL (a throwaway database); prints each figure with PASS or FAIL (about two minutes; --quick: one).
drill: install
	$(BIN)/python bench/drill.py $(DRILL_ARGS)
