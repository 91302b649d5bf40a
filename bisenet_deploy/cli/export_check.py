"""`bisenet-export check MODEL.onnx --target T`: does an ONNX graph obey a TensorRT target's rules."""

from __future__ import annotations

from .common import add_logging_args


def register(sub) -> None:
    p = sub.add_parser(
        "check", help="check an ONNX file against a TensorRT target's rules",
        description="Check opset, op types, ReduceMean/Resize forms and dtypes of an ONNX file "
                    "against what the chosen TensorRT's ONNX parser accepts "
                    "(docs/tensorrt-versions.md, section 3). "
                    "Prints PASS, or each violation; exits 3 on violations (a failed check, as "
                    "in bisenet-compare), 5 for an unreadable file, 2 for a missing one.")
    p.add_argument("onnx", metavar="MODEL.onnx", help="the ONNX file to check")
    p.add_argument("--target", choices=("trt8.2", "trt8.6", "trt10", "trt11"), default=None,
                   help="target to check against (default: the one in the file's metadata, "
                        "else trt10)")
    add_logging_args(p)
    p.set_defaults(func=_run)


def _run(args) -> int:
    from ..errors import UserError
    from ..portable.errors import EXIT_CHECK_FAILED
    from ..export.check import check_onnx
    from ..export.onnx_metadata import get_record, load_onnx

    model = load_onnx(args.onnx)
    target = args.target
    try:
        recorded = get_record(model, args.onnx)["export"].get("target")
    except UserError:
        recorded = None
        print(f"note: {args.onnx} carries no bisenet_deploy metadata (runtimes will not know its "
              f"preprocessing); checking the graph only")
    if target is None:
        target = recorded or "trt10"
    problems = check_onnx(model, target)
    if not problems:
        print(f"PASS {args.onnx}: obeys the rules of target {target}")
        return 0
    print(f"FAIL {args.onnx}: {len(problems)} violation(s) of target {target}:")
    for problem in problems:
        print(f"  - {problem}")
    return EXIT_CHECK_FAILED
