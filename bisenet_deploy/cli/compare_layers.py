"""`bisenet-compare --layers`: layer-by-layer comparison of graphs of the same model.

    bisenet-compare --layers --reference onnxruntime:FP32.onnx | torch[:CKPT]
                    --against onnxruntime:INT8.onnx [onnxruntime:FP16.onnx ...]
                              [tensorrt:INT8.onnx ...]
                    [--synthetic N | --images PATH...] [--min-cosine C] [--json P] [--plot P]

`tensorrt:MODEL.onnx` names an ONNX, not an engine: an engine shows only the outputs marked when
it was built, so the comparison builds one of its own with every Conv output marked
(evaluation/engine_layers.py); that needs an NVIDIA GPU to run.
"""

from __future__ import annotations

import shlex

from .common import write_json_report
from .options import JSON_STDOUT

_NOT_HERE = ("--layers compares ONNX graphs (on onnxruntime CPU, or built into a TensorRT engine "
             "with every Conv output marked) against each other or against PyTorch on CPU: give "
             "{option} {what}, not {text!r}")
_WHAT = {"onnxruntime": "onnxruntime:PATH.onnx", "torch": "torch[:CKPT]",
         "tensorrt": "tensorrt:PATH.onnx"}


def _spec(text: str, option: str, allowed):
    from ..errors import InputError
    from ..evaluation.backends import parse_spec

    spec = parse_spec(text)
    if spec.backend not in allowed:
        what = " or ".join(_WHAT[a] for a in allowed)
        raise InputError(_NOT_HERE.format(option=option, what=what, text=text))
    if spec.backend == "tensorrt" and spec.path and not spec.path.lower().endswith(".onnx"):
        raise InputError(f"{option} {text}: --layers needs the ONNX for tensorrt "
                         f"(tensorrt:PATH.onnx), not an engine: an engine shows only the outputs "
                         f"marked when it was built, so the comparison builds its own with every "
                         f"Conv output marked")
    return spec


def _tensorrt_usable() -> None:
    """One line and exit 4 before any work where no engine can run here."""
    from ..errors import MissingDependencyError
    from ..runtime.factory import backend_problem

    problem = backend_problem("tensorrt")
    if problem:
        raise MissingDependencyError(f"--layers against tensorrt: {problem}")


def _load(path: str):
    from ..export.onnx_metadata import get_record, load_onnx

    model = load_onnx(path)
    return model, get_record(model, source=path)


def run_layers(args, load_images) -> int:
    from ..errors import InputError
    from ..evaluation.backends import ModelSource, resolve_path
    from ..evaluation.layers import TorchProbe, compare_layers, format_layers, plot_layers
    from ..synthetic import synthetic_image

    if not 0.0 < args.min_cosine <= 1.0:
        raise InputError(f"--min-cosine must be in (0, 1], got {args.min_cosine}")
    ref_spec = _spec(args.reference, "--reference", ("onnxruntime", "torch"))
    cand_specs = [_spec(s, "--against", ("onnxruntime", "tensorrt")) for s in args.against]
    if any(spec.backend == "tensorrt" for spec in cand_specs):
        _tensorrt_usable()
    cand_paths = []
    for spec in cand_specs:
        path = spec.path or args.onnx
        if not path:
            raise InputError(f"--against {spec.text}: name the ONNX ({spec.backend}:PATH.onnx)")
        cand_paths.append(path)
    reference = record = None
    if ref_spec.backend == "onnxruntime":
        ref_path = ref_spec.path or args.onnx
        if not ref_path:
            raise InputError("--reference onnxruntime: name the ONNX (onnxruntime:PATH.onnx)")
        reference, record = _load(ref_path)
    source = ModelSource.from_args(args)
    reports = []
    images = None
    for text, spec, path in zip(args.against, cand_specs, cand_paths):
        candidate, cand_record = _load(path)
        if record is not None and cand_record["export"]["input_size"] != \
                record["export"]["input_size"]:
            raise InputError(f"{path} takes {cand_record['export']['input_size']}, the reference "
                             f"{record['export']['input_size']}: not two graphs of one export")
        use_record = record or cand_record
        if images is None:
            w, h = use_record["export"]["input_size"]
            images = load_images(args.images, args.limit, []) if args.images else \
                [synthetic_image(int(w), int(h), seed=i) for i in range(args.synthetic or 2)]
        ref = reference
        if ref is None:  # PyTorch: the checkpoint, run as this graph was exported
            model, _ = source.loaded(resolve_path(ref_spec, checkpoint=args.checkpoint),
                                     cand_record["model"])
            ref = TorchProbe(model, cand_record, candidate)
        probe = None
        if spec.backend == "tensorrt":
            from ..evaluation.engine_layers import EngineProbe

            probe = EngineProbe(path)
        try:
            report = compare_layers(ref, probe or candidate, use_record, images,
                                    args.min_cosine)
        finally:
            if probe is not None:
                probe.close()
        report.update(reference=args.reference, candidate=path)
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
