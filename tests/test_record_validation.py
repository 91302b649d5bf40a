"""A forged or damaged metadata record is refused at load, in every command, in one line naming the
file and the field, with exit 5 (portable/files/record_schema.py, the one validator of the record).

Before the validator, such records crashed commands (a 100000x100000 input size: MemoryError,
exit 70) or gave silently wrong pictures (an unknown channel order flipped the channels, a short
palette drew classes black, a class_names string made one legend entry per letter).
"""

import json
import os

import numpy as np
import onnx
import pytest
from PIL import Image

from bisenet_deploy.errors import UnusableFileError
from bisenet_deploy.metadata import METADATA_KEY, ModelMetadata
from bisenet_deploy.portable.files.record_schema import (MAX_SIDE, RecordError, record_problem,
                                                   validate_record)
from support.records import make_record

UNUSABLE_FILE = 5


def _set(section, key, value):
    def forge(record):
        record[section][key] = value
    return forge


def _palette_out_of_range(record):
    record["model"]["palette"][1] = [300, 0, -4]


def _short_palette(record):
    record["model"]["palette"] = record["model"]["palette"][:-1]


def _without(key):
    def forge(record):
        del record[key]
    return forge


def _as_list(key):
    def forge(record):
        record[key] = list(record[key].values())
    return forge


#: forgery -> (how to damage a good record, the field the refusal must name)
FORGERIES = {
    "huge-input-size": (_set("export", "input_size", [100000, 100000]), "export.input_size"),
    "zero-model-size": (_set("export", "model_size", [0, 32]), "export.model_size"),
    "classes-1e9": (_set("model", "num_classes", 1e9), "model.num_classes"),
    "classes-10**9": (_set("model", "num_classes", 10 ** 9), "model.num_classes"),
    "classes-0": (_set("model", "num_classes", 0), "model.num_classes"),
    "model-as-list": (_as_list("model"), "model"),
    "export-as-list": (_as_list("export"), "export"),
    "no-model-section": (_without("model"), "model"),
    "no-export-section": (_without("export"), "export"),
    "channel-order-xyz": (_set("export", "channel_order", "xyz"), "export.channel_order"),
    "model-channel-order": (_set("model", "channel_order", "xyz"), "model.channel_order"),
    "short-palette": (_short_palette, "model.palette"),
    "palette-out-of-range": (_palette_out_of_range, "model.palette"),
    "class-names-string": (_set("model", "class_names", "road sidewalk"), "model.class_names"),
    "std-zero": (_set("model", "std", [0.2, 0.0, 0.2]), "model.std"),
    "mean-of-two": (_set("model", "mean", [0.3, 0.3]), "model.mean"),
    "unknown-target": (_set("export", "target", "trt99"), "export.target"),
    "unknown-precision": (_set("export", "precision", "fp7"), "export.precision"),
    "unknown-input-dtype": (_set("export", "input_dtype", "int64"), "export.input_dtype"),
    "unknown-normalize": (_set("export", "normalize", "sometimes"), "export.normalize"),
    "output-names": (_set("export", "output_names", ["probabilities"]), "export.output_names"),
    "batch-as-number": (_set("export", "batch", 4), "export.batch"),
    "batch-huge": (_set("export", "batch", {"dynamic": False, "size": 10 ** 9}),
                   "export.batch.size"),
    "batch-min-over-max": (_set("export", "batch",
                                {"dynamic": True, "min": 4, "opt": 2, "max": 1}), "export.batch"),
    "schema-text": (lambda r: r.__setitem__("schema", "one"), "schema"),
}


def forged_text(good_text, kind):
    if kind == "not-json":
        return "{this is not json"
    record = json.loads(good_text)
    FORGERIES[kind][0](record)
    return json.dumps(record)


def expected_field(kind):
    return "not valid JSON" if kind == "not-json" else FORGERIES[kind][1] + " "


KINDS = sorted(FORGERIES) + ["not-json"]


@pytest.fixture(scope="module")
def workspace(tiny_export, tmp_path_factory):
    """(folder, good ONNX, forge(kind) -> path of an ONNX whose record is damaged that way)."""
    folder = tmp_path_factory.mktemp("forged")
    _, _, good = tiny_export("labels")
    model = onnx.load(good)
    prop = [p for p in model.metadata_props if p.key == METADATA_KEY][0]
    good_text = prop.value
    Image.fromarray(np.full((64, 128, 3), 90, np.uint8)).save(folder / "x.png")
    data = folder / "data"
    for sub in ("images", "labels"):
        (data / sub).mkdir(parents=True)
    Image.fromarray(np.full((64, 128, 3), 90, np.uint8)).save(data / "images" / "a.png")
    Image.fromarray(np.zeros((64, 128), np.uint8)).save(data / "labels" / "a.png")
    made = {}

    def forge(kind):
        if kind not in made:
            prop.value = forged_text(good_text, kind)
            path = folder / f"{kind}.onnx"
            onnx.save(model, str(path))
            prop.value = good_text
            made[kind] = str(path)
        return made[kind]

    return folder, good, forge


