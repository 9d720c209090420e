# Each target creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PORT ?= 3000
export DAGSTER_HOME ?= $(CURDIR)/dagster_home

.PHONY: demo test ui report lint benchmark mlflow-ui clean

$(STAMP): pyproject.toml deploy/dagster-libraries.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned: the CPU wheel on disk; an unpinned torch would pull a multi-GB CUDA build
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev,cluster]'
	# the shared lab's Dagster libraries, pinned beside dagster without touching it (see the file)
	$(BIN)/python -m pip install --quiet --no-deps -r deploy/dagster-libraries.txt
	touch $(STAMP)

demo: $(STAMP)  ## run the main job (whole graph, active profile) and print a DuckDB summary
	$(BIN)/reprolab demo

test: $(STAMP)  ## the test suite (tiny profile)
	$(BIN)/python -m pytest -q

ui: $(STAMP)  ## the Dagster UI (webserver + daemon) on 127.0.0.1:$(PORT)
	$(BIN)/reprolab init
	# one GPU step at a time unless the operator set the pool already (`dagster instance concurrency set gpu N`)
	$(BIN)/dagster instance concurrency get gpu | grep -q '/ 0 slots' && $(BIN)/dagster instance concurrency set gpu 1 >/dev/null || true
	$(BIN)/dagster dev -h 127.0.0.1 -p $(PORT) -w dagster_home/workspace.yaml

report: $(STAMP)  ## the static HTML report from the DuckDB catalog: warehouse/report/index.html
	$(BIN)/reprolab report

mlflow-ui: $(STAMP)  ## the MLflow UI on the warehouse's tracking store
	$(BIN)/reprolab mlflow-ui

lint: $(STAMP)
	$(BIN)/ruff check .

benchmark: $(STAMP)  ## training throughput: the project's trainer vs a minimal GPT
	$(BIN)/python benchmarks/train_throughput.py

clean:  ## remove generated data and run state (keeps .venv)
	rm -rf warehouse dagster_home/storage dagster_home/history dagster_home/schedules dagster_home/logs dagster_home/.logs_queue dagster_home/.nux dagster_home/.telemetry

.PHONY: gpu-check
gpu-check:  ## every study's science on CUDA for a few steps, one table (ARGS="--device cpu --quick": a CPU smoke run)
	PYTHONUNBUFFERED=1 $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) benchmarks/gpu_check.py $(ARGS)
