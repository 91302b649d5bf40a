"""A bundle or repository is trusted only by its content: the device's `jetson_run.py verify` runs
nothing of a bundle before checking it and fails on anything its manifest does not list, `--force`
replaces only what the manifest proves is ours (the bundle's own commands leave no __pycache__ that
would block it), and no file name in a command line we print or write runs as shell code."""

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

import pytest

from bisenet_deploy.errors import InputError
from bisenet_deploy.jetson import bundle as jb

HOSTILE_NAMES = ["b ;touch pwned", "$(touch pwned)`touch pwned`'q"]


@pytest.fixture(scope="module")
def trt82_onnx(tmp_path_factory):
    from bisenet_deploy.export.pipeline import ExportOptions, export_onnx

    path = str(tmp_path_factory.mktemp("onnx") / "tiny82.onnx")
    export_onnx(ExportOptions(output_path=path, input_size=(128, 64), model_size=(64, 32),
                              output="labels", target="trt8.2", parity=False, simplify=False))
    return path


@pytest.fixture(scope="module")
def made(trt82_onnx, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles") / "tx2"
    return jb.build_bundle(jb.BundleOptions(output_dir=str(out), onnx=trt82_onnx, tar=True))


def copy_of(made, tmp_path):
    folder = str(tmp_path / "tx2")
    shutil.copytree(made.path, folder, symlinks=True)
    return folder


def run_bundle(folder, *args):
    """`python3 jetson_run.py ARGS` run in the bundle, as setup_jetson.sh and the user do."""
    return subprocess.run([sys.executable, "jetson_run.py"] + list(args), cwd=folder,
                          capture_output=True, text=True)


def error_line(out):
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert "Traceback" not in out.stderr
    return lines[0]


# -- jetson_run.py verify on a bundle someone else made ------------------------------------------

@pytest.mark.parametrize("rel, how", [
    ("jetson_env/__init__.py", "new"),       # a package shadows the module jetson_env.py
    ("json.py", "new"),                      # stands in for the standard library
    ("argparse.py", "new"),
    ("bisenet_trt/__init__.py", "append"),
    ("bisenet_trt/files/bundle_manifest.py", "append"),  # the verifier itself
])
def test_verify_runs_no_code_of_the_bundle_before_checking_it(made, tmp_path, rel, how):
    folder = copy_of(made, tmp_path)
    marker = tmp_path / "ran"
    path = os.path.join(folder, *rel.split("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a" if how == "append" else "w") as f:
        f.write("\nopen(%r, 'w').write('planted code ran')\n" % str(marker))
    out = run_bundle(folder, "verify")
    assert out.returncode == 1, out.stdout + out.stderr
    assert not marker.exists(), "verify ran a planted file: " + rel
    line = error_line(out)
    assert "copy the bundle again" in line
    assert rel.split("/")[0] in out.stdout + line


@pytest.mark.parametrize("rel", ["notes.txt", "bisenet_trt/extra.py", "__pycache__/x.pyc",
                                 "model/.hidden", "link"])
def test_verify_fails_on_entries_the_manifest_does_not_list(made, tmp_path, rel):
    folder = copy_of(made, tmp_path)
    path = os.path.join(folder, *rel.split("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if rel == "link":
        os.symlink(os.path.join(folder, "README.md"), path)
    else:
        with open(path, "w") as f:
            f.write("not part of the bundle\n")
    out = run_bundle(folder, "verify")
    assert out.returncode == 1
    assert "not in the manifest: " + rel.split("/")[0] in out.stdout
    assert "do not match manifest.json" in error_line(out)


@pytest.mark.parametrize("files", [None, [], "x"], ids=["missing", "list", "string"])
def test_verify_of_a_manifest_without_its_file_list_is_one_line(made, tmp_path, files):
    folder = copy_of(made, tmp_path)
    manifest_path = os.path.join(folder, "manifest.json")
    with open(manifest_path) as f:
        manifest = json.load(f)
    manifest.pop("files")
    if files is not None:
        manifest["files"] = files
    with open(manifest_path, "w") as f:
        json.dump(manifest, f)
    out = run_bundle(folder, "verify")
    assert out.returncode == 1
    assert "has no list of files (`files`)" in error_line(out)


def test_verify_names_what_the_bundle_wrote_on_the_device_without_failing(made, tmp_path):
    folder = copy_of(made, tmp_path)
    for rel in (".venv/bin/python", "engines/m-fp16.engine", "benchmarks/r.json"):
        path = os.path.join(folder, *rel.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("x")
    out = run_bundle(folder, "verify")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "bundle OK" in out.stdout
    assert ("not part of the bundle, written by its commands on this device (not checked): "
            ".venv/, engines/, benchmarks/") in out.stdout


# -- --force and what the bundle's commands leave ------------------------------------------------

def pycache_folders(root):
    return [d for d, dirs, _ in os.walk(root) if os.path.basename(d) == "__pycache__"]


def test_the_bundles_own_commands_leave_it_replaceable(trt82_onnx, tmp_path):
    out_dir = str(tmp_path / "tx2")
    options = jb.BundleOptions(output_dir=out_dir, onnx=trt82_onnx)
    jb.build_bundle(options)
    for args in (["verify"], ["--help"], ["check"], ["build", "--help"]):
        run_bundle(out_dir, *args)  # check fails here (no Jetson): it still imports the modules
    assert pycache_folders(out_dir) == []
    jb.build_bundle(jb.BundleOptions(output_dir=out_dir, onnx=trt82_onnx, force=True))
    # a user's file under the bundle's __pycache__ is theirs: refused, left where it is
    mine = os.path.join(out_dir, "bisenet_trt", "__pycache__", "mine.txt")
    os.makedirs(os.path.dirname(mine))
    with open(mine, "w") as f:
        f.write("keep me")
    with pytest.raises(InputError, match=r"does not list \(bisenet_trt/__pycache__/\)"):
        jb.build_bundle(jb.BundleOptions(output_dir=out_dir, onnx=trt82_onnx, force=True))
    assert open(mine).read() == "keep me"


def test_force_refuses_a_folder_whose_manifest_has_our_format_but_no_file_list(trt82_onnx,
                                                                               tmp_path, capsys):
    """The issue's data loss: `bisenet-export jetson --force` emptied such a folder."""
    from bisenet_deploy.cli.export_main import main

    out_dir = tmp_path / "work"
    (out_dir / "src").mkdir(parents=True)
    (out_dir / "src" / "main.py").write_text("print('mine')\n")
    (out_dir / "manifest.json").write_text(json.dumps({"format": jb.BUNDLE_FORMAT}))
    assert main(["jetson", "--onnx", trt82_onnx, "-o", str(out_dir), "--force", "-q"]) == 2
    assert "does not list its files" in capsys.readouterr().err
    assert sorted(os.listdir(out_dir)) == ["manifest.json", "src"]
    assert (out_dir / "src" / "main.py").read_text() == "print('mine')\n"


def test_tar_force_refuses_a_tarball_the_user_added_engines_and_reports_to(made, trt82_onnx,
                                                                           tmp_path):
    tar_path = tmp_path / "tx2.tar.gz"
    with tarfile.open(made.tar_path, "r:gz") as src, tarfile.open(str(tar_path), "w:gz") as dst:
        for member in src.getmembers():
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        for name, data in (("tx2/engines/m-fp16.engine", b"PLAN built for 40 minutes"),
                           ("tx2/benchmarks/r.json", b"{}")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    before = tar_path.read_bytes()
    with pytest.raises(InputError, match="refusing to replace .*engines/m-fp16.engine"):
        jb.build_bundle(jb.BundleOptions(output_dir=str(tmp_path / "tx2"), onnx=trt82_onnx,
                                         tar=True, force=True))
    assert tar_path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["tx2.tar.gz"]


# -- no file name runs as shell code ---------------------------------------------------------------

def run_shell(line, cwd):
    return subprocess.run(["bash", "-c", line], cwd=str(cwd), capture_output=True, text=True)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_bundle_shell_lines_never_run_a_file_name(trt82_onnx, tmp_path, name, capsys):
    from bisenet_deploy.cli.export_main import main

    out_dir = tmp_path / "desk" / name
    out_dir.parent.mkdir()
    assert main(["jetson", "--onnx", trt82_onnx, "-o", str(out_dir), "--tar", "-q"]) == 0
    next_line = [line for line in capsys.readouterr().out.splitlines()
                 if line.startswith("next:")][0]
    desktop, device = next_line[len("next:"):].split(" && on the Jetson: ")
    scp = run_shell(desktop.replace("scp", "printf '%s\\n'", 1), tmp_path)
    assert scp.stdout.splitlines() == [str(out_dir) + ".tar.gz", "nvidia@JETSON:~/"]
    with open(os.path.join(str(out_dir), "README.md"), encoding="utf-8") as f:
        readme = [line.strip() for line in f if line.startswith("    tar -xzf ")
                  or line.startswith("    cd ")]
    for steps in (device.split(" && ./setup_jetson.sh")[0], " && ".join(readme)):
        jetson = tmp_path / "jetson"
        shutil.rmtree(str(jetson), ignore_errors=True)
        jetson.mkdir()
        shutil.copy(str(out_dir) + ".tar.gz", str(jetson))
        done = run_shell(steps + " && pwd", jetson)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == os.path.join(str(jetson), name)
        assert not (jetson / "pwned").exists() and not (jetson / name / "pwned").exists()
    assert not list(tmp_path.rglob("pwned"))


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_triton_shell_lines_never_run_a_file_name(tiny_export, tmp_path, name, capsys):
    from bisenet_deploy.cli.export_main import main

    _, _, onnx_path = tiny_export("labels")
    repo = tmp_path / name
    assert main(["triton", "--onnx", onnx_path, "-o", str(repo), "-q"]) == 0
    next_line = [line for line in capsys.readouterr().out.splitlines()
                 if line.startswith("next:")][0]
    command = next_line[len("next:"):].split("   (see ")[0]
    shown = run_shell(command.replace("tritonserver", "printf '%s\\n'", 1), tmp_path)
    assert shown.stdout.splitlines() == ["--model-repository=" + str(repo)]
    with open(os.path.join(str(repo), "README.md"), encoding="utf-8") as f:
        text = f.read()
    docker = [line for line in text.splitlines() if line.startswith("docker run")][0]
    docker = docker.replace("<YY.MM>", "24.08")  # the release the reader fills in
    shown = run_shell(docker.replace("docker", "printf '%s\\n'", 1), tmp_path)
    assert str(tmp_path / name) + ":/models" in shown.stdout.splitlines()
    served = [line for line in text.splitlines() if "tritonserver --model-repository=" in line
              and line.startswith("#")][0]
    shown = run_shell(served.split(": ", 1)[1].replace("tritonserver", "printf '%s\\n'", 1),
                      tmp_path)
    assert shown.stdout.splitlines() == ["--model-repository=" + name]
    assert not list(tmp_path.rglob("pwned"))


@pytest.mark.parametrize("path", ["-rf", "a b", "x;touch pwned", "$(id)", "it's", "/abs/-x"])
def test_quote_path_gives_one_shell_word_never_an_option(path, tmp_path):
    from bisenet_deploy.portable.shared.shell_words import quote_path

    shown = run_shell("printf '%s\\n' " + quote_path(path), tmp_path)
    assert shown.stdout.splitlines() == [("./" + path) if path.startswith("-") else path]
    assert not (tmp_path / "pwned").exists()


def test_a_file_added_to_the_bundle_during_the_export_is_not_deleted(made, trt82_onnx, tmp_path,
                                                                     monkeypatch):
    """--force checks ownership again just before the rename: the export takes minutes."""
    folder = copy_of(made, tmp_path)
    shutil.copy(made.tar_path, folder + ".tar.gz")
    real = jb.write_sample
    mine = os.path.join(folder, "notes.txt")

    def write_sample_then_user_writes(*args, **kwargs):
        real(*args, **kwargs)
        with open(mine, "w") as f:
            f.write("written while the export ran")

    monkeypatch.setattr(jb, "write_sample", write_sample_then_user_writes)
    with pytest.raises(InputError, match=r"refusing to replace .*notes\.txt"):
        jb.build_bundle(jb.BundleOptions(output_dir=folder, onnx=trt82_onnx, tar=True,
                                         force=True))
    assert open(mine).read() == "written while the export ran"
    assert sorted(os.listdir(str(tmp_path))) == ["tx2", "tx2.tar.gz"]  # no staging left