def _commands(folder, model):
    from bisenet_deploy.cli import (bench_main, build_engine_main, compare_main, eval_main,
                                    export_main, predict_main)

    return {
        "predict": (predict_main, ["--onnx", model, str(folder / "x.png"), "-o",
                                   str(folder / "out")]),
        "predict-torch": (predict_main, ["--backend", "torch", "--onnx", model,
                                         str(folder / "x.png"), "-o", str(folder / "out")]),
        "compare": (compare_main, ["--against", f"onnxruntime:{model}", "--synthetic", "1"]),
        "eval": (eval_main, ["--backend", f"onnxruntime:{model}", "--data",
                             str(folder / "data"), "--layout", "folders"]),
        "bench": (bench_main, ["--onnx", model, "--iters", "1", "--no-json"]),
        "check": (export_main, ["check", model]),
        "build-engine --trtexec": (build_engine_main, [model, "--trtexec", "--trt-version",
                                                       "10.0"]),
        "jetson": (export_main, ["jetson", "--onnx", model, "-o", str(folder / "bundle")]),
        "triton": (export_main, ["triton", "--onnx", model, "-o", str(folder / "repo")]),
    }


COMMANDS = ["predict", "predict-torch", "compare", "eval", "bench", "check",
            "build-engine --trtexec", "jetson", "triton"]


def _refused(main, argv, path, field, capsys):
    """Run the command; it must exit 5 with one line naming the file and the field, print no
    result (no build command, no PASS) and write nothing."""
    code = main.main(argv + ["-q"])
    out, err = capsys.readouterr()
    assert code == UNUSABLE_FILE, (code, out, err)
    assert "internal error" not in err and "Traceback" not in err and "deprecated" not in err
    lines = [x for x in err.splitlines() if path in x]
    assert len(lines) == 1 and field in lines[0], err
    assert "PASS" not in out and "trtexec" not in out, out
    return lines[0]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_damaged_onnx_record_is_refused_in_every_command(workspace, command, kind, capsys):
    folder, _, forge = workspace
    path = forge(kind)
    main, argv = _commands(folder, path)[command]
    _refused(main, argv, path, expected_field(kind), capsys)
    for written in ("out", "bundle", "repo"):
        assert not (folder / written).exists()


@pytest.mark.parametrize("kind", ["no-model-section", "huge-input-size", "short-palette"])
def test_serve_refuses_a_damaged_record_before_any_server_starts(workspace, kind, capsys):
    pytest.importorskip("pytriton", reason="bisenet-serve needs pip install -e '.[serve]'")
    from bisenet_deploy.cli import serve_main

    folder, _, forge = workspace
    path = forge(kind)
    _refused(serve_main, ["--onnx", path, "--http-port", "1", "--grpc-port", "2",
                          "--metrics-port", "3"], path, expected_field(kind), capsys)


def test_the_good_record_passes_where_the_forged_ones_fail(workspace, capsys):
    # the control: the same commands accept the file the forgeries were made from
    from bisenet_deploy.cli import build_engine_main, export_main

    folder, good, _ = workspace
    assert export_main.main(["check", good]) == 0
    assert "PASS" in capsys.readouterr().out
    assert build_engine_main.main([good, "--trtexec", "--trt-version", "10.0"]) == 0
    assert "trtexec" in capsys.readouterr().out


def test_build_engine_prints_no_build_command_for_a_record_without_model(workspace, capsys):
    from bisenet_deploy.cli import build_engine_main

    folder, _, forge = workspace
    path = forge("no-model-section")
    assert build_engine_main.main([path, "--trtexec", "--trt-version", "10.0"]) == UNUSABLE_FILE
    out, err = capsys.readouterr()
    assert out == "" and "model is missing" in err


# -- engine sidecars carry the record too --------------------------------------------------------

@pytest.mark.parametrize("kind", ["huge-input-size", "no-model-section", "class-names-string",
                                  "not-json"])
