"""The two PyTorch -> ONNX exporters and the choice between them (`--exporter`).

* dynamo: `torch.onnx.export(..., dynamo=True)`, the torch.export-based exporter, PyTorch's default
  since 2.9 and the one that survives the next PyTorch. It writes its own opset (18 here), which
  `opset_convert.convert_opset` then brings to the target's opset and op forms (opset 13 with
  ReduceMean axes as an attribute for TensorRT 8.2, 17 for the others).
* torchscript: `torch.onnx.export(..., dynamo=False)` (torch.jit tracing), deprecated by PyTorch
  and kept as the fallback while torch ships it. It writes any opset 11-20 directly.

`auto` (the default) uses dynamo wherever the installed torch has it (torch >= 2.5 with the
`onnxscript` package) and falls back to TorchScript with one warning line that says why when the
dynamo path is missing or fails: the export or the opset conversion raises, the graph fails
onnx.checker, or it breaks the target's rules. Either way the caller's gates (onnx.checker, the
target rules, parity with PyTorch) decide about the final graph; the record says which exporter
made it.

Both exporters run with the warnings of torch's own machinery silenced (the TorchScript exporter's
deprecation notice, torch.export internals); they are logged at DEBUG level instead, so a normal
export prints only what concerns the user.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import re
import warnings
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ..errors import ExportError, InputError
from ..metadata import ExportInfo
from .targets import TargetRules

log = logging.getLogger(__name__)

EXPORTERS = ("auto", "dynamo", "torchscript")
DEFAULT_EXPORTER = "auto"
#: the opset the dynamo exporter writes natively (its op library is written for it)
DYNAMO_OPSET = 18


#: terminal colour codes that torch.export puts in its messages
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _failure(exc: BaseException) -> str:
    """`Type: first line` of an exporter's exception, for a one-line message. A Ctrl-C or SIGTERM
    that torch.export turned into an export error is raised again: it must stop the run, never
    trigger the TorchScript fallback."""
    seen: set = set()
    cause: Optional[BaseException] = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            raise cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    first_line = (_ANSI.sub("", str(exc)).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first_line}"


def dynamo_unavailable_reason() -> Optional[str]:
    """Why the torch.export-based exporter cannot run here, or None when it can."""
    import torch

    if "dynamo" not in inspect.signature(torch.onnx.export).parameters:
        return f"torch {torch.__version__} has no torch.export-based ONNX exporter (needs >= 2.5)"
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter's op library)
    except ImportError:
        return "the onnxscript package is not installed (pip install onnxscript)"
    return None


def validate_exporter(name: str) -> str:
    """Refuse an unknown exporter, or dynamo where this torch has none, before any work."""
    if name not in EXPORTERS:
        raise InputError(f"--exporter {name!r} is unknown: choose one of {', '.join(EXPORTERS)}")
    if name == "dynamo":
        reason = dynamo_unavailable_reason()
        if reason is not None:
            raise InputError(f"--exporter dynamo is not possible: {reason}; use --exporter "
                             f"torchscript or auto")
    return name


def _example_input(info: ExportInfo, batch_size: int) -> Any:
    import torch

    w, h = (int(v) for v in info.input_size)
    dtype = torch.uint8 if info.input_dtype == "uint8" else torch.float32
    return torch.zeros((batch_size, 3, h, w), dtype=dtype)


@contextlib.contextmanager
def _quiet_torch() -> Iterator[None]:
    """Silence torch's warnings and its exporter's log lines (kept at DEBUG in our log)."""
    torch_onnx_log = logging.getLogger("torch.onnx")
    level = torch_onnx_log.level
    torch_onnx_log.setLevel(logging.ERROR)  # e.g. "torchvision is not installed. Skipping ..."
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        for item in caught:
            log.debug("exporter warning: %s: %s", item.category.__name__, item.message)
    finally:
        torch_onnx_log.setLevel(level)


def export_torchscript(module: Any, info: ExportInfo, opset: int) -> Any:
    """Trace `module` with the TorchScript exporter into an onnx.ModelProto at `opset`."""
    import onnx
    import torch

    batch = info.batch
    example = _example_input(info, int(batch["opt"] if batch.get("dynamic") else batch["size"]))
    dynamic_axes = None
    if batch.get("dynamic"):
        dynamic_axes = {info.input_name: {0: "batch"}}
        dynamic_axes.update({name: {0: "batch"} for name in info.output_names})
    buffer = io.BytesIO()
    try:
        with _quiet_torch(), torch.no_grad():
            # a BytesIO is accepted as the file argument (the stubs only name paths)
            torch.onnx.export(
                module.eval(), (example,), buffer,  # type: ignore[arg-type]
                dynamo=False, opset_version=opset,
                input_names=[info.input_name], output_names=list(info.output_names),
                dynamic_axes=dynamic_axes, do_constant_folding=True)
    except Exception as exc:
        raise ExportError(f"the TorchScript exporter failed at opset {opset}: "
                          f"{_failure(exc)}") from None
    return onnx.load_from_string(buffer.getvalue())


def _dynamic_shapes(info: ExportInfo) -> Tuple[int, Optional[Tuple[Dict[int, Any]]]]:
    """(example batch size, dynamic_shapes) for torch.export.

    torch.export specializes a dimension whose example size is 1, so a dynamic batch is traced
    with at least 2 images (the graph does not depend on the example's batch size).
    """
    import torch

    batch = info.batch
    if not batch.get("dynamic"):
        return int(batch["size"]), None
    lo, hi = int(batch["min"]), int(batch["max"])
    example = max(2, lo)
    dim = torch.export.Dim("batch", min=lo, max=max(hi, example))
    return example, ({0: dim},)


def export_dynamo(module: Any, info: ExportInfo, opset: int) -> Any:
    """Export `module` with the torch.export-based exporter, then bring it to `opset`."""
    import torch

    from .opset_convert import convert_opset

    reason = dynamo_unavailable_reason()
    if reason is not None:
        raise ExportError(f"the torch.export-based exporter is not available: {reason}")
    batch_size, dynamic_shapes = _dynamic_shapes(info)
    example = _example_input(info, batch_size)
    try:
        with _quiet_torch(), torch.no_grad():
            program = torch.onnx.export(
                module.eval(), (example,), dynamo=True, opset_version=DYNAMO_OPSET,
                input_names=[info.input_name], output_names=list(info.output_names),
                dynamic_shapes=dynamic_shapes, optimize=True, verbose=False, report=False)
            if program is None:  # only with a file argument, which is not given here
                raise RuntimeError("torch.onnx.export returned no ONNX program")
            model = program.model_proto
    except Exception as exc:
        raise ExportError(f"the torch.export-based exporter failed: {_failure(exc)}") from None
    if info.batch.get("dynamic"):
        _name_batch_dims(model)
    converted = convert_opset(model, opset)
    try:
        import onnx

        onnx.checker.check_model(converted, full_check=True)
    except Exception as exc:
        raise ExportError(f"the torch.export-based graph at opset {opset} fails onnx.checker: "
                          f"{_failure(exc)}") from None
    return converted


def _rule_problems(model: Any, rules: Optional[TargetRules]) -> List[str]:
    """What a freshly exported graph breaks of the target's rules, as one line each."""
    if rules is None:
        return []
    from .check import check_onnx

    problems = check_onnx(model, rules)
    return [f"its graph breaks {len(problems)} rule(s) of target {rules.name}: "
            + "; ".join(problems)] if problems else []


def _name_batch_dims(model: Any) -> None:
    """Name the dynamic first dimension "batch" on the graph's inputs and outputs (as the
    TorchScript exporter does), whatever symbol torch.export gave it."""
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = "batch"


def export_graph(module: Any, info: ExportInfo, opset: int, exporter: str = DEFAULT_EXPORTER,
                 rules: Optional[TargetRules] = None) -> Tuple[Any, str]:
    """Export `module` (a DeployModule) to an onnx.ModelProto at `opset`.

    Returns (model, the exporter that made it: "dynamo" or "torchscript"). `auto` tries dynamo
    first and falls back to TorchScript with one warning saying why; with `rules` (a
    targets.TargetRules) a dynamo graph that breaks them counts as a failure too.
    """
    validate_exporter(exporter)
    if exporter == "torchscript":
        return export_torchscript(module, info, opset), "torchscript"
    if exporter == "dynamo":
        return export_dynamo(module, info, opset), "dynamo"
    reason = dynamo_unavailable_reason()
    if reason is None:
        try:
            model = export_dynamo(module, info, opset)
            problems = _rule_problems(model, rules)
            if not problems:
                return model, "dynamo"
            reason = problems[0]
        except ExportError as exc:
            reason = str(exc)
    log.warning("torch.export-based exporter not used (%s): falling back to the TorchScript "
                "exporter", reason)
    return export_torchscript(module, info, opset), "torchscript"
