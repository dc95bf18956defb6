#!/usr/bin/env bash
# End-to-end demo: a private bus, the daemon, best-of-N over D-Bus, the result PNG.
# Usage: scripts/demo.sh BIN_DIR   (make demo passes the release build's bin path)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-.build/release}
OUT=${DEMO_OUT:-demo-output}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)   # absolute: the daemon does not share our working directory
exec dbus-run-session -- bash -c '
set -euo pipefail
BIN="$1"; OUT="$2"
"$BIN/assayd" --plugin-dir "$PWD/build/plugins" --state-dir "$OUT/state" --log-level warning &
DAEMON=$!
trap "kill $DAEMON 2>/dev/null || true" EXIT
for _ in $(seq 100); do busctl --user status io.assay.Assay1 >/dev/null 2>&1 && break; sleep 0.05; done
"$BIN/assayctl" plugins
PROMPT=${DEMO_PROMPT:-"a red circle left of a blue square"}
# The same seed: candidate 0 of best-of-8 is exactly the single sample, so the
# comparison shows what searching seven more noises buys.
"$BIN/assayctl" generate "$PROMPT" --strategy single --seed 7 --out "$OUT/single.png"
"$BIN/assayctl" generate "$PROMPT" --strategy best-of-n -n 8 --seed 7 --out "$OUT/best-of-8.png" --contact-sheet "$OUT/candidates.png"
echo "demo: results in $OUT/"
' demo "$BIN" "$OUT"
