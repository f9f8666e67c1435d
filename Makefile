# meeting-gateway: `make run` starts the local stack, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 7071
WORKERS ?= 2

.PHONY: run gateway test lint venv azurite faketime bench soak fuzz-long clean

run: venv azurite
	$(BIN)/python -m devstack

# Only the gateway, configured purely by the environment (see README "Settings").
gateway: venv
	@LOCAL_DEVELOPMENT=$${LOCAL_DEVELOPMENT:-true} $(BIN)/python -m meetings_core.settings
	LOCAL_DEVELOPMENT=$${LOCAL_DEVELOPMENT:-true} $(BIN)/python -m uvicorn meetings_core.http.app:create_app --factory --host 127.0.0.1 --port $(PORT) --workers $(WORKERS)

test: venv azurite faketime lint
	$(BIN)/pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11 or newer is needed"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# The skewed-clock test (tests/test_engine_clocks.py) runs one gateway under libfaketime (Debian package faketime).
faketime:
	@command -v faketime >/dev/null || { \
	  echo "Installing the Debian package faketime (libfaketime) for the skewed-clock test..."; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q faketime; } >/dev/null || { \
	    echo "Could not install faketime: run 'apt-get install faketime' (Debian/Ubuntu) and make test again"; exit 1; }; }

azurite: node_modules/azurite/dist/src/table/main.js

node_modules/azurite/dist/src/table/main.js: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

bench: venv azurite
	$(BIN)/python -m bench.run_all

soak: venv azurite
	$(BIN)/python -m bench.soak

fuzz-long: venv azurite
	$(BIN)/pytest tests/test_fuzz.py --hypothesis-profile=long

# Break each rule of the promise in turn and check that a test notices (docs/MUTANTS.md); 5 to 10 minutes
# on a shared 2-core machine, not part of `make test`. MUTANTS="--only retry" runs a subset.
.PHONY: mutants
mutants: venv azurite
	$(BIN)/python scripts/mutants.py $(MUTANTS)

clean:
	rm -rf $(VENV) node_modules .azurite .devstack .mypy_cache .ruff_cache .pytest_cache .hypothesis
