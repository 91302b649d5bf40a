#!/usr/bin/env python
"""Smoke-test a served model against onnxruntime on this machine: same images, same answers?

    python scripts/compare_served.py --server localhost:8001 --onnx REPO/bisenet/1/model.onnx \
        [--model-name bisenet] [--images 4]

Sends synthetic street-like images one by one and as one batch (when the model batches), runs
the same inputs through onnxruntime (CPU) here, and compares: labels must agree on at least
--min-agreement of the pixels (a GPU's kernels round differently from the CPU's, so exact
equality is not expected there) and logits, when served, within --atol. Prints one line per
request and PASS/FAIL. Exit 0 pass, 3 a mismatch, 1/2/4/5 as the toolkit's commands (no server,
bad options, missing packages, unusable ONNX). Used by scripts/triton_container_check.sh with
NVIDIA's Triton container, and by the tests against bisenet-serve.
"""

import argparse
import sys

import numpy as np


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", required=True, help="HOST:PORT (gRPC) or http://HOST:PORT")
    p.add_argument("--onnx", required=True, help="the ONNX the server serves (its own copy)")
    p.add_argument("--model-name", default="bisenet")
    p.add_argument("--images", type=int, default=4, help="synthetic images (default 4)")
    p.add_argument("--min-agreement", type=float, default=0.999,
                   help="fraction of pixels whose labels must agree (default 0.999)")
    p.add_argument("--atol", type=float, default=1e-2, help="logits tolerance (default 1e-2)")
    p.add_argument("--ready-wait", type=float, default=60.0,
                   help="seconds to wait for the model to be ready (default 60)")
    return p.parse_args(argv)


def compare(args):
    from bisenet_deploy.portable.shared.errors import EXIT_CHECK_FAILED
    from bisenet_deploy.portable.running.preprocess import prepare_input
    from bisenet_deploy.runtime.api import batch_range
    from bisenet_deploy.runtime.factory import open_runner
    from bisenet_deploy.serve.client import ServedRunner
    from bisenet_deploy.synthetic import synthetic_image

    failed = 0
    with open_runner("onnxruntime", onnx=args.onnx, require_metadata=True) as local, \
            ServedRunner(args.server, args.model_name,
                                 ready_wait_s=args.ready_wait) as served:
        height, width = local.input_spec().shape[2:]
        images = [prepare_input(synthetic_image(width, height, seed), local.metadata)
                  for seed in range(args.images)]
        lo, hi = batch_range(served)
        requests = [(f"image {i}", x) for i, x in enumerate(images)]
        if hi > 1 and len(images) > 1:
            n = min(hi, len(images))
            requests.append((f"batch of {n}", np.concatenate(images[:n])))
        for what, x in requests:
            want, got = local.infer(x), served.infer(x)
            problems = []
            if "labels" in want:
                agree = float(np.mean(want["labels"] == got.get("labels")))
                if agree < args.min_agreement:
                    problems.append(f"labels agree on {agree:.4%} of pixels")
            if "logits" in want and "logits" in got:
                diff = float(np.max(np.abs(want["logits"] - got["logits"])))
                if diff > args.atol:
                    problems.append(f"logits differ by up to {diff:.3g}")
            print(f"{what}: {'FAIL ' + '; '.join(problems) if problems else 'ok'}")
            failed += bool(problems)
    print(("FAIL" if failed else "PASS") + f" {args.server} model {args.model_name}: "
          f"{len(requests) - failed} of {len(requests)} requests answered like onnxruntime")
    return EXIT_CHECK_FAILED if failed else 0


def main(argv=None):
    from bisenet_deploy.portable.shared.errors import UserError

    args = parse_args(argv)
    try:
        return compare(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
