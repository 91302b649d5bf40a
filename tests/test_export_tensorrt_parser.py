"""Every graph `bisenet-export onnx` makes goes through a real TensorRT ONNX parser.

TensorRT-RTX's parser runs without a GPU, so here (and in CI) graphs are exported at a small size
and parsed for real:
- with the TorchScript exporter (the fallback; 0.5 s an export): every target x output x
  normalization x batch mode, for bisenetv2 and bisenetv2-coincheung (bisenetv2-large has the same
  operators at other widths and depths, and is ten times slower to export);
- with the default exporter (torch.export-based where onnxscript is installed; 3-9 s an export):
  twelve exports in which every pair of values of target, output, normalization, batch mode and
  architecture (bisenetv2-large included) occurs at least once.
The export runs the parser itself and refuses a graph it rejects; on top of that the parsed
network's I/O must be what the export's metadata record promises (names, shapes, dtypes): that
record is what every runtime and the engine sidecar rely on.
"""

import itertools
import json

import numpy as np
import pytest

pytest.importorskip("tensorrt_rtx_bindings", reason="TensorRT-RTX is not installed: "
                    "pip install -e '.[rtx]' (CI installs it)")

TARGETS = ("trt8.2", "trt8.6", "trt10", "trt11")
OUTPUTS = ("labels", "logits", "both")
NORMALIZE = ("in-graph", "none")
BATCHES = (None, (1, 2, 4))  # static batch 1, dynamic 1:2:4
SIZES = dict(input_size=(96, 48), model_size=(64, 32))  # the graph keeps its in-graph resize


@pytest.fixture(scope="module")
def exports():
    """Exports run in two worker processes (support/export_pool.py): each is single-threaded at
    these sizes, so a 2-core machine makes two at a time; the checks run here."""
    from support.export_pool import ExportPool

    pool = ExportPool()
    yield pool
    pool.close()


def _submit(exports, tmp_path, arch, target, output, normalize, batch, exporter="torchscript"):
    name = "%s-%s-%s-%s-%s.onnx" % (arch, target, output, normalize, "dyn" if batch else "b1")
    return exports.submit(arch, output_path=str(tmp_path / name), target=target, output=output,
                          normalize=normalize, dynamic_batch=batch, parity=False,
                          exporter=exporter, **SIZES)


def _check_parsed(result):
    """The export's own parser verdict, then a second parse of the written file whose network I/O
    must be the record's."""
    from bisenet_deploy.portable.building.build_steps import parse_network
    from bisenet_deploy.portable.trt.capabilities import detect_capabilities
    from bisenet_deploy.portable.trt.flavours import import_tensorrt
    from bisenet_deploy.portable.trt.trt_api import numpy_to_trt_dtype_name
    from bisenet_deploy.portable.trt.trt_logger import tensorrt_logger
    from bisenet_deploy.portable.running.runner_base import specs_from_record

    verdict = result.parser
    assert verdict is not None and verdict.ok, verdict and verdict.summary()
    assert verdict.label.startswith("TensorRT") and verdict.errors == []
    trt = import_tensorrt()
    with open(result.path, "rb") as f:
        data = f.read()
    parsed = parse_network(trt, detect_capabilities(trt), data, result.path, tensorrt_logger(trt))
    assert parsed.ok, parsed.errors
    inp, outs = specs_from_record(result.record)
    want = [(inp.name, list(inp.shape), np.dtype(inp.dtype).name)]
    want += [(o.name, list(o.shape), np.dtype(o.dtype).name) for o in outs]
    got = [(t["name"], t["shape"], t["dtype"]) for t in parsed.io]
    assert got == want
    assert numpy_to_trt_dtype_name(got[0][2]) == "FLOAT"


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("arch", ["bisenetv2", "bisenetv2-coincheung"])
def test_every_export_parses(exports, tmp_path, arch, target):
    futures = [_submit(exports, tmp_path, arch, target, output, normalize, batch)
               for output, normalize, batch in itertools.product(OUTPUTS, NORMALIZE, BATCHES)]
    for future in futures:
        _check_parsed(future.result())


