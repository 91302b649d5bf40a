#!/usr/bin/env bash
# Create (or reuse) the virtual environment .venv and install bisenet-deploy with its test tools and
# TensorRT for RTX (the `rtx` extra: pip wheels that build real engines without a GPU and give
# `bisenet-export` the real TensorRT ONNX parser). EXTRAS overrides the extras (default
# "test,serve,rtx"; e.g. EXTRAS=test,serve,rtx,trt on a GPU machine with full TensorRT too).
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
# pins numpy<2, so the whole suite runs on numpy 1.26. rtx: TensorRT for RTX (see above).
PYTHONWARNINGS="${PYTHONWARNINGS:+$PYTHONWARNINGS,}ignore:Editable installation" \
    python -m pip install --quiet -e ".[${EXTRAS:-test,serve,rtx}]"
# Part of the test tools: TensorRT's type stubs for the mypy check of the builder's and the
# runner's TensorRT calls (tests/test_engine_typecheck.py). They cannot be in the `test` extra:
# the stubs package depends on full TensorRT itself, so they are installed here without
# dependencies, and not next to a real full TensorRT (whose own package they would overlay).
# TYPE_STUBS=skip leaves them out.
TYPE_STUBS=${TYPE_STUBS:-${CI_TYPE_STUBS:-tensorrt-stubs==10.13.0.35.1}}
if [ "$TYPE_STUBS" != "skip" ]; then
    if python -c "import tensorrt; tensorrt.Builder" >/dev/null 2>&1; then
        echo "setup_env: full TensorRT is installed; not installing $TYPE_STUBS over it"
    else
        python -m pip install --quiet --no-deps "$TYPE_STUBS"
    fi
fi
# With the test tools (the `test` extra, asked by default): the two reference implementations our
# numbers are checked against, so those checks run for every developer, not only in CI:
# mmsegmentation (tests/test_mmseg_reference.py: our import of its BiSeNetV2 checkpoints) and
# cityscapesscripts (tests/test_cityscapes_official.py: our Cityscapes IoU, iIoU and category
# scores). mmengine/mmcv-lite go in without their dependencies (mmcv-lite has no compiled ops, none
# of which BiSeNetV2 calls), cityscapesscripts without the `typing` backport it still declares.
# Best effort: where they cannot be installed (no network...), their tests skip and say why.
# REFERENCE_CHECKS=skip leaves them out.
case ",${EXTRAS:-test,serve,rtx}," in
    *,test,*)
        if [ "${REFERENCE_CHECKS:-}" != "skip" ]; then
            { python -m pip install --quiet "mmsegmentation==1.2.2" ftfy regex prettytable scipy \
                  addict pyyaml rich termcolor yapf packaging coloredlogs humanfriendly \
                  pyquaternion appdirs requests \
              && python -m pip install --quiet --no-deps "mmengine==0.10.7" "mmcv-lite==2.1.0" \
                  "cityscapesscripts==2.3.0"; } \
                || echo "setup_env: mmsegmentation/cityscapesscripts could not be installed;" \
                        "their reference tests will skip"
        fi
        ;;
esac
