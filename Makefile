# Two commands matter: `make reproduce-mini` (set up + run the main job on CPU) and `make test`.
# Everything runs in the project's own environment, .venv, installed by `make setup` from a hash lock.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
HARNESS := $(VENV)/bin/harness
PRESET ?= mini
RUNS ?= runs
REPORT ?= report
SEEDS ?= 41,42,43
PYTEST_WORKERS ?= 2
JOBS ?= 2
DESIGN ?= main
SETUP ?= lock

.PHONY: setup lock data base-image-offline image wheelhouse artifacts sweep falsify report \
        reproduce reproduce-mini reproduce-mini-extended reproduce-smoke reproduce-cpu test test-all test-docker \
        bench-grader bench-method bench-step gpu-check gpu-check-cpu doctor clean

setup:  ## create .venv and install requirements/{cpu,cuda}.lock into it (+ bubblewrap when root); SETUP=existing VENV=DIR accepts an environment as it is
	VENV=$(VENV) SETUP=$(SETUP) bash scripts/setup.sh

lock:  ## regenerate requirements/{cpu,cuda}.lock (exact versions + sha256) from pyproject.toml
	test -x $(VENV)/bin/uv || $(PYTHON) -m pip install -q uv
	UV=$(VENV)/bin/uv bash scripts/lock.sh

data: setup  ## fetch (or reuse ../shared/data) the pinned LeetCode splits and verify hashes
	$(HARNESS) data

base-image-offline:  ## build the pinned base image from Debian packages (no registry needed)
	bash sandbox/image/build_base_offline.sh

wheelhouse:  ## download the hash-locked wheels the image installs offline
	PYTHON=$(PYTHON) bash sandbox/image/build_wheelhouse.sh

image: data wheelhouse  ## build the pinned grader image (uses the offline base if the pinned one cannot be pulled)
	PYTHON=$(PYTHON) bash sandbox/image/build_image.sh

artifacts: data  ## base model, tokenizer, teacher pool and V files for $(PRESET)
	$(HARNESS) build-base --preset $(PRESET)
	$(HARNESS) build-pool --preset $(PRESET)
	$(HARNESS) extract --preset $(PRESET)

sweep:  ## DESIGN=main (the preregistered matrix) | ablations | lomo (harness.orchestrate.designs)
	$(HARNESS) sweep --design $(DESIGN) --preset $(PRESET) --out $(RUNS) --seeds $(SEEDS) --jobs $(JOBS)

falsify:
	$(HARNESS) falsify --runs $(RUNS) --preset $(PRESET) --out $(REPORT)

report:
	$(HARNESS) report --runs $(RUNS) --preset $(PRESET) --out $(REPORT)

reproduce-mini:  ## CPU: everything, preset mini, all arms x 3 seeds, then the verdicts (Docker optional)
	$(MAKE) reproduce-cpu PRESET=mini

reproduce-smoke:  ## the same pipeline at preset smoke (minutes; proves the set-up on a fresh machine)
	$(MAKE) reproduce-cpu PRESET=smoke

# The image is built after the artifacts so that it carries the frozen teacher pool. Without Docker the
# process grader (bubblewrap) grades.
reproduce-cpu:
	$(MAKE) setup data
	$(MAKE) artifacts PRESET=$(PRESET)
	-$(MAKE) image
	$(MAKE) sweep falsify report PRESET=$(PRESET)

reproduce-mini-extended:  ## reproduce-mini, then the ablation and leave-one-mode-out designs and the report again
	$(MAKE) reproduce-mini
	$(MAKE) sweep PRESET=mini DESIGN=ablations
	$(MAKE) sweep PRESET=mini DESIGN=lomo
	$(MAKE) report PRESET=mini

# Offline-capable: SETUP=existing VENV=<the machine's environment> uses what is installed; without Docker (or a
# registry for the base image) the image step fails and the process grader (bubblewrap) grades, as on CPU.
reproduce:  ## one GPU machine: the same with preset full (PRESET=full_rt: the benchmark's run_tests-only loophole)
	$(MAKE) reproduce-cpu PRESET=$(if $(filter full full_rt,$(PRESET)),$(PRESET),full)

test:  ## the README's test command
	$(PYTHON) -m pytest -n $(PYTEST_WORKERS) -q

test-docker:  ## the docker-marked tests only, slow ones included (needs a daemon and `make image`)
	$(PYTHON) -m pytest -n $(PYTEST_WORKERS) -q -rs -m docker

test-all:  ## includes slow tests
	$(PYTHON) -m pytest -n $(PYTEST_WORKERS) -q -m ''

bench-grader:
	$(PYTHON) -m harness.checks.bench_grader

bench-method:
	$(PYTHON) -m harness.checks.bench_method

bench-step:  ## per-phase s/step, per-row vs shared path (mini + shrunk Qwen3-4B), 5 rounds: medians, ratios, their range
	$(PYTHON) -m harness.checks.bench_step

# The GPU check runs on whatever a GPU machine has: the project's .venv where one exists, else that machine's own
# python3 with its CUDA torch (CHECK_PYTHON=... to choose). Offline: tracked files only, no hub, no data files.
CHECK_PYTHON ?= $(if $(wildcard $(PYTHON)),$(PYTHON),python3)

gpu-check:  ## one GPU, offline, ~10 min (a 15-min window): a random-init Qwen3-4B through full's code path, by parts
	HF_HUB_OFFLINE=1 $(CHECK_PYTHON) -m harness.checks.gpu_check

gpu-check-cpu:  ## the same code on Qwen3-4B's architecture shrunk to 2 layers, on CPU (CI)
	HF_HUB_OFFLINE=1 $(CHECK_PYTHON) -m harness.checks.gpu_check --cpu

doctor:
	$(HARNESS) doctor

clean:
	rm -rf $(RUNS) $(REPORT) .pytest_cache
