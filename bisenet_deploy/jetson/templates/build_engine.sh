#!/usr/bin/env bash
# Build the TensorRT engine of this bundle ON THE JETSON (engines are not portable between GPUs
# or TensorRT versions), write its JSON sidecar, and compare its labels with the desktop's.
#
#   ./build_engine.sh                FP16 engine (the default: FP16 is full rate on the TX2)
#   ./build_engine.sh --fp32         FP32 engine
#   ./build_engine.sh --trtexec      build with /usr/src/tensorrt/bin/trtexec instead of our builder
#   ./build_engine.sh --force        replace an engine built before
#   Other options: ./build_engine.sh --help
#
# The engine lands in engines/<model>-<precision>.engine with engines/<model>-<precision>.json.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV_DIR="${VENV_DIR:-$HERE/.venv}"
VPY="$VENV_DIR/bin/python"
# numpy's aarch64 OpenBLAS misdetects some Jetson CPUs ("Illegal instruction"); ARMV8 is safe
export OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE:-ARMV8}"

if [[ ! -x "$VPY" ]]; then
    echo "build_engine.sh: $VENV_DIR does not exist: run ./setup_jetson.sh first" >&2
    exit 1
fi
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    usage
    exec "$VPY" "$HERE/jetson_run.py" build --help
fi

echo "== building the engine (takes several minutes on a TX2; the GPU is busy meanwhile)"
exec "$VPY" "$HERE/jetson_run.py" build "$@"
