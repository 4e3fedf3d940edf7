# Two commands on a fresh Debian machine: `make demo` and `make test`.
# Both install what is missing (Debian packages, then the project into .venv/).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DATA   ?= ./var

.PHONY: demo test lint typecheck pytest bench down system-deps install clean

system-deps:
	@scripts/install-system-deps.sh

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	@touch $(STAMP)

install: system-deps $(STAMP)

demo: install
	$(BIN)/sitewatch stack up --data-dir $(DATA)
	@echo
	@echo "Stop with: $(BIN)/sitewatch stack down --data-dir $(DATA)"

down:
	$(BIN)/sitewatch stack down --data-dir $(DATA)

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

# pytest exits 5 when it collected no test: that must fail, never pass silently.
pytest: install
	@$(BIN)/pytest -ra; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

test: lint typecheck pytest

bench: install
	$(BIN)/python bench/decode.py
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
