"""`bisenet-export triton`: repositories a production Triton accepts, written safely.

Every config.pbtxt is parsed with Triton's own schema (tritonclient's model_config_pb2); one test
also points the real tritonserver that PyTriton ships at an exported repository.
"""

import json
import os
import subprocess
import sys

import pytest

from bisenet_deploy.errors import InputError, UserError
from bisenet_deploy.export.onnx_metadata import read_record
from bisenet_deploy.portable.files.fileio import sha256_file
from bisenet_deploy.serve.repository import RepositoryOptions, build_repository


def parse_config(path):
    pb = pytest.importorskip("tritonclient.grpc.model_config_pb2",
                             reason="Triton's schema comes with tritonclient[grpc]")
    from google.protobuf import text_format

    with open(str(path), "r", encoding="utf-8") as f:
        return text_format.Parse(f.read(), pb.ModelConfig())


@pytest.fixture
def fake_engine(tmp_path, tiny_dynamic_export):
    """An 'engine' file with a real sidecar (as bisenet-build-engine writes it) built from the
    tiny dynamic ONNX; the repository only copies the plan, so its bytes do not matter."""
    from bisenet_deploy.portable.trt.sidecar import (make_sidecar, profile_entry, tensor_entry,
                                                 write_sidecar)

    engine = tmp_path / "dyn-fp16.engine"
    engine.write_bytes(os.urandom(4096))
    io = [tensor_entry("image", "input", (-1, 3, 64, 128), "float32"),
          tensor_entry("labels", "output", (-1, 64, 128), "int32"),
          tensor_entry("logits", "output", (-1, 19, 64, 128), "float32")]
    sidecar = make_sidecar(
        engine_file=str(engine), engine_sha256=sha256_file(str(engine)), engine_bytes=4096,
        trt_version="10.13.0", api_generation="tensors",
        gpu={"name": "NVIDIA GeForce RTX 4090", "compute_capability": "8.9"}, precision="fp16",
        io=io, profiles=[profile_entry("image", (1, 3, 64, 128), (4, 3, 64, 128),
                                       (8, 3, 64, 128))],
        onnx_file=tiny_dynamic_export, onnx_sha256=sha256_file(tiny_dynamic_export),
        onnx_metadata=read_record(tiny_dynamic_export), build_options={}, build_seconds=1.0)
    write_sidecar(str(engine), sidecar)
    return str(engine)


def test_engine_and_onnx_repository_follows_tritons_schema(tmp_path, tiny_dynamic_export,
                                                           fake_engine):
    repo = tmp_path / "repo"
    result = build_repository(RepositoryOptions(str(repo), onnx=tiny_dynamic_export,
                                                engine=fake_engine, instances=2))
    record = read_record(tiny_dynamic_export)
    plan = parse_config(repo / "bisenet" / "config.pbtxt")
    onnx = parse_config(repo / "bisenet_onnx" / "config.pbtxt")
    assert (plan.platform, onnx.platform) == ("tensorrt_plan", "onnxruntime_onnx")
    for config in (plan, onnx):
        assert config.max_batch_size == 8
        assert [(t.name, t.data_type, list(t.dims)) for t in config.input] == [
            ("image", 11, [3, 64, 128])]  # 11 = TYPE_FP32
        assert [(t.name, t.data_type, list(t.dims)) for t in config.output] == [
            ("labels", 8, [64, 128]), ("logits", 11, [19, 64, 128])]  # 8 = TYPE_INT32
        assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
        assert [(w.batch_size, list(w.inputs["image"].dims), w.inputs["image"].zero_data)
                for w in config.model_warmup] == [(1, [3, 64, 128], True), (4, [3, 64, 128], True),
                                                  (8, [3, 64, 128], True)]
        assert config.dynamic_batching.max_queue_delay_microseconds == 500
        assert [(g.count, g.kind) for g in config.instance_group] == [(2, 1)]  # KIND_GPU
        params = {k: v.string_value for k, v in config.parameters.items()}
        assert json.loads(params["bisenet_deploy"]) == record
        assert json.loads(params["palette"]) == record["model"]["palette"]
        assert json.loads(params["mean"]) == record["model"]["mean"]
    assert {k: v.string_value for k, v in plan.parameters.items()}["tensorrt_version"] == "10.13.0"
    assert sha256_file(str(repo / "bisenet" / "1" / "model.plan")) == sha256_file(fake_engine)
    assert sha256_file(str(repo / "bisenet_onnx" / "1" / "model.onnx")) == \
        sha256_file(tiny_dynamic_export)
    assert json.loads((repo / "bisenet" / "engine.json").read_text())["precision"] == "fp16"
    readme = (repo / "README.md").read_text()
    assert "tritonserver --model-repository" in readme and "Scale out" in readme
    assert "NVIDIA GeForce RTX 4090" in readme and "10.13.0" in readme
    manifest = json.loads((repo / "manifest.json").read_text())
    assert set(manifest["files"]) == {"README.md", "bisenet/config.pbtxt", "bisenet/1/model.plan",
                                      "bisenet/engine.json", "bisenet_onnx/config.pbtxt",
                                      "bisenet_onnx/1/model.onnx"}
    assert [m.spec.name for m in result.models] == ["bisenet", "bisenet_onnx"]
    assert sorted(os.listdir(tmp_path)) == sorted(["repo", "dyn-fp16.engine", "dyn-fp16.json"])


