# prelabel: `make demo` runs the whole pipeline here; `make test` is what CI runs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: install demo test lint typecheck unit clean lock

# Exact versions from constraints.txt: what CI and the image install (`make lock` refreshes it).
$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/prelabel demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

# Resolve every extra and the test tools afresh in a throwaway venv, and pin what it got.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e '.[dev]'
	{ echo "# Exact versions of every dependency of prelabel[dev] (all extras and the test tools),"; \
	  echo "# resolved by \`make lock\` on $$(date -u +%F) with $$(.lock-venv/bin/python -V)."; \
	  echo "# Installed with pip's -c by the Makefile, CI and the Dockerfile."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable | LC_ALL=C sort -f; } > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) runs .mypy_cache .ruff_cache .pytest_cache
