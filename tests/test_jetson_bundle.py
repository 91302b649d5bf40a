"""`bisenet-export jetson` end to end on a small model: the bundle a TX2 user copies to the device.

One bundle is exported (256x128 camera input, 128x64 network, labels + logits, from a saved
checkpoint) and checked: complete, hashes right, ONNX passing the trt8.2 rules, Python 3.6 and
self-contained, the device-side preprocessing equal to the graph's in-graph preprocessing and to
PyTorch, the tarball round-trips, refusals leave nothing behind, and the bundle's own command line
(predict / bench / build) runs its whole flow with an ONNX Runtime stand-in for the TensorRT
runner (there is no GPU here; the runner itself is tested by the runtime's tests).
"""

import dataclasses
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import torch

from bisenet_deploy.errors import UnusableFileError, UserError
from bisenet_deploy.jetson import bundle as jb
from bisenet_deploy.portable.files.bundle_manifest import verify_bundle

#: the bundle's own top-level modules (imported from one bundle copy per test)
BUNDLE_TOP_MODULES = ("jetson_run", "jetson_model", "jetson_env", "jetson_build", "jetson_bench",
                      "jetson_parity", "demo")
INPUT = (256, 128)
MODEL = (128, 64)
EXPECTED_TOP = {"README.md", "manifest.json", "setup_jetson.sh", "build_engine.sh", "bench.sh",
                "jetson_run.py", "jetson_model.py", "jetson_env.py", "jetson_build.py",
                "jetson_bench.py",
                "jetson_parity.py", "demo.py",
                "bisenet_trt", "model"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from bisenet_deploy.checkpoint import load_model, save_checkpoint

    torch.manual_seed(0)
    model, meta = load_model(None, arch="bisenetv2", seed=3)
    meta = dataclasses.replace(meta, weights="checkpoint", source="bisenet-deploy")
    path = str(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")
    save_checkpoint(path, model, meta)
    return path


@pytest.fixture(scope="module")
def built(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles") / "tx2"
    result = jb.build_bundle(jb.BundleOptions(
        output_dir=str(out), checkpoint=checkpoint, input_size=INPUT, model_size=MODEL,
        output="both", tar=True))
    return result


def unpack(tar_path, dest):
    """The README's step on the device: `tar -xzf BUNDLE.tar.gz` in an empty folder."""
    dest = str(dest)
    subprocess.run(["tar", "-xzf", tar_path], cwd=dest, check=True)
    (name,) = os.listdir(dest)
    return os.path.join(dest, name)


def load_manifest(folder):
    with open(os.path.join(folder, "manifest.json"), encoding="utf-8") as f:
        return json.load(f)


def bundle_record(folder):
    manifest = load_manifest(folder)
    with open(os.path.join(folder, manifest["model"]["record"]), encoding="utf-8") as f:
        return json.load(f)["record"]


# -- contents ----------------------------------------------------------------------------------

def test_bundle_has_every_file(built):
    folder = built.path
    assert set(os.listdir(folder)) == EXPECTED_TOP
    manifest = load_manifest(folder)
    for key in ("onnx", "record", "sample"):
        assert os.path.isfile(os.path.join(folder, manifest["model"][key]))
    assert manifest["model"]["onnx"].startswith("model/") and built.onnx_path.endswith(".onnx")
    for name in jb.EXECUTABLES:
        assert os.stat(os.path.join(folder, name)).st_mode & stat.S_IXUSR, name
    # no leftovers of the atomic write next to the bundle
    siblings = os.listdir(os.path.dirname(folder))
    assert sorted(siblings) == ["tx2", "tx2.tar.gz"]


def test_manifest_hashes_and_records(built):
    folder = built.path
    manifest = load_manifest(folder)
    assert verify_bundle(folder) == []
    on_disk = jb.hash_tree(folder)
    assert set(manifest["files"]) == set(on_disk)
    assert manifest["files"] == on_disk
    import bisenet_deploy

    assert manifest["format"] == jb.BUNDLE_FORMAT
    assert manifest["toolkit_version"] == bisenet_deploy.__version__
    assert manifest["build_defaults"] == {"precision": "fp16"}
    opts = manifest["export_options"]
    assert opts["target"] == "trt8.2" and opts["input_size"] == list(INPUT)
    assert opts["model_size"] == list(MODEL) and opts["checkpoint"] == "tiny.safetensors"
    assert manifest["parity"]["passed"] is True
    assert manifest["parity"]["labels_identical_pct"] >= 99.99
    assert manifest["model"]["weights"] == "checkpoint"


def test_portable_package_is_copied_unchanged(built):
    src = jb.portable_dir()
    copied = os.path.join(built.path, jb.RUNTIME_PACKAGE)
    def tree(top, suffix=""):
        return sorted(os.path.relpath(os.path.join(d, n), top) for d, _, names in os.walk(top)
                      for n in names if n.endswith(suffix))

    src_py = tree(src, ".py")  # the subpackages too
    assert tree(copied) == src_py and len(src_py) > 30  # and nothing else
    for name in src_py:
        with open(os.path.join(src, name), "rb") as a, open(os.path.join(copied, name), "rb") as b:
            assert a.read() == b.read(), name
    for name in jb.TEMPLATE_FILES:
        if name == "README.md":
            continue
        with open(os.path.join(jb.TEMPLATES_DIR, name), "rb") as a, \
                open(os.path.join(built.path, name), "rb") as b:
            assert a.read() == b.read(), name


def test_readme_is_filled_in(built):
    with open(os.path.join(built.path, "README.md"), encoding="utf-8") as f:
        text = f.read()
    assert not jb._PLACEHOLDER.search(text)
    stem = os.path.splitext(os.path.basename(built.onnx_path))[0]
    assert "engines/%s-fp16.engine" % stem in text
    assert "scp tx2.tar.gz" in text and "256x128" in text and "128x64" in text
    # the fixture's graph has both outputs: the README names both
    assert ("output `labels` INT32 N x H x W and output `logits` FLOAT32 N x classes x H x W at "
            "256x128") in text
    # the device's parity shares, from the table jetson_run.py judges by
    assert "FP32 must reach 99.9% identical labels and FP16 98%" in text


def test_bundle_onnx_passes_the_trt82_check(built):
    import onnx

    from bisenet_deploy.export.check import check_onnx
    from bisenet_deploy.export.onnx_metadata import read_record

    assert check_onnx(built.onnx_path, "trt8.2") == []
    model = onnx.load(built.onnx_path)
    opset = {o.domain: o.version for o in model.opset_import}.get("", 0)
    assert 11 <= opset <= 13
    tp = onnx.TensorProto
    (inp,) = model.graph.input
    assert inp.type.tensor_type.elem_type == tp.FLOAT
    outputs = {o.name: o.type.tensor_type.elem_type for o in model.graph.output}
    assert outputs == {"labels": tp.INT32, "logits": tp.FLOAT}
    assert read_record(built.onnx_path) == bundle_record(built.path)
    record = bundle_record(built.path)
    assert record["export"]["target"] == "trt8.2"
    assert record["export"]["input_dtype"] == "float32"
    assert record["export"]["normalize"] == "in-graph"
    # the default exporter is the torch.export-based one, brought to opset 13
    assert record["export"]["exporter"] == "dynamo"
    assert load_manifest(built.path)["export_options"]["exporter"] == "auto"


def test_torchscript_bundle_passes_the_same_checks(checkpoint, tmp_path):
    """The TorchScript fallback makes a bundle the same checks accept."""
    from bisenet_deploy.export.check import check_onnx

    result = jb.build_bundle(jb.BundleOptions(
        output_dir=str(tmp_path / "ts"), checkpoint=checkpoint, input_size=INPUT,
        model_size=MODEL, exporter="torchscript"))
    assert check_onnx(result.onnx_path, "trt8.2") == []
    assert bundle_record(result.path)["export"]["exporter"] == "torchscript"
    assert result.parity["passed"] is True
    assert verify_bundle(result.path) == []


def test_bundle_python_is_36_and_self_contained(built):
    from test_portable_compat import check_bundle_python, parse_36, vermin_violations

    files = [os.path.join(d, n) for d, _, names in os.walk(built.path) for n in names
             if n.endswith(".py")]
    assert len(files) >= 10
    for path in files:
        parse_36(path)
    assert check_bundle_python(built.path) == []
    rc, output = vermin_violations(files)
    assert rc == 0, output


# -- preprocessing on the device == the graph's preprocessing on the desktop -------------------

def import_bundle_module(folder, name, monkeypatch):
    monkeypatch.syspath_prepend(folder)
    for mod in [m for m in sys.modules if m in BUNDLE_TOP_MODULES or m == "bisenet_trt"
                or m.startswith("bisenet_trt.")]:
        monkeypatch.delitem(sys.modules, mod)
    module = __import__(name, fromlist=["_"])
    assert os.path.dirname(os.path.abspath(module.__file__)).startswith(folder)
    return module


def ort_run(onnx_path, batch):
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {session.get_inputs()[0].name: batch})))  # noqa: B905 (Python 3.8)