def test_static_batch_gets_max_batch_size_0_and_full_dims(tmp_path, tiny_export):
    _, _, onnx = tiny_export("labels")
    repo = tmp_path / "repo"
    build_repository(RepositoryOptions(str(repo), onnx=onnx, onnx_kind="cpu",
                                       model_name="seg.v1"))
    config = parse_config(repo / "seg.v1" / "config.pbtxt")
    assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
    assert list(config.input[0].dims) == [1, 3, 64, 128]
    assert list(config.output[0].dims) == [1, 64, 128]
    assert config.instance_group[0].kind == 2  # KIND_CPU
    assert [(w.batch_size, list(w.inputs["image"].dims)) for w in config.model_warmup] == [
        (1, [1, 3, 64, 128])]  # Triton does not batch it: batch_size 1 and the full dims
    with pytest.raises(InputError, match="static batch"):
        build_repository(RepositoryOptions(str(tmp_path / "other"), onnx=onnx, max_batch=4))
    assert not (tmp_path / "other").exists()


def test_max_batch_lowers_the_range_and_names_are_checked(tmp_path, tiny_dynamic_export):
    repo = tmp_path / "repo"
    build_repository(RepositoryOptions(str(repo), onnx=tiny_dynamic_export, max_batch=2))
    config = parse_config(repo / "bisenet" / "config.pbtxt")
    assert config.max_batch_size == 2 and list(config.dynamic_batching.preferred_batch_size) == [2]
    for bad in (dict(max_batch=9), dict(model_name="a/b"), dict(instances=0)):
        with pytest.raises(InputError):
            build_repository(RepositoryOptions(str(tmp_path / "bad"), onnx=tiny_dynamic_export,
                                               **bad))
    assert not (tmp_path / "bad").exists()


def test_class_names_with_quotes_survive_the_text_format(tmp_path):
    from bisenet_deploy.serve.model_config import ModelConfigSpec, TensorConfig, render_config

    names = 'a "quoted" name \\ with backslash, ünïcode and\nnewline'
    spec = ModelConfigSpec(name="m", platform="onnxruntime_onnx",
                           inputs=[TensorConfig("image", "uint8", [-1, 3, 8, 8])],
                           outputs=[TensorConfig("labels", "int32", [-1, 8, 8])],
                           batch_range=(1, 1, 4), parameters={"class_names": names})
    path = tmp_path / "config.pbtxt"
    path.write_text(render_config(spec), encoding="utf-8")
    config = parse_config(path)
    assert config.parameters["class_names"].string_value == names
    assert config.input[0].data_type == 2  # TYPE_UINT8
    assert list(config.dynamic_batching.preferred_batch_size) == [4]


def test_existing_output_is_replaced_only_when_ours_and_forced(tmp_path, tiny_dynamic_export):
    repo = tmp_path / "repo"
    opts = dict(onnx=tiny_dynamic_export)
    build_repository(RepositoryOptions(str(repo), **opts))
    with pytest.raises(UserError, match="already exists: pass --force"):
        build_repository(RepositoryOptions(str(repo), **opts))
    build_repository(RepositoryOptions(str(repo), max_batch=4, force=True, **opts))
    assert parse_config(repo / "bisenet" / "config.pbtxt").max_batch_size == 4

    (repo / "notes.txt").write_text("mine")  # a file this tool did not write
    with pytest.raises(UserError, match=r"manifest does not list \(notes.txt\)"):
        build_repository(RepositoryOptions(str(repo), force=True, **opts))
    assert (repo / "notes.txt").read_text() == "mine"

    foreign = tmp_path / "models"
    (foreign / "other" / "1").mkdir(parents=True)
    (foreign / "other" / "config.pbtxt").write_text('name: "other"')
    with pytest.raises(UserError, match="it has no manifest.json"):
        build_repository(RepositoryOptions(str(foreign), force=True, **opts))
    assert (foreign / "other" / "config.pbtxt").read_text() == 'name: "other"'
    assert sorted(os.listdir(tmp_path)) == ["models", "repo"]  # no staging folder left behind

    empty = tmp_path / "empty"
    empty.mkdir()
    build_repository(RepositoryOptions(str(empty), **opts))  # nothing to lose in an empty one
    assert (empty / "bisenet" / "config.pbtxt").is_file()


