#!/usr/bin/env python
"""How far an FP32 graph's labels move under an invisible input change: every pixel of the INT8
gate's held-out synthetic scenes moved by a random -1/0/+1 grey level. The yardstick for the
INT8 label agreement (docs/int8.md): quantization cannot be asked to agree better than this.

    python scripts/input_noise_agreement.py FP32.onnx [--count 8]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("onnx")
    p.add_argument("--count", type=int, default=8)
    args = p.parse_args(argv)

    from bisenet_deploy.export.int8_gate import agreement, run_labels, session, synthetic_held_out
    from bisenet_deploy.export.onnx_metadata import load_onnx, read_record

    model = load_onnx(args.onnx)
    record = read_record(model)
    images = synthetic_held_out(record, args.count)
    rng = np.random.default_rng(0)
    noisy = [np.clip(im.astype(np.int16) + rng.integers(-1, 2, im.shape), 0, 255).astype(np.uint8)
             for im in images]
    sess = session(model)
    result = agreement(run_labels(sess, images, record), run_labels(sess, noisy, record),
                       "synthetic street scenes, +-1 grey level noise")
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
