"""The README's support matrix applied to this machine: for each installed TensorRT flavour and
each GPU (or none), which export target and precision to use, and why.

Nothing here is a second rulebook: the target is the capabilities object's `export_target`, the
GPUs a TensorRT-RTX build covers are its `compute_targets`/`portable_targets`, and the precision is
checked by the same `decide_precision` every engine build calls (portable/trt/precision.py).
"""

from __future__ import annotations

from typing import Dict, List, Optional

from ..portable.trt.capabilities import format_targets
from ..portable.shared.errors import UserError
from ..portable.trt.flavours import FULL, RTX, install_hint
from ..portable.shared.install_hints import pip_extra
from ..portable.trt.precision import decide_precision, has_fast_fp16, parse_compute_capability

#: the compute capabilities of the Jetsons the bundle is for (TX2: 6.2)
JETSON_BUNDLE_CC = ((6, 2),)


def _export_line(target: str, graph_precision: str) -> str:
    """The export command; --precision fp16 only where the graph itself must be FP16 (strongly
    typed TensorRT), elsewhere FP16 is the engine builder's flag."""
    line = f"bisenet-export onnx --checkpoint CKPT --target {target}"
    return line + (" --precision fp16" if graph_precision == "fp16" else "")


def _build_line(flavour: str, precision: str, cc_option: str = "") -> str:
    line = "bisenet-build-engine MODEL.onnx" + (" --fp16" if precision == "fp16" else "")
    if flavour == RTX:
        line += " --trt-flavour tensorrt-rtx" + cc_option
    return line


def _precision_checked(precision, cc, caps, graph_precision, why):
    """decide_precision's own notes and warnings for this choice; None where it refuses."""
    try:
        decision = decide_precision(precision, cc, caps, onnx_precision=graph_precision)
    except UserError as exc:
        why.append(str(exc))
        return None
    why.extend(decision.warnings + [n for n in decision.notes if not n.startswith("GPU unknown")])
    return decision


def advise(caps, gpu: Optional[Dict[str, object]]) -> Dict[str, object]:
    """{flavour, gpu, usable, target, precision, export, build, why[]} for one flavour and one
    GPU (gpu None: this machine has none)."""
    cc = None
    if gpu is not None and gpu.get("compute_capability"):
        try:
            cc = parse_compute_capability(gpu["compute_capability"])
        except UserError:
            cc = None
    advice: Dict[str, object] = {
        "flavour": caps.flavour, "tensorrt": caps.label,
        "gpu": None if gpu is None else f"{gpu.get('name')} (SM {gpu.get('compute_capability')})",
        "usable": False, "target": caps.export_target, "precision": None, "export": None,
        "build": None, "why": []}
    why: List[str] = advice["why"]  # type: ignore[assignment]
    if caps.flavour == RTX:
        return _advise_rtx(caps, gpu, cc, advice, why)
    return _advise_full(caps, gpu, cc, advice, why)


def _advise_rtx(caps, gpu, cc, advice, why):
    targets = caps.compute_targets or ()
    portable = caps.portable_targets or ()
    cc_option = ""
    if gpu is None:
        why.append(f"{caps.label} builds engines without a GPU; the default (portable) engine "
                   f"runs on {format_targets(portable)}, `--compute-capability X.Y` builds for "
                   f"one of {format_targets(targets)}; run the engine on such an RTX GPU")
    elif cc is None:
        why.append(f"the compute capability of {gpu.get('name')} is unknown: build the portable "
                   f"engine ({format_targets(portable)})")
    elif cc not in targets:
        why.append(f"{caps.label} has no target for SM {cc[0]}.{cc[1]} (it targets "
                   f"{format_targets(targets)}): use full TensorRT on this GPU, "
                   f"{install_hint(FULL)}")
        return advice
    elif cc in portable:
        why.append(f"SM {cc[0]}.{cc[1]} is covered by {caps.label}'s default portable engine")
    else:
        cc_option = f" --compute-capability {cc[0]}.{cc[1]}"
        why.append(f"SM {cc[0]}.{cc[1]} is not in the portable engine's targets "
                   f"({format_targets(portable)}): build with{cc_option}")
    # every GPU TensorRT-RTX targets (Turing and newer) has fast FP16
    precision = "fp16"
    why.append(f"{caps.label} has no precision flags (strongly typed): FP16 comes from the graph, "
               f"so export with --target {caps.export_target} --precision fp16")
    if _precision_checked(precision, cc, caps, "fp16", why) is None:
        return advice
    advice.update(usable=True, precision=precision,
                  export=_export_line(caps.export_target, precision),
                  build=_build_line(caps.flavour, precision, cc_option))
    return advice


def _advise_full(caps, gpu, cc, advice, why):
    if gpu is None:
        why.append(f"{caps.label} builds on the GPU it runs on and this machine has none: export "
                   f"here with --target {caps.export_target}, build the engine on the GPU machine "
                   f"(or use TensorRT-RTX, which builds without one: {pip_extra('rtx')})")
        advice["export"] = _export_line(caps.export_target, "fp32")
        return advice
    if cc is None:
        why.append(f"the compute capability of {gpu.get('name')} is unknown: its FP16 speed "
                   f"was not checked")
    elif cc in JETSON_BUNDLE_CC or gpu.get("jetson"):
        why.append("a Jetson: use the bundle of `bisenet-export jetson` (JetPack's TensorRT, "
                   "--target trt8.2 for JetPack 4.6)")
    precision = "fp16" if cc is None or has_fast_fp16(cc) else "fp32"
    if cc is not None:
        why.append(f"SM {cc[0]}.{cc[1]} " + ("has fast FP16: build FP16" if precision == "fp16"
                                             else "runs FP16 slower than FP32: build FP32"))
    graph = "fp16" if precision == "fp16" and caps.strong_typing == "always" else "fp32"
    if graph == "fp16":
        why.append(f"{caps.label} has no precision flags: FP16 comes from the graph "
                   f"(--target {caps.export_target} --precision fp16)")
    if _precision_checked(precision, cc, caps, graph, why) is None:
        return advice
    advice.update(usable=True, precision=precision,
                  export=_export_line(caps.export_target, graph),
                  build=_build_line(caps.flavour, precision))
    return advice


def advise_all(tensorrt: List[Dict[str, object]], gpus: List[Dict[str, object]]):
    """advise() for every installed flavour and every GPU (one row per flavour without a GPU)."""
    rows = []
    for entry in tensorrt:
        caps = entry.get("_caps")
        if caps is None:
            continue
        for gpu in (gpus or [None]):
            rows.append(advise(caps, gpu))
    return rows
