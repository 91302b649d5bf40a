#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU (our CI machines have none):
#   1. sets up .venv (scripts/setup_env.sh with EXTRAS=test,serve,rtx,trt: TensorRT-RTX, full
#      TensorRT and pycuda; pycuda builds from source and needs the CUDA toolkit's nvcc on PATH);
#   2. runs every GPU test: pytest -m "tensorrt or cuda";
#   3. exports BiSeNet V2 at the paper's size (2048x1024 input, 1024x512 network, labels) for each
#      TensorRT flavour present, builds its FP32 and FP16 engines, and times, 5000 iterations each:
#      the FP32 engine next to torch CUDA FP32, the FP16 engine next to torch CUDA FP16, and the
#      FP32 engine and torch CUDA again with CUDA graphs;
#   4. for each target but trt8.2: exports the INT8 Q/DQ graph (--precision int8), builds its
#      engine and times the INT8, FP16 and FP32 engines side by side;
#   5. writes each run's JSON report and PNG plot under benchmarks/ (gpu-check-*);
#   6. serves a dynamic-batch FP16 engine with bisenet-serve, batching delay 500 us (its GPU
#      default) and 0 us (its CPU default), and times 1 and 8 gRPC clients (SERVE_ITERS each).
# About 5-8 minutes on a current GPU. Exit status: 0 when everything passed, else the first
# failure's (tests or benchmarks); every step runs regardless, so one failure does not hide others.
#
# Environment variables:
#   ITERS        timed iterations per backend (default 5000: the paper's protocol)
#   CHECKPOINT   checkpoint to export (default models/model_final_v2_city.pth when present,
#                else seeded random weights: speed is representative, labels are not)
#   EXTRAS       pip extras (default test,serve,rtx,trt); TORCH_SPEC as for setup_env.sh (a CUDA
#                build of torch: the default torch==2.13.0 from the package index is one on Linux)
#   CALIB_IMAGES INT8 calibration images (default: 40 synthetic street scenes written to
#                export/gpu-check-calib/; without CHECKPOINT the INT8 gate is off: random
#                weights cannot keep 99% of the labels, docs/int8.md)
#   SKIP_SETUP=1 use the current environment as it is
#   SKIP_TESTS=1 only the benchmarks
set -uo pipefail
cd "$(dirname "$0")/.." || exit 4

status=0
fail() { echo "gpu_check: FAILED: $*"; [ "$status" = 0 ] && status=${2:-1}; }

if ! { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }; then
    echo "gpu_check: no NVIDIA GPU here (nvidia-smi does not answer): run this on a GPU machine"
    exit 4
fi
if [ "${SKIP_SETUP:-0}" != "1" ]; then
    EXTRAS=${EXTRAS:-test,serve,rtx,trt} bash scripts/setup_env.sh ||
        { echo "gpu_check: setup failed"; exit 4; }
    # shellcheck disable=SC1091
    . "${VENV:-.venv}/bin/activate"
fi
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" ||
    fail "this torch has no CUDA (set TORCH_SPEC to a CUDA build)"

if [ "${SKIP_TESTS:-0}" != "1" ]; then
    echo "== pytest -m 'tensorrt or cuda'"
    python -m pytest -m "tensorrt or cuda" -ra -q || fail "GPU tests" $?
fi

CHECKPOINT=${CHECKPOINT:-}
if [ -z "$CHECKPOINT" ] && [ -f models/model_final_v2_city.pth ]; then
    CHECKPOINT=models/model_final_v2_city.pth
fi
ckpt_args=()
[ -n "$CHECKPOINT" ] && ckpt_args+=(--checkpoint "$CHECKPOINT")
ITERS=${ITERS:-5000}
mkdir -p benchmarks
CALIB_IMAGES=${CALIB_IMAGES:-}
if [ -z "$CALIB_IMAGES" ]; then
    CALIB_IMAGES=export/gpu-check-calib
    python - "$CALIB_IMAGES" <<'EOF' || fail "writing the calibration scenes"
import os, sys
import numpy as np
from bisenet_deploy.synthetic import synthetic_image
os.makedirs(sys.argv[1], exist_ok=True)
for i in range(40):
    np.save(os.path.join(sys.argv[1], "scene%02d.npy" % i), synthetic_image(2048, 1024, seed=20000 + i))
EOF
fi
gate=()
[ -n "$CHECKPOINT" ] || gate=(--min-agreement 0)

# the flavours present, each with its export target ("<flavour> <target>" per line)
flavours=$(python - <<'EOF'
from bisenet_deploy.portable.trt.capabilities import detect_capabilities
from bisenet_deploy.portable.trt.flavours import available_flavours, import_flavour
for flavour in available_flavours():
    print(flavour, detect_capabilities(import_flavour(flavour)).export_target)
EOF
)
[ -n "$flavours" ] || fail "no TensorRT flavour is importable (pip install '.[rtx]' or '.[trt]')"

bench() {  # bench NAME ARGS...: one bisenet-bench run with its JSON report and plot
    local name=$1
    shift
    echo "== bisenet-bench $name"
    bisenet-bench "$@" --iters "$ITERS" --json "benchmarks/gpu-check-$name.json" \
        --plot "benchmarks/gpu-check-$name.png" || fail "benchmark $name" $?
}

