"""`bisenet-compare`: the same inputs through a reference and each backend, judged per precision.

    bisenet-compare --reference torch --checkpoint C --against onnxruntime:O [tensorrt:E@fp16 ...]
                    [--images DIR | --synthetic N] [--json PATH] [--plot PATH] [--tol K=V ...]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex

from .common import (add_logging_args, add_model_args, check_report_path, positive_int, run_cli,
                     write_json_report)
from .options import (JSON_STDOUT, add_engine, add_images, add_json, add_no_progress, add_onnx,
                      add_plot, plot_path)

log = logging.getLogger(__name__)


def build_parser():
    from ..comparison.profiles import describe_defaults

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
    add_onnx(p, "ONNX file for backends given without a path")
    add_engine(p, "engine for tensorrt given without a path")
    src = p.add_mutually_exclusive_group()
    add_images(src, "image files or folders to compare on (resized to the graph input)")
    src.add_argument("--synthetic", type=int, metavar="N",
                     help="N seeded synthetic street scenes at the graph input size (default 4)")
    p.add_argument("--limit", type=positive_int, metavar="N",
                   help="use at most N of the --images (N >= 1; default: all)")
    p.add_argument("--tol", action="append", default=[], metavar="KEY=VALUE",
                   help="tolerance override, e.g. labels.min_identical=0.999, "
                        "fp16.logits.max_rel=0.1, logits.max_abs=none (repeatable)")
    p.add_argument("--tol-file", metavar="JSON",
                   help="tolerances as JSON shaped like the defaults (any subset)")
    add_json(p, "write the full report as JSON")
    add_plot(p, "write a PNG showing, per backend, where its labels differ (without PATH: "
                "beside the --json report, else bisenet-compare.png here)")
    p.add_argument("--threads", type=positive_int, metavar="N",
                   help="CPU threads for torch/onnxruntime")
    add_no_progress(p)
    lay = p.add_argument_group("layer by layer (--layers)")
    lay.add_argument("--layers", action="store_true",
                     help="compare ONNX graphs of one model layer by layer (FP32 vs FP16 vs "
                          "INT8 on onnxruntime CPU, Conv outputs paired by module name): "
                          "--reference onnxruntime:A.onnx --against onnxruntime:B.onnx ...; "
                          "tensorrt:B.onnx builds B into an engine with every Conv output "
                          "marked and runs it (needs an NVIDIA GPU)")
    lay.add_argument("--min-cosine", type=float, default=0.99, metavar="C",
                     help="a layer whose cosine similarity to the reference is below C is past "
                          "tolerance; the first such layer is reported (default 0.99)")
    add_logging_args(p)
    p.set_defaults(func=_run)
    return p


def _load_images(paths, limit, skipped):
    """The first `limit` readable images; unreadable ones go to `skipped` as (path, reason)."""
    from ..errors import UnusableFileError
    from ..evaluation.predict import collect_inputs
    from ..runtime.images import read_image

    images = []
    for path in collect_inputs(paths, videos=False):
        if limit and len(images) >= limit:
            break
        try:
            images.append(read_image(path))
        except UnusableFileError as exc:
            skipped.append((path, str(exc)))
            log.warning("skipped %s: %s", path, exc)
    if not images:
        raise UnusableFileError(f"none of the images could be read (reasons above): "
                                f"{', '.join(p for p, _ in skipped)}")
    return images


def _check_agreement(source, ref_spec, reference, candidates):
    """Before any inference: refuse a pair that cannot agree (another architecture, class count,
    random vs trained weights), warn about one that may not (another checkpoint file). Returns
    {candidate label: doubt} for the final verdict."""
    from ..errors import InputError
    from ..evaluation.backends import resolve_path
    from ..evaluation.provenance import disagreements

    doubts = {}
    for cand in candidates:
        cand_model = (cand.runner.metadata or {}).get("model") or {}
        if ref_spec.family == "torch":
            path = resolve_path(ref_spec, checkpoint=source.checkpoint)
            ref_model, ref_label = source.loaded(path, cand_model)[1], \
                f"the reference ({ref_spec.text}, {path or 'no --checkpoint'})"
        else:
            ref_model, ref_label = (reference.metadata or {}).get("model"), \
                f"the reference {ref_spec.text}"
        fatal, doubtful = disagreements(ref_model, cand_model, cand.label, ref_label)
        if fatal:
            raise InputError(f"{'; '.join(fatal)}: they cannot give the same answers, compare "
                             f"a model with the checkpoint it was exported from")
        for line in doubtful:
            log.warning("warning: %s", line)
            doubts[cand.label] = line
    source.quiet_provenance = True  # said here already
    return doubts


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
    from ..errors import InputError, ParityError, SkippedInputsError
    from ..evaluation import compare as cmp
    from ..comparison import profiles as tol
    from ..evaluation.backends import ModelSource, parse_spec, record_for_reference
    from ..evaluation.colorize import palette_from_record
    from ..synthetic import synthetic_image

    if args.synthetic is not None and args.synthetic < 1:
        raise InputError(f"--synthetic must be >= 1, got {args.synthetic}")
    if args.limit and not args.images:
        raise InputError("--limit applies to --images; with --synthetic give the count there")
    check_report_path(args.json, "--json")  # before the comparison, not after it
    args.plot = plot_path(args.plot, "bisenet-compare.png" if args.json in (None, JSON_STDOUT)
                          else os.path.splitext(args.json)[0] + ".png")
    check_report_path(args.plot, "--plot", kind="png")
    if args.layers:
        from .compare_layers import run_layers

        return run_layers(args, _load_images)
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

        fixed = None if ref_spec.family == "torch" else reference
        doubts = _check_agreement(source, ref_spec, fixed, candidates)
        record = candidates[0].runner.metadata or {}
        skipped = []
        if args.images:
            if args.limit:
                cmp.check_images_fit(args.limit, record, len(candidates),
                                     f"--limit {args.limit} images", "lower --limit")
            images = _load_images(args.images, args.limit, skipped)
            what = f"{len(images)} image(s) from {', '.join(args.images)}"
        else:
            w, h = (record.get("export") or {}).get("input_size") or (1024, 512)
            n = args.synthetic or 4
            cmp.check_images_fit(n, record, len(candidates), f"--synthetic {n} images",
                                 "lower --synthetic")
            images = [synthetic_image(int(w), int(h), seed=i) for i in range(n)]
            what = f"{n} synthetic image(s) {w}x{h}"
        log.info("comparing on %s", what)
        report = cmp.compare(reference, candidates, images, overrides=overrides,
                             keep_worst=bool(args.plot), progress=not args.no_progress)
    report["inputs"] = what
    report["command"] = " ".join(shlex.quote(a) for a in ["bisenet-compare"] + list(args.argv))
    print(cmp.format_report(report))
    if args.plot:
        cmp.plot_disagreement(report, args.plot, palette_from_record(record))
        print(f"disagreement plot: {args.plot}")
    if args.json:
        write_json_report(args.json, dict(
            cmp.json_report(report), warnings=list(doubts.values()),
            skipped=[{"input": p, "reason": r} for p, r in skipped]))
        if args.json != JSON_STDOUT:
            print(f"report: {args.json}")
    if not report["passed"]:
        failed = [b["backend"] for b in report["backends"] if not b["passed"]]
        why = [doubts[name] for name in failed if name in doubts]
        raise ParityError(f"{', '.join(failed)} differ(s) from the reference beyond tolerance"
                          + (f"; likely why: {why[0]}" if why else
                             " (see the report above; loosen with --tol only if that is "
                             "expected)"))
    if skipped:
        raise SkippedInputsError(f"{len(skipped)} image(s) could not be read and were skipped "
                                 f"(reasons above; compared on the others): "
                                 f"{', '.join(p for p, _ in skipped)}")
    return 0


def main(argv=None):
    return run_cli(build_parser(), argv)
