"""Assemble the self-contained Jetson TX2 bundle that `bisenet-export jetson` writes.

A TX2 is frozen at JetPack 4.6 (TensorRT 8.2, CUDA 10.2, Python 3.6, numpy 1.19) and engines must
be built on the device, so the bundle carries everything the device needs and nothing it cannot
run:

    <DIR>/
      README.md                  the steps for the person at the device
      manifest.json              sha256 of every file, toolkit version, export options, parity
      setup_jetson.sh            checks JetPack/TensorRT/Python, builds pycuda 2022.1 into .venv
      build_engine.sh            builds the engine on the device (FP16 default, --fp32, --trtexec)
      bench.sh                   nvpmodel -m 0 + jetson_clocks, 5000-iteration timing, restores
      jetson_run.py              the bundle's command line (verify/check/build/bench/predict/demo)
      demo.py                    video file / CSI / USB camera overlay through OpenCV + GStreamer
      jetson_*.py                its modules (environment checks, engine builds, benchmark,
                                 label parity with the desktop)
      bisenet_trt/               bisenet_deploy/portable copied as-is (Python 3.6 runtime)
      model/<stem>.onnx          exported for --target trt8.2 (float input, INT32 labels, opset 13)
      model/<stem>.json          its metadata record and the export's parity report
      model/sample.npz           a synthetic street image at the input size and the labels
                                 ONNX Runtime gives for it here (the device compares against them)

The code is shared, not duplicated: `bisenet_trt/` is the very `bisenet_deploy.portable` package
the desktop runtime uses. The bundle is built in a temporary sibling folder and renamed into place,
so an interrupted run leaves no half bundle; an existing output is refused unless `force`, and is
then replaced by renames (old moved aside, new renamed in, old deleted). bundle_model.py writes
`model/`, bundle_tar.py the tarball; the manifest is made and checked by
portable/files/bundle_manifest.py, the device's `jetson_run.py verify` included.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from .. import __version__
from ..errors import ExportError, InputError
from ..portable.files.bundle_manifest import BUNDLE_FORMAT, MANIFEST_NAME, hash_tree
from ..portable.files.fileio import (atomic_output, check_writable, make_folders, require_file,
                               move_folder_into_place, raise_if_write_failure,
                               remove_empty_folders, write_json_atomic)
from ..portable.files.ownership import check_replaceable
from ..portable.shared.parity_limits import DEVICE_MIN_IDENTICAL
from ..portable.shared.shell_words import quote_path
from .bundle_model import TARGET, bundled_model, write_sample
from .bundle_options import BundleOptions
from .bundle_tar import write_tar

log = logging.getLogger(__name__)

BUNDLE_SCHEMA = 1
#: the portable package's name inside the bundle
RUNTIME_PACKAGE = "bisenet_trt"
TEMPLATES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
#: files copied from templates/ into the bundle root; shell scripts and entry points executable
TEMPLATE_FILES = ("README.md", "setup_jetson.sh", "build_engine.sh", "bench.sh", "jetson_run.py",
                  "jetson_model.py", "jetson_env.py", "jetson_build.py", "jetson_bench.py",
                  "jetson_parity.py", "demo.py")
EXECUTABLES = ("setup_jetson.sh", "build_engine.sh", "bench.sh", "jetson_run.py", "demo.py")
SHELL_SCRIPTS = ("setup_jetson.sh", "build_engine.sh", "bench.sh")
PRECISIONS = ("fp16", "fp32")
OUTPUTS = ("labels", "both")
#: what the device must run (docs/tensorrt-versions.md, section 1); written into the manifest
#: and README
DEVICE = {
    "device": "Jetson TX2 (GP10B, SM 6.2)",
    "jetpack": "4.6.x",
    "l4t": "R32.6 / R32.7",
    "tensorrt": "8.2",
    "cuda": "10.2",
    "python": "3.6",
    "numpy": "1.19",
    "pycuda": "2022.1",
}
_PLACEHOLDER = re.compile(r"@[A-Z][A-Z0-9_]*@")


@dataclass
class BundleResult:
    path: str
    tar_path: Optional[str]
    manifest: Dict[str, Any]
    onnx_path: str
    parity: Optional[Dict[str, Any]]

    @property
    def file_count(self) -> int:
        return len(self.manifest["files"])


def tar_path_for(output_dir: str) -> str:
    return os.path.abspath(output_dir).rstrip(os.sep) + ".tar.gz"


def portable_dir() -> str:
    from .. import portable

    return os.path.dirname(os.path.abspath(portable.__file__))


def validate(options: BundleOptions) -> None:
    """Refuse bad options before any work, so nothing is written for them."""
    if options.precision not in PRECISIONS:
        raise InputError(f"the Jetson build precision must be one of {PRECISIONS}, got "
                         f"{options.precision!r} (INT8 is not fast on the TX2: no DP4A)")
    if options.output not in OUTPUTS:
        raise InputError(f"--output must be one of {OUTPUTS} for a Jetson bundle (the demo and "
                         f"the on-device check need the labels), got {options.output!r}")
    if not options.output_dir:
        raise InputError("give the bundle folder with -o DIR")
    final = os.path.abspath(options.output_dir)
    targets = [final] + ([tar_path_for(final)] if options.tar else [])
    if os.path.isfile(final):
        raise InputError(f"{final} is a file, not a bundle folder: choose another -o")
    # --force replaces only a bundle (or tarball) this tool wrote, never another folder
    check_replaceable(final, "folder", force=options.force)
    if options.tar:
        check_replaceable(targets[1], "tarball", force=options.force, option="-o (DIR.tar.gz)")
    for path in targets:  # a file where a parent folder must go, or a read-only folder
        if not os.path.isdir(path):  # an existing bundle folder is replaced (--force)
            check_writable(path, "the bundle" if path == final else "the tarball")
    if options.onnx is not None:  # a folder is named as one, not "not found"
        require_file(options.onnx, "ONNX file")


def build_bundle(options: BundleOptions) -> BundleResult:
    """Export (or take) the trt8.2 ONNX and write the bundle atomically; see the module docstring."""
    validate(options)
    final = os.path.abspath(options.output_dir)
    parent = os.path.dirname(final)
    created, staging = make_folders(parent), None
    try:
        staging = tempfile.mkdtemp(prefix="." + os.path.basename(final) + ".", suffix=".tmp",
                                   dir=parent)
        manifest, onnx_rel, parity = _assemble(options, staging)
        # the export took a while: what is at the outputs now must still be ours to replace
        check_replaceable(final, "folder", force=options.force)
        if options.tar:
            check_replaceable(tar_path_for(final), "tarball", force=options.force,
                              option="-o (DIR.tar.gz)")
        tar_path = None
        if options.tar:
            tar_path = tar_path_for(final)
            with atomic_output(tar_path, suffix=".tar.gz") as tmp:
                write_tar(staging, tmp, os.path.basename(final))
                os.chmod(tmp, 0o644)
        move_folder_into_place(staging, final)
    except BaseException as exc:  # Ctrl-C and SIGTERM included (run_cli turns SIGTERM into one)
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
        remove_empty_folders(created)
        raise_if_write_failure(exc, final)  # a full disk: one line, exit 1
        raise
    log.debug("bundle written: %s (%d files)", final, len(manifest["files"]))
    return BundleResult(path=final, tar_path=tar_path, manifest=manifest,
                        onnx_path=os.path.join(final, onnx_rel), parity=parity)


def _assemble(options: BundleOptions, root: str) -> Tuple[Dict[str, Any], str, Optional[dict]]:
    model_dir = os.path.join(root, "model")
    os.makedirs(model_dir)
    onnx_path, record, export_report = bundled_model(options, model_dir)
    stem = os.path.splitext(os.path.basename(onnx_path))[0]
    onnx_rel = os.path.relpath(onnx_path, root)
    record_rel = os.path.join("model", stem + ".json")
    write_json_atomic(os.path.join(root, record_rel), {"record": record, **export_report})
    sample_rel = os.path.join("model", "sample.npz")
    write_sample(os.path.join(root, sample_rel), onnx_path, record, options.sample_seed)

    shutil.copytree(portable_dir(), os.path.join(root, RUNTIME_PACKAGE),
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".*"))
    export = record["export"]
    model = record["model"]
    bundle_name = os.path.basename(os.path.abspath(options.output_dir))
    values = {
        "BUNDLE_NAME": bundle_name,
        # the names in the README's shell lines, one shell word each (a name never runs)
        "BUNDLE_TAR_WORD": quote_path(bundle_name + ".tar.gz"),
        "BUNDLE_DIR_WORD": quote_path(bundle_name),
        "MODEL_STEM": stem,
        "ONNX_FILE": onnx_rel,
        "ARCH": model["arch"],
        "DATASET": model["dataset"],
        "NUM_CLASSES": str(model["num_classes"]),
        "WEIGHTS": ("RANDOM weights (no checkpoint given): for trying the pipeline only, the "
                    "labels mean nothing" if model.get("weights") == "random-init"
                    else "trained checkpoint (sha256 %s)"
                    % (model.get("checkpoint_sha256") or "?")[:16]),
        "INPUT_SIZE": "%dx%d" % tuple(export["input_size"]),
        "MODEL_SIZE": "%dx%d" % tuple(export["model_size"]),
        "CHANNEL_ORDER": str(export["channel_order"]).upper(),
        "OUTPUTS": " and ".join(
            {"labels": "output `labels` INT32 N x H x W", "logits": "output `logits` FLOAT32 "
             "N x classes x H x W"}[name] for name in export["output_names"])
        + " at %dx%d" % tuple(export["input_size"]),
        "PRECISION": options.precision,
        "OTHER_PRECISION": "fp32" if options.precision == "fp16" else "fp16",
        "TOOLKIT_VERSION": __version__,
        # the shares jetson_run.py checks, from the one table it reads too
        "PARITY_FP32": "%.4g%%" % (100.0 * DEVICE_MIN_IDENTICAL["fp32"]),
        "PARITY_FP16": "%.4g%%" % (100.0 * DEVICE_MIN_IDENTICAL["fp16"]),
    }
    for name in TEMPLATE_FILES:
        src = os.path.join(TEMPLATES_DIR, name)
        dst = os.path.join(root, name)
        if name == "README.md":
            with open(src, "r", encoding="utf-8") as f:
                text = render(f.read(), values)
            with open(dst, "w", encoding="utf-8") as f:
                f.write(text)
        else:
            shutil.copyfile(src, dst)
        mode = 0o755 if name in EXECUTABLES else 0o644
        os.chmod(dst, mode)

    export_options = _export_options_dict(options)
    manifest = {
        "format": BUNDLE_FORMAT,
        "bundle_schema": BUNDLE_SCHEMA,
        "toolkit_version": __version__,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ"),
        "device": DEVICE,
        "model": {
            "onnx": onnx_rel,
            "record": record_rel,
            "sample": sample_rel,
            "arch": model["arch"],
            "dataset": model["dataset"],
            "num_classes": model["num_classes"],
            "weights": model.get("weights"),
            "input_size": export["input_size"],
            "model_size": export["model_size"],
            "target": export["target"],
            "outputs": export["output_names"],
        },
        "export_options": export_options,
        "parity": export_report.get("parity"),
        "build_defaults": {"precision": options.precision},
        "runtime_package": RUNTIME_PACKAGE,
        "executables": list(EXECUTABLES),
        "files": hash_tree(root),
    }
    write_json_atomic(os.path.join(root, MANIFEST_NAME), manifest)
    normalize_modes(root)
    return manifest, onnx_rel, export_report.get("parity")


def normalize_modes(root: str) -> None:
    """rwxr-xr-x folders and entry points, rw-r--r-- data (temp files are created 0600/0700)."""
    os.chmod(root, 0o755)
    for folder, dirs, names in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o755)
        for name in names:
            path = os.path.join(folder, name)
            top = os.path.relpath(path, root) in EXECUTABLES
            os.chmod(path, 0o755 if top else 0o644)


def render(text: str, values: Dict[str, str]) -> str:
    """Fill @NAME@ placeholders; an unknown placeholder is a bug in the template, not silence."""
    def sub(match: "re.Match[str]") -> str:
        key = match.group(0)[1:-1]
        if key not in values:
            raise ExportError(f"template placeholder {match.group(0)} has no value")
        return values[key]

    return _PLACEHOLDER.sub(sub, text)


def _export_options_dict(options: BundleOptions) -> Dict[str, Any]:
    data = dataclasses.asdict(options)
    for key in ("output_dir", "tar", "force", "progress"):
        data.pop(key, None)
    data["target"] = TARGET
    data["input_size"] = list(options.input_size)
    data["model_size"] = list(options.model_size)
    data["checkpoint"] = os.path.basename(options.checkpoint) if options.checkpoint else None
    data["onnx"] = os.path.basename(options.onnx) if options.onnx else None
    return data