def test_an_engine_sidecar_with_a_damaged_record_is_refused(tmp_path, kind):
    from bisenet_deploy.portable.trt.sidecar import make_sidecar, read_sidecar

    good = json.dumps(make_record())
    record = forged_text(good, kind)
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    sidecar = make_sidecar(str(engine), "0" * 64, 4, "10.0.1", "8.5-10",
                           {"name": "Fake GPU", "compute_capability": "8.6"}, "fp32", [], [],
                           "m.onnx", "0" * 64, json.loads(good), {}, 1.0)
    sidecar["onnx_metadata"] = record if kind == "not-json" else json.loads(record)
    (tmp_path / "m.json").write_text(json.dumps(sidecar))
    with pytest.raises(RecordError) as info:
        read_sidecar(str(engine))
    message = str(info.value)
    assert str(tmp_path / "m.json") in message and expected_field(kind) in message
    assert info.value.exit_code == UNUSABLE_FILE and "\n" not in message
    sidecar["onnx_metadata"] = json.loads(good)
    (tmp_path / "m.json").write_text(json.dumps(sidecar))
    assert read_sidecar(str(engine))["onnx_metadata"] == json.loads(good)


def test_triton_refuses_an_engine_whose_sidecar_record_is_damaged(tmp_path, capsys):
    from bisenet_deploy.cli import export_main
    from bisenet_deploy.portable.files.fileio import sha256_file
    from bisenet_deploy.portable.trt.sidecar import make_sidecar

    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    record = make_record()
    record["export"]["input_size"] = [100000, 100000]
    sidecar = make_sidecar(str(engine), sha256_file(str(engine)), 4, "10.0.1", "8.5-10",
                           {"name": "Fake GPU", "compute_capability": "8.6"}, "fp32", [], [],
                           "m.onnx", "0" * 64, record, {}, 1.0)
    (tmp_path / "m.json").write_text(json.dumps(sidecar))
    code = export_main.main(["triton", "--engine", str(engine), "-o", str(tmp_path / "repo")])
    err = capsys.readouterr().err
    assert code == UNUSABLE_FILE and "export.input_size" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize("kind", ["huge-input-size", "no-model-section", "short-palette"])
def test_the_jetson_bundle_validates_its_record_file(tmp_path, kind):
    # on the device, jetson_run.py reads model/<stem>.json through the same validator
    import shutil

    from test_jetson_templates import PORTABLE, TEMPLATES, run_py

    from bisenet_deploy.jetson.bundle import TEMPLATE_FILES

    bundle = tmp_path / "bundle"  # the bundle's scripts and its bisenet_trt package, no model
    bundle.mkdir()
    for name in TEMPLATE_FILES:
        shutil.copy2(os.path.join(TEMPLATES, name), bundle / name)
    shutil.copytree(PORTABLE, bundle / "bisenet_trt", ignore=shutil.ignore_patterns("__pycache__"))
    record = make_record()
    FORGERIES[kind][0](record)
    (bundle / "model").mkdir()
    (bundle / "model" / "m.json").write_text(json.dumps({"record": record}))
    manifest = {"model": {"onnx": "model/m.onnx", "record": "model/m.json"}}
    out = run_py(bundle, "import jetson_model\n"
                         "from bisenet_trt.shared.errors import UserError\n"
                         "try:\n    jetson_model.model_paths(%r, %r)\n"
                         "except UserError as exc:\n    print(exc.exit_code, exc)\n"
                         % (manifest, str(bundle)))
    assert out.stdout.startswith("5 ") and str(bundle / "model" / "m.json") in out.stdout, out
    assert FORGERIES[kind][1] + " " in out.stdout


# -- checkpoints: the same validator, and weights that are numbers -------------------------------

@pytest.fixture(scope="module")
def checkpoint(tiny_export):
    _, ckpt, _ = tiny_export("labels")
    return ckpt


def _resave(src, dst, record_text=None, poison=None):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(src, framework="pt") as handle:
        header = dict(handle.metadata())
        state = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    if record_text is not None:
        header[METADATA_KEY] = record_text
    if poison is not None:
        key = sorted(k for k in state if state[k].is_floating_point())[0]
        state[key] = state[key].clone()
        state[key].view(-1)[0] = poison
    save_file(state, str(dst), metadata=header)
    return key if poison is not None else None


@pytest.mark.parametrize("kind", ["no-model-section", "short-palette", "class-names-string",
                                  "classes-1e9", "model-as-list", "not-json"])
