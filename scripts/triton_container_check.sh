#!/usr/bin/env bash
# Serve a repository from `bisenet-export triton` with NVIDIA's Triton container and check every
# ONNX model in it against onnxruntime here (scripts/compare_served.py). For a machine with
# Docker and that container (and, for KIND_GPU models or engines, an NVIDIA GPU with the
# NVIDIA container toolkit). The tritonserver PyTriton bundles has only the Python backend, so
# the stock repository (onnxruntime_onnx / tensorrt_plan) cannot be loaded without this.
#
#   scripts/triton_container_check.sh REPO [IMAGE]
#       IMAGE default nvcr.io/nvidia/tritonserver:24.10-py3 (tritonserver 2.51, onnxruntime
#       backend, TensorRT 10.5: an engine must have been built with exactly that TensorRT)
#
# Ports 18000-18002 on 127.0.0.1 (HTTP_PORT, GRPC_PORT, METRICS_PORT to change). Exit 0 when
# every ONNX model answers like onnxruntime; 3 a mismatch; 4 no docker; 1 the server did not
# get ready within READY_TIMEOUT seconds (default 300).
set -uo pipefail
cd "$(dirname "$0")/.."

repo=${1:?usage: scripts/triton_container_check.sh REPO [IMAGE]}
image=${2:-nvcr.io/nvidia/tritonserver:24.10-py3}
http=${HTTP_PORT:-18000}; grpc=${GRPC_PORT:-18001}; metrics=${METRICS_PORT:-18002}
command -v docker >/dev/null 2>&1 || { echo "triton_container_check: no docker here"; exit 4; }
[ -f "$repo/manifest.json" ] || { echo "triton_container_check: $repo is no repository from bisenet-export triton"; exit 2; }
repo=$(cd "$repo" && pwd)

gpus=()
if grep -q "KIND_GPU" "$repo"/*/config.pbtxt 2>/dev/null; then gpus=(--gpus all); fi
name="bisenet-triton-check-$$"
docker run -d --rm --name "$name" "${gpus[@]}" \
    -p "127.0.0.1:$http:8000" -p "127.0.0.1:$grpc:8001" -p "127.0.0.1:$metrics:8002" \
    -v "$repo:/models:ro" "$image" tritonserver --model-repository=/models >/dev/null || exit 1
trap 'docker stop "$name" >/dev/null 2>&1' EXIT

# the stock tritonserver loads every model at start; ready (strict readiness) covers them all
deadline=$((SECONDS + ${READY_TIMEOUT:-300}))
until curl -sf "http://127.0.0.1:$http/v2/health/ready" >/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
        echo "triton_container_check: not ready after ${READY_TIMEOUT:-300} s"
        docker logs --tail 20 "$name"
        exit 1
    fi
    sleep 2
done
status=0
for config in "$repo"/*/config.pbtxt; do
    model=$(basename "$(dirname "$config")")
    onnx="$repo/$model/1/model.onnx"
    [ -f "$onnx" ] || { echo "$model: no model.onnx (an engine): checked by loading only"; continue; }
    python scripts/compare_served.py --server "127.0.0.1:$grpc" --model-name "$model" \
        --onnx "$onnx" || status=$?
done
# an engine model must at least have loaded
for config in "$repo"/*/config.pbtxt; do
    model=$(basename "$(dirname "$config")")
    curl -sf "http://127.0.0.1:$http/v2/models/$model/ready" >/dev/null \
        || { echo "FAIL model $model is not ready"; [ $status = 0 ] && status=1; }
done
exit $status
