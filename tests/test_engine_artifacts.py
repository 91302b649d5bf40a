"""Pure parts of engine building: default paths, the sidecar and its refusal of misuse, trtexec
command lines per TensorRT version, engine-inspector parsing, the ONNX reader the Jetson uses,
optimization profiles and parser-error advice. No TensorRT needed."""

import json
import os

import pytest
from support.onnx_graphs import preprocessing_graph, save
from support.records import engine_record as make_record

from bisenet_deploy.errors import (EngineError, IncompatibleEngineError, InputError,
                                   UnusableFileError)
from bisenet_deploy.portable.building import build_checks, builder
from bisenet_deploy.portable.running import engine_inspect
from bisenet_deploy.portable.trt import engine_paths, gpu_info, sidecar
from bisenet_deploy.portable.files import onnx_reader
from bisenet_deploy.portable.building import trtexec as tx
from bisenet_deploy.portable.trt.capabilities import assumed_capabilities

# -- paths ---------------------------------------------------------------------------------------


def test_default_engine_path():
    path = engine_paths.default_engine_path("export/bisenetv2-city.onnx",
                                            "NVIDIA GeForce GTX 1080 Ti", (6, 1), "8.6.1.6", "fp16")
    assert path == os.path.join("engines", "nvidia-geforce-gtx-1080-ti-sm61-trt8.6.1",
                                "bisenetv2-city-fp16.engine")
    tx2 = engine_paths.default_engine_path("m.onnx", "NVIDIA Tegra X2", "6.2", "8.2.1.8", "fp32",
                                           root="/data/engines")
    assert tx2 == "/data/engines/nvidia-tegra-x2-sm62-trt8.2.1/m-fp32.engine"
    # a trt11 FP16 export's stem already ends in the precision: not '...-fp16-fp16.engine'
    h100 = engine_paths.default_engine_path("export/m-labels-trt11-fp16.onnx", "NVIDIA H100",
                                            "9.0", "11.0", "fp16")
    assert os.path.basename(h100) == "m-labels-trt11-fp16.engine"
    assert engine_paths.engine_file_name("m-trt10.onnx", "fp16") == "m-trt10-fp16.engine"
    assert engine_paths.sidecar_path("a/m-fp16.engine") == "a/m-fp16.json"
    assert engine_paths.sidecar_path("a/m.plan") == "a/m.json"
    assert engine_paths.sidecar_path("a/m.bin") == "a/m.bin.json"
    assert engine_paths.default_timing_cache_path("/x/y/m.engine") == "/x/y/timing.cache"
    assert engine_paths.default_timing_cache_path("e/m.engine") == os.path.join("e", "timing.cache")


def test_gpu_info_parsers():
    info = gpu_info.parse_nvidia_smi_csv("NVIDIA H100 80GB HBM3, 9.0, 550.54.15, 81559\n")
    assert info.name == "NVIDIA H100 80GB HBM3" and info.compute_capability == (9, 0)
    assert info.driver == "550.54.15" and info.memory_mib == 81559 and info.sm == "90"
    assert gpu_info.parse_nvidia_smi_csv("NVIDIA X, [N/A], 470.1") is None  # old driver
    assert gpu_info.parse_tegra_release(
        "# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t186ref") == "L4T R32.7.1"
    assert gpu_info.jetson_gpu_from_model("NVIDIA Jetson TX2 Developer Kit") == (
        "NVIDIA Tegra X2", (6, 2))
    assert gpu_info.slug("  NVIDIA GeForce RTX 4090 ") == "nvidia-geforce-rtx-4090"


# -- sidecar ---------------------------------------------------------------------------------------

def _sidecar(trt="10.3.0.26", name="NVIDIA A10", cc="8.6"):
    return sidecar.make_sidecar(
        "m-fp16.engine", "ab" * 32, 1234, trt, "8.5-10", {"name": name, "compute_capability": cc,
                                                           "driver": "550"},
        "fp16", [sidecar.tensor_entry("image", "input", [-1, 3, 1024, 2048], "float32"),
                 sidecar.tensor_entry("labels", "output", [-1, 1024, 2048], "int32")],
        [sidecar.profile_entry("image", [1, 3, 1024, 2048], [2, 3, 1024, 2048],
                               [4, 3, 1024, 2048])],
        "model.onnx", "cd" * 32, make_record(), {"workspace_mib": None}, 12.5)


