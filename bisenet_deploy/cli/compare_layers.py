"""`bisenet-compare --layers`: layer-by-layer comparison of ONNX graphs of the same model.

    bisenet-compare --layers --reference onnxruntime:FP32.onnx
                    --against onnxruntime:INT8.onnx [onnxruntime:FP16.onnx ...]
                    [--synthetic N | --images PATH...] [--min-cosine C] [--json P] [--plot P]
"""

from __future__ import annotations

import shlex

from .common import write_json_report
from .options import JSON_STDOUT


def _onnx_path(spec_text: str, option: str, default=None) -> str:
    from ..errors import InputError
    from ..evaluation.backends import parse_spec

    spec = parse_spec(spec_text)
    if spec.backend != "onnxruntime":
        raise InputError(f"--layers compares ONNX graphs on onnxruntime CPU: give {option} "
                         f"onnxruntime:PATH.onnx, not {spec_text!r} (PyTorch and TensorRT "
                         f"layer comparisons are not implemented yet)")
    path = spec.path or default
    if not path:
        raise InputError(f"{option} {spec_text}: name the ONNX (onnxruntime:PATH.onnx or --onnx)")
    return path


def run_layers(args, load_images) -> int:
    from ..errors import InputError
    from ..evaluation.layers import compare_layers, format_layers, plot_layers
    from ..export.onnx_metadata import get_record, load_onnx

    def load_onnx_with_record(path):
        model = load_onnx(path)
        return model, get_record(model, source=path)
    from ..synthetic import synthetic_image

    if not 0.0 < args.min_cosine <= 1.0:
        raise InputError(f"--min-cosine must be in (0, 1], got {args.min_cosine}")
    ref_path = _onnx_path(args.reference, "--reference", args.onnx)
    cand_paths = [_onnx_path(s, "--against", args.onnx) for s in args.against]
    reference, record = load_onnx_with_record(ref_path)
    if args.images:
        images = load_images(args.images, args.limit, [])
    else:
        w, h = record["export"]["input_size"]
        images = [synthetic_image(int(w), int(h), seed=i) for i in range(args.synthetic or 2)]
    reports = []
    for text, path in zip(args.against, cand_paths):
        candidate, cand_record = load_onnx_with_record(path)
        if cand_record["export"]["input_size"] != record["export"]["input_size"]:
            raise InputError(f"{path} takes {cand_record['export']['input_size']} and {ref_path} "
                             f"{record['export']['input_size']}: not two graphs of one export")
        report = compare_layers(reference, candidate, record, images, args.min_cosine)
        report.update(reference=ref_path, candidate=path)
        reports.append(report)
        print(format_layers(report, f"{text} vs {args.reference}"))
    if args.plot:
        plot_layers(reports, list(args.against), args.plot)
        print(f"layer plot: {args.plot}")
    if args.json:
        write_json_report(args.json, {
            "format": "bisenet-compare-layers/1", "comparisons": reports,
            "command": " ".join(shlex.quote(a) for a in ["bisenet-compare"] + list(args.argv))})
        if args.json != JSON_STDOUT:
            print(f"report: {args.json}")
    return 0
