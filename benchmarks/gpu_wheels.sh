#!/usr/bin/env bash
# Downloads, on this machine, the wheels benchmarks/gpu_check.sh installs on the device machine
# (Python 3.12, x86_64, no network there): Keras, pydantic and what they need beyond its image.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip download --quiet --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 -d .wheels \
    "keras>=3.14" "pydantic>=2.6" namex optree annotated-types typing-inspection pydantic-core
ls -la .wheels
