"""`bisenet-export triton`: a Triton Inference Server model repository from an ONNX and/or engine.

    REPO/
      README.md                      how to start tritonserver on it, query it and scale out
      manifest.json                  what this tool wrote (sha256 of every file), for --force
      <name>/config.pbtxt            platform tensorrt_plan (from --engine) ...
      <name>/1/model.plan
      <name>/engine.json             ... with the engine's sidecar (GPU, TensorRT version)
      <name>[_onnx]/config.pbtxt     platform onnxruntime_onnx (from --onnx; "_onnx" when an
      <name>[_onnx]/1/model.onnx     engine is served under <name> too)

Tensors, dtypes and dims come from the artifacts themselves (the ONNX graph, the engine's
sidecar); the batch range from the export record or the engine's optimization profile; the
metadata record goes into every config's parameters (`model_io.metadata_parameters`). Triton
only reads the folders of a repository, so the README and manifest beside them are ignored.

Written like the Jetson bundle: assembled in a temporary sibling folder and renamed into place.
An existing output is refused unless `force`, and even then only a repository this tool wrote
(portable.files.ownership: its manifest lists every entry in it, unchanged) is replaced.
"""

from __future__ import annotations

import datetime
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from .. import __version__
from ..errors import EngineError, ExportError, IncompatibleEngineError, InputError, UserError
from ..portable.files.fileio import (check_writable, sha256_file, write_json_atomic,
                                     write_text_atomic)
from ..portable.files.ownership import FOLDER_FORMATS, check_replaceable
from .model_config import (DEFAULT_QUEUE_DELAY_US, KINDS, PLATFORMS, ModelConfigSpec,
                           TensorConfig, render_config)
from .model_io import DEFAULT_MODEL_NAME, check_model_name, metadata_parameters

log = logging.getLogger(__name__)

REPOSITORY_FORMAT = "bisenet-deploy-triton-repository"
assert REPOSITORY_FORMAT in FOLDER_FORMATS  # what --force may replace (portable.files.ownership)
REPOSITORY_SCHEMA = 1
#: the same name (and top-level place) as the Jetson bundle's manifest, so one helper hashes both
MANIFEST_NAME = "manifest.json"


@dataclass
class RepositoryOptions:
    output_dir: str
    onnx: Optional[str] = None
    engine: Optional[str] = None
    model_name: str = DEFAULT_MODEL_NAME
    max_batch: Optional[int] = None
    instances: int = 1
    #: where Triton runs the ONNX model's instances (an engine always runs on the GPU)
    onnx_kind: str = "gpu"
    max_queue_delay_us: int = DEFAULT_QUEUE_DELAY_US
    force: bool = False


@dataclass
class ServedModel:
    """One model folder of the repository."""

    spec: ModelConfigSpec
    source: str
    record: Dict[str, Any]
    sidecar: Optional[Dict[str, Any]] = None


@dataclass
class RepositoryResult:
    path: str
    models: List[ServedModel]
    manifest: Dict[str, Any]


# -- what the artifacts declare ----------------------------------------------------------------
def _onnx_tensor(value_info: Any) -> TensorConfig:
    from onnx import helper

    ttype = value_info.type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") else -1 for d in ttype.shape.dim]
    dtype = helper.tensor_dtype_to_np_dtype(ttype.elem_type).name
    return TensorConfig(value_info.name, dtype, shape)


def onnx_model(path: str, name: str, options: RepositoryOptions) -> ServedModel:
    """The onnxruntime_onnx model of an exported ONNX (tensors from its graph)."""
    from onnx.external_data_helper import uses_external_data

    from ..export.onnx_metadata import get_record, load_onnx

    graph_model = load_onnx(path, load_weights=False)
    record = get_record(graph_model, source=path)
    if any(uses_external_data(t) for t in graph_model.graph.initializer):
        raise ExportError(f"{path} keeps its weights in external files: give a single-file ONNX "
                          f"(as `bisenet-export onnx` writes)")
    initializers = {t.name for t in graph_model.graph.initializer}
    inputs = [_onnx_tensor(v) for v in graph_model.graph.input if v.name not in initializers]
    outputs = [_onnx_tensor(v) for v in graph_model.graph.output]
    batch = record["export"].get("batch") or {}
    batch_range = ((int(batch["min"]), int(batch["opt"]), int(batch["max"]))
                   if batch.get("dynamic") else None)
    params = metadata_parameters(record)
    params["onnx_sha256"] = sha256_file(path)  # the model's own hash: a damaged copy shows
    spec = ModelConfigSpec(name=name, platform="onnxruntime_onnx", inputs=inputs, outputs=outputs,
                           batch_range=batch_range, max_batch=options.max_batch,
                           kind=options.onnx_kind, instances=options.instances,
                           max_queue_delay_us=options.max_queue_delay_us,
                           parameters=params)
    return ServedModel(spec, path, record)


