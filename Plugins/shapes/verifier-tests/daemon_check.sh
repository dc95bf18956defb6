#!/bin/sh
# End-to-end check of the shapes verifiers inside assayd on a private D-Bus bus.
#
#   Plugins/shapes/verifier-tests/daemon_check.sh [ASSAYD] [PLUGIN_BUILD_DIR]
#     ASSAYD            default .build-verifiers/debug/assayd
#                       (swift build --scratch-path .build-verifiers --product assayd)
#     PLUGIN_BUILD_DIR  default build/plugins (make -C Plugins)
#
# Copies shapes-checker/-quality/-reflector + example-model + example-sampler into a
# private plugin folder, starts dbus-daemon and assayd on a private bus, then checks with
# busctl that: ListPlugins shows the five loaded; a best-of-n job with verifier
# shapes-quality on "a red disk" finishes "done" with a score in [0, 1]; the same job with
# shapes-checker fails and its Error carries the checker's reason (unknown word "disk").
# Prints one line per check and "N passed, M failed"; exit status 1 on a failure.
set -u
ASSAYD=${1:-.build-verifiers/debug/assayd}
SRC=${2:-build/plugins}
TMP=$(mktemp -d /tmp/shv-daemon.XXXXXX)
mkdir -p "$TMP/plugins" "$TMP/state"
for p in shapes-checker shapes-quality shapes-reflector example-model example-sampler; do
   cp "$SRC/$p.so" "$TMP/plugins/" || exit 1
done
ADDR="unix:path=$TMP/bus"
dbus-daemon --session --nofork --address="$ADDR" >"$TMP/dbus.log" 2>&1 &
DBUS_PID=$!
DAEMON_PID=
cleanup() {
   [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null
   kill "$DBUS_PID" 2>/dev/null
   wait 2>/dev/null
   rm -rf "$TMP"
}
trap cleanup EXIT
i=0
while [ ! -S "$TMP/bus" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
"$ASSAYD" --address "$ADDR" --plugin-dir "$TMP/plugins" --state-dir "$TMP/state" \
   >"$TMP/assayd.log" 2>&1 &
DAEMON_PID=$!
B="busctl --address=$ADDR --no-pager"
i=0
until $B status io.assay.Assay1 >/dev/null 2>&1 || [ $i -ge 100 ]; do sleep 0.2; i=$((i + 1)); done

PASSED=0
FAILED=0
check() { # check CONDITION_EXIT_STATUS MESSAGE
   if [ "$1" -eq 0 ]; then PASSED=$((PASSED + 1)); echo "ok   $2"; else FAILED=$((FAILED + 1)); echo "FAIL $2"; fi
}

PLUGINS=$($B --json=short call io.assay.Assay1 /io/assay/Assay1 io.assay.Manager1 ListPlugins)
for id in shapes-checker shapes-quality shapes-reflector example-model; do
   echo "$PLUGINS" | python3 -c "
import json, sys
d = json.load(sys.stdin)['data'][0]
ok = any(p['id']['data'] == '$id' and p['state']['data'] == 'loaded' for p in d)
sys.exit(0 if ok else 1)"
   check $? "ListPlugins: $id loaded"
done

submit() { # submit PROMPT VERIFIER -> job path
   $B call io.assay.Assay1 /io/assay/Assay1 io.assay.Manager1 Submit 'sa{sv}' "$1" 4 \
      strategy s best-of-n model s example-model verifiers as 1 "$2" n u 4 |
      awk '{print $2}' | tr -d '"'
}
wait_job() { # wait_job PATH -> final state
   i=0
   while [ $i -lt 150 ]; do
      s=$($B get-property io.assay.Assay1 "$1" io.assay.Job1 State | awk '{print $2}' | tr -d '"')
      case "$s" in done|failed|cancelled) echo "$s"; return;; esac
      sleep 0.2
      i=$((i + 1))
   done
   echo timeout
}

JOB=$(submit "a red disk" shapes-quality)
STATE=$(wait_job "$JOB")
SCORE=$($B get-property io.assay.Assay1 "$JOB" io.assay.Job1 BestScore | awk '{print $2}')
[ "$STATE" = done ] && python3 -c "import sys; s=float('$SCORE'); sys.exit(0 if 0 <= s <= 1 else 1)"
check $? "best-of-n with shapes-quality on \"a red disk\": state $STATE, best score $SCORE"

JOB=$(submit "a red disk" shapes-checker)
STATE=$(wait_job "$JOB")
ERROR=$($B get-property io.assay.Assay1 "$JOB" io.assay.Job1 Error)
[ "$STATE" = failed ] && echo "$ERROR" | grep -q 'unknown word \\"disk\\"; shapes are circle, square, triangle'
check $? "shapes-checker refuses \"a red disk\": state $STATE, Error $ERROR"

JOB=$(submit "a red circle" shapes-checker)
STATE=$(wait_job "$JOB")
[ "$STATE" = done ]
check $? "shapes-checker scores example-model images for \"a red circle\": state $STATE"

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
