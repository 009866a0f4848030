# Two commands matter: `make reproduce-mini` (set up + run the main job on CPU) and `make test`.
PYTHON ?= python3
PRESET ?= mini
RUNS ?= runs
REPORT ?= report
SEEDS ?= 41,42,43
PYTEST_WORKERS ?= 2
JOBS ?= 2
DESIGN ?= main

.PHONY: setup data base-image-offline image wheelhouse artifacts sweep falsify report \
        reproduce reproduce-mini reproduce-mini-extended test test-all test-docker bench-grader bench-method doctor clean

setup:  ## install the package and its pinned dependencies into the current Python
	$(PYTHON) -m pip install -q torch==2.13.0
	$(PYTHON) -m pip install -q -e '.[dev]'

data: setup  ## fetch (or reuse ../shared/data) the pinned LeetCode splits and verify hashes
	harness data

base-image-offline:  ## build the pinned base image from Debian packages (no registry needed)
	bash sandbox/image/build_base_offline.sh

wheelhouse:  ## download the hash-locked wheels the image installs offline
	bash sandbox/image/build_wheelhouse.sh

image: data wheelhouse  ## build the pinned grader image (uses the offline base if the pinned one cannot be pulled)
	bash sandbox/image/build_image.sh

artifacts: data  ## base model, tokenizer, teacher pool and V files for $(PRESET)
	harness build-base --preset $(PRESET)
	harness build-pool --preset $(PRESET)
	harness extract --preset $(PRESET)

sweep:  ## DESIGN=main (the preregistered matrix) | ablations | lomo (harness.designs)
	harness sweep --design $(DESIGN) --preset $(PRESET) --out $(RUNS) --seeds $(SEEDS) --jobs $(JOBS)

falsify:
	harness falsify --runs $(RUNS) --preset $(PRESET) --out $(REPORT)

report:
	harness report --runs $(RUNS) --preset $(PRESET) --out $(REPORT)

# The image is built after the artifacts so that it carries the frozen teacher pool.
reproduce-mini:  ## CPU: everything, preset mini, all arms x 3 seeds, then the verdicts (Docker optional)
	$(MAKE) setup data
	$(MAKE) artifacts PRESET=mini
	-$(MAKE) image
	$(MAKE) sweep falsify report PRESET=mini

reproduce-mini-extended:  ## reproduce-mini, then the ablation and leave-one-mode-out designs and the report again
	$(MAKE) reproduce-mini
	$(MAKE) sweep PRESET=mini DESIGN=ablations
	$(MAKE) sweep PRESET=mini DESIGN=lomo
	$(MAKE) report PRESET=mini

reproduce:  ## one GPU machine with Docker: the same with preset full
	$(MAKE) setup data
	$(MAKE) artifacts PRESET=full
	$(MAKE) image
	$(MAKE) sweep falsify report PRESET=full

test:  ## the README's test command
	$(PYTHON) -m pytest -n $(PYTEST_WORKERS) -q

test-docker:  ## the docker-marked tests only, slow ones included (needs a daemon and `make image`)
	$(PYTHON) -m pytest -n $(PYTEST_WORKERS) -q -rs -m docker

test-all:  ## includes slow tests
	$(PYTHON) -m pytest -n $(PYTEST_WORKERS) -q -m ''

bench-grader:
	$(PYTHON) -m sandbox.bench

bench-method:
	$(PYTHON) -m harness.bench_method

doctor:
	harness doctor

clean:
	rm -rf $(RUNS) $(REPORT) .pytest_cache
