# Two commands are all the set-up: `make run` and `make test`.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(VENV)/bin/pip
STAMP   := $(VENV)/.installed
HOST    ?= 127.0.0.1
PORT    ?= 8000

WEB_OUT := src/openscancloud/web_dist/index.html
WEB_SRC := $(shell find web/src web/public -type f 2>/dev/null) web/index.html web/package.json web/package-lock.json web/vite.config.ts

.PHONY: install postgres synth-venv run test test-all bench bench-scale clean web

install: $(STAMP) $(WEB_OUT)

# The browser app: built from web/ into the Python package (served at /). system-deps.sh installs Node/npm from
# Debian when they are missing.
web: $(WEB_OUT)

$(WEB_OUT): $(WEB_SRC)
	@command -v npm >/dev/null || { echo "npm is missing: run scripts/system-deps.sh"; exit 1; }
	@node -e 'const [a, b] = process.versions.node.split(".").map(Number); if (a < 20 || (a === 20 && b < 19)) { console.error(`Node.js $${process.version} is too old to build the web app: it needs 20.19 or newer (Debian 13 ships it).`); process.exit(1); }'
	cd web && npm ci --no-audit --no-fund && npm run build

$(STAMP): pyproject.toml scripts/system-deps.sh
	@command -v python3 >/dev/null || { echo "python3 is required"; exit 1; }
	bash scripts/system-deps.sh
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]'
	@touch $(STAMP)

# The suite's PostgreSQL (127.0.0.1:5432, database `test`): started only when it does not answer.
postgres:
	@bash scripts/start-postgres.sh

# A Python environment for the synthetic-set renderer (the ground-truth accuracy test renders a small set with
# it): an existing one is reused, else .venv-synth is built here (git-ignored).
synth-venv:
	@bash scripts/synth-venv.sh

run: install
	$(VENV)/bin/openscan-cloud serve --host $(HOST) --port $(PORT)

# `make test`: everything but the long reconstructions (about 17 min on an idle 2-core machine); `make
# test-all` adds them.
test: install postgres synth-venv
	$(VENV)/bin/python -m pytest -q

test-all: install postgres synth-venv
	$(VENV)/bin/python -m pytest -q -m ''

bench: install
	$(VENV)/bin/python bench/reconstruct.py

bench-scale: install
	$(VENV)/bin/python bench/crash.py
	$(VENV)/bin/python bench/load.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache web/node_modules src/openscancloud/web_dist
