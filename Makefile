# The two commands of the README: `make repro` (the experiment) and `make test` (the suite).
# Both create .venv if it is missing and install the project into it, torch first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
TORCH_VERSION ?= 2.13.0
# the torchvision release built against TORCH_VERSION (torchvision pins its torch exactly)
TORCHVISION_VERSION ?= 0.28.0
# Without an NVIDIA driver, take torch's CPU build instead of PyPI's multi-GB CUDA one.
# Override with TORCH_INDEX= (empty) or another wheel index.
TORCH_INDEX ?= $(if $(shell command -v nvidia-smi 2>/dev/null),,https://download.pytorch.org/whl/cpu)

# Stage commands call `python` and `dvc`: the venv's.
export PATH := $(BIN):$(PATH)

.PHONY: install repro demo show status mini-zoo mini-builds test test-fast bench bench-gpu wheelhouse clean-venv

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch alone from its index (--no-deps: its dependencies come from PyPI in the next step)
	$(BIN)/python -c "import torch" 2>/dev/null || \
	  $(BIN)/python -m pip install --no-deps "torch==$(TORCH_VERSION)" $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	# torchvision (the [torchvision] extra, in dev) the same way: the build made for that torch, from the same index
	$(BIN)/python -c "import torchvision" 2>/dev/null || \
	  $(BIN)/python -m pip install --no-deps "torchvision==$(TORCHVISION_VERSION)" $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

## make repro: run the whole pipeline (dvc repro); see docs/performance.md for time and disk. Ends with a
## one-line summary: stages run / restored from the run cache / up to date, time, headline rho.
repro: install
	python tools/run.py repro

## make demo: the same pipeline on the project's own mini-Taskonomy zoo (offline, CPU, a few minutes):
## `dvc exp run -S zoo=mini -S reference.n_images=100 -S reference.image_size=64` (100 rendered reference
## scenes at the mini encoders' 64 px). `make demo DEMO_ZOO=mini_random` runs the untrained control.
## Leaves params.yaml byte for byte as it was: the settings are the experiment's (`make show`), the
## results the workspace's (`dvc metrics show`, `dvc plots show`); docs/pipeline.md says more.
DEMO_ZOO ?= mini
demo: install
	python tools/run.py demo $(DEMO_ZOO)

## make status: what `dvc status` says of the main pipeline, in a few lines (stages never run, counted;
## changed stages and why), after the settings stage has looked at params and code
status: install
	python tools/run.py status

## make show: experiments side by side, never in a pager: the params that differ between them and the
## headline metrics (every metric named mean_rho: each method's per table, the noise ceiling's, shown even
## where equal), one row each, one column per experiment (tools/run.py show; the rest: dvc metrics show)
show: install
	python tools/run.py show

## make mini-zoo: rebuild the mini-Taskonomy zoo and its tables (mini/dvc.yaml; about 2 h on one core with three
## readout replicates),
## then publish its tables and encoder manifest where the main pipeline reads them
## (data/mini/tables, data/manifests/mini_encoders.json). Only this publishes: `dvc repro` never rebuilds the zoo.
mini-zoo: install
	dvc repro mini/dvc.yaml
	rm -rf data/mini/tables/readouts
	cp -r data/mini/build/tables/. data/mini/tables/
	cp data/mini/build/mini_encoders.json data/manifests/mini_encoders.json

## make mini-builds: the demo on each committed build of the mini zoo (mini.build 0, 1, 2; about 8 min each),
## then metrics/mini_builds.json: each build's methods table, Kendall's W across builds (tools/mini_builds.py)
mini-builds: install
	python tools/mini_builds.py run
	python tools/mini_builds.py report

## make test: the whole test suite, the slow tier (subprocess, dvc and pipeline tests) included
test: install
	python -m pytest -ra

## make test-fast: the unit tests of every module, in process (-m "not slow": no subprocess, dvc or pipeline
## test; tests/conftest.py fails one that starts a process): about a minute on 2 cores (docs/testing.md)
test-fast: install
	python -m pytest -ra -m "not slow"

## make bench: field throughput, affinity memory, precision and sketch effects, the field stage's peak
## memory at two N and the 17-field affinity time (CPU: ~10 min; not in make test)
bench: install
	python benchmarks/performance.py

## make bench-gpu: the same on CUDA plus one real-size field per precision through the field stage
## and the 17-field affinity (<= 6 min on one H200); writes benchmarks/results-cuda.json
bench-gpu: install
	python benchmarks/performance.py --device cuda --full

## make wheelhouse: visualpriors as a wheel (PyPI has no wheel of it) in wheelhouse/, to carry to
## a GPU machine without network: pip install --no-index --no-deps --find-links wheelhouse visualpriors
wheelhouse: install
	python -m pip wheel visualpriors --no-deps -w wheelhouse

clean-venv:
	rm -rf $(VENV)
