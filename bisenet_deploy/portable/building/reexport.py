"""The exact commands that turn an FP32 export into the FP16 graph a strongly typed TensorRT needs.

TensorRT 11 and TensorRT-RTX have no FP16 flag: `bisenet-build-engine X.onnx --fp16` on an FP32
graph cannot work, and "export it again" is not enough for a user to act on. The export's record
holds every option it was made with (except the checkpoint's path, which it does not store), so
the refusal can spell the export and the build to run.

Python 3.6 compatible (the Jetson bundle imports portable/).
"""

import os
import shlex


def _size(values):
    return "%dx%d" % (int(values[0]), int(values[1]))


def fp16_export_command(onnx_path, record):
    """`bisenet-export onnx ... --target trt11 --precision fp16 -o <stem>-fp16.onnx` for the export
    `record` describes, and the FP16 file it writes."""
    export = record["export"]
    model = record.get("model", {})
    stem, ext = os.path.splitext(str(onnx_path))
    out = stem + "-fp16" + (ext or ".onnx")
    words = ["bisenet-export", "onnx"]
    if model.get("weights") != "random-init":
        words += ["--checkpoint", "CHECKPOINT"]
    if model.get("arch"):
        words += ["--arch", model["arch"]]
    words += ["--input-size", _size(export["input_size"]),
              "--network-size", _size(export["model_size"]),
              "--outputs", export["output"]]
    if export.get("normalize") == "none":
        words += ["--normalize", "none"]
    if export.get("channel_order") and export.get("normalize") != "none":
        words += ["--channel-order", export["channel_order"]]
    if export.get("input_dtype") == "uint8":
        words += ["--input-dtype", "uint8"]
    batch = export.get("batch") or {}
    if batch.get("dynamic"):
        words += ["--batch-range", "%d:%d:%d" % (batch["min"], batch["opt"], batch["max"])]
    elif int(batch.get("size", 1)) != 1:
        words += ["--batch", str(int(batch["size"]))]
    words += ["--target", "trt11", "--precision", "fp16", "-o", out]
    return " ".join(shlex.quote(w) if w != "CHECKPOINT" else "<your checkpoint>"
                    for w in words), out


def fp16_rebuild_hint(onnx_path, record):
    """One sentence: the export to run, then the build."""
    export_line, out = fp16_export_command(onnx_path, record)
    return "run `%s`, then `bisenet-build-engine %s`" % (export_line, shlex.quote(out))
