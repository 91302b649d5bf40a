#!/usr/bin/env bash
# One-time setup of a bisenet-deploy bundle on a Jetson TX2 with JetPack 4.6.
#
#   ./setup_jetson.sh               check the device, then create .venv with pycuda 2022.1
#   ./setup_jetson.sh --check-only  only report what was found and what is wrong
#   ./setup_jetson.sh --recreate    delete .venv and make it again
#
# The venv is made with --system-site-packages so JetPack's TensorRT (and OpenCV), which live in
# the system python3's dist-packages, stay visible; numpy 1.19.4 is installed into it. pycuda has
# no wheel for the Jetson: it is built from source against /usr/local/cuda (CUDA 10.2); 2022.1 is
# the last pycuda line for Python 3.6.
# Environment overrides (for other layouts and for tests): PYTHON3, CUDA_ROOT, NV_TEGRA_RELEASE,
# VENV_DIR.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON3="${PYTHON3:-/usr/bin/python3}"
CUDA_ROOT="${CUDA_ROOT:-/usr/local/cuda}"
NV_TEGRA_RELEASE="${NV_TEGRA_RELEASE:-/etc/nv_tegra_release}"
VENV_DIR="${VENV_DIR:-$HERE/.venv}"
PYCUDA_SPEC="pycuda==2022.1"
# 1.19.4, not 1.19.5: the 1.19.5 aarch64 wheel's OpenBLAS dies with "Illegal instruction" on
# Jetsons (numpy issue 18131); OPENBLAS_CORETYPE=ARMV8 is the documented workaround for others
NUMPY_SPEC="numpy==1.19.4"
export OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE:-ARMV8}"
PIP_SPEC="pip<22"

CHECK_ONLY=0
RECREATE=0
for arg in "$@"; do
    case "$arg" in
        --check-only) CHECK_ONLY=1 ;;
        --recreate) RECREATE=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "setup_jetson.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
    esac
done

PROBLEMS=0
ok()      { printf 'ok   %-10s %s\n' "$1" "$2"; }
warn()    { printf 'WARN %-10s %s\n      -> %s\n' "$1" "$2" "$3"; }
problem() { printf 'BAD  %-10s %s\n      -> %s\n' "$1" "$2" "$3"; PROBLEMS=$((PROBLEMS + 1)); }

echo "== bisenet-deploy Jetson setup: checking the device"

# 1. L4T / JetPack: /etc/nv_tegra_release reads like "# R32 (release), REVISION: 6.1, ..."
if [[ -r "$NV_TEGRA_RELEASE" ]]; then
    line="$(head -n 1 "$NV_TEGRA_RELEASE")"
    if [[ "$line" =~ R([0-9]+)\ \(release\),\ REVISION:\ ([0-9]+)(\.([0-9]+))? ]]; then
        l4t_major="${BASH_REMATCH[1]}"
        l4t_minor="${BASH_REMATCH[2]}"
        l4t="R${l4t_major}.${l4t_minor}${BASH_REMATCH[3]}"
        if [[ "$l4t_major" == 32 && "$l4t_minor" -ge 6 ]]; then
            ok "JetPack" "L4T $l4t = JetPack 4.6.x (TensorRT 8.2, CUDA 10.2, Python 3.6)"
        elif [[ "$l4t_major" == 32 ]]; then
            problem "JetPack" "L4T $l4t is older than JetPack 4.6" \
                "flash JetPack 4.6.x (L4T R32.6 or R32.7) with NVIDIA SDK Manager: the bundle needs TensorRT 8.2"
        else
            warn "JetPack" "L4T $l4t is not JetPack 4.x (the TX2's last is 4.6)" \
                "continuing: the bundle's runtime also handles newer TensorRT, but this is not the tested setup"
        fi
    else
        problem "JetPack" "cannot read the release from $NV_TEGRA_RELEASE: '$line'" \
            "this should be a JetPack 4.6 install; check with: cat $NV_TEGRA_RELEASE"
    fi
else
    problem "JetPack" "$NV_TEGRA_RELEASE not found: this is not a Jetson" \
        "copy the bundle to the Jetson TX2 and run it there (engines must be built on the device)"
fi

# 2. the system python3 (JetPack 4.6: 3.6)
if ! command -v "$PYTHON3" >/dev/null 2>&1; then
    problem "Python" "$PYTHON3 not found" "sudo apt-get install python3 python3-dev python3-venv"
    PY_VERSION=""
else
    PY_VERSION="$("$PYTHON3" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    case "$PY_VERSION" in
        3.6) ok "Python" "$PYTHON3 is $PY_VERSION (JetPack 4.6's)" ;;
        3.[0-5]) problem "Python" "$PYTHON3 is $PY_VERSION" "the bundle needs Python >= 3.6: use JetPack 4.6's /usr/bin/python3" ;;
        *) warn "Python" "$PYTHON3 is $PY_VERSION, not JetPack 4.6's 3.6" "continuing; TensorRT's Python bindings must exist for this version" ;;
    esac
