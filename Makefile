# The two commands of the README: `make repro` (the experiment) and `make test` (the suite).
# Both create .venv if it is missing and install the project into it, torch first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
TORCH_VERSION ?= 2.13.0
# Without an NVIDIA driver, take torch's CPU build instead of PyPI's multi-GB CUDA one.
# Override with TORCH_INDEX= (empty) or another wheel index.
TORCH_INDEX ?= $(if $(shell command -v nvidia-smi 2>/dev/null),,https://download.pytorch.org/whl/cpu)

# Stage commands call `python` and `dvc`: the venv's.
export PATH := $(BIN):$(PATH)

.PHONY: install repro demo mini-zoo test test-fast bench bench-gpu wheelhouse clean-venv

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch alone from its index (--no-deps: its dependencies come from PyPI in the next step)
	$(BIN)/python -c "import torch" 2>/dev/null || \
	  $(BIN)/python -m pip install --no-deps "torch==$(TORCH_VERSION)" $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

## make repro: run the whole pipeline (dvc repro); see README for time and disk
repro: install
	dvc repro

## make demo: the same pipeline on the project's own mini-Taskonomy zoo (offline, CPU, a few minutes);
## leaves `zoo: mini` in params.yaml (`git checkout params.yaml` to go back)
demo: install
	dvc exp run -S zoo=mini
	dvc metrics show

## make mini-zoo: rebuild the mini-Taskonomy zoo and its tables (mini/dvc.yaml; about an hour on one core).
## Its last stage, `tables`, is frozen in mini/dvc.yaml so that the main pipeline never triggers a rebuild;
## this unfreezes it for the build and freezes it again, whatever the build's outcome.
mini-zoo: install
	sed -i 's/^    frozen: true$$/    frozen: false/' mini/dvc.yaml
	dvc repro mini/dvc.yaml; status=$$?; sed -i 's/^    frozen: false$$/    frozen: true/' mini/dvc.yaml; exit $$status

## make test: the whole test suite, the end-to-end `dvc repro` test included
test: install
	python -m pytest -ra

## make test-fast: the suite without the slow end-to-end pipeline tests
test-fast: install
	python -m pytest -ra -m "not slow"

## make bench: field throughput, affinity memory, precision and sketch effects, the field stage's peak
## memory at two N and the 17-field affinity time (CPU: ~10 min; not in make test)
bench: install
	python benchmarks/run.py

## make bench-gpu: the same on CUDA plus one real-size field per precision through the field stage
## and the 17-field affinity (<= 6 min on one H200); writes benchmarks/results-cuda.json
bench-gpu: install
	python benchmarks/run.py --device cuda --full

## make wheelhouse: visualpriors as a wheel (PyPI has no wheel of it) in wheelhouse/, to carry to
## a GPU machine without network: pip install --no-index --no-deps --find-links wheelhouse visualpriors
wheelhouse: install
	python -m pip wheel visualpriors --no-deps -w wheelhouse

clean-venv:
	rm -rf $(VENV)
