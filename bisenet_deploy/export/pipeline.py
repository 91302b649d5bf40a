"""`export_onnx(options)`: checkpoint -> simplified, checked, parity-proven ONNX for a TensorRT target.

Steps (each logged with its time): validate options (before any work) -> build model -> export
(exporters.py: torch.export-based, brought to the target's opset, or TorchScript) ->
onnx-simplifier (a failure falls back to the unsimplified graph with a warning) -> fix Resize
sizes to constants -> [FP16 type pass for an FP16 graph (trt11 --precision fp16)] ->
onnx.checker with full shape inference -> target check -> TensorRT's parser (if installed) ->
parity against PyTorch on onnxruntime CPU -> metadata ->
atomic write. Nothing is written unless every step passed; an existing file is only ever
replaced by an atomic rename.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ..errors import ExportError, InputError
from ..portable.files.record_schema import MAX_BATCH, MAX_SIDE as RECORD_MAX_SIDE
from ..portable.shared.step_timer import StepTimer
from ..metadata import (
    CHANNEL_ORDERS,
    INPUT_DTYPES,
    NORMALIZE_MODES,
    OUTPUT_KINDS,
    ExportInfo,
    ModelMetadata,
    build_record,
)
from .check import check_graph, target_check, tensorrt_parser_check
from .targets import DEFAULT_TARGET, TargetRules, get_target, validate_target_options
from .graph_surgery import freeze_resize_sizes

log = logging.getLogger(__name__)

INPUT_NAME = "image"
MIN_INPUT_SIDE = 32
MAX_SIDE = RECORD_MAX_SIDE  # what a record may declare (portable/files/record_schema.py)
DEFAULT_EXPORT_DIR = "export"


@dataclass
class ExportOptions:
    """Everything `bisenet-export onnx` takes. Sizes are (width, height)."""

    checkpoint: Optional[str] = None
    arch: Optional[str] = None
    dataset: Optional[str] = None
    num_classes: Optional[int] = None
    seed: int = 0
    output_path: Optional[str] = None
    input_size: Tuple[int, int] = (2048, 1024)
    model_size: Tuple[int, int] = (1024, 512)
    normalize: str = "in-graph"
    channel_order: Optional[str] = None  # None: the network's own order
    input_dtype: str = "float32"
    output: str = "labels"
    target: str = DEFAULT_TARGET
    precision: str = "fp32"
    dynamic_batch: Optional[Tuple[int, int, int]] = None
    batch: int = 1
    simplify: bool = True
    parity: bool = True
    opset: Optional[int] = None
    parity_seed: int = 0
    exporter: str = "auto"  # exporters.EXPORTERS
    progress: bool = True  # a bar over the steps, on a terminal only (bisenet_deploy.progress)
    int8: Optional[Any] = None  # int8_export.Int8Options, for precision "int8"


@dataclass
class ExportResult:
    path: str
    record: Dict[str, Any]
    parity: Optional[Any]  # parity.ParityReport, None with --skip-parity
    timings: List[Tuple[str, float]] = field(default_factory=list)
    simplified: bool = False
    num_nodes: int = 0
    file_bytes: int = 0
    parser: Optional[Any] = None  # portable.building.parser_check.ParserVerdict; None without TensorRT
    int8: Optional[Any] = None  # int8_export.Int8Result for --precision int8

    @property
    def total_seconds(self) -> float:
        return sum(t for _, t in self.timings)


def output_names_for(output: str) -> List[str]:
    return {"labels": ["labels"], "logits": ["logits"], "both": ["labels", "logits"]}[output]


def batch_record(options: ExportOptions) -> Dict[str, Any]:
    if options.dynamic_batch is not None:
        lo, opt, hi = (int(v) for v in options.dynamic_batch)
        return {"dynamic": True, "min": lo, "opt": opt, "max": hi}
    return {"dynamic": False, "size": int(options.batch)}


def validate_options(options: ExportOptions) -> Tuple[TargetRules, int]:
    """Refuse bad options with a clear message before anything is built or written."""
    in_w, in_h = (int(v) for v in options.input_size)
    m_w, m_h = (int(v) for v in options.model_size)
    if in_w < MIN_INPUT_SIDE or in_h < MIN_INPUT_SIDE or in_w > MAX_SIDE or in_h > MAX_SIDE:
        raise InputError(f"--input-size {in_w}x{in_h}: each side must be between "
                         f"{MIN_INPUT_SIDE} and {MAX_SIDE} pixels (e.g. 2048x1024)")
    if m_w < 32 or m_h < 32 or m_w % 32 or m_h % 32 or m_w > MAX_SIDE or m_h > MAX_SIDE:
        raise InputError(f"--model-size {m_w}x{m_h}: both sides must be positive multiples of 32 "
                         f"(BiSeNet V2 downsamples by 32), e.g. 1024x512")
    if options.normalize not in NORMALIZE_MODES:
        raise InputError(f"--normalize must be one of {NORMALIZE_MODES}")
    if options.channel_order is not None and options.channel_order not in CHANNEL_ORDERS:
        raise InputError(f"--channel-order must be one of {CHANNEL_ORDERS}")
    if options.input_dtype not in INPUT_DTYPES:
        raise InputError(f"--input-dtype must be one of {INPUT_DTYPES}")
    if options.output not in OUTPUT_KINDS:
        raise InputError(f"--output must be one of {OUTPUT_KINDS}")
    if options.input_dtype == "uint8" and options.normalize != "in-graph":
        raise InputError("--input-dtype uint8 takes raw pixels and needs --normalize in-graph "
                         "(an already-normalized tensor is float)")
    if options.dynamic_batch is not None:
        lo, opt, hi = options.dynamic_batch
        if not 1 <= lo <= opt <= hi <= MAX_BATCH:
            raise InputError(f"--dynamic-batch needs 1 <= MIN <= OPT <= MAX <= {MAX_BATCH}")
        if options.batch != 1:
            raise InputError("give either --batch N (static) or --dynamic-batch MIN:OPT:MAX, "
                             "not both")
    elif not 1 <= int(options.batch) <= MAX_BATCH:
        raise InputError(f"--batch must be 1..{MAX_BATCH}, got {options.batch}")
    rules, opset = validate_target_options(options.target, input_dtype=options.input_dtype,
                                           precision=options.precision, opset=options.opset)
    from .exporters import validate_exporter

    validate_exporter(options.exporter)
    if options.precision == "int8":
        from .int8_export import Int8Options

        (options.int8 or Int8Options()).validate()
    elif options.int8 is not None and options.int8.calib_images:
        raise InputError("--calib-images applies to --precision int8 only")
    if options.output_path is not None and os.path.isdir(options.output_path):
        raise InputError(f"-o {options.output_path!r} is a folder; give a file name ending .onnx")
    if options.output_path is not None:
        _check_output_path(options.output_path, _scans(options))  # before loading the model
    return rules, opset


def _scans(options: ExportOptions) -> bool:
    return options.int8 is not None and bool(options.int8.sensitivity_scan)


def _check_output_path(path: str, scan: bool = False) -> None:
    """Refuse an output that cannot be written (under a file, in a read-only folder) or that is
    not an ONNX this tool wrote, before the export and parity run, not after them; with `scan`,
    the same for the sensitivity scan's report beside it."""
    from ..portable.files.fileio import check_writable
    from ..portable.files.ownership import check_replaceable

    check_replaceable(path, "onnx", option="-o/--output")
    check_writable(path, "-o/--output")
    if scan:
        from .int8_export import SCAN_OPTION, scan_report_path

        check_replaceable(scan_report_path(path), "json", option=SCAN_OPTION)