def engine_model(path: str, name: str, options: RepositoryOptions) -> ServedModel:
    """The tensorrt_plan model of an engine (tensors and profile from its sidecar)."""
    from ..portable.trt.flavours import RTX
    from ..portable.trt.sidecar import check_engine_file, read_sidecar, sidecar_flavour
    from ..portable.running.trt_runner import record_from_sidecar

    if not os.path.isfile(path):
        raise InputError(f"engine {path} does not exist: build one with `bisenet-build-engine`")
    sidecar = read_sidecar(path)
    check_engine_file(path, sidecar)
    if sidecar_flavour(sidecar) == RTX:
        # Triton's tensorrt_plan backend is full TensorRT, which cannot load TensorRT-RTX engines
        raise IncompatibleEngineError(
            f"{path} is a TensorRT-RTX engine and Triton's tensorrt_plan backend runs full "
            f"TensorRT, which cannot load it: build the engine with `bisenet-build-engine "
            f"--trt-flavour tensorrt` on the serving GPU, or serve the ONNX (--onnx)")
    record = record_from_sidecar(sidecar)
    if not record or "export" not in record:
        raise EngineError(f"the sidecar of {path} carries no bisenet_deploy metadata record; "
                          f"rebuild the engine with `bisenet-build-engine`")
    io = sidecar["io"]
    inputs = [TensorConfig(t["name"], t["dtype"], t["shape"]) for t in io if t["mode"] == "input"]
    outputs = [TensorConfig(t["name"], t["dtype"], t["shape"]) for t in io
               if t["mode"] == "output"]
    if len(inputs) != 1:
        raise EngineError(f"the sidecar of {path} lists {len(inputs)} inputs; bisenet-deploy "
                          f"engines have one image input")
    batch_range = None
    if inputs[0].shape[0] < 0:
        profile = next((p for p in sidecar.get("profiles", []) if p["input"] == inputs[0].name),
                       None)
        if profile is None:
            raise EngineError(f"the sidecar of {path} has a dynamic batch but no optimization "
                              f"profile; rebuild the engine with `bisenet-build-engine`")
        batch_range = (profile["min"][0], profile["opt"][0], profile["max"][0])
    params = metadata_parameters(record)
    gpu = sidecar.get("gpu") or {}
    params.update({"tensorrt_version": str(sidecar["tensorrt_version"]),
                   "gpu": f"{gpu.get('name', '?')} (SM {gpu.get('compute_capability', '?')})",
                   "precision": str(sidecar.get("precision"))})
    spec = ModelConfigSpec(name=name, platform="tensorrt_plan", inputs=inputs, outputs=outputs,
                           batch_range=batch_range, max_batch=options.max_batch, kind="gpu",
                           instances=options.instances,
                           max_queue_delay_us=options.max_queue_delay_us, parameters=params)
    return ServedModel(spec, path, record, sidecar)


def plan_models(options: RepositoryOptions) -> List[ServedModel]:
    """The models the repository will hold; every check that can fail runs here, before writing."""
    check_model_name(options.model_name)
    if not options.onnx and not options.engine:
        raise InputError("give --onnx and/or --engine: the model(s) to put in the repository")
    if options.onnx_kind not in KINDS:
        raise InputError(f"--kind must be one of {', '.join(KINDS)}")
    models = []
    if options.engine:
        models.append(engine_model(options.engine, options.model_name, options))
    if options.onnx:
        name = options.model_name + "_onnx" if options.engine else options.model_name
        models.append(onnx_model(options.onnx, name, options))
    if options.engine and options.onnx:
        built_from = ((models[0].sidecar or {}).get("onnx") or {}).get("sha256")
        if built_from and built_from != sha256_file(options.onnx):
            raise InputError(f"the engine {options.engine} was built from another ONNX than "
                             f"{options.onnx} (sha256 {built_from[:12]}...): give the ONNX it was "
                             f"built from, so both models answer alike")
    for model in models:  # renders (and so validates) every config before anything is written
        render_config(model.spec)
    return models


# -- writing -----------------------------------------------------------------------------------
def check_output(path: str, force: bool) -> None:
    """Refuse an output folder that exists (without force) or that this tool did not write
    (portable.files.ownership: our manifest, listing every file there)."""
    final = os.path.abspath(path)
    if os.path.isfile(final):
        raise UserError(f"{path} is a file, not a model repository folder: choose another -o")
    if not os.path.isdir(final):
        check_writable(final, "the model repository")
        return
    if not os.listdir(final):
        return  # an empty folder holds nothing to lose
    check_replaceable(final, "folder", force=force)


