# Two commands on a fresh Debian machine: `make demo` and `make test`.
# Both install what is missing (Debian packages, then the project into .venv/).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
WEB    := services/api/web
UI_STAMP := $(WEB)/node_modules/.installed-stamp
DATA   ?= ./var

.PHONY: demo test lint typecheck pytest bench soak soak-fuzz down system-deps test-deps install screenshots clean

system-deps:
	@scripts/install-system-deps.sh

# What only the tests need: Debian's chromium for the browser tests (never a downloaded browser), and
# nats-server for the clustered-broker test (docs/scaling.md).
test-deps:
	@scripts/install-system-deps.sh --test --cluster

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	@touch $(STAMP)

# The UI's only dependency, ECharts, pinned in package-lock.json and served by the API.
$(UI_STAMP): $(WEB)/package-lock.json
	npm ci --prefix $(WEB) --ignore-scripts --no-audit --no-fund
	@touch $(UI_STAMP)

install: system-deps $(STAMP) $(UI_STAMP)

demo: install
	$(BIN)/sitewatch stack up --data-dir $(DATA)
	@echo
	@echo "Dispatch room: the API URL above in a browser (it leads to /ui/); log in with the token."
	@echo "Stop with: $(BIN)/sitewatch stack down --data-dir $(DATA)"

down:
	$(BIN)/sitewatch stack down --data-dir $(DATA)

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

# pytest exits 5 when it collected no test: that must fail, never pass silently.
pytest: install test-deps
	@$(BIN)/pytest -ra; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

test: lint typecheck pytest

# Each prints its figures and a ratio against a baseline measured in the same run (docs/performance.md).
bench: install test-deps
	$(BIN)/python bench/decode.py
	$(BIN)/python bench/evaluator.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/storage.py
	$(BIN)/python bench/shards.py
	$(BIN)/python bench/cluster_broker.py

# The fault matrix with realistic outages (docs/reliability.md): kill -9 of each service, PostgreSQL
# and Mosquitto away for SOAK_OUTAGE s, the spool full; prints the results table. About 25 minutes.
SOAK_OUTAGE ?= 60
SOAK_DURATION ?= 150
soak: install
	$(BIN)/python bench/faults.py --outage $(SOAK_OUTAGE) --duration $(SOAK_DURATION)

# The long hostile-input runs (docs/reliability.md): FUZZ_EXAMPLES hypothesis examples per decoder
# test, FUZZ_RUNS atheris (libFuzzer) inputs, API_FUZZ_EXAMPLES schemathesis examples per operation,
# mode and role. About an hour on 2 cores.
FUZZ_EXAMPLES ?= 100000
FUZZ_RUNS ?= 1000000
API_FUZZ_EXAMPLES ?= 100
soak-fuzz: install
	$(BIN)/python -m pip install -q -e '.[test,fuzz]' --config-settings editable_mode=compat
	SITEWATCH_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q -p no:cacheprovider --timeout=0 \
		--hypothesis-show-statistics --durations=0 tests/test_hostile_decode.py
	$(BIN)/python bench/fuzz_atheris.py $(FUZZ_RUNS)
	SITEWATCH_API_FUZZ_EXAMPLES=$(API_FUZZ_EXAMPLES) $(BIN)/pytest -q -p no:cacheprovider --timeout=0 \
		--durations=0 tests/test_hostile_api.py

# docs/screenshots/*.png: the dispatch room on a scene of a few sites, at 1920x1080.
screenshots: install test-deps
	SITEWATCH_SCREENSHOTS=docs/screenshots $(BIN)/pytest tests/ui/test_ui_screenshots.py -q

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache $(WEB)/node_modules