#: the default file name pattern (export_stem); export/README.md quotes it verbatim
NAME_PATTERN = ("<arch>-<dataset>-<inW>x<inH>-to-<mW>x<mH>-<output>-<target>"
                "[-fp16|-int8][-uint8][-prenorm|-bgr][-bN|-dynMIN-MAX].onnx")


def export_stem(record: Dict[str, Any]) -> str:
    """The file name (NAME_PATTERN without .onnx) that says what an export is, from its record.

    `-fp16` an FP16 graph (trt11 --precision fp16), never on a target that keeps the FP32
    graph and leaves FP16 to the builder flag (no file named for what it does not hold);
    `-int8` a Q/DQ graph (--precision int8); `-uint8` a uint8 input, `-prenorm` an already-normalized input (--normalize none), else `-bgr` a BGR graph
    input; `-bN` a static batch N > 1, `-dynMIN-MAX` a dynamic batch. Characters outside
    [A-Za-z0-9-._] become "_".
    """
    model, export = record["model"], record["export"]
    in_w, in_h = export["input_size"]
    m_w, m_h = export["model_size"]
    name = (f"{model['arch']}-{model['dataset']}-{in_w}x{in_h}-to-{m_w}x{m_h}-{export['output']}-"
            f"{export['target']}")
    if get_target(export["target"]).graph_precision(export["precision"]) == "fp16":
        name += "-fp16"
    elif export["precision"] == "int8":  # a Q/DQ graph on every target
        name += "-int8"
    if export["input_dtype"] == "uint8":
        name += "-uint8"
    if export["normalize"] == "none":
        name += "-prenorm"
    elif export["channel_order"] == "bgr":
        name += "-bgr"
    batch = export["batch"]
    if batch.get("dynamic"):
        name += f"-dyn{batch['min']}-{batch['max']}"
    elif int(batch["size"]) != 1:
        name += f"-b{batch['size']}"
    return "".join(c if (c.isalnum() or c in "-._") else "_" for c in name)


