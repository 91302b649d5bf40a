"""The bundled model of a bisenet-deploy Jetson bundle: its manifest, metadata record, sample,
engines and TensorRT runner.

jetson_run.py's commands and demo.py both work on the model through this module, so neither
imports the other. It is imported only once a command uses the bundle's modules (`jetson_run.py
verify` runs none of them before it has checked them). Python 3.6 and the standard library at
import time; numpy, tensorrt and pycuda are imported by the calls that need them.
"""

import os

BUNDLE_DIR = os.path.dirname(os.path.abspath(__file__))


def errors():
    """bisenet_trt.shared.errors (UserError and the others)."""
    from bisenet_trt.shared import errors as module
    return module


def numpy():
    """numpy, or one line saying what to install (jetson_env)."""
    from jetson_env import numpy as import_numpy
    return import_numpy()


def prepare_input(images, record, image_channel_order="rgb"):
    """The toolkit's host preprocessing (bisenet_trt.running.preprocess)."""
    numpy()
    from bisenet_trt.running.preprocess import prepare_input as prepare
    return prepare(images, record, image_channel_order=image_channel_order)


def load_manifest(bundle_dir=BUNDLE_DIR):
    from bisenet_trt.files.bundle_manifest import load_manifest as load
    return load(bundle_dir)


def model_paths(manifest, bundle_dir=BUNDLE_DIR):
    """(onnx path, metadata record) of the bundled model, the record validated (record_schema)."""
    from bisenet_trt.files.record_schema import read_record_file

    model = manifest["model"]
    return (os.path.join(bundle_dir, model["onnx"]),
            read_record_file(os.path.join(bundle_dir, model["record"])))


def load_sample(manifest, bundle_dir=BUNDLE_DIR):
    """(uint8 RGB image at the graph's input size, reference labels from ONNX Runtime or None)."""
    sample = manifest["model"].get("sample")
    if not sample:
        raise errors().UserError("this bundle carries no sample image: pass an image file")
    data = numpy().load(os.path.join(bundle_dir, sample))
    labels = data["labels"] if "labels" in data.files else None
    return data["image"], labels


# -- engines -----------------------------------------------------------------------------------

def default_precision(manifest):
    return manifest.get("build_defaults", {}).get("precision", "fp16")


def default_engine_path(manifest, precision, bundle_dir=BUNDLE_DIR):
    stem = os.path.splitext(os.path.basename(manifest["model"]["onnx"]))[0]
    return os.path.join(bundle_dir, "engines", "%s-%s.engine" % (stem, precision))


def find_engine(manifest, requested=None):
    """The engine to run: the one given, else the default precision's, else any built one."""
    if requested:
        if not os.path.isfile(requested):
            raise errors().UserError("engine %s not found: build it with ./build_engine.sh"
                                     % requested)
        return requested
    candidates = [default_engine_path(manifest, default_precision(manifest))]
    candidates += [default_engine_path(manifest, p) for p in ("fp16", "fp32")]
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise errors().UserError("no engine built yet in %s: run ./build_engine.sh first"
                             % os.path.join(BUNDLE_DIR, "engines"))


def open_runner(engine_path, zero_copy=False, use_cuda_graph=False):
    """The bundle's TensorRT runner (pycuda), with the sidecar checks of the desktop runtime."""
    from bisenet_trt.running import trt_runner
    return trt_runner.TensorRTRunner(engine_path, zero_copy=zero_copy,
                                     use_cuda_graph=use_cuda_graph)


def runner_record(runner, fallback):
    return runner.metadata if getattr(runner, "metadata", None) else fallback


def check_parity(manifest, engine_path, record, zero_copy=False):
    """Run the bundled sample through the engine and compare with the desktop labels (None when
    the bundle has no reference labels)."""
    image, reference = load_sample(manifest)
    if reference is None:
        return None
    with open_runner(engine_path, zero_copy=zero_copy) as runner:
        rec = runner_record(runner, record)
        outputs = runner.infer(prepare_input(image, rec))
    from jetson_parity import label_parity
    return label_parity(outputs["labels"][0], reference)