def build_repository(options: RepositoryOptions) -> RepositoryResult:
    """Check everything, assemble the repository in a temporary sibling folder, rename it in."""
    from ..portable.files.bundle_manifest import hash_tree
    from ..portable.files.fileio import move_folder_into_place as move_into_place
    from ..portable.files.fileio import raise_if_write_failure
    from .repository_readme import render_readme

    models = plan_models(options)
    check_output(options.output_dir, options.force)
    final = os.path.abspath(options.output_dir)
    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix="." + os.path.basename(final) + ".", suffix=".tmp",
                               dir=parent)
    try:
        for model in models:
            folder = os.path.join(staging, model.spec.name)
            os.makedirs(os.path.join(folder, "1"))
            write_text_atomic(os.path.join(folder, "config.pbtxt"), render_config(model.spec))
            file_name = "model.plan" if model.spec.platform == "tensorrt_plan" else "model.onnx"
            shutil.copyfile(model.source, os.path.join(folder, "1", file_name))
            if model.sidecar is not None:
                write_json_atomic(os.path.join(folder, "engine.json"), model.sidecar)
        write_text_atomic(os.path.join(staging, "README.md"), render_readme(models, final))
        manifest = {
            "format": REPOSITORY_FORMAT,
            "schema": REPOSITORY_SCHEMA,
            "toolkit_version": __version__,
            "created_utc": datetime.datetime.now(datetime.timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%SZ"),
            "models": [{"name": m.spec.name, "platform": m.spec.platform,
                        "source": os.path.basename(m.source),
                        "file": f"{m.spec.name}/1/{PLATFORMS[m.spec.platform]}",
                        "sha256": sha256_file(m.source)} for m in models],
            "files": hash_tree(staging),
        }
        write_json_atomic(os.path.join(staging, MANIFEST_NAME), manifest)
        _normalize_modes(staging)
        check_output(options.output_dir, options.force)  # still ours after the copies
        move_into_place(staging, final)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise_if_write_failure(exc, final)  # a full disk: one line, exit 1
        raise
    log.debug("model repository written: %s (%s)", final,
             ", ".join(f"{m.spec.name}: {m.spec.platform}" for m in models))
    return RepositoryResult(final, models, manifest)


def _normalize_modes(root: str) -> None:
    """rwxr-xr-x folders, rw-r--r-- files (temporary files are created private)."""
    for folder, dirs, names in os.walk(root):
        os.chmod(folder, 0o755)
        for name in names:
            os.chmod(os.path.join(folder, name), 0o644)


def model_summary(model: ServedModel) -> Tuple[str, str]:
    """(name, 'platform, max_batch_size N, kind xK') for the command's printout."""
    from .model_config import batching

    max_batch, _ = batching(model.spec.batch_range, model.spec.max_batch, model.spec.name)
    return model.spec.name, (f"{model.spec.platform}, max_batch_size {max_batch}, "
                             f"{model.spec.instances} x {model.spec.kind.upper()}")


def check_repository_model(path: str) -> None:
    """Refuse (exit 5) a model file inside a repository from `bisenet-export triton` whose bytes
    are not the ones its manifest records: a damaged copy must not be served silently.

    `path` is REPO/<name>/1/model.onnx (or .plan); any other file is not ours to check.
    """
    import json

    from ..errors import UnusableFileError

    full = os.path.abspath(path)
    version_dir = os.path.dirname(full)
    model_dir = os.path.dirname(version_dir)
    repo = os.path.dirname(model_dir)
    manifest_path = os.path.join(repo, MANIFEST_NAME)
    if not os.path.isfile(manifest_path):
        return
    try:
        with open(manifest_path, "r", encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        raise UnusableFileError(f"{manifest_path} cannot be read as JSON: the repository is "
                                f"damaged; write it again with `bisenet-export triton`") from None
    if not isinstance(manifest, dict) or manifest.get("format") != REPOSITORY_FORMAT:
        return
    relative = os.path.relpath(full, repo).replace(os.sep, "/")
    files = manifest.get("files")
    want = files.get(relative) if isinstance(files, dict) else None
    if isinstance(want, dict):
        want = want.get("sha256")
    if not isinstance(want, str):
        raise UnusableFileError(f"{path}: the repository's manifest does not list it: write the "
                                f"repository again with `bisenet-export triton`")
    got = sha256_file(full)
    if got != want:
        raise UnusableFileError(
            f"{path} is damaged: its sha256 {got[:12]}... is not the {want[:12]}... the "
            f"repository's manifest records; write the repository again with `bisenet-export "
            f"triton` from the exported model")
