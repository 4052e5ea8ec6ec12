#!/bin/bash
# `python -m videoseg benchmark` over SLURM nodes x GPUs (issue 16): one torchrun per node, one
# process per GPU; each process runs its share of the expressions on the GPU of its LOCAL_RANK, and
# rank 0 waits for the others and scores the whole split once (the same numbers as one process).
#
#   sbatch --nodes 2 scripts/slurm_benchmark.sh \
#       --layout mevis --root /data/mevis --preset paper --out /shared/runs/mevis-paper --traces
#
# Everything after the script name goes to `benchmark` as is. Needs:
# - --out on a file system every node sees (the shards meet there: predictions, logs, shards/);
# - the weights on every node: download once (`hf download Qwen/Qwen2.5-VL-7B-Instruct` and `hf download
#   facebook/sam2.1-hiera-large`; XMem.pth into ~/.cache/videoseg/) and run with HF_HUB_OFFLINE=1,
#   or 16 processes fetch the same 17 GB at once;
# - per process, for the paper preset (Qwen2.5-VL-7B + SAM2.1-large + XMem, bf16): about 17 GB of GPU
#   memory for the weights (8.29 B + 0.22 B + 0.06 B parameters, bench/architectures.py) plus the
#   activations of a prompt with 16-17 frames: plan on a 40 GB or larger GPU; the 3B presets fit a
#   24 GB one. These figures come from the parameter counts, not a measurement (no GPU was lent to
#   this project when they were written); `bash bench/device_models.sh` measures them.
# - host memory per process: the model is read from safetensors straight to the GPU, frames are
#   decoded per video (--frame-cache-mb, default 2048 MB of decoded frames): ~8 GB per process is
#   plenty, hence --mem-per-gpu below.
#
# Re-running the same sbatch line resumes: finished expressions are kept, only the missing ones run.
# A node lost mid-run: torchrun restarts the workers (--max-restarts) and they resume likewise.
#
# Without torchrun (one task per GPU, e.g. `srun --ntasks 16 --gpus-per-task 1`):
#   srun bash -c 'python -m videoseg benchmark --shard $SLURM_PROCID/$SLURM_NTASKS "$@"' _ ARGS...
# As a job array whose tasks do not run at the same time, then one merge:
#   sbatch --array 0-15 --gpus 1 --wrap 'python -m videoseg benchmark --shard $SLURM_ARRAY_TASK_ID/16 --no-wait ARGS...'
#   sbatch --dependency afterany:JOBID --wrap 'python -m videoseg benchmark --merge --out OUT'
#
#SBATCH --job-name=videoseg-benchmark
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --mem-per-gpu=32G
#SBATCH --time=24:00:00
#SBATCH --output=%x-%j.out

set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: sbatch [--nodes N] $0 --layout L --root DIR --preset P --out SHARED_DIR [benchmark options]" >&2
    exit 2
fi

GPUS_PER_NODE="${GPUS_PER_NODE:-${SLURM_GPUS_ON_NODE:-8}}"
NNODES="${SLURM_NNODES:-1}"
HEAD="$(scontrol show hostnames "${SLURM_JOB_NODELIST}" | head -n 1)"
PORT="${PORT:-29500}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-8}"  # frames decode and GrabCut / flow on CPU threads
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"    # weights were downloaded beforehand (see above)

# One torchrun per node; the c10d rendezvous on the first node gives every process its RANK.
srun --ntasks-per-node=1 torchrun \
    --nnodes "${NNODES}" \
    --nproc_per_node "${GPUS_PER_NODE}" \
    --rdzv_id "${SLURM_JOB_ID}" \
    --rdzv_backend c10d \
    --rdzv_endpoint "${HEAD}:${PORT}" \
    --max-restarts 2 \
    -m videoseg benchmark "$@"
