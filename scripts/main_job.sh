#!/usr/bin/env bash
# The README's first command, on a fresh machine:
#   1. scripts/setup_env.sh: create .venv and install bisenet-deploy (torch 2.13.0 first)
#   2. bisenet-export onnx: the default model (models/model_final_v2_city.pth if present, else
#      seeded random weights), 2048x1024 input -> in-graph resize -> 1024x512 network, INT32
#      labels, default TensorRT target, parity-checked against PyTorch
#   3. bisenet-build-engine with the TensorRT installed: TensorRT-RTX (the default setup installs its
#      pip wheels) builds a real engine even without a GPU; full TensorRT needs an NVIDIA GPU
#   4. bisenet-bench on every backend present; prints the side-by-side table and writes the JSON
#      report under benchmarks/ (an engine is timed only where a GPU and pycuda can run it)
#
# Environment variables:
#   ITERS       timed iterations of each GPU backend (default 5000: the paper's protocol)
#   CPU_ITERS   timed iterations of each CPU backend (default 20: a full-size BiSeNet V2 call takes
#               a few hundred ms on 2 cores, so the CPU run finishes in a few minutes)
#   WARMUP      warm-up calls (default: bisenet-bench's, iters/20 between 3 and 50)
#   THREADS     CPU threads for onnxruntime/torch (default: all cores)
#   CHECKPOINT  checkpoint to export (default models/model_final_v2_city.pth when it exists)
#   PRECISION   engine precision where TensorRT exists: fp16 (default) or fp32
#   TARGET      bisenet-export onnx --target (default: the installed TensorRT's, else trt10;
#               TensorRT-RTX's is trt11: strongly typed, FP16 comes from an FP16 graph)
#   SKIP_SETUP=1  reuse the current environment instead of running setup_env.sh
# On a GPU machine the GPU backends and the CPU backends are timed in two runs (two tables):
# 5000 CPU iterations at 2048x1024 would take hours and tell nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${SKIP_SETUP:-0}" != "1" ]; then
    bash scripts/setup_env.sh
    # shellcheck disable=SC1091
    . "${VENV:-.venv}/bin/activate"
fi

CHECKPOINT=${CHECKPOINT:-}
if [ -z "$CHECKPOINT" ] && [ -f models/model_final_v2_city.pth ]; then
    CHECKPOINT=models/model_final_v2_city.pth
fi
if [ -n "$CHECKPOINT" ]; then
    TAG=$(basename "${CHECKPOINT%.*}")
else
    TAG=random-init
    echo "main_job: no models/model_final_v2_city.pth: exporting seeded RANDOM weights (speed is" \
         "representative, labels are not). Put the CoinCheung checkpoint there for real labels."
fi
ONNX=export/main-job-${TAG}-2048x1024-to-1024x512-labels.onnx
PRECISION=${PRECISION:-fp16}

# an NVIDIA GPU: nvidia-smi on desktops; Jetsons have no nvidia-smi but an L4T release file
has_gpu() {
    { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; } ||
        [ -e /etc/nv_tegra_release ]
}
has_pycuda() { python -c "import pycuda.driver" >/dev/null 2>&1; }
has_torch_cuda() { python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    >/dev/null 2>&1; }