def test_engine_and_onnx_must_belong_together(tmp_path, tiny_export, fake_engine):
    _, _, other_onnx = tiny_export("labels")
    with pytest.raises(InputError, match="built from another ONNX"):
        build_repository(RepositoryOptions(str(tmp_path / "r"), onnx=other_onnx,
                                           engine=fake_engine))
    with open(fake_engine, "ab") as f:
        f.write(b"tampered")
    with pytest.raises(UserError, match="does not match its sidecar"):
        build_repository(RepositoryOptions(str(tmp_path / "r"), engine=fake_engine))
    assert not (tmp_path / "r").exists()


def test_cli_writes_and_reports_one_line_errors(tmp_path, tiny_dynamic_export, capsys):
    from bisenet_deploy.cli import export_main

    code = export_main.main(["triton", "--onnx", tiny_dynamic_export, "-o",
                             str(tmp_path / "repo"), "--kind", "cpu", "--instances", "2"])
    out = capsys.readouterr().out
    assert code == 0 and "bisenet (onnxruntime_onnx, max_batch_size 8, 2 x CPU)" in out
    code = export_main.main(["triton", "-o", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "give --onnx and/or --engine" in err and "\n" not in err
    code = export_main.main(["triton", "--onnx", str(tmp_path / "missing.onnx"), "-o",
                             str(tmp_path / "x")])
    assert code == 2 and "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_the_real_tritonserver_reads_the_repository(tmp_path, tiny_dynamic_export):
    """PyTriton's tritonserver has no onnxruntime backend, so the model cannot load; but Triton
    reads the repository, accepts the config and gets as far as looking for that backend."""
    pytest.importorskip("pytriton", reason="the tritonserver binary comes with nvidia-pytriton")
    from pytriton.utils.distribution import get_libs_path, get_root_module_path

    server = get_root_module_path() / "tritonserver" / "bin" / "tritonserver"
    repo = tmp_path / "repo"
    build_repository(RepositoryOptions(str(repo), onnx=tiny_dynamic_export, onnx_kind="cpu"))
    env = dict(os.environ, LD_LIBRARY_PATH=str(get_libs_path()))
    out = subprocess.run(
        [str(server), "--model-repository", str(repo), "--exit-on-error=true",
         "--allow-http=false", "--allow-grpc=false", "--allow-metrics=false",
         "--exit-timeout-secs=1"], capture_output=True, text=True, timeout=60, env=env)
    log = out.stdout + out.stderr
    assert "loading: bisenet:1" in log, log[-2000:]
    assert "unable to find backend library for backend 'onnxruntime'" in log, log[-2000:]
    assert out.returncode != 0  # exit-on-error: the model could not load here



def test_a_damaged_model_in_a_repository_is_refused_by_bisenet_serve(tmp_path, tiny_dynamic_export):
    """The ONNX's own sha256 is in the config and the manifest; bisenet-serve checks it at start
    (before loading anything), so a bit-flipped copy is not served silently: one line, exit 5."""
    from bisenet_deploy.serve.repository import check_repository_model

    repo = tmp_path / "repo"
    build_repository(RepositoryOptions(str(repo), onnx=tiny_dynamic_export, onnx_kind="cpu"))
    model = repo / "bisenet" / "1" / "model.onnx"
    want = sha256_file(tiny_dynamic_export)
    config = parse_config(repo / "bisenet" / "config.pbtxt")
    assert config.parameters["onnx_sha256"].string_value == want
    assert [(g.count, g.kind) for g in config.instance_group] == [(1, 2)]  # KIND_CPU
    manifest = json.loads((repo / "manifest.json").read_text())
    assert manifest["models"][0]["sha256"] == want
    assert manifest["models"][0]["file"] == "bisenet/1/model.onnx"
    check_repository_model(str(model))  # intact: accepted
    check_repository_model(tiny_dynamic_export)  # not in a repository: nothing to check

    data = bytearray(model.read_bytes())
    middle = len(data) // 2  # inside the weights
    data[middle:middle + 4096] = bytes(b ^ 0xFF for b in data[middle:middle + 4096])
    model.chmod(0o644)
    model.write_bytes(bytes(data))
    run = subprocess.run([sys.executable, "-m", "bisenet_deploy.cli.serve_main", "--onnx",
                          str(model)], capture_output=True, text=True, timeout=120)
    err = run.stderr.strip()
    assert run.returncode == 5 and "\n" not in err, err
    assert "is damaged" in err and want[:12] in err and "bisenet-export triton" in err
