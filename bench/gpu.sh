#!/usr/bin/env bash
# The GPU check in the current Python environment: bench/gpu.py with its arguments ("$@").
# `nox -s gpu` builds an environment with the CUDA builds first; this script installs nothing, so on a CUDA
# machine its torch and jax must already be CUDA builds (bench/gpu.py's probe says which engine sees CUDA).
# Without a GPU it runs the dry run: the same code on the CPU at tiny sizes, and exits 0 when that passes.
set -euo pipefail
cd "$(dirname "$0")/.."
require=()
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    require=(--require-cuda)  # a GPU is here: a run in which no engine sees it is a failure, not a dry run
else
    echo "gpu.sh: no nvidia-smi here: no CUDA device; bench/gpu.py will skip every CUDA part and run its dry run"
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
exec "${PYTHON:-python}" bench/gpu.py ${require[@]+"${require[@]}"} "$@"
