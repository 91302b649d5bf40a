"""Parity comparison: statistics, tolerances and the readable report (fake runners), and the
real thing: PyTorch vs onnxruntime on a tiny exported model, and a perturbed ONNX that fails."""

import json

import numpy as np
import pytest

from bisenet_deploy.datasets import custom_dataset
from bisenet_deploy.errors import InputError
from bisenet_deploy.evaluation.backends import parse_spec
from bisenet_deploy.evaluation.compare import (
    Candidate,
    compare,
    format_report,
    json_report,
    plot_disagreement,
)
from bisenet_deploy.metadata import ExportInfo, build_record
from bisenet_deploy.portable.running.runner_base import Runner, TensorSpec
from bisenet_deploy.synthetic import synthetic_image

W, H = 64, 32
DATA = custom_dataset(4)


class LinearRunner(Runner):
    """logits = a fixed per-pixel linear map of the colour; perturbations on request."""

    backend = "fake"

    def __init__(self, noise=0.0, nan=False, garbage=False, precision="fp32", outputs=None):
        super().__init__()
        outputs = outputs or ["labels", "logits"]
        info = ExportInfo(input_name="image", input_size=[W, H], model_size=[W, H],
                          input_dtype="float32", channel_order="rgb", normalize="in-graph",
                          output="both" if len(outputs) == 2 else outputs[0],
                          output_names=outputs, target="trt10", precision=precision,
                          opset=17, batch={"dynamic": False, "size": 1})
        self.metadata = build_record(DATA.to_model_metadata("bisenetv2"), info)
        self.noise, self.nan, self.garbage, self.outputs = noise, nan, garbage, outputs
        self.weights = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32) / 50

    def describe(self):
        return f"fake noise={self.noise}"

    def input_spec(self):
        return TensorSpec("image", (1, 3, H, W), np.float32)

    def _activate(self):
        pass

    def _deactivate(self):
        pass

    def _infer(self, batch):
        logits = np.einsum("kc,nchw->nkhw", self.weights, batch).astype(np.float32)
        if self.noise:
            logits = logits + np.random.default_rng(1).normal(0, self.noise, logits.shape)
            logits = logits.astype(np.float32)
        if self.nan:
            logits[0, 0, 0, :3] = np.nan
        labels = logits.argmax(1).astype(np.int32)
        if self.garbage:
            labels[:, :2] = 1 << 20  # what a runtime reading int64 as int32 would show
        out = {"labels": labels, "logits": logits}
        return {k: out[k] for k in self.outputs}


def images(n=2):
    return [synthetic_image(W, H, seed=i) for i in range(n)]


def test_identical_backend_passes_and_report_is_json():
    with LinearRunner() as ref, LinearRunner() as same:
        report = compare(ref, [Candidate("same", same)], images())
    b = report["backends"][0]
    assert report["passed"] and b["passed"] and b["precision"] == "fp32"
    assert b["outputs"]["logits"]["stats"]["max_abs"] == 0.0
    assert b["outputs"]["labels"]["stats"]["identical"] == 1.0
    json.dumps(json_report(report))
    assert "PASS" in format_report(report)


