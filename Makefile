# Two commands do all set-up on a fresh machine:  make demo  |  make test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SPEC ?= examples/digits.yaml
EXPERIMENT ?= digits-demo
# torch/torchvision pinned to the CUDA build that also runs on CPU (it lies on the dev machines' disk).
TORCH := torch==2.14.1 torchvision==0.29.1

# The editable install is setuptools' "strict" mode: a tree of links to our files under build/,
# which mypy can follow across the four packages (the default mode's import hook hides them).
# A new or removed module needs the tree rebuilt, so the installs depend on the module list.
STRICT := --config-settings editable_mode=strict
MODULES := $(sort $(wildcard api/*.py search/*.py search/*/*.py spaces/*.py trainables/*.py analysis/*.py))

.PHONY: demo test test-fast lint format docs bench bench-quality bench-automl bench-smoke clean FORCE postgresql device-bundle

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Rewritten only when a module is added or removed, so the installs re-run only then.
$(VENV)/.modules: FORCE | $(BIN)/python
	@echo '$(MODULES)' | cmp -s - $@ || echo '$(MODULES)' > $@

$(VENV)/.installed-run: pyproject.toml $(VENV)/.modules | $(BIN)/python
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e . $(STRICT)
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.modules | $(BIN)/python
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev,bench]' $(STRICT)
	touch $@ $(VENV)/.installed-run

demo: $(VENV)/.installed-run
	$(BIN)/tunefleet search $(SPEC)
	$(BIN)/tunefleet export $(EXPERIMENT) --top-k 3 --out exports/$(EXPERIMENT) --register

# Two pytest workers: most of a search test's time is Ray and MLflow starting and waiting, so a
# second worker fills the idle core. Tests that share an expensive fixture (the loopback cluster,
# the shared search) run in one worker (tests/conftest.py, SHARED_FILES).
TEST_WORKERS ?= 2
test: $(VENV)/.installed-dev postgresql
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

# The tracking-store tests run a real PostgreSQL server (Debian's package) on 127.0.0.1.
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "installing Debian's postgresql for the tracking-store tests"; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq && \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

# The inner loop: everything but real searches and clusters (CI runs the whole suite).
test-fast: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow and not cluster"

# What a lent GPU machine lacks for benchmarks/gpu_check.py, as Python 3.12 files in .whl/ to carry
# there; benchmarks/gpu_device.sh installs them and runs the check (benchmarks/README.md).
device-bundle: $(VENV)/.installed-dev
	PYTHON=$(BIN)/python bash benchmarks/device_bundle.sh

lint: $(VENV)/.installed-dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy api search spaces trainables analysis

# The Python API's reference, from its docstrings (pdoc): open docs/api/index.html. The tests
# build it too and check its links (tests/search/test_api_docs.py).
docs: $(VENV)/.installed-dev
	$(BIN)/pdoc -o docs/api tunefleet

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Benchmarks (benchmarks/README.md): each appends a dated table to benchmarks/RESULTS.md.
# The peers are run from ../shared/peers; set PEERS=... to point elsewhere.
PEERS ?= ../shared/peers
$(VENV)/.installed-bench: pyproject.toml $(VENV)/.modules | $(BIN)/python
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[bench]' $(STRICT)
	touch $@ $(VENV)/.installed-run

bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/compare_peers.py --peers $(PEERS)
	$(BIN)/python benchmarks/tracking_overhead.py
	$(BIN)/python benchmarks/scheduling.py
	$(BIN)/python benchmarks/epoch_cost.py
	$(BIN)/python benchmarks/scale.py
	$(BIN)/python benchmarks/early_stopping.py
	$(BIN)/python benchmarks/search_quality.py
	$(BIN)/python benchmarks/data_paths.py throughput
	$(BIN)/python benchmarks/data_paths.py memory
	$(BIN)/python benchmarks/trial_setup.py
	$(BIN)/python benchmarks/export_scoring.py

bench-quality: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/search_quality.py
	$(BIN)/python benchmarks/early_stopping.py

# tunefleet fit against a timm script and random search on three data sets (about 100 min), then warm start.
bench-automl: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/automl.py
	$(BIN)/python benchmarks/warm_start.py

bench-smoke: $(VENV)/.installed-dev $(VENV)/.installed-bench
	$(BIN)/python -m pytest tests/benchmarks -q

clean:
	rm -rf mlflow.db mlruns tunefleet-runs exports reports build