@pytest.mark.parametrize("frame_size", [INPUT, (320, 180)], ids=["input-size", "other-size"])
def test_device_preprocessing_equals_in_graph_preprocessing(built, checkpoint, monkeypatch,
                                                            frame_size):
    """A uint8 BGR camera frame prepared by the bundle's own code and run through the bundle's
    ONNX gives the tensors the desktop gets: the same input as the desktop's prepare_input, and
    the labels/logits of PyTorch's DeployModule and of an explicit torch reference that
    normalizes with the checkpoint's mean/std (what the graph does in-graph)."""
    import torch.nn.functional as F

    from bisenet_deploy.checkpoint import load_model
    from bisenet_deploy.export.deploy_module import DeployModule
    from bisenet_deploy.portable.running.preprocess import prepare_input as desktop_prepare
    from bisenet_deploy.synthetic import synthetic_image

    record = bundle_record(built.path)
    preprocess = import_bundle_module(built.path, "bisenet_trt.running.preprocess", monkeypatch)
    rgb = synthetic_image(frame_size[0], frame_size[1], seed=11)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])  # what OpenCV hands the demo

    device_batch = preprocess.prepare_input(bgr, record, image_channel_order="bgr")
    assert device_batch.dtype == np.float32
    assert device_batch.shape == (1, 3, INPUT[1], INPUT[0])
    assert device_batch.min() >= 0.0 and device_batch.max() <= 255.0
    assert np.array_equal(device_batch, desktop_prepare(rgb, record))
    if frame_size == INPUT:  # no host resize: exactly the RGB pixels, as float
        assert np.array_equal(device_batch[0], rgb.transpose(2, 0, 1).astype(np.float32))

    onnx_out = ort_run(built.onnx_path, device_batch)

    model, meta = load_model(checkpoint)
    with torch.no_grad():
        x = torch.from_numpy(device_batch)
        deploy = DeployModule(model, record).eval()
        labels_t, logits_t = deploy(x)
        # explicit reference: resize to the network size, normalize, network, resize back
        mean = torch.tensor(meta.mean).view(1, 3, 1, 1)
        std = torch.tensor(meta.std).view(1, 3, 1, 1)
        small = F.interpolate(x, size=(MODEL[1], MODEL[0]), mode="bilinear", align_corners=False)
        logits_ref = model((small / 255.0 - mean) / std)
        logits_ref = F.interpolate(logits_ref, size=(INPUT[1], INPUT[0]), mode="bilinear",
                                   align_corners=False)

    for ref in (logits_t.numpy(), logits_ref.numpy()):
        rel = np.abs(onnx_out["logits"] - ref).max() / max(np.abs(ref).max(), 1e-6)
        assert rel <= 1e-4, rel
    assert onnx_out["labels"].dtype == np.int32
    identical = np.mean(onnx_out["labels"] == labels_t.numpy().astype(np.int32))
    assert identical >= 0.9999, identical
    identical_ref = np.mean(onnx_out["labels"] == logits_ref.argmax(1).numpy())
    assert identical_ref >= 0.999, identical_ref