def test_a_checkpoint_with_a_damaged_record_is_refused(checkpoint, tmp_path, kind, capsys):
    from safetensors import safe_open

    from bisenet_deploy.checkpoint import load_model
    from bisenet_deploy.cli import predict_main

    with safe_open(checkpoint, framework="pt") as handle:
        good = handle.metadata()[METADATA_KEY]
    forged = tmp_path / "forged.safetensors"
    _resave(checkpoint, forged, forged_text(good, kind))
    with pytest.raises(UnusableFileError, match=str(forged)) as info:
        load_model(str(forged))
    assert expected_field(kind) in str(info.value)
    image = tmp_path / "x.png"
    Image.fromarray(np.full((32, 64, 3), 90, np.uint8)).save(image)
    _refused(predict_main, ["--backend", "torch", "--checkpoint", str(forged), str(image), "-o",
                            str(tmp_path / "out")], str(forged), expected_field(kind), capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("poison", [float("nan"), float("inf"), float("-inf")])
def test_a_safetensors_checkpoint_with_non_finite_weights_is_refused(checkpoint, tmp_path, poison,
                                                                     capsys):
    from bisenet_deploy.cli import export_main

    path = tmp_path / "poisoned.safetensors"
    key = _resave(checkpoint, path, poison=poison)
    code = export_main.main(["onnx", "--checkpoint", str(path), "-o", str(tmp_path / "m.onnx"),
                             "--input-size", "64x32", "--network-size", "64x32", "--skip-parity"])
    err = capsys.readouterr().err
    assert code == UNUSABLE_FILE and len(err.strip().splitlines()) == 1, err
    assert repr(key) in err and ("NaN" if poison != poison else "Inf") in err
    assert "bug" not in err and not (tmp_path / "m.onnx").exists()


def _poisoned_pth(tmp_path, state, name, wrap=None):
    import torch

    state = dict(state)
    key = sorted(k for k, v in state.items() if v.is_floating_point())[-1]
    state[key] = state[key].clone()
    state[key].view(-1)[-1] = float("nan")
    path = tmp_path / name
    torch.save(wrap(state) if wrap else state, str(path))
    return path, key


def test_pth_checkpoints_with_nan_weights_are_refused(tmp_path):
    from test_checkpoint_coincheung import synthetic_state_dict
    from test_checkpoint_mmseg import mmseg_state_dict, save_mmseg

    from bisenet_deploy.checkpoint import load_model
    from bisenet_deploy.model import build_model

    plain = {k: v for k, v in build_model("bisenetv2", 3).state_dict().items()}
    cases = [_poisoned_pth(tmp_path, plain, "plain.pth"),
             _poisoned_pth(tmp_path, synthetic_state_dict(), "coincheung.pth",
                           wrap=lambda s: {"state_dict": s})]
    mm = dict(mmseg_state_dict())
    key = "decode_head.conv_seg.weight"
    mm[key] = mm[key].clone()
    mm[key].view(-1)[3] = float("nan")
    save_mmseg(tmp_path / "mmseg.pth", mm)
    cases.append((tmp_path / "mmseg.pth", key))
    for path, key in cases:
        with pytest.raises(UnusableFileError) as info:
            load_model(str(path), arch="bisenetv2" if path.name == "plain.pth" else None)
        message = str(info.value)
        assert str(path) in message and repr(key) in message and "NaN" in message, message


# -- the validator itself ------------------------------------------------------------------------

def test_the_records_the_toolkit_writes_pass():
    assert record_problem(make_record()) is None
    assert record_problem(make_record(batch=(1, 4, 8), output="both")) is None
    assert record_problem({k: v for k, v in make_record().items() if k != "export"},
                          require_export=False) is None


@pytest.mark.parametrize("kind", sorted(FORGERIES))
def test_each_forgery_names_its_field(kind):
    record = make_record()
    FORGERIES[kind][0](record)
    field, _ = record_problem(record)
    assert field == FORGERIES[kind][1]
    with pytest.raises(RecordError, match="the model file") as info:
        validate_record(record, "the model file")
    assert info.value.field == field and "\n" not in str(info.value)


def test_a_newer_schema_asks_for_an_upgrade():
    with pytest.raises(RecordError, match="upgrade bisenet-deploy"):
        validate_record(make_record() | {"schema": 99}, "m.onnx")


def test_model_metadata_refuses_what_the_validator_refuses():
    from bisenet_deploy.errors import InputError

    fields = dict(make_record()["model"])
    assert ModelMetadata.from_dict(fields).num_classes == 2
    for key, value in (("num_classes", 10 ** 9), ("palette", [[0, 0, 0], [256, 0, 0]]),
                       ("class_names", ["a", 2]), ("train_size", [MAX_SIDE + 1, 8])):
        with pytest.raises(InputError, match=key):
            ModelMetadata.from_dict(dict(fields, **{key: value}))
