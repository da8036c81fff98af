# Two commands on a fresh machine (Python 3.11 + package registries):  make book  /  make test
# Each creates or reuses the virtual environment $(VENV) and installs the pinned requirements once.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
BOOT_PYTHON ?= $(shell command -v python3.11 || command -v python3)
STAMP := $(VENV)/.requirements-installed
ASSETS := book/_assets/vendor/VERSIONS.json

PROFILE ?= default
# extra papermill overrides for `make book` / `make chapter`, e.g. PARAMS="-p device cpu -p n_images 64"
PARAMS ?=
# extra pytest arguments, e.g. PYTEST_ARGS="tests/test_book.py -x"
PYTEST_ARGS ?=

# Offline real data (see README "Data"); override with ENERGY_DATA=/path.
ENERGY_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
ifneq ($(ENERGY_DATA),)
export ENERGY_DATA
endif
# Run store reused by `make book`; the tests use a temporary one (tests/conftest.py).
ENERGY_RUNS ?= $(CURDIR)/runs
# So that `python -m energy_lib` and the papermill kernels import the library from this checkout.
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))

# git remote whose gh-pages branch `make publish` pushes the book to
REMOTE ?= origin

.PHONY: help venv assets book chapter html test check-html publish bench reference sizing suite gpu-check paper lens mutation clean

help:
	@echo "make book     execute every chapter (PROFILE=$(PROFILE)) and build the HTML into _build/html"
	@echo "make test     run the test suite (unit tests, smoke chapters, strict build, Chromium check)"
	@echo "make chapter NB=book/01_attack_energies.ipynb [PROFILE=smoke] [PARAMS='-p device cpu']"
	@echo "make html     rebuild the HTML from the already executed chapters"
	@echo "make check-html  check the built book: clean build record, every page in headless Chromium"
	@echo "make publish [REMOTE=origin]  push _build/html to the remote's gh-pages branch (clean builds only)"
	@echo "make bench    training-throughput benchmark (reference loop vs energy_lib); record in runs/bench/"
	@echo "make sizing GRID=issue10  the default-profile sizing sweep; record in runs/sizing/ (hours of CPU)"
	@echo "make reference  train (or resume) the committed reference robust run in runs/reference/ (hours of CPU)"
	@echo "make suite [JOBS=2] [DRY_RUN=1]  train (or resume) the phenomena suite in runs/suite/ (core-hours)"
	@echo "make gpu-check  GPU preflight (~8 min): can this machine do make paper, and how long? record in runs/bench/"
	@echo "make paper    train+evaluate every method on every dataset (paper profile, GPU, resumable)"
	@echo "make lens MODEL=robustbench:ID|run:DIR|resnet18:FILE.pt|standard  HTML report of a model through the energy lens"
	@echo "              LAUNCHER=slurm PARTITION=gpu GPUS=1 TIME=1440: one requeueable cluster job per run"
	@echo "make mutation [JOBS=2] [MODULE=energy]  mutation score of the science and storage modules (mutmut; resumable; developer tool)"
	@echo "make clean    remove _build/ (not runs/ and not the venv)"

