"""`bisenet-compare`: the same inputs through a reference and each backend, judged per precision.

    bisenet-compare --reference torch --checkpoint C --against onnxruntime:O [tensorrt:E@fp16 ...]
                    [--images DIR | --synthetic N] [--json PATH] [--plot PATH] [--tol K=V ...]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shlex

from .common import add_logging_args, add_model_args, run_cli

log = logging.getLogger(__name__)


def build_parser():
    from ..evaluation.tolerances import describe_defaults

    p = argparse.ArgumentParser(
        prog="bisenet-compare",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run identical inputs through a reference (PyTorch by default, on exactly "
                    "the exported graph) and each backend under test; report logits errors, "
                    "identical-label share, per-class IoU between label maps and NaN/Inf counts, "
                    "and judge them against precision-dependent tolerances. Exit code 3 when a "
                    "backend is outside tolerance.",
        epilog="backends: BACKEND[:PATH][@PRECISION], BACKEND one of torch, torch-cuda, "
               "onnxruntime, onnxruntime-cuda, onnxruntime-trt, tensorrt; PRECISION fp32/fp16/"
               "int8 picks the tolerance table (default: the model's own).\n\n"
               "default tolerances (override with --tol [PRECISION.]OUTPUT.NAME=VALUE|none):\n"
               + describe_defaults())
    p.add_argument("--reference", default="torch", metavar="BACKEND[:PATH]",
                   help="the reference backend (default: torch, with --checkpoint, running the "
                        "graph described by each tested model's metadata)")
    p.add_argument("--against", nargs="+", required=True, metavar="BACKEND[:PATH][@PREC]",
                   help="backends under test, e.g. onnxruntime:model.onnx tensorrt:m.plan@fp16")
    add_model_args(p)
    p.add_argument("--onnx", metavar="PATH", help="ONNX file for backends given without a path")
    p.add_argument("--engine", metavar="PATH", help="engine for tensorrt given without a path")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--images", nargs="+", metavar="PATH",
                     help="image files or folders to compare on (resized to the graph input)")
    src.add_argument("--synthetic", type=int, metavar="N",
                     help="N seeded synthetic street scenes at the graph input size (default 4)")
    p.add_argument("--limit", type=int, metavar="N", help="use at most N of the --images")
    p.add_argument("--tol", action="append", default=[], metavar="KEY=VALUE",
                   help="tolerance override, e.g. labels.min_identical=0.999, "
                        "fp16.logits.max_rel=0.1, logits.max_abs=none (repeatable)")
    p.add_argument("--tol-file", metavar="JSON",
                   help="tolerances as JSON shaped like the defaults (any subset)")
    p.add_argument("--json", metavar="PATH", help="write the full report as JSON")
    p.add_argument("--plot", metavar="PNG",
                   help="write a PNG showing, per backend, where its labels differ")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch/onnxruntime")
    add_logging_args(p)
    p.set_defaults(func=_run)
    return p


def _load_images(paths, limit):
    from ..evaluation.predict import collect_inputs
    from ..runtime.images import read_image

    files = collect_inputs(paths, videos=False)
    return [read_image(f) for f in (files[:limit] if limit else files)]


def _torch_candidate_record(source, spec, args):
    """The graph a torch backend under test runs: the --onnx's, else the default export's."""
    from ..evaluation.backends import record_for_reference

    if args.onnx:
        from ..export.onnx_metadata import read_record

        record = read_record(args.onnx)
    else:
        record = source.torch_record(spec, (2048, 1024), (1024, 512))
    return record_for_reference(record)  # both outputs; precision is the runner's option


def _run(args):
    from ..portable.fileio import check_writable
    from ..errors import InputError, ParityError
    from ..evaluation import compare as cmp
    from ..evaluation import tolerances as tol
    from ..evaluation.backends import ModelSource, parse_spec, record_for_reference
    from ..evaluation.colorize import palette_from_record
    from ..portable.fileio import write_json_atomic
    from ..synthetic import synthetic_image

    if args.synthetic is not None and args.synthetic < 1:
        raise InputError(f"--synthetic must be >= 1, got {args.synthetic}")
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        check_writable(path, option)  # before the comparison, not after it
    overrides = tol.parse_overrides(args.tol)
    if args.tol_file:
        overrides = tol.load_tolerance_file(args.tol_file) + overrides
    ref_spec = parse_spec(args.reference)
    specs = [parse_spec(s) for s in args.against]
    source = ModelSource.from_args(args)

    with contextlib.ExitStack() as stack:
        candidates = []
        for spec in specs:
            record = None
            if spec.family == "torch":  # PyTorch under test (e.g. torch-cuda@fp16)
                record = _torch_candidate_record(source, spec, args)
            runner = stack.enter_context(source.open(spec, record))
            candidates.append(cmp.Candidate(spec.text, runner, spec.precision))

        if ref_spec.family == "torch":
            def reference(record):
                return stack.enter_context(source.open(ref_spec, record_for_reference(record)))
        else:
            reference = stack.enter_context(source.open(ref_spec))

        record = candidates[0].runner.metadata or {}
        if args.images:
            images = _load_images(args.images, args.limit)
            what = f"{len(images)} image(s) from {', '.join(args.images)}"
        else:
            w, h = (record.get("export") or {}).get("input_size") or (1024, 512)
            n = args.synthetic or 4
            images = [synthetic_image(int(w), int(h), seed=i) for i in range(n)]
            what = f"{n} synthetic image(s) {w}x{h}"
        log.info("comparing on %s", what)
        report = cmp.compare(reference, candidates, images, overrides=overrides,
                             keep_worst=bool(args.plot))
    report["inputs"] = what
    report["command"] = " ".join(shlex.quote(a) for a in ["bisenet-compare"] + list(args.argv))
    print(cmp.format_report(report))
    if args.plot:
        cmp.plot_disagreement(report, args.plot, palette_from_record(record))
        print(f"disagreement plot: {args.plot}")
    if args.json:
        write_json_atomic(args.json, cmp.json_report(report))
        print(f"report: {args.json}")
    if not report["passed"]:
        failed = [b["backend"] for b in report["backends"] if not b["passed"]]
        raise ParityError(f"{', '.join(failed)} differ(s) from the reference beyond tolerance "
                          f"(see the report above; loosen with --tol only if that is expected)")
    return 0


def main(argv=None):
    return run_cli(build_parser(), argv)
