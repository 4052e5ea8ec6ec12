#!/usr/bin/env bash
# Per-stage time and peak GPU memory of the paper's full-size models (Qwen2.5-VL 3B and 7B,
# SAM2.1-large, XMem) on a 10-second 854x480 clip, with random weights, on a GPU machine that reaches
# no network. The architectures come from bench/architectures.py; nothing is downloaded.
# Each VLM row is one model call as the pipeline makes it (K interval answers in ONE generate, M
# percentage answers in one, the difficulty rating, the reasoning at the profile's cap) with the
# figures of its model_call event: sequences, prompt and vision tokens, new tokens, the call's peak
# GPU memory (in the JSON rows: num_sequences, prompt_tokens, vision_tokens, new_tokens, truncated,
# call_peak_gpu_mb). The "vlm load" row is the cold-start load time; "xmem (N fr)" gives XMem frames/s.
#
# The lent machine's image has torch, transformers and opencv but no PyAV. Before the call, on a machine
# with PyPI (from the repository root):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl av==18.1.0
# then run this script there with `.whl` carried:  bash bench/device_models.sh
# Figures land in $OUT (or ./bench-out) as one JSON file per model size, and in the printed tables.
set -euo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
out=${OUT:-bench-out}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 bench/bench_models.py --random-weights --vlm Qwen/Qwen2.5-VL-3B-Instruct \
    --sam2 facebook/sam2.1-hiera-large --json "$out/qwen3b_sam2l.json"
python3 bench/bench_models.py --random-weights --vlm Qwen/Qwen2.5-VL-7B-Instruct \
    --sam2 facebook/sam2.1-hiera-large --json "$out/qwen7b_sam2l.json"
