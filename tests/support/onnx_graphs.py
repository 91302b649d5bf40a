"""Tiny ONNX graphs shared by the engine tests (their records: support/records.py, `engine_record`).

The graphs are made with onnx.helper so they are independent of the exporter: one does the
in-graph preprocessing exactly as ONNX defines it (channel flip, (x - mean*255) / (std*255)), the
other is the identity of an already-normalized input, like a `--normalize none` export.
"""

import json

import numpy as np
import onnx
from onnx import TensorProto, helper

from .records import MEAN, STD  # noqa: F401 - re-exported for the engine tests


def preprocessing_graph(record, dynamic_batch=True):
    """An ONNX model whose output 'normalized' is what the network body receives.

    in-graph: input (pixels 0..255 in export.channel_order, float32 or uint8) -> Cast -> channel
    flip when the model was trained in the other order -> (x - mean*255) / (std*255).
    none: Identity (the input already is the normalized tensor).
    """
    export, model = record["export"], record["model"]
    width, height = export["input_size"]
    n = "N" if dynamic_batch else 1
    in_type = TensorProto.UINT8 if export["input_dtype"] == "uint8" else TensorProto.FLOAT
    inp = helper.make_tensor_value_info("image", in_type, [n, 3, height, width])
    out = helper.make_tensor_value_info("normalized", TensorProto.FLOAT, [n, 3, height, width])
    nodes, inits = [], []
    if export["normalize"] == "none":
        nodes.append(helper.make_node("Identity", ["image"], ["normalized"], name="identity"))
    else:
        nodes.append(helper.make_node("Cast", ["image"], ["x"], to=TensorProto.FLOAT, name="cast"))
        src = "x"
        if export["channel_order"] != model["channel_order"]:
            inits.append(helper.make_tensor("flip_idx", TensorProto.INT64, [3], [2, 1, 0]))
            nodes.append(helper.make_node("Gather", ["x", "flip_idx"], ["flipped"], axis=1,
                                          name="flip"))
            src = "flipped"
        mean = (np.asarray(model["mean"], np.float32) * 255).reshape(1, 3, 1, 1)
        std = (np.asarray(model["std"], np.float32) * 255).reshape(1, 3, 1, 1)
        inits.append(helper.make_tensor("mean255", TensorProto.FLOAT, [1, 3, 1, 1], mean.ravel()))
        inits.append(helper.make_tensor("std255", TensorProto.FLOAT, [1, 3, 1, 1], std.ravel()))
        nodes.append(helper.make_node("Sub", [src, "mean255"], ["centered"], name="sub_mean"))
        nodes.append(helper.make_node("Div", ["centered", "std255"], ["normalized"],
                                      name="div_std"))
    graph = helper.make_graph(nodes, "preprocess", [inp], [out], initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", record["export"]["opset"])])
    m.ir_version = 8
    prop = m.metadata_props.add()
    prop.key = "bisenet_deploy"
    prop.value = json.dumps(record, sort_keys=True)
    onnx.checker.check_model(m)
    return m


def save(model, path):
    onnx.save(model, str(path))
    return str(path)
