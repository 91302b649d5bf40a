#!/usr/bin/env bash
# Create (or reuse) the virtual environment .venv and install bisenet-deploy with its test tools.
# torch is installed first, pinned to 2.13.0 (the CPU build on our machines); set TORCH_SPEC to
# something else (e.g. TORCH_SPEC=skip when the venv already has a CUDA torch) on other machines.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
python -m pip install --quiet --upgrade pip
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
if [ "$TORCH_SPEC" != "skip" ]; then
    python -m pip install --quiet "$TORCH_SPEC"
fi
# The editable install: setuptools reports it with a boxed "Editable installation" notice that pip
# shows even with --quiet (a build-backend warning, not an error); this filter drops that notice.
# serve: PyTriton's tritonserver and tritonclient, so the serving load tests run everywhere; PyTriton
# pins numpy<2, so the whole suite runs on numpy 1.26
PYTHONWARNINGS="${PYTHONWARNINGS:+$PYTHONWARNINGS,}ignore:Editable installation" \
    python -m pip install --quiet -e ".[test,serve]"
# CI only: TensorRT's type stubs for the mypy check of the engine builder. They are installed
# without dependencies (their dependency is TensorRT itself); never do this next to a real TensorRT.
if [ -n "${CI_TYPE_STUBS:-}" ]; then
    python -m pip install --quiet --no-deps "$CI_TYPE_STUBS"
fi
