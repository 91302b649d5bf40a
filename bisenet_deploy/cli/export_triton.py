"""`bisenet-export triton`: a model repository for a production Triton Inference Server.

    bisenet-export triton --onnx X.onnx [--engine E.engine] -o REPO [--force]

See bisenet_deploy.serve.repository for what is written and why.
"""

from __future__ import annotations

import argparse

from .common import add_logging_args
from .options import add_engine, add_onnx, add_output

EPILOG = """\
models: --engine gives a tensorrt_plan model named NAME (the engine's sidecar says its tensors,
batch profile, GPU and TensorRT version); --onnx gives an onnxruntime_onnx model, named NAME, or
NAME_onnx when an engine is given too (then it must be the ONNX the engine was built from).

batching: a dynamic-batch export (--dynamic-batch 1:4:8) gets max_batch_size = its maximum and
dynamic batching; a static batch (the default export) gets max_batch_size 0 and full dims.

exit status: 0 written; 2 bad options or inputs (nothing written); 1 other errors.

example:
  bisenet-export triton --onnx export/bisenetv2-dyn1-8.onnx -o triton-repo
  tritonserver --model-repository=triton-repo
"""


def register(sub) -> None:
    from ..serve.model_config import DEFAULT_QUEUE_DELAY_US
    from ..serve.model_io import DEFAULT_MODEL_NAME

    p = sub.add_parser(
        "triton", help="a Triton Inference Server model repository (config.pbtxt, model files)",
        description="Write a Triton Inference Server model repository serving an exported ONNX "
                    "(onnxruntime_onnx) and/or a TensorRT engine (tensorrt_plan), with dynamic "
                    "batching, instance groups, the model's metadata as config parameters and a "
                    "README on serving and scaling it.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_onnx(p, "an ONNX exported by `bisenet-export onnx`")
    add_engine(p, "a TensorRT engine built by `bisenet-build-engine` (its .json sidecar "
                  "beside it)")
    add_output(p, "the model repository folder to write", alias=("--output-dir",),
               metavar="REPO", required=True)
    p.add_argument("--model-name", default=DEFAULT_MODEL_NAME, metavar="NAME",
                   help=f"model name in the repository (default {DEFAULT_MODEL_NAME})")
    p.add_argument("--max-batch", type=int, default=None, metavar="N",
                   help="max_batch_size, at most the export's batch maximum (default: that "
                        "maximum)")
    p.add_argument("--instances", type=int, default=1, metavar="K",
                   help="model instances per device (instance_group count, default 1)")
    p.add_argument("--kind", choices=("gpu", "cpu"), default="gpu",
                   help="where the ONNX model's instances run: KIND_GPU (default) or KIND_CPU; "
                        "an engine always runs on the GPU")
    p.add_argument("--max-queue-delay-us", type=int, default=DEFAULT_QUEUE_DELAY_US,
                   metavar="US", help="dynamic batching: how long Triton waits to fill a "
                                      f"preferred batch (default {DEFAULT_QUEUE_DELAY_US})")
    p.add_argument("--force", action="store_true",
                   help="replace REPO if it is a repository this command wrote (anything else "
                        "is never replaced)")
    add_logging_args(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..portable.shared.shell_words import quote_path
    from ..serve.repository import RepositoryOptions, build_repository, model_summary

    result = build_repository(RepositoryOptions(
        output_dir=args.output, onnx=args.onnx, engine=args.engine,
        model_name=args.model_name, max_batch=args.max_batch, instances=args.instances,
        onnx_kind=args.kind, max_queue_delay_us=args.max_queue_delay_us, force=args.force))
    print(f"repository: {result.path}")
    for model in result.models:
        name, summary = model_summary(model)
        print(f"model:      {name} ({summary})")
    print(f"next:       tritonserver --model-repository={quote_path(result.path)}   (see "
          f"{result.path}/README.md)")
    return 0