fi

# 3. TensorRT's Python bindings, seen by the system python3
if [[ -n "$PY_VERSION" ]]; then
    if TRT_VERSION="$("$PYTHON3" -c 'import tensorrt; print(tensorrt.__version__)' 2>/dev/null)"; then
        case "$TRT_VERSION" in
            8.2.*) ok "TensorRT" "$TRT_VERSION" ;;
            *) warn "TensorRT" "$TRT_VERSION, not JetPack 4.6's 8.2" "continuing; engines are built on this device for this TensorRT" ;;
        esac
    else
        problem "TensorRT" "the system python3 cannot import tensorrt" \
            "sudo apt-get install python3-libnvinfer python3-libnvinfer-dev (or: sudo apt-get install nvidia-jetpack)"
    fi
    if ! "$PYTHON3" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        problem "venv" "python3 has no venv/ensurepip module" "sudo apt-get install python3-venv"
    fi
    if ! "$PYTHON3" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' >/dev/null 2>&1; then
        problem "headers" "Python.h missing (needed to build pycuda)" "sudo apt-get install python3-dev"
    fi
fi

# 4. CUDA toolkit to build pycuda
if [[ -x "$CUDA_ROOT/bin/nvcc" ]]; then
    ok "CUDA" "$("$CUDA_ROOT/bin/nvcc" --version | tail -n 1)"
else
    problem "CUDA" "$CUDA_ROOT/bin/nvcc not found (pycuda is built against it)" \
        "sudo apt-get install cuda-toolkit-10-2 (JetPack), or set CUDA_ROOT to the CUDA folder"
fi
if ! command -v g++ >/dev/null 2>&1; then
    problem "compiler" "g++ not found (needed to build pycuda)" "sudo apt-get install build-essential"
fi

if [[ "$PROBLEMS" -gt 0 ]]; then
    echo "== $PROBLEMS problem(s) found: fix the lines marked BAD above, then run ./setup_jetson.sh again"
    exit 1
fi
if [[ "$CHECK_ONLY" == 1 ]]; then
    echo "== device OK (--check-only: nothing installed)"
    exit 0
fi

# 5. the bundle arrived intact
"$PYTHON3" "$HERE/jetson_run.py" verify

# 6. the venv with pycuda
if [[ "$RECREATE" == 1 && -d "$VENV_DIR" ]]; then
    echo "== removing $VENV_DIR (--recreate)"
    rm -rf "$VENV_DIR"
fi
if [[ ! -x "$VENV_DIR/bin/python" ]]; then
    echo "== creating $VENV_DIR (--system-site-packages: JetPack's tensorrt stays visible)"
    "$PYTHON3" -m venv --system-site-packages "$VENV_DIR"
fi
VPY="$VENV_DIR/bin/python"
if "$VPY" -c 'import pycuda, numpy, sys; sys.exit(not (pycuda.VERSION[:2] == (2022, 1) and tuple(int(x) for x in numpy.__version__.split(".")[:2]) >= (1, 19)))' >/dev/null 2>&1; then
    echo "== pycuda 2022.1 and numpy >= 1.19 already in $VENV_DIR"
else
    echo "== installing $NUMPY_SPEC and building $PYCUDA_SPEC against $CUDA_ROOT (5-15 minutes on a TX2)"
    export PATH="$CUDA_ROOT/bin:$PATH"
    export CUDA_ROOT
    export CPATH="$CUDA_ROOT/include${CPATH:+:$CPATH}"
    export LIBRARY_PATH="$CUDA_ROOT/lib64${LIBRARY_PATH:+:$LIBRARY_PATH}"
    "$VPY" -m pip install --upgrade "$PIP_SPEC" "setuptools<60" wheel
    "$VPY" -m pip install "$NUMPY_SPEC"
    if ! "$VPY" -m pip install --no-build-isolation "$PYCUDA_SPEC"; then
        echo "== building pycuda failed. Usual causes:" >&2
        echo "   - no network: pip needs PyPI (or copy a pycuda 2022.1 sdist and pip install it)" >&2
        echo "   - out of memory while compiling: add swap (sudo fallocate -l 4G /swapfile ...)" >&2
        echo "   - nvcc/cuda.h not found: check $CUDA_ROOT/bin/nvcc and $CUDA_ROOT/include/cuda.h" >&2
        exit 1
    fi
fi

# 7. the whole chain, seen from the venv
echo "== checking the environment from $VENV_DIR"
"$VPY" "$HERE/jetson_run.py" check
echo "== setup done. Next: ./build_engine.sh   (FP16; ./build_engine.sh --fp32 for FP32)"