def test_sample_labels_are_onnxruntime_labels(built):
    manifest = load_manifest(built.path)
    data = np.load(os.path.join(built.path, manifest["model"]["sample"]))
    image, labels = data["image"], data["labels"]
    assert image.dtype == np.uint8 and image.shape == (INPUT[1], INPUT[0], 3)
    from bisenet_deploy.portable.running.preprocess import prepare_input

    out = ort_run(built.onnx_path, prepare_input(image, bundle_record(built.path)))
    assert np.array_equal(out["labels"][0], labels.astype(np.int32))


# -- tarball ---------------------------------------------------------------------------------------

def test_tar_round_trips(built, tmp_path):
    assert built.tar_path and built.tar_path.endswith("tx2.tar.gz")
    with tarfile.open(built.tar_path, "r:gz") as tar:
        assert {m.name.split("/")[0] for m in tar.getmembers()} == {"tx2"}
    folder = unpack(built.tar_path, tmp_path)
    assert jb.hash_tree(folder) == jb.hash_tree(built.path)
    assert load_manifest(folder) == load_manifest(built.path)
    for name in jb.EXECUTABLES:
        assert os.stat(os.path.join(folder, name)).st_mode & stat.S_IXUSR, name
    assert verify_bundle(folder) == []
    # the device-side check agrees (plain `tar -xzf` + `python3 jetson_run.py verify`)
    out = subprocess.run([sys.executable, os.path.join(folder, "jetson_run.py"), "verify"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "bundle OK" in out.stdout


def test_verify_names_a_damaged_file(built, tmp_path):
    copy = str(tmp_path / "copy")
    shutil.copytree(built.path, copy)
    with open(os.path.join(copy, built.manifest["model"]["onnx"]), "r+b") as f:
        f.truncate(1000)
    os.remove(os.path.join(copy, "bisenet_trt", "trt", "sidecar.py"))
    out = subprocess.run([sys.executable, os.path.join(copy, "jetson_run.py"), "verify"],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert "changed or truncated: model/" in out.stdout
    assert "missing: bisenet_trt/trt/sidecar.py" in out.stdout
    assert "copy the bundle again" in out.stderr
    assert sorted(verify_bundle(copy))[0].startswith("changed or truncated: model/")


def test_verify_names_a_script_that_lost_its_executable_bit(built, tmp_path):
    """The exporter and the device run the same check (portable/files/bundle_manifest.py)."""
    copy = str(tmp_path / "copy")
    shutil.copytree(built.path, copy)
    assert load_manifest(copy)["executables"] == list(jb.EXECUTABLES)
    os.chmod(os.path.join(copy, "setup_jetson.sh"), 0o644)
    assert verify_bundle(copy) == ["not executable: setup_jetson.sh (chmod +x it, or unpack the "
                                   "bundle with tar -xzf, which keeps the modes)"]
    out = subprocess.run([sys.executable, os.path.join(copy, "jetson_run.py"), "verify"],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "not executable: setup_jetson.sh" in out.stdout


def test_tarball_holds_only_plain_files_and_folders_with_safe_modes(built):
    """What `tar -xzf` unpacks on the device: one folder, regular files and folders only (no
    links, devices or FIFOs), owner-free, nothing setuid or writable by others, exactly the files
    the manifest lists."""
    with tarfile.open(built.tar_path, "r:gz") as tar:
        members = tar.getmembers()
    files = set()
    for member in members:
        assert member.isfile() or member.isdir(), member.name
        assert member.name == "tx2" or member.name.startswith("tx2/"), member.name
        assert ".." not in member.name.split("/") and not member.name.startswith("/")
        assert member.mode & ~0o755 == 0, (member.name, oct(member.mode))
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
        if member.isfile():
            files.add(member.name[len("tx2/"):])
    assert files == set(built.manifest["files"]) | {"manifest.json"}


def test_tar_writer_refuses_links_and_masks_modes(tmp_path):
    from bisenet_deploy.jetson.bundle_tar import write_tar

    folder = tmp_path / "b"
    folder.mkdir()
    (folder / "run.sh").write_text("echo\n")
    (folder / "run.sh").chmod(0o6777)  # setuid, setgid, world-writable
    write_tar(str(folder), str(tmp_path / "b.tar.gz"), "b")
    with tarfile.open(str(tmp_path / "b.tar.gz"), "r:gz") as tar:
        assert tar.getmember("b/run.sh").mode == 0o755
    os.symlink("/etc/passwd", str(folder / "link"))
    with pytest.raises(ValueError, match="not a regular file or folder"):
        write_tar(str(folder), str(tmp_path / "c.tar.gz"), "b")


# -- refusals, replacement, atomicity ----------------------------------------------------------

def test_existing_output_is_refused_then_replaced_with_force(built, tmp_path):
    out = tmp_path / "b"
    out.mkdir()
    (out / "old.txt").write_text("old")
    opts = jb.BundleOptions(output_dir=str(out), onnx=built.onnx_path, precision="fp32")
    with pytest.raises(UserError, match="already exists: pass --force"):
        jb.build_bundle(opts)
    assert (out / "old.txt").exists()
    # --force replaces only what this tool wrote: a folder of the user's stays as it is
    with pytest.raises(UserError, match="refusing to replace .*no manifest.json"):
        jb.build_bundle(dataclasses.replace(opts, force=True))
    assert (out / "old.txt").read_text() == "old" and os.listdir(out) == ["old.txt"]
    (out / "old.txt").unlink()  # an empty folder holds nothing to lose

    jb.build_bundle(dataclasses.replace(opts, force=True))
    result = jb.build_bundle(dataclasses.replace(opts, force=True, tar=True))  # ours: replaced
    assert verify_bundle(str(out)) == []
    assert result.manifest["build_defaults"]["precision"] == "fp32"
    assert result.manifest["model"]["record"].endswith(".json")
    assert sorted(os.listdir(tmp_path)) == ["b", "b.tar.gz"]
    # the tarball exists now: without --force it is refused too, before any work
    with pytest.raises(UserError, match="already exists"):
        jb.build_bundle(dataclasses.replace(opts, tar=True))


def test_failed_export_leaves_nothing(tmp_path):
    missing = str(tmp_path / "no_such.safetensors")
    with pytest.raises(UserError):
        jb.build_bundle(jb.BundleOptions(output_dir=str(tmp_path / "b"), checkpoint=missing,
                                         input_size=INPUT, model_size=MODEL, tar=True))
    assert os.listdir(str(tmp_path)) == []


def test_bad_options_are_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="INT8 is not fast on the TX2"):
        jb.build_bundle(jb.BundleOptions(output_dir=str(tmp_path / "b"), precision="int8"))
    with pytest.raises(ValueError, match="labels"):
        jb.build_bundle(jb.BundleOptions(output_dir=str(tmp_path / "b"), output="logits"))
    assert os.listdir(str(tmp_path)) == []


def test_bundle_under_a_file_is_refused_before_any_work(tmp_path):
    # os.makedirs raised FileExistsError: "this is a bug in bisenet-deploy"
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(UserError, match="a_file is a file, not a folder"):
        jb.build_bundle(jb.BundleOptions(output_dir=str(tmp_path / "a_file" / "b"),
                                         input_size=INPUT, model_size=MODEL, tar=True))
    assert os.listdir(str(tmp_path)) == ["a_file"]


def test_onnx_for_another_target_is_refused(built, tmp_path):
    import onnx

    from bisenet_deploy.export.onnx_metadata import read_record, set_record

    model = onnx.load(built.onnx_path)
    record = read_record(built.onnx_path)
    record["export"]["target"] = "trt10"
    set_record(model, record)
    other = str(tmp_path / "trt10.onnx")
    onnx.save(model, other)
    with pytest.raises(UnusableFileError, match="--target trt8.2"):  # exit 5: unusable here
        jb.build_bundle(jb.BundleOptions(output_dir=str(tmp_path / "b"), onnx=other))
    assert sorted(os.listdir(str(tmp_path))) == ["trt10.onnx"]


# -- the command line --------------------------------------------------------------------------

def test_cli_help_without_tensorrt():
    from test_package import help_without_tensorrt

    out = help_without_tensorrt("export_main", ["jetson", "--help"])
    assert out.returncode == 0, out.stderr
    for option in ("--checkpoint", "--input-size", "--network-size", "--fp16", "--fp32", "--tar",
                   "--force", "--onnx"):
        assert option in out.stdout


def test_cli_bad_model_size_is_one_clear_line(tmp_path):
    from bisenet_deploy.cli.export_main import main

    rc = main(["jetson", "--input-size", "256x128", "--network-size", "100x50",
               "-o", str(tmp_path / "b"), "-q"])
    assert rc != 0
    assert os.listdir(str(tmp_path)) == []


def test_cli_rebundles_an_onnx(built, tmp_path, capsys):
    from bisenet_deploy.cli.export_main import main

    rc = main(["jetson", "--onnx", built.onnx_path, "-o", str(tmp_path / "again"), "--tar",
               "--fp32"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "bundle:" in text and "tarball:" in text and "FP32 by default" in text
    assert verify_bundle(str(tmp_path / "again")) == []


def test_cli_refuses_export_options_with_onnx(tmp_path, capsys):
    """--onnx bundles a finished graph: sizes or a checkpoint given with it would be ignored."""
    from bisenet_deploy.cli.export_main import main

    onnx_path = tmp_path / "m.onnx"
    onnx_path.write_bytes(b"not read")
    rc = main(["jetson", "--onnx", str(onnx_path), "--input-size", "256x128", "-o",
               str(tmp_path / "b")])
    assert rc == 2
    assert "so --input-size would be ignored" in capsys.readouterr().err
    assert main(["jetson", "--onnx", str(onnx_path), "--exporter", "dynamo", "-o",
                 str(tmp_path / "b")]) == 2
    assert "so --exporter would be ignored" in capsys.readouterr().err
    assert sorted(os.listdir(str(tmp_path))) == ["m.onnx"]


# -- the bundle's own command line, with ONNX Runtime standing in for TensorRT ----------------

@pytest.fixture
def device_cli(built, monkeypatch, tmp_path):
    """The bundle's jetson_run module on a copy of the bundle, its TensorRT runner replaced."""
    folder = str(tmp_path / "device")
    shutil.copytree(built.path, folder)
    jetson_run = import_bundle_module(folder, "jetson_run", monkeypatch)
    jetson_model = __import__("jetson_model")  # the bundled model, engines and runner
    runner_base = __import__("bisenet_trt.running.runner_base", fromlist=["_"])
    record = bundle_record(folder)
    onnx_path = os.path.join(folder, built.manifest["model"]["onnx"])
    opened = []

    class OrtStandIn(runner_base.Runner):
        backend = "onnxruntime (stand-in for tensorrt)"

        def __init__(self, engine_path, zero_copy=False, use_cuda_graph=False):
            super().__init__()
            self.engine_path = engine_path
            self.zero_copy = zero_copy
            self.use_cuda_graph = use_cuda_graph
            self.metadata = record
            opened.append(self)

        def _activate(self):
            import onnxruntime as ort

            self.session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])

        def _deactivate(self):
            self.session = None

        def input_spec(self):
            return runner_base.TensorSpec("image", (1, 3, INPUT[1], INPUT[0]), np.float32)

        def output_specs(self):
            return []

        def _infer(self, batch):
            names = [o.name for o in self.session.get_outputs()]
            return dict(zip(names, self.session.run(None, {"image": batch})))  # noqa: B905 (Python 3.8)

        def last_device_time_ms(self):
            return 2.0

        def last_phase_times_ms(self):
            return {"h2d": 0.5, "compute": 2.0, "d2h": 0.25}

    monkeypatch.setattr(jetson_model, "open_runner", OrtStandIn)
    assert jetson_run.BUNDLE_DIR == jetson_model.BUNDLE_DIR == folder
    builds = []

    def fake_builder(onnx, rec, engine_path, precision, args):
        builds.append((onnx, precision, args.workspace))
        with open(engine_path, "wb") as f:
            f.write(b"plan")
        with open(os.path.splitext(engine_path)[0] + ".json", "w") as f:
            json.dump({"kind": "bisenet_deploy.engine", "precision": precision}, f)

    monkeypatch.setattr(jetson_run, "build_with_builder", fake_builder)
    return jetson_run, folder, opened, builds


def test_device_build_defaults_to_fp16_and_checks_parity(device_cli, capsys):
    jetson_run, folder, opened, builds = device_cli
    assert jetson_run.main(["build"]) == 0
    assert builds[-1][1] == "fp16"
    out = capsys.readouterr().out
    assert "parity with the desktop ONNX Runtime labels: 100.000% identical" in out
    engines = os.listdir(os.path.join(folder, "engines"))
    assert any(p.endswith("-fp16.engine") for p in engines)
    # an existing engine is not overwritten silently
    assert jetson_run.main(["build"]) == 2
    assert "exists: pass --force" in capsys.readouterr().err
    assert jetson_run.main(["build", "--fp32", "--workspace", "512"]) == 0
    assert builds[-1][1:] == ("fp32", 512)
    # --force rebuilds an engine of ours, and never replaces a file it did not write
    assert jetson_run.main(["build", "--force"]) == 0
    mine = os.path.join(folder, "engines", "mine.engine")
    with open(mine, "wb") as f:
        f.write(b"my own plan")
    assert jetson_run.main(["build", "--force", "-o", mine]) == 2
    assert "refusing to replace" in capsys.readouterr().err
    assert open(mine, "rb").read() == b"my own plan"


def test_device_predict_and_bench(device_cli, capsys, tmp_path, monkeypatch):
    jetson_run, folder, opened, builds = device_cli
    monkeypatch.setitem(sys.modules, "cv2", None)  # a Jetson python without OpenCV: PPM files
    assert jetson_run.main(["predict"]) == 1  # no engine yet
    assert "run ./build_engine.sh first" in capsys.readouterr().err
    assert jetson_run.main(["build", "--no-parity"]) == 0
    capsys.readouterr()

    out_dir = str(tmp_path / "pred")
    assert jetson_run.main(["predict", "-o", out_dir]) == 0
    text = capsys.readouterr().out
    assert "100.000% identical" in text
    assert sorted(os.listdir(out_dir)) == ["sample_labels.ppm", "sample_overlay.ppm"]
    assert jetson_run.main(["predict", "-o", out_dir]) == 0  # its own pictures: replaced
    theirs = os.path.join(out_dir, "sample_overlay.ppm")
    with open(theirs, "wb") as f:
        f.write(b"P6\n1 1\n255\nabc")  # the user's own picture of that name
    capsys.readouterr()
    assert jetson_run.main(["predict", "-o", out_dir]) == 2
    assert "refusing to replace %s" % theirs in capsys.readouterr().err
    with open(theirs, "rb") as f:
        assert f.read() == b"P6\n1 1\n255\nabc"
    assert sorted(os.listdir(out_dir)) == ["sample_labels.ppm", "sample_overlay.ppm"]
    assert jetson_run.main(["predict", "-o", theirs]) == 2  # -o names a file: one line
    assert "is a file, not a folder" in capsys.readouterr().err

    report_path = str(tmp_path / "bench.json")
    assert jetson_run.main(["bench", "--iters", "12", "--warmup", "2", "--json", report_path,
                            "--quiet", "--zero-copy", "--cuda-graph"]) == 0
    text = capsys.readouterr().out
    assert "end-to-end (host input -> host labels): 12 calls, batch 1" in text
    assert "device compute (CUDA events): 12 calls" in text
    assert "median: h2d 0.500 ms, compute 2.000 ms, d2h 0.250 ms" in text
    with open(report_path) as f:
        report = json.load(f)
    stats = sys.modules["bisenet_trt.shared.timing_stats"]
    assert set(report["end_to_end"]) == set(stats.SUMMARY_KEYS)
    assert report["end_to_end"]["count"] == 12 and report["iterations"] == 12
    assert report["warmup"] == 2 and report["buffers"] == 4
    assert report["device_compute"]["mean_ms"] == pytest.approx(2.0)
    assert report["phases"]["h2d"]["count"] == 12 and "logits back" in report["what_is_timed"]
    assert report["zero_copy"] is True and opened[-1].zero_copy is True
    assert report["cuda_graph"] is True and opened[-1].use_cuda_graph is True
    assert report["record"]["export"]["target"] == "trt8.2"
    assert "power" in report["environment"]


def fake_tensorrt(record):
    """The shared fake of TensorRT 8.2 (support/fake_trt.py), whose runtime 'deserializes' b'PLAN'
    into a bindings engine of the record's sizes."""
    from support.fake_trt import FakeBindingsEngine, fake_trt, io_table

    trt = fake_trt("8.2.1.8")
    width, height = record["export"]["input_size"]
    io = io_table(trt, False, height, width, record["model"]["num_classes"])
    trt._engine_magic = b"PLAN"
    trt._engine_factory = lambda t: FakeBindingsEngine(t, io=io)
    return trt


def fake_trtexec(tmp_path, rc=0):
    log = tmp_path / "trtexec.log"
    exe = tmp_path / "trtexec"
    exe.write_text("#!/usr/bin/env bash\n"
                   "echo \"$*\" >> %s\n"
                   "for a in \"$@\"; do case \"$a\" in --saveEngine=*) "
                   "printf PLAN > \"${a#--saveEngine=}\" ;; esac; done\n"
                   "exit %d\n" % (log, rc))
    exe.chmod(0o755)
    return str(exe), log


def test_device_build_with_trtexec_writes_our_sidecar(device_cli, monkeypatch, tmp_path, capsys):
    jetson_run, folder, opened, builds = device_cli
    record = bundle_record(folder)
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(record))
    gpu_info = __import__("bisenet_trt.trt.gpu_info", fromlist=["_"])
    monkeypatch.setattr(gpu_info, "query_gpu",
                        lambda index=0: gpu_info.GpuInfo("NVIDIA Tegra X2", (6, 2), jetson=True))
    exe, log = fake_trtexec(tmp_path)

    assert jetson_run.main(["build", "--trtexec", "--trtexec-path", exe, "--no-parity"]) == 0
    assert not builds  # our builder was not used
    line = log.read_text()
    assert "--onnx=%s" % os.path.join(folder, built_onnx_rel(folder)) in line
    for flag in ("--explicitBatch", "--workspace=1024", "--fp16", "--buildOnly"):
        assert flag in line, line
    jetson_model = sys.modules["jetson_model"]
    engine = jetson_model.default_engine_path(jetson_model.load_manifest(), "fp16")
    # spelled from the builder's own plan (build_plan.plan_for): its timing cache too
    paths = __import__("bisenet_trt.trt.engine_paths", fromlist=["_"])
    assert "--timingCacheFile=%s" % paths.default_timing_cache_path(engine) in line, line
    with open(engine, "rb") as f:
        assert f.read() == b"PLAN"
    sidecar_mod = __import__("bisenet_trt.trt.sidecar", fromlist=["_"])
    sidecar = sidecar_mod.read_sidecar(engine)
    assert sidecar["precision"] == "fp16" and sidecar["tensorrt_version"] == "8.2.1.8"
    assert sidecar["gpu"]["name"] == "NVIDIA Tegra X2"
    assert sidecar["gpu"]["compute_capability"] == "6.2"
    assert sidecar["build"]["builder"] == "trtexec"
    assert engine in sidecar["build"]["options"]["trtexec"]  # the final path, not the temp one
    io = {t["name"]: (t["mode"], t["dtype"]) for t in sidecar["io"]}
    assert io == {"image": ("input", "float32"), "labels": ("output", "int32"),
                  "logits": ("output", "float32")}
    assert sidecar["onnx_metadata"] == record
    sidecar_mod.check_engine_file(engine, sidecar)
    sidecar_mod.check_engine_compatible(sidecar, "8.2.1", "NVIDIA Tegra X2", "6.2")
    with pytest.raises(Exception, match="built with TensorRT 8.2.1") as info:
        sidecar_mod.check_engine_compatible(sidecar, "8.6.1", "NVIDIA Tegra X2", "6.2")
    assert type(info.value).__name__ == "IncompatibleEngineError"


def test_device_build_with_failing_trtexec_leaves_no_engine(device_cli, monkeypatch, tmp_path,
                                                            capsys):
    jetson_run, folder, opened, builds = device_cli
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(bundle_record(folder)))
    gpu_info = __import__("bisenet_trt.trt.gpu_info", fromlist=["_"])
    monkeypatch.setattr(gpu_info, "query_gpu",
                        lambda index=0: gpu_info.GpuInfo("NVIDIA Tegra X2", (6, 2), jetson=True))
    exe, _ = fake_trtexec(tmp_path, rc=1)
    assert jetson_run.main(["build", "--trtexec", "--trtexec-path", exe, "--fp32"]) == 1
    assert "trtexec failed (exit 1)" in capsys.readouterr().err
    assert os.listdir(os.path.join(folder, "engines")) == []
    assert jetson_run.main(["build", "--trtexec", "--trtexec-path", "/nope/trtexec"]) == 1
    assert "libnvinfer-bin" in capsys.readouterr().err


def built_onnx_rel(folder):
    return load_manifest(folder)["model"]["onnx"]


def test_verify_and_check_run_without_numpy(built):
    """setup_jetson.sh verifies the copy with the bare system python3, before numpy is set up."""
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('numpy', 'tensorrt', 'pycuda'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "sys.argv = ['jetson_run.py'] + sys.argv[1:]\n"
        "sys.path.insert(0, %r)\n"
        "import jetson_run\n"
        "sys.exit(jetson_run.main(sys.argv[1:]))\n" % built.path)
    out = subprocess.run([sys.executable, "-c", code, "verify"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([sys.executable, "-c", code, "check"], capture_output=True, text=True)
    assert out.returncode == 1
    assert "BAD  numpy" in out.stdout and "setup_jetson.sh" in out.stdout
    assert "Traceback" not in out.stderr


def fake_cv2(frames, gstreamer="YES (1.14.5)"):
    """Just enough of OpenCV for demo.py's loop: captures hand out `frames`, writers keep them."""
    import types

    cv2 = types.ModuleType("cv2")
    cv2.INTER_LINEAR, cv2.CAP_GSTREAMER, cv2.FONT_HERSHEY_SIMPLEX = 1, 1800, 0
    cv2.opened, cv2.written, cv2.resized = [], [], []

    class VideoCapture:
        def __init__(self, source, api=None):
            cv2.opened.append((source, api))
            self.frames = list(frames)

        def isOpened(self):
            return True

        def read(self):
            return (True, self.frames.pop(0)) if self.frames else (False, None)

        def release(self):
            pass

    class VideoWriter:
        def __init__(self, path, fourcc, fps, size):
            self.size = size

        def isOpened(self):
            return True

        def write(self, frame):
            assert (frame.shape[1], frame.shape[0]) == tuple(self.size)
            cv2.written.append(frame.copy())

        def release(self):
            pass

    def resize(image, size, interpolation=None):
        cv2.resized.append((image.shape, size))
        ys = np.linspace(0, image.shape[0] - 1, size[1]).astype(int)
        xs = np.linspace(0, image.shape[1] - 1, size[0]).astype(int)
        return np.ascontiguousarray(image[ys][:, xs])

    cv2.VideoCapture, cv2.VideoWriter, cv2.resize = VideoCapture, VideoWriter, resize
    cv2.addWeighted = lambda a, wa, b, wb, g: np.clip(
        a * wa + b * wb + g + 0.5, 0, 255).astype(np.uint8)
    cv2.putText = lambda *args, **kwargs: None
    cv2.VideoWriter_fourcc = lambda *code: 0
    cv2.getBuildInformation = lambda: "  Video I/O:\n    GStreamer:  %s\n" % gstreamer
    cv2.imshow = cv2.destroyAllWindows = lambda *args: None
    cv2.waitKey = lambda delay: -1
    return cv2


def test_demo_segments_a_video_into_an_overlay(device_cli, monkeypatch, tmp_path, capsys):
    from bisenet_deploy.synthetic import synthetic_image

    jetson_run, folder, opened, builds = device_cli
    assert jetson_run.main(["build", "--no-parity"]) == 0
    frames = [np.ascontiguousarray(synthetic_image(320, 180, seed=s)[:, :, ::-1])
              for s in range(3)]
    cv2 = fake_cv2(frames)
    monkeypatch.setitem(sys.modules, "cv2", cv2)
    demo = __import__("demo")
    video = tmp_path / "street.mp4"
    video.write_bytes(b"not decoded by the fake")
    rc = demo.main(["--video", str(video), "--no-display", "--output", str(tmp_path / "o.mp4"),
                    "--max-frames", "2"])
    assert rc == 0
    assert cv2.opened == [(str(video), None)]
    assert len(cv2.written) == 2
    assert cv2.written[0].shape == (INPUT[1], INPUT[0], 3)  # frames brought to the input size
    assert cv2.resized[0] == ((180, 320, 3), INPUT)
    assert "2 frames in" in capsys.readouterr().out
    # the overlay really carries the class colours: not the plain frame
    assert not np.array_equal(cv2.written[0], cv2.resize(frames[0], INPUT))
    ownership = sys.modules["bisenet_trt.files.ownership"]
    assert ownership.is_ours(str(tmp_path / "o.mp4"), "video")  # a later run may replace it
    assert demo.main(["--video", str(video), "--no-display", "--output", str(tmp_path / "o.mp4"),
                      "--max-frames", "1"]) == 0
    # a video of the user's is never replaced, and nothing is left behind
    assert demo.main(["--video", str(video), "--no-display", "--output", str(video)]) == 2
    assert video.read_bytes() == b"not decoded by the fake"
    assert "refusing to replace %s" % video in capsys.readouterr().err
    assert not [n for n in os.listdir(str(tmp_path)) if n.startswith(".")]  # no partial video


def test_demo_camera_pipelines_and_missing_gstreamer(device_cli, monkeypatch, capsys):
    jetson_run, folder, opened, builds = device_cli
    assert jetson_run.main(["build", "--no-parity"]) == 0
    cv2 = fake_cv2([])
    monkeypatch.setitem(sys.modules, "cv2", cv2)
    demo = __import__("demo")
    assert demo.main(["--camera", "csi", "--sensor-id", "1", "--no-display"]) == 0
    pipeline, api = cv2.opened[-1]
    assert api == cv2.CAP_GSTREAMER and pipeline.startswith("nvarguscamerasrc sensor-id=1")
    # the hardware converter scales straight to the graph's input size
    assert "width=(int)%d, height=(int)%d, format=(string)BGRx" % INPUT in pipeline
    assert demo.main(["--camera", "usb", "--device", "/dev/video3", "--no-display"]) == 0
    assert cv2.opened[-1][0].startswith("v4l2src device=/dev/video3")
    # the same through the bundle CLI: everything after `demo` goes to demo.py
    assert jetson_run.main(["demo", "--camera", "usb", "--device", "/dev/video4",
                            "--no-display"]) == 0
    assert cv2.opened[-1][0].startswith("v4l2src device=/dev/video4")

    monkeypatch.setitem(sys.modules, "cv2", fake_cv2([], gstreamer="NO"))
    assert demo.main(["--camera", "csi", "--no-display"]) == 4
    assert "without GStreamer" in capsys.readouterr().err


# -- the bundle on a real Python 3.6 with numpy 1.19 (the TX2's), where one is available -------

PY36_DRIVER = r'''
import importlib, json, os, sys
bundle, out = sys.argv[1], sys.argv[2]
sys.path.insert(0, bundle)
# every module of the portable copy imports on 3.6 without tensorrt/pycuda
package = os.path.join(bundle, "bisenet_trt")
for folder, _, names in sorted(os.walk(package)):
    dotted = os.path.relpath(folder, bundle).replace(os.sep, ".")
    for name in sorted(n[:-3] for n in names if n.endswith(".py")):
        importlib.import_module(dotted if name == "__init__" else dotted + "." + name)
import numpy as np
import demo
import jetson_model
import jetson_run
from bisenet_trt.running.preprocess import prepare_input
from bisenet_trt.running.runner_base import Runner, TensorSpec

manifest = jetson_model.load_manifest()
_, record = jetson_model.model_paths(manifest)
image, labels = jetson_model.load_sample(manifest)
np.save(os.path.join(out, "prep_sample.npy"), prepare_input(image, record))
frame = np.ascontiguousarray(image[::2, ::3, ::-1])
np.save(os.path.join(out, "prep_frame.npy"), prepare_input(frame, record, "bgr"))
np.save(os.path.join(out, "overlay.npy"),
        demo.overlay(image, demo.colorize(labels, record["model"]["palette"])))


class StandIn(Runner):
    """Answers the desktop's labels: the CLI flows run without TensorRT."""
    backend = "stand-in"

    def __init__(self, engine_path, zero_copy=False, use_cuda_graph=False):
        Runner.__init__(self)
        self.metadata = record

    def _activate(self):
        pass

    def _deactivate(self):
        pass

    def input_spec(self):
        w, h = record["export"]["input_size"]
        return TensorSpec("image", (1, 3, h, w), np.float32)

    def _infer(self, batch):
        return {"labels": labels[None].astype(np.int32)}

    def last_device_time_ms(self):
        return 1.0


jetson_model.open_runner = StandIn
engine = jetson_model.default_engine_path(manifest, "fp16")
os.makedirs(os.path.dirname(engine))
with open(engine, "wb") as f:
    f.write(b"plan")
rcs = [jetson_run.main(["verify"]),
       jetson_run.main(["predict", "-o", os.path.join(out, "pred")]),
       jetson_run.main(["bench", "--iters", "30", "--warmup", "3", "--quiet",
                        "--json", os.path.join(out, "bench.json")])]
with open(os.path.join(out, "result.json"), "w") as f:
    json.dump({"python": sys.version.split()[0], "numpy": np.__version__, "rc": rcs}, f)
'''


def python36():
    """A Python 3.6 interpreter with numpy 1.19: $BISENET_PY36, else python3.6 on PATH."""
    candidates = [os.environ.get("BISENET_PY36"), shutil.which("python3.6")]
    for exe in [c for c in candidates if c]:
        out = subprocess.run([exe, "-c", "import sys, numpy; print(sys.version_info[:2] == (3, 6)"
                              " and numpy.__version__.startswith('1.19'))"],
                             capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip() == "True":
            return exe
    return None


def test_bundle_runs_on_python36_with_numpy119(request, tmp_path):
    exe = python36()
    if exe is None:
        pytest.skip("needs a Python 3.6 interpreter with numpy 1.19 (the TX2's); point "
                    "BISENET_PY36 at one, e.g. a python3.6 venv with `pip install numpy==1.19.5`")
    built = request.getfixturevalue("built")
    folder = str(tmp_path / "device")
    shutil.copytree(built.path, folder)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    driver = tmp_path / "driver.py"
    driver.write_text(PY36_DRIVER)
    run = subprocess.run([exe, str(driver), folder, str(out_dir)], capture_output=True, text=True,
                         cwd=folder)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads((out_dir / "result.json").read_text())
    assert result["python"].startswith("3.6") and result["numpy"].startswith("1.19")
    assert result["rc"] == [0, 0, 0], run.stdout + run.stderr
    assert "100.000% identical" in run.stdout
    assert "end-to-end (host input -> host labels): 30 calls" in run.stdout

    # the same tensors as the desktop's preprocessing (Python 3.11, current numpy)
    from bisenet_deploy.portable.running.preprocess import prepare_input
    from bisenet_deploy.synthetic import synthetic_image

    record = bundle_record(folder)
    image = synthetic_image(INPUT[0], INPUT[1], seed=0)
    assert np.array_equal(np.load(str(out_dir / "prep_sample.npy")), prepare_input(image, record))
    frame = np.ascontiguousarray(image[::2, ::3, ::-1])
    got = np.load(str(out_dir / "prep_frame.npy"))
    want = prepare_input(frame, record, "bgr")
    assert got.shape == want.shape and np.abs(got - want).max() <= 1e-3
    report = json.loads((out_dir / "bench.json").read_text())
    assert report["end_to_end"]["count"] == 30 and report["environment"]["numpy"] == "1.19.5"
    assert sorted(os.listdir(str(out_dir / "pred"))) == ["sample_labels.ppm", "sample_overlay.ppm"]