DYN = (1, 2, 4)
#: all pairs of (target, output, normalization, batch, arch) values, in twelve exports
PAIRWISE = [
    ("trt8.2", "labels", "in-graph", None, "bisenetv2"),
    ("trt8.2", "logits", "none", DYN, "bisenetv2-coincheung"),
    ("trt8.2", "both", "none", None, "bisenetv2-large"),
    ("trt8.6", "labels", "none", None, "bisenetv2-coincheung"),
    ("trt8.6", "logits", "in-graph", DYN, "bisenetv2-large"),
    ("trt8.6", "both", "in-graph", None, "bisenetv2"),
    ("trt10", "labels", "none", None, "bisenetv2-large"),
    ("trt10", "logits", "none", None, "bisenetv2"),
    ("trt10", "both", "in-graph", DYN, "bisenetv2-coincheung"),
    ("trt11", "labels", "in-graph", DYN, "bisenetv2"),
    ("trt11", "logits", "none", None, "bisenetv2-large"),
    ("trt11", "both", "none", None, "bisenetv2-coincheung"),
]


def test_the_pairwise_rows_cover_every_pair():
    values = [TARGETS, OUTPUTS, NORMALIZE, BATCHES, ("bisenetv2", "bisenetv2-coincheung",
                                                     "bisenetv2-large")]
    seen = {(i, row[i], j, row[j]) for row in PAIRWISE
            for i, j in itertools.combinations(range(5), 2)}
    want = {(i, x, j, y) for i, j in itertools.combinations(range(5), 2)
            for x in values[i] for y in values[j]}
    assert want <= seen


@pytest.fixture(scope="module")
def pairwise_exports(exports, tmp_path_factory, request):
    """The default-exporter exports of the selected rows, all handed to the workers on first use
    (so both processes stay busy while the tests take their results in order)."""
    folder = tmp_path_factory.mktemp("pairwise")
    selected = [item.callspec.params for item in request.session.items
                if item.originalname == "test_default_exporter_graphs_parse"]
    rows = [row for row in PAIRWISE
            if any(tuple(p[k] for k in ROW) == row for p in selected)]
    return {row: _submit(exports, folder, row[4], row[0], row[1], row[2], row[3],
                         exporter="auto") for row in rows}


ROW = ("target", "output", "normalize", "batch", "arch")


@pytest.mark.parametrize(", ".join(ROW), PAIRWISE)
def test_default_exporter_graphs_parse(pairwise_exports, target, output, normalize, batch, arch):
    _check_parsed(pairwise_exports[(target, output, normalize, batch, arch)].result())


def test_check_cli_names_the_real_parser_and_fails_on_its_rejection(tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper

    from bisenet_deploy.cli.export_main import main

    good = tmp_path / "good.onnx"
    inp = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 8, 8])
    relu = helper.make_node("Relu", ["image"], ["logits"], name="relu0")
    onnx.save(helper.make_model(helper.make_graph([relu], "g", [inp], [out]),
                                opset_imports=[helper.make_opsetid("", 17)]), str(good))
    assert main(["check", str(good), "--target", "trt11"]) == 0
    printed = capsys.readouterr().out
    assert "PASS %s: TensorRT-RTX 1.7.1 ONNX parser: PASS" % good in printed
    # a custom-domain node: the rule check says so, and the real parser names the node and why
    bad = tmp_path / "bad.onnx"
    custom = helper.make_node("FancyArgMax", ["image"], ["logits"], name="custom_argmax",
                              domain="my.ops")
    onnx.save(helper.make_model(helper.make_graph([custom], "g", [inp], [out]),
                                opset_imports=[helper.make_opsetid("", 17),
                                               helper.make_opsetid("my.ops", 1)]), str(bad))
    assert main(["check", str(bad), "--target", "trt11"]) == 3  # a failed check
    printed = capsys.readouterr().out
    line = [p for p in printed.splitlines() if "ONNX parser: FAIL" in p]
    assert len(line) == 1 and "node 0 'custom_argmax' (FancyArgMax)" in line[0]


def test_parser_verdict_is_recorded_in_the_cli_output(tmp_path, capsys):
    from bisenet_deploy.cli.export_main import main

    path = tmp_path / "m.onnx"
    assert main(["onnx", "--arch", "bisenetv2-coincheung", "--input-size", "96x48",
                 "--network-size", "64x32", "--target", "trt11", "--skip-parity",
                 "--exporter", "torchscript", "-o", str(path)]) == 0
    out = capsys.readouterr().out
    assert "  parser  TensorRT-RTX 1.7.1 ONNX parser: PASS" in out
    # the verdict describes this machine's TensorRT, not the graph: nothing of it in the ONNX
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(props["bisenet_deploy"])["export"]["target"] == "trt11"
    assert not [k for k in props if "parser" in k]
