#!/usr/bin/env bash
# Time the engine like bisenet-bench: 5000 iterations end to end (host input -> host labels, the
# in-graph resize included) and device compute time, at maximum, locked clocks.
#
#   ./bench.sh                      sets nvpmodel -m 0 (MAXN) and jetson_clocks with sudo, times
#                                   5000 iterations, restores the previous mode and clocks
#   ./bench.sh --no-clocks          leave power mode and clocks as they are (no sudo)
#   ./bench.sh --iters 1000 --engine engines/MODEL-fp32.engine --zero-copy   (passed through)
#
# The report lands in benchmarks/<engine>-<date>.json; the power mode is recorded in it.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV_DIR="${VENV_DIR:-$HERE/.venv}"
VPY="$VENV_DIR/bin/python"
# numpy's aarch64 OpenBLAS misdetects some Jetson CPUs ("Illegal instruction"); ARMV8 is safe
export OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE:-ARMV8}"
NVPMODEL="${NVPMODEL:-nvpmodel}"
JETSON_CLOCKS="${JETSON_CLOCKS:-jetson_clocks}"
SUDO="${SUDO-sudo}"

SET_CLOCKS=1
ARGS=()
for arg in "$@"; do
    case "$arg" in
        --no-clocks) SET_CLOCKS=0 ;;
        -h|--help) usage; [[ -x "$VPY" ]] && "$VPY" "$HERE/jetson_run.py" bench --help; exit 0 ;;
        *) ARGS+=("$arg") ;;
    esac
done
if [[ ! -x "$VPY" ]]; then
    echo "bench.sh: $VENV_DIR does not exist: run ./setup_jetson.sh and ./build_engine.sh first" >&2
    exit 1
fi

PREV_MODE=""
CLOCKS_FILE=""
restore() {
    local rc=$?
    if [[ -n "$PREV_MODE" ]]; then
        echo "== restoring power mode $PREV_MODE (sudo $NVPMODEL -m $PREV_MODE)"
        $SUDO "$NVPMODEL" -m "$PREV_MODE" || echo "bench.sh: could not restore the power mode: run sudo $NVPMODEL -m $PREV_MODE" >&2
    fi
    if [[ -n "$CLOCKS_FILE" ]]; then
        echo "== restoring the clocks saved before the run (sudo $JETSON_CLOCKS --restore)"
        $SUDO "$JETSON_CLOCKS" --restore "$CLOCKS_FILE" || echo "bench.sh: could not restore the clocks: reboot to reset them" >&2
        rm -f "$CLOCKS_FILE"
    fi
    exit "$rc"
}

if [[ "$SET_CLOCKS" == 1 ]]; then
    if ! command -v "$NVPMODEL" >/dev/null 2>&1; then
        echo "bench.sh: $NVPMODEL not found: not a Jetson? Run with --no-clocks to time anyway" >&2
        exit 1
    fi
    # `nvpmodel -q` prints "NV Power Mode: <NAME>" then the mode number on the last line
    query="$($SUDO "$NVPMODEL" -q 2>/dev/null || true)"
    PREV_MODE="$(printf '%s\n' "$query" | grep -E '^[0-9]+$' | tail -n 1 || true)"
    PREV_NAME="$(printf '%s\n' "$query" | sed -n 's/^NV Power Mode: *//p' | head -n 1)"
    if [[ -z "$PREV_MODE" ]]; then
        echo "bench.sh: cannot read the current power mode from '$NVPMODEL -q'; run with --no-clocks" >&2
        exit 1
    fi
    echo "== current power mode: $PREV_MODE ${PREV_NAME:+($PREV_NAME)}; it is restored when the benchmark ends"
    trap restore EXIT
    trap 'exit 130' INT TERM
    echo "== saving the current clocks (sudo $JETSON_CLOCKS --store)"
    stored="$(mktemp /tmp/bisenet_clocks.XXXXXX)"
    if ! $SUDO "$JETSON_CLOCKS" --store "$stored"; then
        rm -f "$stored"
        echo "bench.sh: '$JETSON_CLOCKS --store' failed, so the clocks could not be restored afterwards; nothing was changed. Run with --no-clocks to time anyway" >&2
        exit 1
    fi
    CLOCKS_FILE="$stored"
    echo "== setting power mode 0, MAXN (sudo $NVPMODEL -m 0)"
    $SUDO "$NVPMODEL" -m 0
    echo "== locking clocks at their maximum (sudo $JETSON_CLOCKS)"
    $SUDO "$JETSON_CLOCKS"
    export BISENET_NVPMODEL="0 (MAXN), previous: $PREV_MODE ${PREV_NAME:+($PREV_NAME)}"
    export BISENET_JETSON_CLOCKS="locked (jetson_clocks)"
else
    echo "== --no-clocks: power mode and clocks left as they are (timings may vary)"
    export BISENET_JETSON_CLOCKS="not locked (--no-clocks)"
fi

# not `exec`: the EXIT trap must run after the benchmark to restore the clocks
"$VPY" "$HERE/jetson_run.py" bench ${ARGS[@]+"${ARGS[@]}"}
