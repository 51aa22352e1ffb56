# co2net-pipeline: `make run` trains and evaluates on the embedded synthetic data, `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
export DO_NOT_TRACK := true
export KEDRO_DISABLE_TELEMETRY := true
export MLFLOW_DISABLE_TELEMETRY := true

# torch comes as the CPU build: from the local wheel folder pip is configured with when there is one,
# otherwise from the PyTorch CPU index. Never a CUDA build unless TORCH_INDEX says so.
FIND_LINKS := $(shell pip config get global.find-links 2>/dev/null || $(PYTHON) -m pip config get global.find-links 2>/dev/null)
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
ifneq ($(strip $(FIND_LINKS)),)
  TORCH_SOURCE := --find-links $(FIND_LINKS)
else
  TORCH_SOURCE := --extra-index-url $(TORCH_INDEX) --index-strategy unsafe-best-match
endif

.PHONY: setup run test bench lint lock viz clean-data airflow-dag rehearsal gpu-check seed-study

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found); set PYTHON=..."; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(UV): $(BIN)/python
	$(BIN)/python -m pip install -q uv==0.13.9

# Re-installs only when the lock or the project metadata changed.
$(VENV)/.installed: requirements.lock pyproject.toml | $(UV)
	$(UV) pip install --python $(BIN)/python $(TORCH_SOURCE) -r requirements.lock
	$(UV) pip install --python $(BIN)/python --no-deps -e .
	@touch $@

setup: $(VENV)/.installed

# The embedded SYNTHETIC feature set (parameters: conf/base/parameters_synthetic_data.yml).
data/01_raw/synthetic/Thumos14reduced-I3D-JOINTFeatures.npy: | setup
	$(BIN)/kedro run --pipelines=synthetic_data

run: setup data/01_raw/synthetic/Thumos14reduced-I3D-JOINTFeatures.npy
	$(BIN)/kedro run --pipelines=train_eval
	@$(BIN)/co2net summary

test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: setup
	$(BIN)/python benchmarks/run_all.py

# Full-width (2 x 1024) rehearsal of the real-feature path, stage by stage (time, peak RSS):
# synthetic W-TALC files -> ingestion -> training -> test-set inference -> proposals -> mAP.
# REHEARSAL_ARGS="--dataset thumos14" (default both; ActivityNet1.2 needs ~21 GB of disk).
rehearsal: setup
	$(BIN)/python benchmarks/rehearsal.py $(REHEARSAL_ARGS)

# GPU readiness: CUDA torch (separate venv), CUDA-marked tests, full-size THUMOS14 timings
# with % of the GPU's bf16 peak; <= 8 min on one H100/H200. Fails at once without a GPU.
gpu-check: setup
	bash benchmarks/gpu_check.sh $(GPU_CHECK_ARGS)

lint: setup
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports --no-cache  # layer contracts: pyproject.toml [tool.importlinter]

viz: setup
	$(BIN)/kedro viz run

# Airflow DAGs (conf/airflow/) in airflow_dags/: one independent train_eval run per seed / ablation.
# AIRFLOW_PARAMS overrides conf/airflow/airflow.yml: make airflow-dag AIRFLOW_PARAMS="seeds=1 2 3"
airflow-dag: setup
	$(BIN)/kedro airflow create --env airflow --pipelines train_eval_seeds,ablations \
		--jinja-file conf/airflow/dag_template.j2 --target-dir airflow_dags \
		$(if $(AIRFLOW_PARAMS),--params "$(AIRFLOW_PARAMS)")

# Regenerates requirements.lock from pyproject.toml (CPU torch).
lock: $(UV)
	$(UV) pip compile pyproject.toml --extra dev --extra orchestration $(TORCH_SOURCE) --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 -o requirements.lock

# train_eval over seeds and both batch streams, one table (README, "What `make run` measures"):
# make seed-study SEED_STUDY_ARGS="--seeds 3552 1 2 3 4 --jobs 2 --test-curve-every 200"
seed-study: setup
	$(BIN)/python benchmarks/seed_study.py $(SEED_STUDY_ARGS)