while read -r flavour target; do
    [ -n "$flavour" ] || continue
    short=${flavour/tensorrt-rtx/rtx}
    short=${short/tensorrt/trt}
    base=export/gpu-check-$target-2048x1024-to-1024x512-labels
    common=(--input-size 2048x1024 --network-size 1024x512 --outputs labels --target "$target")
    echo "== $flavour: export ($target) and FP32/FP16 engines"
    bisenet-export onnx "${common[@]}" ${ckpt_args[@]+"${ckpt_args[@]}"} -o "$base.onnx" ||
        { fail "export for $flavour" $?; continue; }
    fp16_onnx=$base.onnx
    if [ "$target" = trt11 ]; then  # strongly typed: FP16 comes from an FP16 graph
        fp16_onnx=$base-fp16.onnx
        bisenet-export onnx "${common[@]}" ${ckpt_args[@]+"${ckpt_args[@]}"} --precision fp16 \
            -o "$fp16_onnx" || { fail "FP16 export for $flavour" $?; continue; }
    fi
    e32=engines/gpu-check-$short-fp32.engine
    e16=engines/gpu-check-$short-fp16.engine
    bisenet-build-engine "$base.onnx" --trt-flavour "$flavour" --fp32 -o "$e32" || fail "FP32 build" $?
    bisenet-build-engine "$fp16_onnx" --trt-flavour "$flavour" --fp16 -o "$e16" || fail "FP16 build" $?
    models=(--onnx "$base.onnx" ${ckpt_args[@]+"${ckpt_args[@]}"})
    bench "$short-fp32" "${models[@]}" --engine "$e32" --backend tensorrt torch-cuda
    bench "$short-fp16" --onnx "$fp16_onnx" ${ckpt_args[@]+"${ckpt_args[@]}"} --engine "$e16" \
        --backend tensorrt torch-cuda --precision fp16
    bench "$short-fp32-cuda-graph" "${models[@]}" --engine "$e32" --backend tensorrt torch-cuda \
        --cuda-graph
    [ "$target" = trt8.2 ] && continue  # the TX2 has no fast INT8
    echo "== $flavour: INT8 Q/DQ export and engine"
    e8=engines/gpu-check-$short-int8.engine
    bisenet-export onnx "${common[@]}" ${ckpt_args[@]+"${ckpt_args[@]}"} --precision int8 \
        --calib-images "$CALIB_IMAGES" ${gate[@]+"${gate[@]}"} -o "$base-int8.onnx" ||
        { fail "INT8 export for $flavour" $?; continue; }
    bisenet-build-engine "$base-int8.onnx" --trt-flavour "$flavour" -o "$e8" ||
        { fail "INT8 build" $?; continue; }
    bench "$short-int8" --backend "tensorrt:$e8" "tensorrt:$e16" "tensorrt:$e32"
done <<< "$flavours"

# 6. serving on the GPU: bisenet-serve's batching delay there (500 us) against none (0 us, the
# CPU default, docs/serving.md), with a dynamic-batch FP16 engine, 1 and 8 clients over gRPC
serve_level() {  # serve_level ENGINE DELAY: one server, one bisenet-bench --server run, stopped
    local engine=$1 delay=$2 log=benchmarks/gpu-check-serve-delay$2.log
    bisenet-serve --engine "$engine" --max-queue-delay-us "$delay" --host 127.0.0.1 \
        --http-port 18000 --grpc-port 18001 --metrics-port 18002 > "$log" 2>&1 &
    local pid=$! waited=0
    until grep -q "ready:" "$log" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null || [ "$waited" -ge 300 ]; then
            fail "bisenet-serve (delay $delay us) did not start: see $log"
            kill "$pid" 2>/dev/null
            return
        fi
        sleep 1
        waited=$((waited + 1))
    done
    bisenet-bench --server 127.0.0.1:18001 --concurrency 1 8 --iters "$SERVE_ITERS" \
        --json "benchmarks/gpu-check-serve-delay$delay.json" || fail "served benchmark" $?
    kill -TERM "$pid" 2>/dev/null  # (a background job ignores SIGINT)
    wait "$pid" 2>/dev/null
}
read -r flavour target <<< "$flavours"
SERVE_ITERS=${SERVE_ITERS:-200}
if [ -n "${flavour:-}" ]; then
    echo "== bisenet-serve on the GPU ($flavour): batching delay 500 us vs 0 us"
    served=export/gpu-check-serve-$target-2048x1024-to-1024x512-labels-batch1-4-8.onnx
    es=engines/gpu-check-serve-fp16.engine
    if [ "$target" = trt11 ]; then serve_precision=(--precision fp16); else serve_precision=(); fi
    if bisenet-export onnx --input-size 2048x1024 --network-size 1024x512 --outputs labels \
            --target "$target" --batch-range 1:4:8 ${serve_precision[@]+"${serve_precision[@]}"} \
            ${ckpt_args[@]+"${ckpt_args[@]}"} -o "$served" &&
        bisenet-build-engine "$served" --trt-flavour "$flavour" --fp16 -o "$es"; then
        serve_level "$es" 500
        serve_level "$es" 0
    else
        fail "the dynamic-batch engine for serving"
    fi
fi

echo "gpu_check: reports in benchmarks/gpu-check-*.json (exit $status)"
exit "$status"