# the TensorRT here: "<flavour> <version> <export target>" (full TensorRT first, else TensorRT-RTX),
# read from its features; empty without one
TRT_INFO=$(python -c "from bisenet_deploy.portable.trt.capabilities import installed_summary as s
print(s())" 2>/dev/null || true)
read -r TRT_FLAVOUR TRT_VERSION TRT_TARGET <<<"$TRT_INFO" || true
BUILD_ENGINE=0   # TensorRT-RTX builds without a GPU, full TensorRT only on one
RUN_ENGINE=0     # running an engine needs the GPU and pycuda
if [ "$TRT_FLAVOUR" = tensorrt-rtx ] || { [ "$TRT_FLAVOUR" = tensorrt ] && has_gpu; }; then
    BUILD_ENGINE=1
    if has_gpu && has_pycuda; then
        RUN_ENGINE=1
    fi
fi
# the export target whose rules the installed TensorRT parses (8.2 on JetPack 4.6 ... 11, RTX)
TARGET=${TARGET:-}
if [ -z "$TARGET" ] && [ "$BUILD_ENGINE" = 1 ]; then
    TARGET=$TRT_TARGET
fi
TARGET=${TARGET:-trt10}
if [ "$TRT_FLAVOUR" = tensorrt-rtx ]; then
    ENGINE=engines/main-job-${TAG}-rtx-${PRECISION}.engine
else
    ENGINE=engines/main-job-${TAG}-${PRECISION}.engine
fi

echo "== bisenet-export onnx ($TARGET) -> $ONNX"
export_args=(--input-size 2048x1024 --network-size 1024x512 --outputs labels --target "$TARGET")
if [ -n "$CHECKPOINT" ]; then
    export_args+=(--checkpoint "$CHECKPOINT")
fi
bisenet-export onnx "${export_args[@]}" -o "$ONNX"
# TensorRT 11 and TensorRT-RTX build FP16 only from an FP16 graph (strongly typed): a second export
# for the engine; the CPU backends keep timing the FP32 graph
ENGINE_ONNX=$ONNX
if [ "$BUILD_ENGINE" = 1 ] && [ "$TARGET" = trt11 ] && [ "$PRECISION" = fp16 ]; then
    ENGINE_ONNX=${ONNX%.onnx}-fp16.onnx
    echo "== bisenet-export onnx ($TARGET, fp16) -> $ENGINE_ONNX"
    bisenet-export onnx "${export_args[@]}" --precision fp16 -o "$ENGINE_ONNX"
fi

bench_common=()
[ -n "${WARMUP:-}" ] && bench_common+=(--warmup "$WARMUP")
[ -n "${THREADS:-}" ] && bench_common+=(--threads "$THREADS")
model_args=(--onnx "$ONNX")
[ -n "$CHECKPOINT" ] && model_args+=(--checkpoint "$CHECKPOINT")

gpu_backends=()
if [ "$BUILD_ENGINE" = 1 ]; then
    echo "== bisenet-build-engine ($TRT_FLAVOUR $TRT_VERSION) -> $ENGINE"
    build_args=("$ENGINE_ONNX" -o "$ENGINE" --trt-flavour "$TRT_FLAVOUR")
    [ "$PRECISION" = "fp16" ] && build_args+=(--fp16)
    bisenet-build-engine "${build_args[@]}"
    if [ "$RUN_ENGINE" = 1 ]; then
        model_args+=(--engine "$ENGINE")
        gpu_backends+=(tensorrt)
    elif has_gpu; then
        echo "main_job: $ENGINE is built but cannot run here: pycuda is missing" \
             "(pip install -e '.[trt]')"
    else
        echo "main_job: $ENGINE is built but cannot run here: no NVIDIA GPU (TensorRT-RTX" \
             "compiles its kernels on the GPU that loads the engine); on an RTX machine:" \
             "bisenet-bench --engine $ENGINE --backend tensorrt"
    fi
elif [ "$TRT_FLAVOUR" = tensorrt ]; then
    echo "main_job: TensorRT $TRT_VERSION is installed but there is no NVIDIA GPU: no engine"
else
    echo "main_job: no TensorRT here (pip install -e '.[rtx]' builds engines without" \
         "a GPU): no engine, no tensorrt backend"
fi
if has_torch_cuda; then
    gpu_backends+=(torch-cuda)
fi
if python -c "import onnxruntime, sys; sys.exit(0 if 'CUDAExecutionProvider' in onnxruntime.get_available_providers() else 1)" >/dev/null 2>&1; then
    gpu_backends+=(onnxruntime-cuda)
fi

# a failing GPU backend must not cost the CPU table: run both, exit with the worse status
gpu_status=0
if [ ${#gpu_backends[@]} -gt 0 ]; then
    echo "== bisenet-bench on the GPU backends: ${gpu_backends[*]} (${ITERS:-5000} iterations)"
    bisenet-bench "${model_args[@]}" --backend "${gpu_backends[@]}" --iters "${ITERS:-5000}" \
        ${bench_common[@]+"${bench_common[@]}"} --plot || gpu_status=$?
fi
echo "== bisenet-bench on the CPU backends: onnxruntime torch (${CPU_ITERS:-20} iterations)"
bisenet-bench "${model_args[@]}" --backend onnxruntime torch --iters "${CPU_ITERS:-20}" \
    ${bench_common[@]+"${bench_common[@]}"} --plot
exit "$gpu_status"