def test_sidecar_round_trip(tmp_path):
    engine = tmp_path / "m-fp16.engine"
    engine.write_bytes(b"plan")
    data = _sidecar()
    path = sidecar.write_sidecar(str(engine), data)
    assert path == str(tmp_path / "m-fp16.json")
    back = sidecar.read_sidecar(str(engine))
    assert back == json.loads(json.dumps(data))
    assert back["onnx_metadata"]["export"]["input_name"] == "image"
    assert back["gpu"]["compute_capability"] == "8.6"
    assert sidecar.read_sidecar(path)["precision"] == "fp16"  # the .json path itself works too
    assert "FP16 engine for NVIDIA A10 (SM 8.6)" in sidecar.summarize(back)


def test_missing_and_corrupt_sidecar(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    with pytest.raises(EngineError, match="sidecar .* is missing.*bisenet-build-engine") as err:
        sidecar.read_sidecar(str(engine))
    assert "./build_engine.sh --force` in a Jetson bundle" in str(err.value)
    (tmp_path / "m.json").write_text('{"kind": "bisenet_deploy.engine", "schema": 1, "trun')
    with pytest.raises(EngineError, match="corrupt"):
        sidecar.read_sidecar(str(engine))
    (tmp_path / "m.json").write_text('{"something": "else"}')
    with pytest.raises(EngineError, match="not a bisenet-deploy engine sidecar"):
        sidecar.read_sidecar(str(engine))
    partial = _sidecar()
    del partial["io"]
    (tmp_path / "m.json").write_text(json.dumps(partial))
    with pytest.raises(EngineError, match="lacks io"):
        sidecar.read_sidecar(str(engine))


def test_engine_file_must_match_sidecar(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    data = _sidecar()
    data["engine"]["sha256"] = sidecar.sha256_file(str(engine))
    sidecar.check_engine_file(str(engine), data)
    engine.write_bytes(b"another plan")
    with pytest.raises(EngineError, match="does not match its sidecar.*rebuild the engine"):
        sidecar.check_engine_file(str(engine), data)


def test_compatible_engine_passes():
    sidecar.check_engine_compatible(_sidecar(), "10.3.0.26", "NVIDIA A10", (8, 6))
    # the build number does not matter, case/punctuation of the name neither
    sidecar.check_engine_compatible(_sidecar(), "10.3.0", "nvidia a10", "8.6")


def test_other_tensorrt_version_refused_naming_both():
    with pytest.raises(IncompatibleEngineError) as info:
        sidecar.check_engine_compatible(_sidecar(), "10.4.0", "NVIDIA A10", (8, 6))
    msg = str(info.value)
    assert "TensorRT 10.3.0" in msg and "TensorRT 10.4.0" in msg
    # the fix, spelled for both places the portable code runs (desktop CLI, Jetson bundle)
    assert "rebuild the engine on this machine (`bisenet-build-engine`" in msg
    assert "`./build_engine.sh --force` in a Jetson bundle" in msg


@pytest.mark.parametrize("built, here, flavour", [
    ("10.3.0.26", "10.3.1", "tensorrt"),     # a patch release: engines do not carry over
    ("10.3.1", "10.3.0.26", "tensorrt"),     # nor back
    ("8.2.1.8", "8.2.3", "tensorrt"),        # JetPack 4.6's TensorRT vs a later 8.2 patch
    ("1.7.1.116", "1.7.2", "tensorrt-rtx"),
])
def test_other_tensorrt_patch_version_refused(built, here, flavour):
    """The sidecar check compares MAJOR.MINOR.PATCH, as its docstring promises; only the build
    number (the fourth part) may differ."""
    data = (_rtx_sidecar() if flavour == "tensorrt-rtx" else _sidecar())
    data["tensorrt_version"] = built
    gpu = ("NVIDIA GeForce RTX 4090", "8.9") if flavour == "tensorrt-rtx" else ("NVIDIA A10", "8.6")
    with pytest.raises(IncompatibleEngineError) as info:
        sidecar.check_engine_compatible(data, here, gpu[0], gpu[1], flavour)
    label = "TensorRT-RTX" if flavour == "tensorrt-rtx" else "TensorRT"
    msg = str(info.value)
    assert "built with %s %s and this machine has %s %s" % (
        label, ".".join(built.split(".")[:3]), label, ".".join(here.split(".")[:3])) in msg
    build_only = ".".join(built.split(".")[:3] + ["999"])  # another build of the same release
    sidecar.check_engine_compatible(data, build_only, gpu[0], gpu[1], flavour)


def _rtx_sidecar(targets=((8, 0), (8, 6), (8, 9), (12, 0), (12, 1))):
    return sidecar.make_sidecar(
        "m-fp16.engine", "ab" * 32, 1234, "1.7.1.116", "11", None, "fp16",
        [sidecar.tensor_entry("image", "input", [1, 3, 1024, 2048], "float32")], [],
        "model.onnx", "cd" * 32, make_record(), {}, 0.7, flavour="tensorrt-rtx", targets=targets)


def test_tensorrt_rtx_sidecar_records_flavour_and_targets(tmp_path):
    engine = tmp_path / "m-fp16.engine"
    engine.write_bytes(b"vtrt plan")
    sidecar.write_sidecar(str(engine), _rtx_sidecar())
    back = sidecar.read_sidecar(str(engine))
    assert back["flavour"] == "tensorrt-rtx" and back["gpu"] is None
    assert back["targets"] == ["8.0", "8.6", "8.9", "12.0", "12.1"]
    assert sidecar.sidecar_targets(back)[1] == (8, 6)
    assert "FP16 engine for SM 8.0, 8.6, 8.9, 12.0, 12.1, TensorRT-RTX 1.7.1.116" in \
        sidecar.summarize(back)
    # a schema 1 sidecar (before TensorRT-RTX) is a full TensorRT one
    old = _sidecar()
    del old["flavour"]
    old["schema"] = 1
    (tmp_path / "m-fp16.json").write_text(json.dumps(old))
    assert sidecar.sidecar_flavour(sidecar.read_sidecar(str(engine))) == "tensorrt"
    # full TensorRT's sidecar needs its GPU; an RTX one its targets
    with pytest.raises(EngineError, match="needs the GPU"):
        sidecar.make_sidecar("m.engine", "ab", 1, "10.3", "8.5-10", None, "fp32", [], [], "m.onnx",
                             "cd", None, {}, 1.0)
    broken = _rtx_sidecar()
    broken["targets"] = []
    (tmp_path / "m-fp16.json").write_text(json.dumps(broken))
    with pytest.raises(EngineError, match="no compute-capability targets"):
        sidecar.read_sidecar(str(engine))


def test_tensorrt_rtx_engine_refused_by_full_tensorrt_and_outside_its_targets():
    rtx = _rtx_sidecar()
    sidecar.check_engine_compatible(rtx, "1.7.1", "NVIDIA GeForce RTX 4090", "8.9",
                                    "tensorrt-rtx")
    sidecar.check_engine_compatible(rtx, "1.7.1", None, None, "tensorrt-rtx")
    with pytest.raises(IncompatibleEngineError) as info:
        sidecar.check_engine_compatible(rtx, "10.13.0", "NVIDIA A10", "8.6", "tensorrt")
    msg = str(info.value)
    assert "built with TensorRT-RTX 1.7.1 and cannot be loaded by TensorRT 10.13.0" in msg
    assert "pip install -e '.[rtx]'" in msg and "--trt-flavour tensorrt" in msg
    with pytest.raises(IncompatibleEngineError, match="built with TensorRT 10.3.0 .*TensorRT-RTX"):
        sidecar.check_engine_compatible(_sidecar(), "1.7.1", "NVIDIA A10", "8.6", "tensorrt-rtx")
    with pytest.raises(IncompatibleEngineError) as info:
        sidecar.check_engine_compatible(rtx, "1.7.1", "NVIDIA GeForce RTX 2080 Ti", "7.5",
                                        "tensorrt-rtx")
    assert "SM 8.0, 8.6, 8.9, 12.0, 12.1" in str(info.value)
    assert "--compute-capability 7.5" in str(info.value)
    with pytest.raises(IncompatibleEngineError, match="TensorRT-RTX 1.7.1 and this machine has "
                                                      "TensorRT-RTX 1.8.0"):
        sidecar.check_engine_compatible(rtx, "1.8.0", "NVIDIA GeForce RTX 4090", "8.9",
                                        "tensorrt-rtx")
    sidecar.check_engine_compatible(_rtx_sidecar(targets=[(7, 5)]), "1.7.1", "Quadro RTX 6000",
                                    "7.5", "tensorrt-rtx")


def test_tensorrt_rtx_engine_paths():
    # no GPU to name: the flavour, version and targets name the folder
    assert engine_paths.default_engine_path(
        "export/m-trt11.onnx", None, None, "1.7.1.116", "fp32", flavour="tensorrt-rtx") == \
        os.path.join("engines", "rtx1.7.1-portable", "m-trt11-fp32.engine")
    assert engine_paths.engine_folder_name(
        "NVIDIA GeForce RTX 2080 Ti", "7.5", "1.7.1", "tensorrt-rtx", ["7.5"]) == \
        "nvidia-geforce-rtx-2080-ti-sm75-rtx1.7.1-sm75"
    assert engine_paths.targets_slug([(8, 6), "12.0"]) == "sm86-sm120"
    assert engine_paths.runtime_cache_path("e/m-fp16.engine", "8.9") == \
        os.path.join("e", "m-fp16.sm89.runtime.cache")


def test_other_gpu_refused_naming_both():
    with pytest.raises(IncompatibleEngineError) as info:
        sidecar.check_engine_compatible(_sidecar(), "10.3.0", "NVIDIA GeForce RTX 3090", "8.6")
    assert "NVIDIA A10" in str(info.value) and "RTX 3090" in str(info.value)
    with pytest.raises(IncompatibleEngineError) as info:
        sidecar.check_engine_compatible(_sidecar(), "10.3.0", "Tesla T4", "7.5")
    msg = str(info.value)
    assert "SM 8.6" in msg and "SM 7.5" in msg and "Tesla T4" in msg
    # both wrong: both named in one message
    with pytest.raises(IncompatibleEngineError, match="TensorRT 8.2.1.*SM 6.2"):
        sidecar.check_engine_compatible(_sidecar(), "8.2.1", "NVIDIA Tegra X2", "6.2")


# -- trtexec command lines -------------------------------------------------------------------------

PROFILE = ("image", [1, 3, 1024, 2048], [2, 3, 1024, 2048], [4, 3, 1024, 2048])


def test_trtexec_8_2_jetson():
    cmd = tx.build_command("8.2.1.8", "m.onnx", "m.engine", "fp16", timing_cache="t.cache",
                           binary=tx.find_trtexec(jetson=True))
    assert cmd == ["/usr/src/tensorrt/bin/trtexec", "--onnx=m.onnx", "--saveEngine=m.engine",
                   "--explicitBatch", "--workspace=1024", "--fp16", "--noTF32",
                   "--timingCacheFile=t.cache",
                   "--profilingVerbosity=detailed", "--buildOnly"]
    with pytest.raises(InputError, match="8.6"):
        tx.build_command("8.2.1", "m.onnx", "m.engine", opt_level=3, binary="trtexec")


def test_trtexec_8_6_dynamic_batch():
    cmd = tx.build_command("8.6.1", "m.onnx", "m.engine", "fp32", profile=PROFILE,
                           workspace_mib=2048, opt_level=4, binary="trtexec")
    assert cmd == ["trtexec", "--onnx=m.onnx", "--saveEngine=m.engine", "--explicitBatch",
                   "--memPoolSize=workspace:2048", "--noTF32", "--minShapes=image:1x3x1024x2048",
                   "--optShapes=image:2x3x1024x2048", "--maxShapes=image:4x3x1024x2048",
                   "--builderOptimizationLevel=4", "--profilingVerbosity=detailed",
                   "--skipInference"]


def test_trtexec_10_int8_and_strongly_typed():
    cmd = tx.build_command("10.13.0", "m.onnx", "m.engine", "int8", calib_cache="m.calib",
                           binary="trtexec")
    assert cmd == ["trtexec", "--onnx=m.onnx", "--saveEngine=m.engine", "--int8", "--fp16",
                   "--calib=m.calib", "--noTF32", "--profilingVerbosity=detailed",
                   "--skipInference"]
    assert "--explicitBatch" not in cmd and not any(a.startswith("--workspace") for a in cmd)
    with pytest.raises(InputError, match="calibration cache"):
        tx.build_command("10.13.0", "m.onnx", "m.engine", "int8", binary="trtexec")
    typed = tx.build_command("10.3", "m.onnx", "m.engine", "fp16", strongly_typed=True,
                             binary="trtexec")
    assert "--stronglyTyped" in typed and "--fp16" not in typed


def test_trtexec_fp32_means_fp32_unless_tf32_is_asked_for():
    assert "--noTF32" in tx.build_command("10.3", "m.onnx", "m.engine", "fp32", binary="trtexec")
    tf32 = tx.build_command("10.3", "m.onnx", "m.engine", "fp32", binary="trtexec",
                            allow_tf32=True)
    assert "--noTF32" not in tf32


def test_trtexec_11_has_no_precision_flags():
    cmd = tx.build_command("11.0", "m-fp16.onnx", "m.engine", "fp16", profile=PROFILE,
                           binary="trtexec")
    assert not {"--fp16", "--int8", "--best", "--explicitBatch"} & set(cmd)
    # trtexec 11 still takes --noTF32 (its FP32 layers are TF32 otherwise), as our builder clears
    # TF32 on 11: both agree
    assert "--noTF32" in cmd
    assert "--noTF32" not in tx.build_command("11.0", "m.onnx", "m.engine", "fp32",
                                              binary="trtexec", allow_tf32=True)
    assert cmd[-1] == "--skipInference" and "--minShapes=image:1x3x1024x2048" in cmd
    with pytest.raises(InputError, match="no INT8"):
        tx.build_command("11.0", "m.onnx", "m.engine", "int8", binary="trtexec")


def test_trtexec_refuses_what_trtexec_would_refuse_later():
    with pytest.raises(InputError, match="older than 8.2"):
        tx.build_command("7.1.3", "m.onnx", "m.engine", binary="trtexec")
    with pytest.raises(InputError, match="older than 8.2"):
        tx.benchmark_command("8.0.1", "m.engine", binary="trtexec")
    with pytest.raises(InputError, match="positive number of MiB"):
        tx.build_command("8.2.1", "m.onnx", "m.engine", workspace_mib=0, binary="trtexec")
    with pytest.raises(InputError, match="0..5"):
        tx.build_command("10.3", "m.onnx", "m.engine", opt_level=6, binary="trtexec")


def test_trtexec_benchmark_lines():
    b82 = tx.benchmark_command("8.2.1", "m.engine", binary="trtexec")
    assert b82 == ["trtexec", "--loadEngine=m.engine", "--iterations=5000", "--duration=0",
                   "--warmUp=500", "--avgRuns=100", "--useSpinWait", "--percentile=99"]
    b10 = tx.benchmark_command("10.3", "m.engine", shape=("image", [2, 3, 1024, 2048]),
                               binary="trtexec")
    assert "--shapes=image:2x3x1024x2048" in b10 and "--percentile=99" not in b10
    b11 = tx.benchmark_command("11.0", "m.engine", binary="trtexec")
    # 11 defaults to CUDA graphs and no transfers: the same measurement needs both undone
    assert "--includeDataTransfers" in b11 and "--noCudaGraph" in b11
    assert "--useSpinWait" not in b11
    assert tx.format_command(["trtexec", "--onnx=my model.onnx"]) == "trtexec '--onnx=my model.onnx'"


# -- engine inspector ------------------------------------------------------------------------------

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def _inspector_json(name):
    """Engine-inspector JSON fixtures: trt10 spells each tensor's type 'Format/Datatype'; the
    TensorRT-RTX 1.7 one (layers of a real FP16 build of bisenetv2, from its detailed build log)
    spells 'Datatype' and 'Format', as TensorRT 11 does."""
    with open(os.path.join(DATA, name)) as f:
        return f.read()


INSPECTOR_JSON = _inspector_json("engine_inspector_trt10.json")


def test_parse_engine_information():
    layers = engine_inspect.parse_engine_information(INSPECTOR_JSON)
    assert [layer.precision for layer in layers] == ["fp16", "int8", "int32"]
    assert layers[0].fused == ["/detail/conv1/Conv", "/detail/relu1/Relu"]
    assert layers[1].fused == ["/a/Add", "/a/Relu"]
    assert engine_inspect.precision_summary(layers) == {"fp16": 1, "int8": 1, "int32": 1}
    table = engine_inspect.format_layer_table(layers)
    assert "CaskConvolution" in table and "3 engine layers: fp16 1, int32 1, int8 1" in table
    names_only = engine_inspect.parse_engine_information(json.dumps({"Layers": ["a + b"]}))
    assert names_only[0].precision == "?" and names_only[0].fused == ["a", "b"]
    with pytest.raises(EngineError):
        engine_inspect.parse_engine_information("{not json")


def test_inspector_json_of_tensorrt_11_and_rtx_reads_datatype(caplog):
    layers = engine_inspect.parse_engine_information(
        _inspector_json("engine_inspector_rtx1.7_fp16.json"))
    assert [layer.precision for layer in layers] == ["fp16", "-", "-", "fp16", "fp16", "fp16",
                                                     "int32"]  # signal/wait layers have no I/O
    assert layers[0].fused == ["image_to_fp16", "/Resize", "/net/segment/S1S2/conv/conv/Conv",
                               "/net/segment/S1S2/conv/relu/Relu", "/Sub"]
    assert engine_inspect.precision_summary(layers) == {"fp16": 4, "-": 2, "int32": 1}
    # the old key still wins where both exist; a tensor with neither has no precision
    assert engine_inspect.tensor_type_text({"Format/Datatype": "FP16", "Datatype": "Float"}) == "FP16"
    assert engine_inspect.tensor_type_text({"Format": "(Linear) Row major"}) == ""


# -- ONNX reader without the onnx package (what the Jetson builder uses) ---------------------------

def test_read_onnx_summary_matches_onnx(tmp_path):
    rec = make_record(channel_order="bgr", batch={"dynamic": True, "min": 1, "opt": 2, "max": 4})
    model = preprocessing_graph(rec)
    data = model.SerializeToString()
    summary = onnx_reader.read_onnx_summary(data)
    assert summary["opset"] == 13
    assert summary["inputs"] == [("image", [-1, 3, 32, 64])]
    assert summary["outputs"] == [("normalized", [-1, 3, 32, 64])]
    assert summary["nodes"] == [(n.name, n.op_type) for n in model.graph.node]
    assert onnx_reader.record_from_summary(summary) == rec
    with pytest.raises(UnusableFileError, match="m.onnx is not a readable ONNX"):
        onnx_reader.read_onnx_summary(data[:-7], "m.onnx")
    # a damaged node after a good one: the message still names the file, not the last node read
    node = model.graph.node[1].SerializeToString()
    assert data.count(node) == 1
    broken = data.replace(node, b"\x0f" + node[1:])  # field 1 with the invalid wire type 7
    with pytest.raises(UnusableFileError, match="^m.onnx is not a readable ONNX"):
        onnx_reader.read_onnx_summary(broken, "m.onnx")


def test_read_onnx_summary_without_metadata():
    model = preprocessing_graph(make_record())
    del model.metadata_props[:]
    summary = onnx_reader.read_onnx_summary(model.SerializeToString())
    assert onnx_reader.record_from_summary(summary) is None


# -- profiles, ONNX vs TensorRT, parser errors -----------------------------------------------------

def test_profile_from_record_cli_and_static():
    rec = make_record(batch={"dynamic": True, "min": 1, "opt": 2, "max": 8})
    assert build_checks.profile_for_input("image", [-1, 3, 32, 64], rec) == (
        "image", [1, 3, 32, 64], [2, 3, 32, 64], [8, 3, 32, 64])
    assert build_checks.profile_for_input("image", [-1, 3, 32, 64], rec, (4, 4, 16))[3] == [16, 3, 32, 64]
    assert build_checks.profile_for_input("image", [1, 3, 32, 64], make_record()) is None
    assert build_checks.profile_for_input("image", [2, 3, 32, 64], None, (2, 2, 2)) is None
    with pytest.raises(InputError, match="fixed batch of 1.*--dynamic-batch"):
        build_checks.profile_for_input("image", [1, 3, 32, 64], make_record(), (1, 2, 4))
    with pytest.raises(InputError, match="dynamic channel/height/width"):
        build_checks.profile_for_input("image", [-1, 3, -1, -1], None)
    # no range known: batch 1 only
    assert build_checks.profile_for_input("image", [-1, 3, 32, 64], None)[3] == [1, 3, 32, 64]


def test_onnx_checked_against_tensorrt_before_work():
    rec = make_record(target="trt10", opset=17)
    with pytest.raises(InputError, match="opset 17.*<= 13.*--target trt8.2"):
        build_checks.check_onnx_supported(rec, {"opset": 17}, assumed_capabilities("8.2.1"))
    with pytest.raises(InputError, match="uint8.*trt8.2"):
        build_checks.check_onnx_supported(make_record(input_dtype="uint8", opset=13),
                                          {"opset": 13}, assumed_capabilities("8.2.1"))
    warnings = build_checks.check_onnx_supported(make_record(target="trt10", opset=17),
                                                 {"opset": 17}, assumed_capabilities("8.6.1"))
    assert len(warnings) == 1 and "--target trt8.6" in warnings[0]
    assert build_checks.check_onnx_supported(make_record(target="trt8.2"), {"opset": 13},
                                             assumed_capabilities("10.3")) == []
    # TensorRT-RTX parses every target's graphs, uint8 input included
    rtx = assumed_capabilities("1.7.1", "tensorrt-rtx")
    assert build_checks.check_onnx_supported(make_record(target="trt10", input_dtype="uint8",
                                                         opset=17), {"opset": 17}, rtx) == []


def test_parser_errors_name_the_node_and_the_fix():
    rec = make_record(target="trt10")
    nodes = [("/resize/Resize", "Resize"), ("/head/ArgMax", "ArgMax")]
    msg = build_checks.explain_parser_errors(
        [{"node": 0, "desc": "Resize scales must be an initializer!", "code": "UNSUPPORTED_NODE"}],
        rec, assumed_capabilities("8.2.1"), "model.onnx", nodes)
    assert "node 0 '/resize/Resize' (Resize): Resize scales must be an initializer!" in msg
    assert "re-export it with `bisenet-export onnx --target trt8.2`" in msg
    assert "exported for trt10" in msg
    # newer parsers name the node themselves
    msg = build_checks.explain_parser_errors(
        [{"node": 1, "node_name": "/head/ArgMax", "desc": "unsupported", "code": "x"}],
        make_record(target="trt8.6"), assumed_capabilities("8.6.1"), "m.onnx")
    assert "node 1 '/head/ArgMax'" in msg and "bisenet-export check --target trt8.6" in msg
    msg = build_checks.explain_parser_errors([{"node": -1, "desc": "Unsupported ONNX opset 17"}],
                                        None, assumed_capabilities("8.2.1"), "m.onnx")
    assert "the graph: Unsupported ONNX opset 17" in msg and "not exported by bisenet-deploy" in msg


def test_calibration_batch_size():
    opts = builder.BuildOptions(precision="int8")
    assert build_checks.calibration_batch_size(None, 1, opts) == 1
    assert build_checks.calibration_batch_size(PROFILE, -1, opts) == 2
    with pytest.raises(InputError, match="outside"):
        build_checks.calibration_batch_size(PROFILE, -1, builder.BuildOptions(calib_batch_size=8))
    with pytest.raises(InputError, match=">= 1"):
        build_checks.calibration_batch_size(PROFILE, -1, builder.BuildOptions(calib_batch_size=0))


def test_build_engine_refuses_before_work_without_tensorrt(tmp_path, monkeypatch):
    import sys
    for name in ("tensorrt", "tensorrt_rtx", "tensorrt_rtx_bindings"):
        monkeypatch.setitem(sys.modules, name, None)
    onnx_path = save(preprocessing_graph(make_record()), tmp_path / "m.onnx")
    from bisenet_deploy.errors import MissingDependencyError
    with pytest.raises(MissingDependencyError):
        builder.build_engine(onnx_path, None, builder.BuildOptions())
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]  # nothing half-written


def test_query_gpu_sources(monkeypatch):
    from bisenet_deploy.errors import MissingDependencyError
    monkeypatch.setattr(gpu_info, "is_jetson", lambda: False)
    monkeypatch.setattr(gpu_info, "_query_pycuda", lambda i: gpu_info.GpuInfo(
        "NVIDIA A10", (8, 6), driver="CUDA driver API 12.4", source="pycuda"))
    monkeypatch.setattr(gpu_info, "_query_nvidia_smi", lambda i: gpu_info.parse_nvidia_smi_csv(
        "NVIDIA A10, 8.6, 550.54.15, 22731"))
    info = gpu_info.query_gpu()
    assert info.source == "pycuda" and info.driver == "550.54.15 (CUDA driver API 12.4)"
    monkeypatch.setattr(gpu_info, "_query_pycuda", lambda i: None)
    assert gpu_info.query_gpu().source == "nvidia-smi"
    monkeypatch.setattr(gpu_info, "_query_nvidia_smi", lambda i: None)
    with pytest.raises(MissingDependencyError, match="nvidia-smi"):
        gpu_info.query_gpu()
    # a Jetson has no nvidia-smi: the device tree names the module
    monkeypatch.setattr(gpu_info, "is_jetson", lambda: True)
    monkeypatch.setattr(gpu_info, "_read", lambda path: {
        gpu_info.DEVICE_TREE_MODEL: "NVIDIA Jetson TX2 Developer Kit",
        gpu_info.JETSON_RELEASE_FILE: "# R32 (release), REVISION: 7.1, GCID: 1"}.get(path))
    info = gpu_info.query_gpu()
    assert (info.name, info.compute_capability, info.driver, info.jetson) == (
        "NVIDIA Tegra X2", (6, 2), "L4T R32.7.1", True)


def test_step_timer_records_and_logs_finished_steps_only(caplog):
    """The one step timer of the engine build and the ONNX export."""
    import logging

    from bisenet_deploy.portable.shared.step_timer import StepTimer

    timer = StepTimer(logging.getLogger("steps-test"), announce=True)
    with caplog.at_level(logging.INFO, logger="steps-test"):
        assert timer.run("add", lambda a, b: a + b, 2, b=3) == 5
        with pytest.raises(ValueError):
            with timer.step("fails"):
                raise ValueError("boom")
    assert [name for name, _ in timer.done] == ["add"]
    assert timer.total() == timer.done[0][1] >= 0
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "add ..." and messages[1].startswith("add ") and messages[1].endswith(" s")
    assert messages[2] == "fails ..." and len(messages) == 3
