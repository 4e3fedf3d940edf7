# Two commands on a fresh Debian machine: `make demo` and `make test`.
# Both install what is missing (Debian packages, then the project into .venv/).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
WEB    := services/api/web
UI_STAMP := $(WEB)/node_modules/.installed-stamp
DATA   ?= ./var

.PHONY: demo test lint typecheck pytest bench down system-deps test-deps install screenshots clean

system-deps:
	@scripts/install-system-deps.sh

# What only the tests need: Debian's chromium for the browser tests (never a downloaded browser).
test-deps:
	@scripts/install-system-deps.sh --test

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

bench: install
	$(BIN)/python bench/decode.py
	$(BIN)/python bench/ingest.py

# docs/screenshots/*.png: the dispatch room on a scene of a few sites, at 1920x1080.
screenshots: install test-deps
	SITEWATCH_SCREENSHOTS=docs/screenshots $(BIN)/pytest tests/ui/test_ui_screenshots.py -q

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache $(WEB)/node_modules
