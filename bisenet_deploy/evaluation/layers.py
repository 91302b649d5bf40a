"""Layer-by-layer comparison of two graphs of the same model (`bisenet-compare --layers`): ONNX
vs ONNX (FP32/FP16/INT8) and PyTorch vs ONNX.

When an FP16 or INT8 graph gives worse masks, the final labels do not say where it went wrong.
This marks every Conv output of both graphs as an extra output (what Polygraphy's
`--onnx-outputs mark all` does), runs both on onnxruntime CPU on the same inputs, and pairs the
layers by their PyTorch module path (`detail.S1.0.conv`, from the Conv's weight name or scope:
the same names in the FP32, FP16 and Q/DQ graphs). Per layer: max and mean relative error and
cosine similarity to the reference, and the first layer (in graph order) whose cosine similarity
falls below the tolerance. PyTorch's side hooks the module whose output the ONNX Conv computes
(the BatchNorm after the Conv, folded into it by the exporter).
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)

#: cosine similarity below which a layer counts as "past tolerance"
DEFAULT_MIN_COSINE = 0.99


def marked_copy(model: Any, names: Sequence[str]) -> Any:
    """A copy of `model` with the tensors `names` added as graph outputs, typed where shape
    inference knows the type (TensorRT's parser needs it; onnxruntime infers a missing one)."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    typed = {v.name: v for v in onnx.shape_inference.infer_shapes(copy).graph.value_info}
    present = {o.name for o in copy.graph.output}
    for name in names:
        if name in present:
            continue
        out = onnx.helper.make_empty_tensor_value_info(name)
        if name in typed:
            out.CopyFrom(typed[name])
        copy.graph.output.append(out)
    return copy


def _marked_session(model: Any, names: Sequence[str]):
    from ..export.int8_gate import session

    return session(marked_copy(model, names))


def conv_outputs(model: Any) -> Dict[str, str]:
    """{module path: Conv output tensor name}, in graph order."""
    from ..export.quantize import conv_layers

    layers = conv_layers(model)
    return {layers[n.name]: n.output[0] for n in model.graph.node if n.name in layers}


class OnnxProbe:
    """Conv outputs of an ONNX graph on onnxruntime CPU, by module path."""

    def __init__(self, model: Any):
        from ..export.quantize import name_nodes

        name_nodes(model)
        self.model = model
        self.outputs = conv_outputs(model)
        self._session = None

    def paths(self) -> List[str]:
        return list(self.outputs)

    def run(self, batch: np.ndarray, paths: Sequence[str]) -> List[np.ndarray]:
        if self._session is None:
            self._session = _marked_session(self.model, [self.outputs[p] for p in paths])
        inp = self._session.get_inputs()[0]
        return self._session.run([self.outputs[p] for p in paths],
                                 {inp.name: batch.astype(_input_dtype(self._session))})


class TorchProbe:
    """The same layers in PyTorch: the graph's own DeployModule (normalization folded into the
    first Conv as the export does), hooked where the ONNX Conv's output is: after the
    BatchNorm that follows a Conv (the exporter folds it into the Conv), else the Conv itself."""

    def __init__(self, torch_model: Any, record: Dict[str, Any], reference_onnx: Any):
        import torch

        from ..export.deploy_module import DeployModule

        fp32 = dict(record, export=dict(record["export"], precision="fp32"))
        self.module = DeployModule(torch_model, fp32)
        onnx_paths = conv_outputs(reference_onnx)
        unfolded = _convs_feeding_batchnorm(reference_onnx)
        modules = dict(self.module.net.named_modules())
        self.hooked: Dict[str, Any] = {}
        for path in onnx_paths:
            conv = modules.get(path)
            if not isinstance(conv, torch.nn.Conv2d):
                continue
            target = conv
            if path not in unfolded:
                parent_path, _, name = path.rpartition(".")
                children = list(modules[parent_path].named_children()) if parent_path in modules \
                    else []
                names = [n for n, _ in children]
                if name in names and names.index(name) + 1 < len(children):
                    after = children[names.index(name) + 1][1]
                    if isinstance(after, torch.nn.BatchNorm2d):
                        target = after
            self.hooked[path] = target

    def paths(self) -> List[str]:
        return list(self.hooked)

    def run(self, batch: np.ndarray, paths: Sequence[str]) -> List[np.ndarray]:
        import torch

        seen: Dict[str, np.ndarray] = {}
        handles = [self.hooked[p].register_forward_hook(
            lambda _m, _i, out, p=p: seen.__setitem__(p, out.detach().float().numpy()))
            for p in paths]
        try:
            with torch.no_grad():
                self.module(torch.from_numpy(batch))
        finally:
            for handle in handles:
                handle.remove()
        return [seen[p] for p in paths]


def _convs_feeding_batchnorm(model: Any) -> set:
    """Module paths of Convs whose ONNX output goes into a BatchNormalization (not folded)."""
    from ..export.quantize import conv_layers

    layers = conv_layers(model)
    bn_inputs = {n.input[0] for n in model.graph.node if n.op_type == "BatchNormalization"}
    return {layers[n.name] for n in model.graph.node
            if n.name in layers and n.output[0] in bn_inputs}


def compare_layers(reference: Any, candidate: Any, record: Dict[str, Any],
                   images: Sequence[np.ndarray], min_cosine: float = DEFAULT_MIN_COSINE
                   ) -> Dict[str, Any]:
    """The per-layer report of `candidate` against `reference`: each an onnx.ModelProto of the
    same model or a probe (OnnxProbe/TorchProbe); `record` prepares `images` for both."""
    from ..export.quantize import batches

    ref = reference if hasattr(reference, "paths") else OnnxProbe(reference)
    cand = candidate if hasattr(candidate, "paths") else OnnxProbe(candidate)
    cand_paths = set(cand.paths())
    paired = [p for p in ref.paths() if p in cand_paths]
    if not paired:
        raise InputError("the two models share no layer name: they are not the same model (or "
                         "one was not exported by bisenet-export)")
    sums: Dict[str, Dict[str, float]] = {p: {"max_rel": 0.0, "mean_rel": 0.0, "cos": 0.0}
                                         for p in paired}
    count = 0
    for batch in batches(images, record):
        for path, a, b in zip(paired, ref.run(batch, paired), cand.run(batch, paired)):
            a = a.astype(np.float64).ravel()
            b = b.astype(np.float64).ravel()
            if a.shape != b.shape:
                raise InputError(f"layer {path}: shapes differ ({a.size} vs {b.size} values): "
                                 f"not two graphs of one export")
            diff = np.abs(a - b)
            s = sums[path]
            s["max_rel"] = max(s["max_rel"], float(diff.max()) / max(float(np.abs(a).max()),
                                                                      1e-12))
            s["mean_rel"] += float(diff.mean()) / max(float(np.mean(np.abs(a))), 1e-12)
            denom = float(np.linalg.norm(a) * np.linalg.norm(b))
            s["cos"] += float(a @ b) / denom if denom > 0 else (1.0 if not diff.any() else 0.0)
        count += 1
    rows = [{"layer": p, "max_rel": _r(sums[p]["max_rel"]),
             "mean_rel": _r(sums[p]["mean_rel"] / count), "cosine": _r(sums[p]["cos"] / count)}
            for p in paired]
    first = next((r["layer"] for r in rows if r["cosine"] < min_cosine), None)
    return {"layers": rows, "paired": len(paired), "min_cosine": min_cosine,
            "first_past_tolerance": first, "images": len(images),
            "unpaired_reference": [p for p in ref.paths() if p not in cand_paths],
            "unpaired_candidate": [p for p in cand.paths() if p not in set(ref.paths())]}


def _input_dtype(sess) -> Any:
    return np.uint8 if "uint8" in sess.get_inputs()[0].type else (
        np.float16 if "float16" in sess.get_inputs()[0].type else np.float32)


def _r(value: float) -> float:
    return float(f"{value:.6g}")


def format_layers(report: Dict[str, Any], label: str) -> str:
    from ..text_table import format_table

    first = report["first_past_tolerance"]
    rows = [[r["layer"], f"{r['max_rel']:.3g}", f"{r['mean_rel']:.3g}", f"{r['cosine']:.5f}",
             "<- first past tolerance" if r["layer"] == first else ""]
            for r in report["layers"]]
    head = (f"{label}: {report['paired']} layers paired by name on {report['images']} image(s); "
            + (f"first layer with cosine < {report['min_cosine']:g}: {first}" if first else
               f"every layer's cosine >= {report['min_cosine']:g}"))
    return head + "\n" + format_table(rows, ["layer", "max rel", "mean rel", "cosine", ""])


def plot_layers(reports: List[Dict[str, Any]], labels: List[str], path: str) -> str:
    """Cosine similarity and mean relative error per layer, one line per candidate (PNG)."""
    from ..bench.plot import _import_pyplot
    from ..portable.files.fileio import atomic_output
    from ..portable.files.ownership import PNG_TEXT

    plt = _import_pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 7), sharex=True)
    for report, label in zip(reports, labels):
        xs = range(len(report["layers"]))
        top.plot(xs, [r["cosine"] for r in report["layers"]], marker=".", label=label)
        bottom.semilogy(xs, [max(r["mean_rel"], 1e-9) for r in report["layers"]], marker=".",
                        label=label)
    top.axhline(reports[0]["min_cosine"], color="grey", linestyle="--", linewidth=1)
    top.set_ylabel("cosine similarity")
    bottom.set_ylabel("mean relative error")
    bottom.set_xlabel("Conv layer (graph order)")
    names = [r["layer"] for r in reports[0]["layers"]]
    step = max(1, len(names) // 25)
    bottom.set_xticks(range(0, len(names), step))
    bottom.set_xticklabels(names[::step], rotation=70, fontsize=7)
    top.legend()
    fig.tight_layout()
    try:
        with atomic_output(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=100, metadata=PNG_TEXT)
    finally:
        plt.close(fig)
    return path
