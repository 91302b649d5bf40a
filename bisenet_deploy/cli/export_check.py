"""`bisenet-export check MODEL.onnx --target T`: does an ONNX graph obey a TensorRT target's rules,
and does the real TensorRT ONNX parser (full TensorRT, else TensorRT-RTX) take it."""

from __future__ import annotations

import logging

from .common import add_logging_args
from .options import add_json, add_onnx_operand

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser(
        "check", help="check an ONNX file against a TensorRT target's rules",
        description="Check opset, op types, ReduceMean/Resize forms and dtypes of an ONNX file "
                    "against what the chosen TensorRT's ONNX parser accepts "
                    "(docs/tensorrt-versions.md, section 3), then parse it with the real "
                    "TensorRT ONNX parser where one is installed (full TensorRT, else "
                    "TensorRT-RTX). Prints PASS, or each violation and the parser's verdict; "
                    "exits 3 on violations or a parser failure (a failed check, as in "
                    "bisenet-compare), 5 for an unreadable file or a damaged metadata record, "
                    "2 for a missing one.")
    add_onnx_operand(p, "the ONNX file to check")
    p.add_argument("--target", choices=("trt8.2", "trt8.6", "trt10", "trt11"), default=None,
                   help="target to check against (default: the one in the file's metadata, "
                        "else trt10)")
    add_json(p, "the result (target, rule violations, parser verdict, passed) as one JSON "
                "object, on stdout (nothing else there) or into PATH; the exit code is the same")
    add_logging_args(p)
    p.set_defaults(func=_run)


def _run(args) -> int:
    from ..errors import InputError, NoMetadataError
    from ..export.check import check_onnx, parser_check
    from ..portable.shared.errors import EXIT_CHECK_FAILED
    from ..portable.building.parser_check import NO_PARSER
    from ..export.onnx_metadata import get_record, load_onnx

    if not args.onnx:
        raise InputError("give the ONNX to check: bisenet-export check MODEL.onnx")
    model = load_onnx(args.onnx)
    target = args.target
    note = None
    try:  # a damaged record is refused (exit 5) before the graph is judged: runtimes would use it
        recorded = get_record(model, args.onnx)["export"].get("target")
    except NoMetadataError:
        recorded = None
        note = (f"{args.onnx} carries no bisenet_deploy metadata (runtimes will not know its "
                f"preprocessing); checking the graph only")
    if target is None:
        target = recorded or "trt10"
    problems = check_onnx(model, target)
    verdict = parser_check(args.onnx)
    failed = bool(problems) or (verdict is not None and not verdict.ok)
    if args.json:
        from .common import write_json_report

        if note:
            log.warning("note: %s", note)
        write_json_report(args.json, {
            "onnx": args.onnx, "target": target,
            "metadata": note is None, "violations": list(problems),
            "parser": verdict.as_dict() if verdict is not None else None,
            "parser_note": NO_PARSER if verdict is None else None, "passed": not failed})
        return EXIT_CHECK_FAILED if failed else 0
    if note:
        print(f"note: {note}")
    if not problems:
        print(f"PASS {args.onnx}: obeys the rules of target {target}")
    else:
        print(f"FAIL {args.onnx}: {len(problems)} violation(s) of target {target}:")
        for problem in problems:
            print(f"  - {problem}")
    if verdict is None:
        print(f"parser: {NO_PARSER}")
    else:
        print(f"{'PASS' if verdict.ok else 'FAIL'} {args.onnx}: {verdict.summary()}")
    return EXIT_CHECK_FAILED if failed else 0
