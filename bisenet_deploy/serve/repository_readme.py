"""The README written into a Triton model repository: what is in it, how to serve and scale it."""

from __future__ import annotations

import os
import shlex
from typing import Any, List

from .. import __version__
from .model_config import batching


def _model_lines(model: Any) -> List[str]:
    spec = model.spec
    export = model.record["export"]
    meta = model.record["model"]
    max_batch, preferred = batching(spec.batch_range, spec.max_batch, spec.name)
    tensors = "; ".join(
        f"{'in' if t in spec.inputs else 'out'} `{t.name}` {t.dtype} "
        f"[{', '.join('N' if d < 0 else str(d) for d in t.shape)}]"
        for t in spec.inputs + spec.outputs)
    lines = [f"### `{spec.name}`: {spec.platform}", "",
             f"- {meta['arch']} for {meta['dataset']} ({meta['num_classes']} classes, "
             f"{'RANDOM weights: labels mean nothing' if meta.get('weights') == 'random-init' else 'trained weights'});",
             f"- tensors: {tensors};",
             f"- input: {export['channel_order'].upper()} pixel values "
             f"{'0..255, normalized in the graph' if export['normalize'] == 'in-graph' else 'already normalized'}, "
             f"{export['input_size'][0]}x{export['input_size'][1]} (resized in the graph to "
             f"{export['model_size'][0]}x{export['model_size'][1]});"]
    if max_batch:
        lines.append(f"- batching: `max_batch_size: {max_batch}`, dynamic batching"
                     + (f" (preferred {', '.join(map(str, preferred))})" if preferred else "")
                     + f", up to {spec.max_queue_delay_us} us queue delay;")
    else:
        lines.append("- batching: none (`max_batch_size: 0`, the export has a static batch "
                     "or a range that does not start at 1; dims include the batch);")
    lines.append(f"- instances: {spec.instances} x {spec.kind.upper()}.")
    if model.sidecar is not None:
        gpu = model.sidecar.get("gpu") or {}
        lines += ["", f"The engine runs ONLY on a {gpu.get('name', '?')} (SM "
                      f"{gpu.get('compute_capability', '?')}) with TensorRT "
                      f"{model.sidecar.get('tensorrt_version', '?')} "
                      f"({str(model.sidecar.get('precision', '?')).upper()}): use the Triton "
                      f"release whose TensorRT is exactly that version (see NVIDIA's "
                      f"framework support matrix), and rebuild the engine (`bisenet-build-engine`) "
                      f"for any other GPU model or release. `engine.json` beside the config is "
                      f"its sidecar."]
    return lines + [""]


def render_readme(models: List[Any], path: str) -> str:
    name = os.path.basename(path.rstrip(os.sep)) or "repository"
    first = models[0].spec.name
    gpu = any(m.spec.kind == "gpu" for m in models)
    docker = ("docker run --rm " + ("--gpus all " if gpu else "")
              + "-p 8000:8000 -p 8001:8001 -p 8002:8002 -v \"$PWD\"/"
              + shlex.quote(f"{name}:/models") + " "
              "nvcr.io/nvidia/tritonserver:<YY.MM>-py3 tritonserver --model-repository=/models")
    lines = [f"# {name}: a Triton Inference Server model repository", "",
             f"Written by `bisenet-export triton` (bisenet-deploy {__version__}). Each folder is "
             "one model (`config.pbtxt` + version `1/`); Triton ignores this README and "
             "`manifest.json` (what the tool wrote, so `--force` only ever replaces its own "
             "output).", "",
             "## Models", ""]
    for model in models:
        lines += _model_lines(model)
    lines += [
        "Every config carries the model's metadata as `parameters`: `bisenet_deploy` (the full "
        "record: preprocessing, classes, palette, sizes) and readable copies (`class_names`, "
        "`palette`, `mean`, `std`, `input_size`...). `GET /v2/models/<name>/config` returns them.",
        "",
        "## Serve", "",
        "```sh",
        docker,
        "# or, with tritonserver installed: tritonserver --model-repository="
        + shlex.quote(name),
        "curl -s localhost:8000/v2/health/ready && echo ready",
        f"curl -s localhost:8000/v2/models/{first}          # KServe v2 model metadata",
        "```", "",
        "Ports: 8000 HTTP (KServe v2 REST), 8001 gRPC, 8002 Prometheus metrics (`/metrics`).",
        "",
        "## Query", "",
        "```sh",
        f"bisenet-predict --server localhost:8001 --model-name {first} street.png -o out/",
        f"bisenet-bench --server localhost:8001 --model-name {first} --concurrency 1 2 4 8 "
        "--iters 200",
        "```", "",
        "Any KServe v2 client works: send the input tensor exactly as described above (one "
        "image is a batch of 1) and read `labels` (INT32 class ids) and/or `logits`.", "",
        "## Scale out", "",
        "- More instances per GPU: raise `count` in `instance_group` (several execution "
        "contexts overlap copies and compute); several GPUs in one server: add "
        "`gpus: [0, 1]` to the instance group.",
        "- Larger batches: dynamic batching already gathers concurrent requests up to "
        "`max_batch_size`; a higher `max_queue_delay_microseconds` trades latency for larger "
        "batches.",
        "- More servers: run more Triton replicas with this same repository (a shared volume or "
        "object storage: `--model-repository=s3://...`) behind a load balancer or a Kubernetes "
        "Service. Use `/v2/health/live` as the liveness probe, `/v2/health/ready` as the "
        "readiness probe, and scale on the metrics at :8002/metrics (e.g. "
        "`nv_inference_queue_duration_us`). Every replica needs the GPU model and TensorRT "
        "version an engine was built for; the ONNX model runs anywhere.",
        ""]
    return "\n".join(lines)
