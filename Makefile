# The README's two commands are `make demo` and `make test`; both create their own environment.
PYTHON ?= python3
PYVER := $(shell $(PYTHON) -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
VENV ?= .venv/py$(PYVER)
BIN := $(VENV)/bin
# One pinned constraints file per supported Python line (3.11 -> Django 5.2 LTS, 3.12+ -> Django 6.x).
CONSTRAINTS := constraints/py$(PYVER).txt
STAMP := $(VENV)/.installed

.PHONY: venv test check lint typecheck imports pytest demo bench screenshots lock clean

venv: $(STAMP)

# Says what it does before each step: the first run takes minutes, and pip lists the
# packages as it goes (no --quiet there), so it never looks stuck.
$(STAMP): pyproject.toml $(wildcard $(CONSTRAINTS))
	@echo "==> setting up $(VENV) (first run only: a few minutes)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> upgrading pip"
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "==> installing asyncjobs with its dev and demo extras"
	@if [ -f $(CONSTRAINTS) ]; then \
		$(BIN)/python -m pip install --progress-bar off -c $(CONSTRAINTS) -e '.[dev,demo]'; \
	else \
		echo "no $(CONSTRAINTS): installing unpinned (run 'make lock' to pin)"; \
		$(BIN)/python -m pip install --progress-bar off -e '.[dev,demo]'; \
	fi
	touch $(STAMP)
	@echo "==> $(VENV) ready"

test: check pytest

check: lint typecheck imports

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The layers of README "Architecture" ([tool.importlinter] in pyproject.toml).
imports: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/python -m example.demo

bench: $(STAMP)
	$(BIN)/python -m bench

# The browser tests, saving each page they show as docs/screenshots/<name>.png (needs
# Debian's chromium and chromium-driver: README "Developing asyncjobs").
SCREENSHOTS := docs/screenshots
screenshots: $(STAMP)
	mkdir -p $(SCREENSHOTS)
	ASYNCJOBS_SCREENSHOTS=$(SCREENSHOTS) $(BIN)/python -m pytest tests/browser $(PYTEST_ARGS)

# Re-pin the constraints for the current Python line from a fresh resolve.
LOCKVENV := .venv/lock-py$(PYVER)
lock:
	rm -rf $(LOCKVENV) && $(PYTHON) -m venv $(LOCKVENV)
	$(LOCKVENV)/bin/python -m pip install --quiet --upgrade pip
	$(LOCKVENV)/bin/python -m pip install --quiet -e '.[dev,demo]'
	$(LOCKVENV)/bin/python -m pip freeze --exclude-editable | grep -v -e '^-e' -e '^asyncjobs' -e '^django-asyncjobs' > $(CONSTRAINTS)
	rm -rf $(LOCKVENV)

clean:
	rm -rf .venv build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache .import_linter_cache
