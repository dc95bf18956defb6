#!/bin/sh
# Re-exports the engine test vectors from the current weights (run after the weights file
# changed, e.g. at the end of training), then runs the engine tests.
#   Plugins/shapes/tests/refresh_vectors.sh [WEIGHTS]
set -eu
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
WEIGHTS=${1:-$ROOT/Plugins/shapes/weights/shapes-base.safetensors}
OMP_NUM_THREADS=1 python3 "$ROOT/Plugins/shapes/tests/export_vectors.py" "$WEIGHTS" \
    "$ROOT/Plugins/shapes/weights/testvectors.safetensors"
make -s -C "$ROOT/Plugins" shapes-check
