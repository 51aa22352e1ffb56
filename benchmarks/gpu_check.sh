#!/usr/bin/env bash
# GPU readiness in one go (make gpu-check), about 5-8 minutes on one H100 / H200:
#   1. fails at once, in one line, when there is no NVIDIA GPU;
#   2. a CUDA build of torch: the project venv's own when it has one, else a separate venv
#      (GPU_VENV, default .venv-gpu) with requirements.lock's torch version from the CUDA wheel
#      index TORCH_CUDA_INDEX (default cu128) or a local wheel folder (TORCH_FIND_LINKS);
#   3. the CUDA-marked tests (pytest -m cuda);
#   4. benchmarks/gpu_check.py: 500 full-size THUMOS14 training iterations with the features on
#      the GPU (float32 and bf16) and the whole test set (inference + proposals + mAP), printed
#      as one table with % of the GPU's bf16 peak.
set -euo pipefail
cd "$(dirname "$0")/.."
export DO_NOT_TRACK=true KEDRO_DISABLE_TELEMETRY=true MLFLOW_DISABLE_TELEMETRY=true

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu-check: error: no NVIDIA GPU on this machine (nvidia-smi missing or finds no device)" >&2
    exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

PYTHON=.venv/bin/python
if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.version.cuda else 1)' 2>/dev/null; then
    GPU_VENV=${GPU_VENV:-.venv-gpu}
    PYTHON=$GPU_VENV/bin/python
    if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
        echo "gpu-check: installing the CUDA build of torch into $GPU_VENV"
        python3.11 -m venv "$GPU_VENV"
        "$PYTHON" -m pip install -q uv==0.13.9
        TORCH_VERSION=$(sed -n 's/^torch==\([0-9.]*\).*/\1/p' requirements.lock)
        # requirements.lock pins the CPU build (+cpu); the CUDA wheel carries another local tag.
        sed 's/^torch==.*/torch=='"$TORCH_VERSION"'/' requirements.lock > "$GPU_VENV/requirements-cuda.txt"
        if [ -n "${TORCH_FIND_LINKS:-}" ]; then
            SOURCE=(--find-links "$TORCH_FIND_LINKS")
        else
            SOURCE=(--extra-index-url "${TORCH_CUDA_INDEX:-https://download.pytorch.org/whl/cu128}"
                    --index-strategy unsafe-best-match)
        fi
        "$GPU_VENV/bin/uv" pip install -q --python "$PYTHON" "${SOURCE[@]}" -r "$GPU_VENV/requirements-cuda.txt" || {
            echo "gpu-check: error: could not install torch==$TORCH_VERSION with CUDA (set TORCH_CUDA_INDEX or TORCH_FIND_LINKS)" >&2
            exit 3
        }
        "$GPU_VENV/bin/uv" pip install -q --python "$PYTHON" --no-deps -e .
    fi
fi
"$PYTHON" -c 'import sys, torch
ok = torch.cuda.is_available()
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, GPU: {torch.cuda.get_device_name(0) if ok else None}")
sys.exit(0 if ok else 1)' || {
    echo "gpu-check: error: $PYTHON has torch without a usable CUDA device" >&2
    exit 3
}

echo "== CUDA-marked tests"
"$PYTHON" -m pytest -q -p no:cacheprovider -m cuda tests

echo "== full-size timings"
"$PYTHON" benchmarks/gpu_check.py "$@"
