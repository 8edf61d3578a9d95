#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py): bf16 master weights on CUDA, a 2-step bf16 GRPO, SFT tokens/s and MFU of
# the Qwen2-VL-2B architecture padded vs padding-free. One call on a lent GPU machine; a CPU rehearsal first.
#
#   bench/gpu_check.sh --fetch-wheels   # here: the packages the GPU machine lacks, as Python 3.12 wheels in .whl/
#   bench/gpu_check.sh --dry            # here: the same steps on the CPU with the dev venv (fp32, tiny shapes)
#   bench/gpu_check.sh                  # there (carry .whl): install the wheels, run the checks, results in $OUT
#
# The GPU machine (no network) has torch 2.11 and transformers 5.17. The wheels bring transformers 5.19 (the
# sft and grpo images' version), TRL, datasets and jsonschema. torch stays 2.11, older than any image's
# (2.12.1-2.14.1): the version check of the start-up checks is waived for this run and the waiver is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=(trl==1.16.0 transformers==5.19.0 huggingface_hub==2.4.0 tokenizers==0.23.3 datasets==5.2.0 dill==0.4.1
        multiprocess==0.70.19 jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0
        rpds-py==2026.9.1)

case "${1:-}" in
  --fetch-wheels)
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "${WHEELS[@]}"
    du -sh .whl
    ;;
  --dry)
    .venv/bin/python bench/gpu_check.py --dry --out "${OUT:-/tmp/gpu-check-dry}"
    ;;
  "")
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD" TINYRS_WAIVE_CHECKS=packages PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 bench/gpu_check.py --out "${OUT:-/tmp/gpu-check}"
    ;;
  *)
    echo "usage: bench/gpu_check.sh [--fetch-wheels | --dry]" >&2
    exit 2
    ;;
esac
