# One command each: `make demo` runs the whole pipeline on the demo world (`make demo RECIPE=geovlm-r1`: the
# GeoVLM-R1 recipe on its own); `make test` runs the test suite.
# Both create .venv and install what they need (torch 2.14.1 + torchvision 0.29.1, then this project pinned
# by envs/cpu-constraints.txt); `make test` also builds the grpo, eval and eval-lmdeploy images' CPU test venvs.

VENV ?= .venv
PYTHON ?= python3
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.tinyrs-installed
export PATH := $(BIN):$(PATH)
# the CPU build of torch: threads = the machine's cores, no CUDA probing noise
export TOKENIZERS_PARALLELISM := false
export HF_HUB_OFFLINE := 1

.PHONY: demo test install clean-demo images mutation

install: $(STAMP)

$(STAMP): pyproject.toml envs/cpu-constraints.txt envs/sft.yaml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -c envs/cpu-constraints.txt -e '.[dev]' liger-kernel
	touch $(STAMP)

# RECIPE=geovlm-r1: that recipe on its own demo world (profiles/demo-geovlm-r1, outputs in work-demo-geovlm-r1/)
DEMO := demo$(if $(RECIPE),-$(RECIPE))

demo: $(STAMP)
	@test -d profiles/$(DEMO) || { echo "no demo profile profiles/$(DEMO) for RECIPE=$(RECIPE)"; exit 2; }
	$(BIN)/tinyrs run --profile profiles/$(DEMO)
	@cat work-$(DEMO)/report/results.md

# The whole suite in the development venv (= the sft image's pins), then each other image's pins in a CPU venv
# of its own (built once per content under ~/.cache/tinyrs/envs) running what that image's jobs run.
test: $(STAMP)
	$(BIN)/tinyrs images test
	$(BIN)/python -m pytest -q -ra

# Mutation testing of the scoring and reward code (bench/mutation.py, bench/README.md): minutes, not part of `make test`
mutation: $(STAMP)
	$(BIN)/python bench/mutation.py

# Apptainer images of the GPU stages from envs/*.yaml, digests into containers/images.lock.json (docs/cluster.md)
images: $(STAMP)
	$(BIN)/tinyrs images build

clean-demo:
	rm -rf work-$(DEMO)
