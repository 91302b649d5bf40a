"""`bisenet-doctor`: what this machine has (Python, torch, ONNX, onnxruntime, the TensorRT flavours,
GPUs, pycuda, cuda-python, Triton), which export target and precision to use on it, and the exact
line that installs what is missing. With --json: the same as one JSON object on stdout."""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from .common import add_logging_args, run_cli
from .options import add_json


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bisenet-doctor",
        description="Report Python, torch, onnx, onnxruntime and its providers, the TensorRT "
                    "flavours installed (full TensorRT, TensorRT-RTX), the GPUs and their compute "
                    "capabilities, pycuda, cuda-python and the Triton pieces; for each TensorRT "
                    "and GPU, which export target and precision to use and why (the README's "
                    "support matrix applied to this machine); and what is missing, with the "
                    "exact install line. Always exits 0 when it could look.")
    add_json(p, "one JSON object (python, packages, tensorrt, gpus, advice, missing), on "
                "stdout (nothing else there) or into PATH")
    add_logging_args(p)
    p.set_defaults(func=_run)
    return p


def _run(args) -> int:
    from ..doctor import diagnose, render

    report = diagnose()
    if args.json:
        from .common import write_json_report

        write_json_report(args.json, report)
    else:
        print(render(report))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