def default_output_path(record: Dict[str, Any]) -> str:
    """export/<export_stem(record)>.onnx"""
    return os.path.join(DEFAULT_EXPORT_DIR, export_stem(record) + ".onnx")


def _load(options: ExportOptions):
    from ..checkpoint import load_model

    loaded = load_model(options.checkpoint, arch=options.arch, dataset=options.dataset,
                        num_classes=options.num_classes, seed=options.seed)
    return loaded.model, loaded.metadata


def torch_export(module: Any, info: ExportInfo, opset: int, exporter: str,
                 rules: Optional[TargetRules] = None) -> Tuple[Any, str]:
    """`module` as an onnx.ModelProto at `opset` (in memory), and the exporter that made it."""
    from .exporters import export_graph

    return export_graph(module, info, opset, exporter, rules)


def simplify(model: Any) -> Tuple[Any, bool]:
    """onnx-simplifier; on any failure keep the unsimplified graph (with a warning)."""
    try:
        import onnxsim

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            simplified, ok = onnxsim.simplify(model)
        if not ok:
            raise RuntimeError("onnxsim's own check of the simplified graph failed")
        return simplified, True
    except Exception as exc:
        log.warning("onnx-simplifier failed (%s: %s): keeping the unsimplified graph",
                    type(exc).__name__, exc)
        return model, False


def export_record(options: ExportOptions, meta: ModelMetadata, target: str, opset: int
                  ) -> Dict[str, Any]:
    """The metadata record (model + export info) of an export of `meta`'s network with `options`."""
    channel_order = options.channel_order or meta.channel_order
    if options.normalize == "none" and channel_order != meta.channel_order:
        raise InputError(
            f"--normalize none takes the tensor the network takes, in its own channel order "
            f"({meta.channel_order}); --channel-order {channel_order} only applies with "
            f"--normalize in-graph")
    info = ExportInfo(
        input_name=INPUT_NAME, input_size=[int(v) for v in options.input_size],
        model_size=[int(v) for v in options.model_size], input_dtype=options.input_dtype,
        channel_order=channel_order, normalize=options.normalize, output=options.output,
        output_names=output_names_for(options.output), target=target,
        precision=options.precision, opset=opset, batch=batch_record(options))
    return build_record(meta, info)


