"""The engine built on the device against the desktop: the share of identical labels on the
bundled sample (ONNX Runtime's labels, made by `bisenet-export jetson`) and the threshold each
precision must reach (bisenet_trt's parity_limits: the same table the toolkit calls its "device"
profile). Used by `jetson_run.py build` and `jetson_run.py predict`.

Runs on the device's Python 3.6 with numpy 1.19 (imported through jetson_env.numpy).
"""

import json
import logging

from bisenet_trt.shared.errors import InputError
from bisenet_trt.shared.parity_limits import DEVICE_MIN_IDENTICAL
from jetson_env import numpy

log = logging.getLogger("bisenet_jetson")


def label_parity(labels, reference):
    """Share of identical labels between the engine's and the desktop's label maps."""
    np = numpy()
    labels = np.asarray(labels).reshape(-1)
    reference = np.asarray(reference).reshape(-1)
    if labels.shape != reference.shape:
        raise InputError("label maps differ in size: %s vs %s" % (labels.shape, reference.shape))
    return float(np.mean(labels.astype(np.int64) == reference.astype(np.int64)))


def precision_of(engine_path, default):
    """The precision the engine's sidecar records (`default` when it cannot be read)."""
    from bisenet_trt.trt.engine_paths import sidecar_path
    try:
        with open(sidecar_path(engine_path), "r") as f:
            return json.load(f).get("precision") or default
    except (IOError, OSError, ValueError):
        return default


def report_parity(share, precision, record):
    """Log the parity figure; True when it passes (or cannot be judged on random weights)."""
    # the toolkit's one table (comparison/profiles.py's "device" profile), in the bundle's copy
    need = DEVICE_MIN_IDENTICAL.get(precision, DEVICE_MIN_IDENTICAL["fp16"])
    passed = share >= need
    random_weights = record.get("model", {}).get("weights") == "random-init"
    log.info("parity with the desktop (ONNX Runtime) on the bundled sample: %.3f%% identical "
             "labels (%s needs >= %.1f%%)", 100.0 * share, precision, 100.0 * need)
    if not passed and random_weights:
        log.warning("below the threshold, but the model has random weights (near-tie scores "
                    "flip easily): not judged; export a trained checkpoint for a real check")
        return True
    return passed
