#!/bin/sh
# Re-exports the engine test vectors from the current weights (run after a weights file
# changed, e.g. at the end of training), then runs the engine tests.
#   Plugins/shapes/tests/refresh_vectors.sh [WEIGHTS [CORRECTOR_WEIGHTS]]
# The corrector's vectors (tools/corrector/export_vectors.py) are refreshed too when its
# weights exist.
set -eu
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
WEIGHTS=${1:-$ROOT/Plugins/shapes/weights/shapes-base.safetensors}
CORRECTOR=${2:-$ROOT/Plugins/shapes/weights/shapes-corrector.safetensors}
OMP_NUM_THREADS=1 python3 "$ROOT/Plugins/shapes/tests/export_vectors.py" "$WEIGHTS" \
    "$ROOT/Plugins/shapes/weights/testvectors.safetensors"
if [ -f "$CORRECTOR" ]; then
    OMP_NUM_THREADS=1 python3 "$ROOT/tools/corrector/export_vectors.py" "$CORRECTOR" \
        "$ROOT/Plugins/shapes/weights/corrector-testvectors.safetensors"
fi
make -s -C "$ROOT/Plugins" shapes-check