def export_onnx(options: ExportOptions, loaded: Optional[Tuple[Any, ModelMetadata]] = None
                ) -> ExportResult:
    """Run the whole pipeline. `loaded` = (model, metadata) skips loading (tests, API users)."""
    from ..progress import progress_bar

    rules, opset = validate_options(options)
    fp16_graph = rules.graph_precision(options.precision) == "fp16"
    # export, constant resize, checker, target check, parser, write + the optional steps
    total = 6 + sum((loaded is None, options.simplify, fp16_graph, options.parity))
    with progress_bar(total=total, desc="export", unit="step", enabled=options.progress) as bar:
        return _export_steps(options, loaded, rules, opset, StepTimer(log, bar=bar))


def _export_steps(options, loaded, rules, opset, steps) -> ExportResult:
    model, meta = loaded if loaded is not None else steps.run("build model", _load, options)
    record = export_record(options, meta, rules.name, opset)
    path = options.output_path or default_output_path(record)
    _check_output_path(path, _scans(options))
    if meta.weights == "random-init":
        log.warning("WARNING: exporting RANDOM weights (no --checkpoint): the graph is only good "
                    "for trying the pipeline, its labels mean nothing")

    from .deploy_module import DeployModule

    # always traced in FP32 (a half-precision forward pass on a CPU is ~50x slower); an FP16
    # graph is made from the checked FP32 graph by a type pass (fp16.py)
    fp16_graph = rules.graph_precision(options.precision) == "fp16"
    trace_record = dict(record, export=dict(record["export"], precision="fp32"))
    module = DeployModule(model, trace_record)
    onnx_model, record["export"]["exporter"] = steps.run(
        f"export (opset {opset})", torch_export, module, ExportInfo.from_dict(record["export"]),
        opset, options.exporter, rules)
    simplified = False
    if options.simplify:
        onnx_model, simplified = steps.run("onnx-simplifier", simplify, onnx_model)
    else:
        log.info("onnx-simplifier skipped (--no-simplify)")
    steps.run("constant resize", freeze_resize_sizes, onnx_model)
    if fp16_graph:
        from .fp16 import convert_to_fp16

        onnx_model = steps.run("to fp16", convert_to_fp16, onnx_model)
    steps.run("onnx.checker", check_graph, onnx_model)
    steps.run(f"check {rules.name}", target_check, onnx_model, rules)
    parser = steps.run("TensorRT parser", tensorrt_parser_check, onnx_model)
    parity = None
    if options.parity:
        from .parity import check_parity

        parity = steps.run("parity", check_parity, model, record, onnx_model,
                           seed=options.parity_seed)
    else:
        log.warning("parity check skipped (--skip-parity): this graph is not proven against "
                    "PyTorch")

    int8 = None
    if options.precision == "int8":  # the proven FP32 graph -> the gated Q/DQ graph
        from .int8_export import quantize_step

        onnx_model, int8, parser = quantize_step(steps, onnx_model, record, options.int8, path,
                                                 rules)

    from ..portable.files.fileio import write_bytes_atomic
    from .onnx_metadata import set_parity, set_record

    set_record(onnx_model, record)
    if parity is not None:
        set_parity(onnx_model, parity.to_dict())
    onnx_model.producer_name = "bisenet-deploy"
    data = onnx_model.SerializeToString()
    try:
        steps.run("write", write_bytes_atomic, path, data)
    except OSError as exc:
        raise ExportError(f"cannot write {path!r}: {exc.strerror or exc}; choose another "
                          f"-o/--output") from None
    return ExportResult(path=os.path.abspath(path), record=record, parity=parity,
                        timings=steps.done, simplified=simplified,
                        num_nodes=len(onnx_model.graph.node), file_bytes=len(data), parser=parser,
                        int8=int8)
