#!/usr/bin/env bash
# The GPU check, as one prepared script for a lent device machine (see benchmarks/gpu_check.py).
# Its image has JAX with CUDA, pandas, matplotlib, scikit-learn, typer, rich, PyYAML and pyarrow,
# but no TensorFlow, Keras or pydantic: those come as wheels that benchmarks/gpu_wheels.sh
# downloads here into .wheels/ (git-ignored; name it in the device call's `carry`).
#   device run: bash benchmarks/gpu_check.sh      (carry: [".wheels"], timeout_s: 480)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
OUT=${OUT:-$PWD/gpu_check_out}
"$PY" -m pip install --quiet --no-index --find-links .wheels keras pydantic 2>&1 | tail -3 || true
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" KERAS_BACKEND=jax MPLBACKEND=Agg
"$PY" -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
timeout 450 "$PY" benchmarks/gpu_check.py --out "$OUT" "$@"
