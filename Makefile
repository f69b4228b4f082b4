# Two commands do all set-up on a fresh machine:  make demo  |  make test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SPEC ?= examples/digits.yaml
EXPERIMENT ?= digits-demo
# torch/torchvision pinned to the CUDA build that also runs on CPU (it lies on the dev machines' disk).
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test lint format bench bench-quality bench-smoke clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	touch $@ $(VENV)/.installed-run

demo: $(VENV)/.installed-run
	$(BIN)/tunefleet search $(SPEC)
	$(BIN)/tunefleet export $(EXPERIMENT) --top-k 3 --out exports/$(EXPERIMENT)

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy search spaces trainables analysis

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Benchmarks (benchmarks/README.md): each appends a dated table to benchmarks/RESULTS.md.
# The peers are run from ../shared/peers; set PEERS=... to point elsewhere.
PEERS ?= ../shared/peers
$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[bench]'
	touch $@ $(VENV)/.installed-run

bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/compare_peers.py --peers $(PEERS)
	$(BIN)/python benchmarks/tracking_overhead.py
	$(BIN)/python benchmarks/scheduling.py
	$(BIN)/python benchmarks/early_stopping.py
	$(BIN)/python benchmarks/search_quality.py

bench-quality: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/search_quality.py
	$(BIN)/python benchmarks/early_stopping.py

bench-smoke: $(VENV)/.installed-dev $(VENV)/.installed-bench
	$(BIN)/python -m pytest tests/benchmarks -q

clean:
	rm -rf mlflow.db mlruns tunefleet-runs exports