venv: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt
	@test -n "$(BOOT_PYTHON)" || { echo "error: python3.11 or python3 not found; install Python 3.11" >&2; exit 1; }
	test -x $(PY) || $(BOOT_PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -r requirements-nodeps.txt
	touch $@

assets: $(ASSETS)

$(ASSETS): tools/fetch_web_assets.py | $(STAMP)
	$(PY) tools/fetch_web_assets.py

book: $(STAMP) $(ASSETS)
	rm -rf _build/executed
	ENERGY_RUNS=$(ENERGY_RUNS) $(PY) tools/book.py execute --profile $(PROFILE) $(PARAMS)
	$(PY) tools/book.py build
	@echo "open _build/html/index.html"

chapter: $(STAMP)
	@test -n "$(NB)" || { echo "error: name the chapter, e.g. make chapter NB=book/01_attack_energies.ipynb" >&2; exit 1; }
	ENERGY_RUNS=$(ENERGY_RUNS) $(PY) tools/book.py execute --profile $(PROFILE) --only $(NB) $(PARAMS)

html: $(STAMP) $(ASSETS)
	$(PY) tools/book.py build

test: $(STAMP) $(ASSETS)
	$(PY) -m pytest $(PYTEST_ARGS)

# The built book in _build/html: no failed chapter and no build warning (the build record), then
# the Chromium check that `make test` runs on its own build (tools/check_html.py), on every page.
check-html: $(STAMP)
	$(PY) tools/publish.py --check
	$(PY) tools/check_html.py _build/html $$($(PY) tools/book.py pages)

# Reuses the last build if there is one (tools/publish.py refuses it if a chapter failed, the build
# had warnings or the HTML changed since), else builds the book first.
publish: $(STAMP)
	@test -f _build/build_record.json || $(MAKE) book
	$(PY) tools/publish.py --remote $(REMOTE)

# BENCH_ARGS e.g. "--model resnet18 --batch-size 512 --device cuda"
BENCH_ARGS ?=
bench: $(STAMP)
	ENERGY_RUNS=$(ENERGY_RUNS) $(PY) -m energy_lib.bench $(BENCH_ARGS)

# GPU preflight; GPU_CHECK_ARGS e.g. "--tiny --device cpu" (the code paths on a CPU) or "--make-data DIR"
GPU_CHECK_ARGS ?=
# the committed reference robust run (config.REFERENCE_TRAINING): all training images, hours on a
# CPU; resumable (Ctrl-C keeps the last epoch; rerun to go on). STOP_AFTER=N trains N epochs now.
reference: $(STAMP)
	$(PY) -m energy_lib reference $(if $(STOP_AFTER),--stop-after $(STOP_AFTER),)

# the default-profile sizing sweep (tools/size_default.py): GRID=default|subset|epochs|single_step|seeds|model|issue10
# or key=v1,v2; JOBS=N training processes (default one per core); record in runs/sizing/sizing.json
# (resumable; points already recorded are skipped)
GRID ?= default
sizing: $(STAMP)
	$(PY) tools/size_default.py --grid $(GRID) $(if $(JOBS),--jobs $(JOBS),)

# the phenomena suite (energy_lib.suite): probes, then the confirming runs the written rules choose;
# resumable, one nice'd single-thread process per JOBS; DRY_RUN=1 lists what is done and left (core-hours)
suite: $(STAMP)
	$(PY) tools/suite.py $(if $(DRY_RUN),--dry-run,) $(if $(JOBS),--jobs $(JOBS),)

gpu-check: $(STAMP)
	ENERGY_RUNS=$(ENERGY_RUNS) $(PY) tools/gpu_check.py $(GPU_CHECK_ARGS)

# The paper's WEAT/DER table: all methods x datasets, paper profile, GPU; resumable (rerun to continue).
# LAUNCHER: inline (here, one run after another), slurm (one submitit job per run: PARTITION, GPUS
# per job, TIME limit in minutes; jobs requeue themselves and resume from last.pt) or local.
SWEEP_ARGS ?=
LAUNCHER ?= inline
PARTITION ?=
GPUS ?= 1
TIME ?= 1440
paper: $(STAMP)
	ENERGY_RUNS=$(ENERGY_RUNS) $(PY) tools/paper_sweep.py --launcher $(LAUNCHER) --gpus $(GPUS) --time $(TIME) \
		$(if $(PARTITION),--partition $(PARTITION),) $(SWEEP_ARGS)

# One model through the energy lens, next to the standard ResNet-18: an HTML report (tools/lens_report.ipynb).
# MODEL: standard | robustbench:<ID> | run:<run dir> | <arch>:<checkpoint.pt>; PARAMS e.g. "-p n_images 1000 -p attacks paper"
# The values reach tools/lens_report.py in the environment, unexpanded ($(value ...)) and never inside
# shell text: a quote, `$(...)` or `;` in MODEL or PARAMS cannot break the recipe or run a command.
LENS_OUT ?= _build/lens
unexport MODEL PARAMS   # a variable given on the command line is exported, hence expanded: not these
lens: export LENS_MODEL = $(value MODEL)
lens: export LENS_PARAMS = $(value PARAMS)
lens: export LENS_OUT_DIR = $(value LENS_OUT)
lens: export LENS_PROFILE = $(value PROFILE)
lens: export ENERGY_RUNS := $(ENERGY_RUNS)
lens: $(STAMP)
	$(PY) tools/lens_report.py

# Mutation testing (tools/mutation.py): mutmut over each science and storage module with its fast tests
# (tools/mutation.py's SCOPES); resumable (mutants/<module>/ keeps every result; MODULE=energy for one);
# each complete module's score is appended to runs/mutation/score.json. A developer's tool, not a CI step.
DEV_STAMP := $(VENV)/.requirements-dev-installed
$(DEV_STAMP): requirements-dev.txt | $(STAMP)
	$(PY) -m pip install -r requirements-dev.txt
	touch $@

mutation: $(STAMP) $(DEV_STAMP)
	$(PY) tools/mutation.py $(if $(JOBS),--jobs $(JOBS),) $(foreach m,$(MODULE),--module $(m))

clean:
	rm -rf _build
