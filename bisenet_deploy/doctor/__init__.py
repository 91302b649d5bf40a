"""`bisenet-doctor`: what this machine has, what to use on it, and what to install.

Every "not available here" error points here: one command answers "which TensorRT, which GPU,
which export target and precision, and what exactly do I install for the rest". The probes are in
probe.py, the support matrix applied to the machine in advice.py; this module assembles the record
(`diagnose`) and its text form (`render`). Importing it imports nothing heavy.
"""

from __future__ import annotations

from typing import Dict, List

from .. import __version__


def _missing(packages, tensorrt, gpus) -> List[Dict[str, str]]:
    """[{what, needed_for, install}] for everything absent, with the exact line to install it."""
    from ..portable.trt.flavours import EXTRAS
    from ..portable.shared.install_hints import JETPACK_TENSORRT, pip_extra
    from ..portable.trt.trt_api import is_jetson

    lines = {"torch": "pip install torch", "onnx": "pip install -e .",
             "onnxsim": "pip install -e .", "onnxruntime": "pip install -e .",
             "pycuda": pip_extra("trt"),
             "cuda-python": "pip install 'cuda-python<13' (for a CUDA 12 driver; the major version "
                            "follows the driver's CUDA)",
             "nvidia-pytriton": pip_extra("serve"), "tritonclient": pip_extra("serve"),
             "opencv": pip_extra("video")}
    missing = []
    for entry in tensorrt:
        if not entry["installed"]:
            full = entry["flavour"] == "tensorrt"
            missing.append({"what": entry["label"], "needed_for": "building and running engines"
                            + ("; needs an NVIDIA GPU" if full else "; builds without a GPU"),
                            "install": JETPACK_TENSORRT if full and is_jetson()
                            else pip_extra(EXTRAS[entry["flavour"]])})
    for key, entry in packages.items():
        if entry["installed"]:
            continue
        missing.append({"what": key, "needed_for": str(entry["purpose"]), "install": lines[key]})
    ort = packages.get("onnxruntime") or {}
    providers = ort.get("providers") or []
    if gpus and ort.get("installed") and "CUDAExecutionProvider" not in providers:
        missing.append({"what": "onnxruntime-gpu", "needed_for": "onnxruntime on this GPU "
                        "(without it the onnxruntime backend runs on the CPU only)",
                        "install": "pip uninstall -y onnxruntime && " + pip_extra("gpu")})
    return missing


def diagnose() -> Dict[str, object]:
    """The whole record `bisenet-doctor --json` prints; never raises for what is missing."""
    from .advice import advise_all
    from .probe import PACKAGES, probe_gpus, probe_package, probe_python, probe_tensorrt

    packages = {key: probe_package(key) for key in PACKAGES}
    tensorrt = probe_tensorrt()
    gpus = probe_gpus()
    advice = advise_all(tensorrt, gpus)
    for entry in tensorrt:
        entry.pop("_caps", None)
    return {"toolkit_version": __version__, "python": probe_python(), "packages": packages,
            "tensorrt": tensorrt, "gpus": gpus, "advice": advice,
            "missing": _missing(packages, tensorrt, gpus)}


def _package_line(key, entry) -> str:
    if not entry["installed"]:
        return f"  {key:<16} -          ({entry.get('reason')})"
    extra = ""
    if key == "onnxruntime":
        extra = "providers: " + (", ".join(entry.get("providers") or []) or "none")
    elif key == "torch":
        extra = ("CUDA %s build, %s" % (entry["cuda_build"], "GPU visible" if
                                        entry.get("cuda_available") else "no GPU visible")
                 if entry.get("cuda_build") else "CPU build")
    return f"  {key:<16} {entry.get('version') or '?':<10} {extra}".rstrip()


def render(report: Dict[str, object]) -> str:
    """The record as the terminal text of `bisenet-doctor`."""
    py = report["python"]
    out = [f"bisenet-deploy {report['toolkit_version']} on Python {py['version']} "
           f"({py['executable']}), {py['platform']}", "", "packages:"]
    out += [_package_line(k, v) for k, v in report["packages"].items()]
    out += ["", "TensorRT:"]
    for entry in report["tensorrt"]:
        if entry["installed"]:
            caps = entry["capabilities"]
            targets = (f", builds without a GPU for {caps['compute_targets']}"
                       if caps.get("compute_targets") else ", builds on the GPU it runs on")
            out.append(f"  {entry['label']:<16} {entry['version']:<10} (module {entry['module']}; "
                       f"export target {caps['export_target']}{targets})")
        else:
            out.append(f"  {entry['label']:<16} -          ({entry['reason']})")
    out += ["", "GPUs:"]
    out += [f"  {g.get('name')}: SM {g.get('compute_capability') or '?'}, driver "
            f"{g.get('driver') or '?'} (from {g.get('source')})" for g in report["gpus"]] or [
        "  none found (no nvidia-smi, pycuda or CUDA-enabled torch answered)"]
    out += ["", "what to use here:"]
    if not report["advice"]:
        out.append("  no TensorRT is installed: engines cannot be built here (see below)")
    for row in report["advice"]:
        where = row["gpu"] or "no GPU here"
        head = f"{row['tensorrt']}, {where}: "
        head += (f"target {row['target']}, {row['precision']}" if row["usable"] else
                 "not usable for engines here")
        out.append("  " + head)
        out += [f"    - {why}" for why in row["why"]]
        for key in ("export", "build"):
            if row[key]:
                out.append(f"    {key + ':':<7} {row[key]}")
    out += ["", "missing:"]
    out += [f"  {m['what']}: {m['install']}\n    for {m['needed_for']}" for m in
            report["missing"]] or [
        "  nothing"]
    return "\n".join(out)