def test_perturbed_backend_fails_with_readable_report(tmp_path):
    with LinearRunner() as ref, LinearRunner(noise=0.05) as noisy, \
            LinearRunner(noise=0.05, precision="fp16") as noisy16:
        report = compare(ref, [Candidate("noisy", noisy), Candidate("noisy16", noisy16)],
                         images(), keep_worst=True)
        plot_disagreement(report, str(tmp_path / "diff.png"), DATA.palette)
    assert not report["passed"]
    fp32, fp16 = report["backends"]
    assert not fp32["passed"]
    assert any(f.startswith("logits.max_rel") for f in fp32["failures"])
    text = format_report(report)
    assert "FAIL" in text and "FAILED logits.max_rel" in text and "identical" in text
    # the same errors are judged on the looser fp16 table
    assert fp16["tolerances"]["logits"]["max_rel"] > fp32["tolerances"]["logits"]["max_rel"]
    assert (tmp_path / "diff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "_worst" not in json.dumps(json_report(report))


def test_overrides_change_the_verdict():
    with LinearRunner() as ref, LinearRunner(noise=0.05) as noisy:
        loose = [(None, "logits", "max_rel", None), (None, "logits", "mean_rel", None),
                 (None, "labels", "min_identical", 0.0), (None, "labels", "min_class_iou", 0.0)]
        report = compare(ref, [Candidate("noisy", noisy)], images(), overrides=loose)
    assert report["passed"]


def test_nan_and_invalid_labels_are_counted_and_fail():
    with LinearRunner() as ref, LinearRunner(nan=True, garbage=True) as bad:
        report = compare(ref, [Candidate("bad", bad)], images(1))
    b = report["backends"][0]
    assert b["outputs"]["logits"]["stats"]["nonfinite"] == 3
    assert b["outputs"]["labels"]["stats"]["invalid"] == 2 * W
    failed = {f.split(":")[0] for f in b["failures"]}
    assert {"logits.max_nonfinite", "labels.max_invalid"} <= failed


def test_labels_only_backend_is_judged_on_labels():
    with LinearRunner() as ref, LinearRunner(outputs=["labels"]) as lab:
        report = compare(ref, [Candidate("labels-only", lab)], images(1))
    b = report["backends"][0]
    assert b["passed"] and "logits" not in b["outputs"] and "labels only" in b["note"]


def test_reference_factory_is_built_per_graph():
    built = []

    def factory(record):
        built.append(record["export"]["precision"])
        return LinearRunner().activate()

    with LinearRunner() as a, LinearRunner(precision="fp16") as b:
        report = compare(factory, [Candidate("a", a), Candidate("b", b)], images(1))
    assert report["passed"] and built == ["fp32", "fp16"]


def test_backend_specs():
    s = parse_spec("tensorrt:/x/model.plan@fp16")
    assert (s.backend, s.path, s.precision) == ("tensorrt", "/x/model.plan", "fp16")
    s = parse_spec("torch")
    assert (s.backend, s.path, s.precision) == ("torch", None, None)
    for bad in ("tensorflow:x", "onnxruntime:x@fp64"):
        with pytest.raises(InputError):
            parse_spec(bad)


# -- the real thing: PyTorch vs onnxruntime on a tiny export -------------------------------------

@pytest.fixture(scope="module")
def exported(tiny_export):
    """A random-init checkpoint and its ONNX (128x64 input, 64x32 network, labels + logits)."""
    return tiny_export("both")


def _perturb(onnx_path, out_path, scale):
    """Change ONE weight of the classifier's last convolution by `scale` standard deviations."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(onnx_path)
    last = [n for n in m.graph.node if n.op_type == "Conv"][-1]
    init = next(i for i in m.graph.initializer if i.name == last.input[1])
    w = numpy_helper.to_array(init).copy()
    w.flat[0] += scale * w.std()
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    onnx.save(m, out_path)


def test_cli_torch_vs_onnxruntime_passes(exported, capsys):
    from bisenet_deploy.cli.compare_main import main

    d, ckpt, onnx_path = exported
    out_json = d / "pass.json"
    code = main(["--checkpoint", ckpt, "--against", f"onnxruntime:{onnx_path}", "--synthetic",
                 "2", "--json", str(out_json), "--threads", "1", "-q"])
    text = capsys.readouterr().out
    assert code == 0, text
    report = json.loads(out_json.read_text())
    b = report["backends"][0]
    assert report["passed"] and b["passed"]
    assert b["outputs"]["logits"]["stats"]["max_rel"] < 1e-4
    assert b["outputs"]["labels"]["stats"]["identical"] == 1.0
    assert "PASS" in text
    assert report["command"].startswith("bisenet-compare --checkpoint ")  # as it was run


def test_cli_perturbed_onnx_fails_with_readable_report(exported, capsys):
    from bisenet_deploy.cli.compare_main import main

    d, ckpt, onnx_path = exported
    bad = str(d / "perturbed.onnx")
    _perturb(onnx_path, bad, 3.0)
    plot = d / "diff.png"
    code = main(["--checkpoint", ckpt, "--against", f"onnxruntime:{onnx_path}",
                 f"onnxruntime:{bad}", "--synthetic", "2", "--plot", str(plot),
                 "--json", str(d / "fail.json"), "--threads", "1", "-q"])
    captured = capsys.readouterr()
    assert code == 3  # ParityError
    assert "FAILED logits.max_rel" in captured.out
    assert f"onnxruntime:{bad}  [fp32]  FAIL" in captured.out
    assert "differ(s) from the reference beyond tolerance" in captured.err
    report = json.loads((d / "fail.json").read_text())
    good, wrong = report["backends"]
    assert good["passed"] and not wrong["passed"]
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_cli_bad_options_are_one_line_errors(exported, capsys):
    from bisenet_deploy.cli.compare_main import main

    d, ckpt, onnx_path = exported
    assert main(["--against", "onnxruntime", "-q"]) == 2  # no ONNX anywhere
    assert "need an ONNX file" in capsys.readouterr().err
    assert main(["--against", f"onnxruntime:{onnx_path}", "--tol", "labels.bogus=1", "-q"]) == 2
    assert "unknown limit" in capsys.readouterr().err
    assert main(["--against", f"onnxruntime:{d / 'missing.onnx'}", "-q"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["--against", f"onnxruntime:{onnx_path}", "--json",
                 f"{onnx_path}/report.json", "-q"]) == 2  # refused before comparing
    assert "--json" in capsys.readouterr().err
    assert main(["--against", f"onnxruntime:{onnx_path}", "--images", onnx_path, "-q"]) == 2
    assert "unsupported file type" in capsys.readouterr().err


def test_reference_without_checkpoint_for_trained_graph_is_refused():
    from bisenet_deploy.evaluation.backends import ModelSource

    record = {"model": {"arch": "bisenetv2", "num_classes": 19, "weights": "checkpoint"},
              "export": {}}
    with pytest.raises(InputError, match="pass the checkpoint it was exported from"):
        ModelSource().open(parse_spec("torch"), record)


def test_engine_precision_comes_from_its_sidecar():
    from bisenet_deploy.evaluation.compare import runner_precision

    r = LinearRunner()  # its record says fp32, as an ONNX that an FP16 engine was built from
    assert runner_precision(r) == "fp32"
    r.sidecar = {"precision": "fp16"}
    assert runner_precision(r) == "fp16"
    assert Candidate("e", r).precision == "fp16"
    assert Candidate("e", r, "int8").precision == "int8"  # an explicit @int8 wins


def test_failure_text_never_prints_value_and_limit_alike():
    from bisenet_deploy.comparison.measures import failure_text as _failure_text

    text = _failure_text({"check": "labels.min_identical", "value": 0.99980, "limit": 0.99999,
                          "passed": False})
    assert text == "labels.min_identical: 0.9998 < limit 0.99999"
    text = _failure_text({"check": "logits.max_rel", "value": 2.5e-4, "limit": 1e-4,
                          "passed": False})
    assert text == "logits.max_rel: 2.50e-04 > limit 0.0001"
    text = _failure_text({"check": "labels.min_identical", "value": 0.9999949, "limit": 0.999995,
                          "passed": False})
    assert text == "labels.min_identical: 0.99999 < limit 0.999995"
