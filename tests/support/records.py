"""The one factory of bisenet_deploy metadata records for tests, and the presets the suites use.

`make_record(**fields)` returns the plain JSON-able record (schema 1) an export writes: the model
section (classes, normalization, training size, provenance) and the export section (input and
model sizes, dtype, channel order, normalization, outputs, target, precision, opset, batch).
`batch`: an int is a static batch of that size, (min, opt, max) a dynamic one, a dict is used as
given. The presets hold each suite's usual model; a test overrides any field by keyword.
"""

from bisenet_deploy import __version__

MEAN = [0.3257, 0.3690, 0.3223]
STD = [0.2112, 0.2148, 0.2115]

OUTPUT_NAMES = {"labels": ["labels"], "logits": ["logits"], "both": ["labels", "logits"]}


def batch_section(batch):
    if isinstance(batch, dict):
        return dict(batch)
    if isinstance(batch, (tuple, list)):
        lo, opt, hi = batch
        return {"dynamic": True, "min": lo, "opt": opt, "max": hi}
    return {"dynamic": False, "size": int(batch)}


def make_record(num_classes=2, class_names=None, palette=None, arch="bisenetv2",
                mean=MEAN, std=STD, model_channel_order="rgb", train_size=(64, 32),
                weights="random-init", source="random-init", input_size=(64, 32), model_size=None,
                input_dtype="float32", channel_order="rgb", normalize="in-graph", output="logits",
                target="trt10", precision="fp32", opset=13, batch=1, toolkit_version="test",
                export_extra=None):
    export = {
        "input_name": "image", "input_size": list(input_size),
        "model_size": list(model_size or input_size), "input_dtype": input_dtype,
        "channel_order": channel_order, "normalize": normalize, "output": output,
        "output_names": list(OUTPUT_NAMES[output]), "target": target, "precision": precision,
        "opset": opset, "batch": batch_section(batch)}
    export.update(export_extra or {})
    return {
        "schema": 1,
        "toolkit_version": toolkit_version,
        "model": {
            "arch": arch, "num_classes": num_classes, "dataset": "custom",
            "class_names": list(class_names or ["c%d" % i for i in range(num_classes)]),
            "palette": [list(p) for p in (palette or [[i, i, i] for i in range(num_classes)])],
            "mean": list(mean), "std": list(std), "channel_order": model_channel_order,
            "ignore_index": 255, "train_size": list(train_size), "weights": weights,
            "source": source, "checkpoint_sha256": None,
        },
        "export": export,
    }


def preset(**defaults):
    """make_record with other defaults (keywords still override them)."""
    def make(**fields):
        return make_record(**dict(defaults, **fields))
    make.defaults = defaults
    return make


#: the engine tests' two-class model, 64x32, logits, opset 13, static batch 1
engine_record = preset(class_names=["a", "b"], palette=[[0, 0, 0], [255, 255, 255]])

#: the benchmark tests' five-class model: 32x16 input resized to 16x8 in the graph, labels,
#: dynamic batch 1..4
bench_record = preset(num_classes=5, mean=[0.3] * 3, std=[0.2] * 3, train_size=(16, 8),
                      weights="checkpoint", source="bisenet-deploy", input_size=(32, 16),
                      model_size=(16, 8), output="labels", opset=17, batch=(1, 1, 4))

#: the runtime tests' tiny five-class network: 96x48 input resized to 64x32, static batch 1
runtime_record = preset(arch="tiny-test", num_classes=5,
                        palette=[[10 * i, 20 * i, 30 * i] for i in range(5)], mean=[0.3] * 3,
                        std=[0.2] * 3, train_size=(1024, 512), weights="checkpoint",
                        source="bisenet-deploy", input_size=(96, 48), model_size=(64, 32),
                        output="labels", opset=17, toolkit_version=__version__,
                        export_extra={"exporter": None})
