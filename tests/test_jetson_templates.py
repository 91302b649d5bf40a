"""The Jetson bundle's scripts and entry modules, tested on the desktop without a Jetson.

Shell scripts: `bash -n`, shellcheck (when installed), and their behaviour against fake
`nvpmodel` / `jetson_clocks` / `python3` / `nvcc` (the order of the power-mode and clock changes,
the restore on failure, the exact complaint for each missing piece). Python: the pure helpers of
jetson_run.py and demo.py (release parsing, overlay, pipelines, PPM) in a minimal bundle made of
the templates and the portable package, with tensorrt/pycuda made unimportable.
"""

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATES = os.path.join(ROOT, "bisenet_deploy", "jetson", "templates")
PORTABLE = os.path.join(ROOT, "bisenet_deploy", "portable")
SCRIPTS = ["setup_jetson.sh", "build_engine.sh", "bench.sh"]

TX2_RELEASE = ("# R32 (release), REVISION: 6.1, GCID: 27863751, BOARD: t186ref, EABI: aarch64, "
               "DATE: Mon Jul 26 19:36:31 UTC 2021\n")

BLOCK_TRT = (
    "import sys, importlib.abc\n"
    "class Block(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('tensorrt', 'pycuda', 'cv2'):\n"
    "            raise ImportError('blocked ' + name)\n"
    "sys.meta_path.insert(0, Block())\n")


def write_exe(path, text):
    path.write_text("#!/usr/bin/env bash\n" + textwrap.dedent(text))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def mini_bundle(tmp_path):
    """Templates + the portable package as bisenet_trt/ (no model): enough for the helpers."""
    root = tmp_path / "bundle"
    root.mkdir()
    from bisenet_deploy.jetson.bundle import TEMPLATE_FILES

    for name in TEMPLATE_FILES:
        shutil.copy2(os.path.join(TEMPLATES, name), root / name)
    shutil.copytree(PORTABLE, root / "bisenet_trt",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return root


def run_py(bundle, code, env=None):
    full = BLOCK_TRT + "sys.path.insert(0, %r)\n" % str(bundle) + code
    return subprocess.run([sys.executable, "-c", full], capture_output=True, text=True, env=env,
                          cwd=str(bundle))


# -- shell scripts ---------------------------------------------------------------------------------

@pytest.mark.parametrize("script", SCRIPTS)
def test_shell_scripts_parse(script):
    out = subprocess.run(["bash", "-n", os.path.join(TEMPLATES, script)], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_shell_scripts_pass_shellcheck(script):
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    out = subprocess.run(["shellcheck", "-s", "bash", os.path.join(TEMPLATES, script)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def fake_device(tmp_path, release=TX2_RELEASE, trt="8.2.1.8", python_version="3.6",
                nvcc=True):
    """A fake python3 / nvcc / release file for setup_jetson.sh --check-only."""
    env = dict(os.environ)
    rel = tmp_path / "nv_tegra_release"
    if release is not None:
        rel.write_text(release)
    trt_line = 'echo %s' % trt if trt else 'echo "ModuleNotFoundError: tensorrt" >&2; exit 1'
    py = write_exe(tmp_path / "python3", """
        code="$*"
        case "$code" in
            *sys.version_info*) echo %s ;;
            *"import tensorrt"*) %s ;;
            *) exit 0 ;;
        esac
        """ % (python_version, trt_line))
    cuda = tmp_path / "cuda"
    (cuda / "bin").mkdir(parents=True)
    if nvcc:
        write_exe(cuda / "bin" / "nvcc", """
            echo "nvcc: NVIDIA (R) Cuda compiler driver"
            echo "Cuda compilation tools, release 10.2, V10.2.300"
            """)
    env.update(PYTHON3=str(py), CUDA_ROOT=str(cuda), NV_TEGRA_RELEASE=str(rel),
               VENV_DIR=str(tmp_path / "venv"))
    return env


def setup_check(env):
    return subprocess.run(["bash", os.path.join(TEMPLATES, "setup_jetson.sh"), "--check-only"],
                          capture_output=True, text=True, env=env)


def test_setup_accepts_jetpack_46(tmp_path):
    out = setup_check(fake_device(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok   JetPack    L4T R32.6.1 = JetPack 4.6.x" in out.stdout
    assert "ok   TensorRT   8.2.1.8" in out.stdout
    assert "ok   Python" in out.stdout and "3.6" in out.stdout
    assert "release 10.2" in out.stdout
    assert "device OK (--check-only: nothing installed)" in out.stdout
    assert not (tmp_path / "venv").exists()


def test_setup_names_an_old_jetpack(tmp_path):
    old = TX2_RELEASE.replace("REVISION: 6.1", "REVISION: 5.1")
    out = setup_check(fake_device(tmp_path, release=old))
    assert out.returncode == 1
    assert "BAD  JetPack    L4T R32.5.1 is older than JetPack 4.6" in out.stdout
    assert "SDK Manager" in out.stdout


def test_setup_says_this_is_not_a_jetson(tmp_path):
    out = setup_check(fake_device(tmp_path, release=None))
    assert out.returncode == 1
    assert "not a Jetson" in out.stdout and "copy the bundle to the Jetson" in out.stdout


def test_setup_names_missing_tensorrt_and_nvcc(tmp_path):
    out = setup_check(fake_device(tmp_path, trt=None, nvcc=False))
    assert out.returncode == 1
    assert "BAD  TensorRT" in out.stdout and "python3-libnvinfer" in out.stdout
    assert "BAD  CUDA" in out.stdout and "nvcc not found" in out.stdout
    assert "2 problem(s) found" in out.stdout


def test_setup_warns_about_other_tensorrt_and_python(tmp_path):
    out = setup_check(fake_device(tmp_path, trt="10.3.0", python_version="3.10"))
    assert out.returncode == 0, out.stdout
    assert "WARN TensorRT   10.3.0, not JetPack 4.6's 8.2" in out.stdout
    assert "WARN Python" in out.stdout


def test_setup_rejects_unknown_option(tmp_path):
    out = subprocess.run(["bash", os.path.join(TEMPLATES, "setup_jetson.sh"), "--bogus"],
                         capture_output=True, text=True, env=fake_device(tmp_path))
    assert out.returncode == 2 and "unknown option '--bogus'" in out.stderr


def fake_bench_env(tmp_path, bench_rc=0, mode_name="MAXP_CORE_ARM", mode=2):
    """Fake nvpmodel/jetson_clocks and venv python that append their calls to calls.log."""
    log = tmp_path / "calls.log"
    write_exe(tmp_path / "nvpmodel", """
        echo "nvpmodel $*" >> %s
        if [[ "$1" == "-q" ]]; then echo "NV Fan Mode:quiet"; echo "NV Power Mode: %s"; echo %d; fi
        """ % (log, mode_name, mode))
    write_exe(tmp_path / "jetson_clocks", 'echo "jetson_clocks $*" >> %s\n' % log)
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    write_exe(venv / "bin" / "python", """
        echo "python $(basename "$1") ${*:2} NVP=${BISENET_NVPMODEL:-} CLK=${BISENET_JETSON_CLOCKS:-}" >> %s
        exit %d
        """ % (log, bench_rc))
    env = dict(os.environ)
    env.update(NVPMODEL=str(tmp_path / "nvpmodel"), JETSON_CLOCKS=str(tmp_path / "jetson_clocks"),
               SUDO="", VENV_DIR=str(venv))
    return env, log


def test_bench_sets_maxn_and_clocks_then_restores_them(tmp_path):
    env, log = fake_bench_env(tmp_path)
    out = subprocess.run(["bash", os.path.join(TEMPLATES, "bench.sh"), "--iters", "7"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    calls = [c.strip() for c in log.read_text().splitlines()]
    assert calls[0] == "nvpmodel -q"
    assert calls[1].startswith("jetson_clocks --store /")
    stored = calls[1].split()[-1]
    assert calls[2] == "nvpmodel -m 0"
    assert calls[3] == "jetson_clocks"
    assert calls[4].startswith("python jetson_run.py bench --iters 7")
    assert "NVP=0 (MAXN), previous: 2 (MAXP_CORE_ARM)" in calls[4]
    assert "CLK=locked" in calls[4]
    assert calls[5] == "nvpmodel -m 2"
    assert calls[6] == "jetson_clocks --restore %s" % stored
    assert len(calls) == 7
    # it says what it does
    assert "setting power mode 0, MAXN" in out.stdout
    assert "restoring power mode 2" in out.stdout


def test_bench_restores_clocks_when_the_benchmark_fails(tmp_path):
    env, log = fake_bench_env(tmp_path, bench_rc=3)
    out = subprocess.run(["bash", os.path.join(TEMPLATES, "bench.sh")], capture_output=True,
                         text=True, env=env)
    assert out.returncode == 3
    calls = [c.strip() for c in log.read_text().splitlines()]
    assert calls[-2] == "nvpmodel -m 2"
    assert calls[-1].startswith("jetson_clocks --restore ")


def test_bench_stops_before_changing_anything_when_clocks_cannot_be_stored(tmp_path):
    env, log = fake_bench_env(tmp_path)
    write_exe(tmp_path / "jetson_clocks", """
        echo "jetson_clocks $*" >> %s
        if [[ "$1" == "--store" ]]; then echo "$2" >> %s; exit 1; fi
        """ % (log, tmp_path / "stored.txt"))
    out = subprocess.run(["bash", os.path.join(TEMPLATES, "bench.sh")], capture_output=True,
                         text=True, env=env)
    assert out.returncode == 1
    calls = [c.strip() for c in log.read_text().splitlines()]
    assert "nvpmodel -m 0" not in calls and "jetson_clocks" not in calls
    assert not any(c.startswith("python") for c in calls)  # no benchmark on unknown clocks
    assert "--store' failed" in out.stderr
    stored = (tmp_path / "stored.txt").read_text().split()[0]
    assert not os.path.exists(stored)  # its temporary file is not left behind


def test_bench_no_clocks_touches_nothing(tmp_path):
    env, log = fake_bench_env(tmp_path)
    out = subprocess.run(["bash", os.path.join(TEMPLATES, "bench.sh"), "--no-clocks",
                          "--zero-copy"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    calls = [c.strip() for c in log.read_text().splitlines()]
    assert len(calls) == 1 and calls[0].startswith("python jetson_run.py bench --zero-copy")
    assert "CLK=not locked (--no-clocks)" in calls[0]


def test_bench_and_build_need_the_venv(tmp_path):
    env = dict(os.environ, VENV_DIR=str(tmp_path / "nope"))
    for script in ("bench.sh", "build_engine.sh"):
        out = subprocess.run(["bash", os.path.join(TEMPLATES, script)], capture_output=True,
                             text=True, env=env)
        assert out.returncode == 1
        assert "run ./setup_jetson.sh" in out.stderr


def test_build_engine_passes_options_to_the_bundle_cli(tmp_path):
    env, log = fake_bench_env(tmp_path)
    out = subprocess.run(["bash", os.path.join(TEMPLATES, "build_engine.sh"), "--fp32",
                          "--trtexec"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert log.read_text().startswith("python jetson_run.py build --fp32 --trtexec")


# -- jetson_run.py / demo.py helpers -----------------------------------------------------------

def test_bundle_cli_help_works_without_tensorrt(mini_bundle):
    out = run_py(mini_bundle, "import jetson_run\nsys.exit(jetson_run.main(['--help']))\n")
    assert out.returncode == 0, out.stderr
    for command in ("verify", "check", "build", "bench", "predict", "demo"):
        assert command in out.stdout
    out = run_py(mini_bundle, "import demo\nsys.exit(demo.main(['--help']))\n")
    assert out.returncode == 0, out.stderr
    assert "--camera" in out.stdout and "--pipeline" in out.stdout


def test_bundle_check_reports_missing_tensorrt_clearly(mini_bundle):
    out = run_py(mini_bundle, "import jetson_run\nsys.exit(jetson_run.main(['check']))\n")
    assert out.returncode == 1
    assert "BAD" in out.stdout and "TensorRT" in out.stdout
    assert "python3-libnvinfer" in out.stdout
    assert "setup_jetson.sh" in out.stdout  # pycuda's fix
    assert "Traceback" not in out.stderr
    assert "environment problem(s)" in out.stderr


@pytest.mark.parametrize("command", [["predict"], ["demo", "--video", "x.mp4"]])
def test_bundle_commands_without_numpy_say_what_to_install(mini_bundle, command):
    block = ("import builtins\n_real = builtins.__import__\n"
             "def _no_numpy(name, *a, **k):\n"
             "    if name == 'numpy' or name.startswith('numpy.'):\n"
             "        raise ImportError('No module named numpy')\n"
             "    return _real(name, *a, **k)\n"
             "builtins.__import__ = _no_numpy\n")
    out = run_py(mini_bundle, block + "import jetson_run\nsys.exit(jetson_run.main(%r))\n"
                 % command)
    assert "Traceback" not in out.stderr, out.stderr
    assert out.stderr.startswith("error: numpy is not importable"), out.stderr
    assert out.stderr.count("\n") == 1 and out.returncode == 4, (out.returncode, out.stderr)


def test_bundle_cli_without_manifest_says_so(mini_bundle):
    out = run_py(mini_bundle, "import jetson_run\nsys.exit(jetson_run.main(['verify']))\n")
    assert out.returncode == 1
    assert "manifest.json not found" in out.stderr and "tar -xzf" in out.stderr


@pytest.fixture
def helpers(mini_bundle, monkeypatch):
    monkeypatch.syspath_prepend(str(mini_bundle))
    names = ("jetson_run", "jetson_env", "jetson_build", "jetson_bench", "jetson_parity", "demo")
    for name in names:
        sys.modules.pop(name, None)
    import demo
    import jetson_run
    yield jetson_run, demo
    for name in names:
        sys.modules.pop(name, None)
    for name in [m for m in sys.modules if m == "bisenet_trt" or m.startswith("bisenet_trt.")]:
        sys.modules.pop(name, None)


@pytest.mark.usefixtures("helpers")
def test_parse_tegra_release():
    import jetson_env  # the mini bundle's, which jetson_run imported
    assert jetson_env.parse_tegra_release(TX2_RELEASE) == (32, 6, 1)
    assert jetson_env.parse_tegra_release("# R32 (release), REVISION: 7.4, GCID: 1") == (32, 7, 4)
    assert jetson_env.parse_tegra_release("# R35 (release), REVISION: 1") == (35, 1, 0)
    assert jetson_env.parse_tegra_release("Ubuntu 22.04") is None
    assert jetson_env.jetpack_for((32, 6, 1)) == "4.6"
    assert jetson_env.jetpack_for((32, 7, 1)).startswith("4.6")


def test_label_parity(helpers):
    import jetson_parity
    ref = np.zeros((4, 5), np.uint8)
    labels = ref.astype(np.int32).copy()
    assert jetson_parity.label_parity(labels, ref) == 1.0
    labels[0, :2] = 3
    assert jetson_parity.label_parity(labels, ref) == pytest.approx(1 - 2 / 20)
    with pytest.raises(ValueError):
        jetson_parity.label_parity(labels[:2], ref)


def test_parity_thresholds_and_random_weights(helpers):
    from jetson_parity import report_parity
    trained = {"model": {"weights": "checkpoint"}}
    random = {"model": {"weights": "random-init"}}
    assert report_parity(0.9995, "fp32", trained)
    assert not report_parity(0.995, "fp32", trained)
    assert report_parity(0.995, "fp16", trained)
    assert not report_parity(0.90, "fp16", trained)
    assert report_parity(0.50, "fp16", random)  # not judged, only warned


def test_the_bundle_judges_by_the_toolkits_device_profile(helpers, monkeypatch):
    """One table: the bundle reads its thresholds from its copy of the portable floor, the very
    numbers comparison/profiles.py calls the "device" profile."""
    import jetson_parity

    from bisenet_deploy.comparison import profiles

    table = jetson_parity.DEVICE_MIN_IDENTICAL
    for precision in ("fp32", "fp16"):
        assert table[precision] == profiles.resolve(precision, profile="device")["labels"][
            "min_identical"]
    assert table == {"fp32": 0.999, "fp16": 0.98}
    assert table is sys.modules["bisenet_trt.shared.parity_limits"].DEVICE_MIN_IDENTICAL
    trained = {"model": {"weights": "checkpoint"}}
    monkeypatch.setitem(table, "fp32", 0.9999)
    assert not jetson_parity.report_parity(0.9995, "fp32", trained)


def test_colorize_and_overlay(helpers):
    _, demo = helpers
    palette = [[128, 64, 128], [244, 35, 232], [70, 70, 70]]
    labels = np.array([[0, 1], [2, 7]], dtype=np.int32)
    colours = demo.colorize(labels, palette)
    assert colours.dtype == np.uint8 and colours.shape == (2, 2, 3)
    assert colours[0, 0].tolist() == palette[0] and colours[1, 0].tolist() == palette[2]
    assert colours[1, 1].tolist() == [0, 0, 0]  # unknown id: black, not a crash
    frame = np.full((4, 4, 3), 100, np.uint8)
    mixed = demo.overlay(frame, colours, alpha=0.5)
    assert mixed.shape == frame.shape
    assert mixed[0, 0].tolist() == [114, 82, 114]  # (100 + c) / 2, rounded
    assert (demo.overlay(frame, colours, alpha=0.0) == frame).all()
    with pytest.raises(ValueError):
        demo.overlay(frame, colours, alpha=1.5)


def test_resize_nearest_keeps_colours(helpers):
    _, demo = helpers
    img = np.arange(6, dtype=np.uint8).reshape(2, 3)
    up = demo.resize_nearest(img, 6, 4)
    assert up.shape == (4, 6) and set(up.reshape(-1)) == set(range(6))
    assert (up[:2, :2] == 0).all() and (up[2:, 4:] == 5).all()


def test_camera_pipelines(helpers):
    _, demo = helpers
    csi = demo.csi_pipeline(sensor_id=1, capture_width=1280, capture_height=720, framerate=60,
                            flip_method=2)
    assert csi.startswith("nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM)")
    assert "width=(int)1280, height=(int)720, framerate=(fraction)60/1" in csi
    assert "nvvidconv flip-method=2" in csi and "format=(string)BGR" in csi
    assert csi.endswith("appsink drop=true max-buffers=1")
    usb = demo.usb_pipeline("/dev/video2", 640, 480, 30)
    assert usb.startswith("v4l2src device=/dev/video2 ! ")
    assert "appsink" in usb and "format=(string)BGR" in usb


def test_ppm_round_trip_and_image_reading(helpers, tmp_path):
    _, demo = helpers
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = str(tmp_path / "x.ppm")
    demo.write_ppm(path, rgb)
    assert (demo.read_image_rgb(path) == rgb).all()
    np.save(str(tmp_path / "x.npy"), rgb)
    assert (demo.read_image_rgb(str(tmp_path / "x.npy")) == rgb).all()
    np.save(str(tmp_path / "bad.npy"), rgb.astype(np.float32))
    with pytest.raises(ValueError):
        demo.read_image_rgb(str(tmp_path / "bad.npy"))
    with pytest.raises(ValueError):
        demo.read_image_rgb(str(tmp_path / "missing.png"))


def test_demo_without_opencv_says_what_to_install(mini_bundle):
    code = ("import demo\nfrom bisenet_trt.shared.errors import MissingDependencyError\n"
            "try:\n    demo.import_cv2()\nexcept MissingDependencyError as e:\n    print(e)\n")
    out = run_py(mini_bundle, code)
    assert "python3-opencv" in out.stdout


def test_write_prediction_without_opencv(mini_bundle, tmp_path):
    code = ("import demo, numpy as np\n"
            "img = np.zeros((4, 6, 3), np.uint8)\n"
            "labels = np.ones((4, 6), np.int32)\n"
            "print(demo.write_prediction(%r, 's', img, labels, [[0,0,0],[10,20,30]]))\n"
            % str(tmp_path))
    out = run_py(mini_bundle, code)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "s_labels.ppm").exists() and (tmp_path / "s_overlay.ppm").exists()
    head = (tmp_path / "s_labels.ppm").read_bytes()[:28]
    assert head == b"P6\n# bisenet-deploy\n6 4\n255\n"  # marked: a later run may replace it
    out = run_py(mini_bundle, "import demo\nprint(demo.read_ppm(%r).shape)\n"
                 % str(tmp_path / "s_labels.ppm"))
    assert out.stdout.strip() == "(4, 6, 3)", out.stderr


def test_readme_template_placeholders_are_known():
    from bisenet_deploy.jetson import bundle

    with open(os.path.join(TEMPLATES, "README.md"), encoding="utf-8") as f:
        text = f.read()
    values = {k: "x" for k in ("BUNDLE_NAME", "BUNDLE_TAR_WORD", "BUNDLE_DIR_WORD", "MODEL_STEM", "ONNX_FILE", "ARCH", "DATASET",
                               "NUM_CLASSES", "WEIGHTS", "INPUT_SIZE", "MODEL_SIZE", "CHANNEL_ORDER",
                               "OUTPUTS", "PRECISION",
                               "OTHER_PRECISION", "TOOLKIT_VERSION", "PARITY_FP32",
                               "PARITY_FP16")}
    rendered = bundle.render(text, values)
    assert "@" not in "".join(w for w in rendered.split() if w.startswith("@") and w.endswith("@"))
    for step in ("./setup_jetson.sh", "./build_engine.sh", "./bench.sh", "demo.py", "scp"):
        assert step in rendered
    from bisenet_deploy.errors import ExportError

    with pytest.raises(ExportError, match="@NOT_A_KEY@"):
        bundle.render("@NOT_A_KEY@", values)


def test_template_files_are_all_shipped():
    from bisenet_deploy.jetson import bundle

    present = [n for n in os.listdir(TEMPLATES)
               if not n.startswith(".") and os.path.isfile(os.path.join(TEMPLATES, n))]
    assert sorted(bundle.TEMPLATE_FILES) == sorted(present)
    assert json.loads(json.dumps(bundle.DEVICE))["tensorrt"] == "8.2"


def test_portable_apis_the_bundle_calls_exist():
    """jetson_run.py calls these portable functions on the device; a renamed parameter would only
    show there, so their signatures are pinned here."""
    import inspect

    from bisenet_deploy.portable.building import builder, trtexec
    from bisenet_deploy.portable.trt import engine_paths, sidecar
    from bisenet_deploy.portable.running import trt_runner

    params = inspect.signature(builder.BuildOptions).parameters
    for name in ("precision", "output", "workspace_mib", "timing_cache"):
        assert name in params, name
    assert list(inspect.signature(builder.build_engine).parameters)[:3] == [
        "onnx_path", "record", "options"]
    runner = inspect.signature(trt_runner.TensorRTRunner).parameters
    assert "zero_copy" in runner and "use_cuda_graph" in runner
    line = trtexec.build_command("8.2.1", "m.onnx", "m.engine", precision="fp16",
                                 workspace_mib=512, timing_cache=None, binary="/x/trtexec")
    assert line[0] == "/x/trtexec" and "--fp16" in line and "--workspace=512" in line
    assert engine_paths.sidecar_path("e/m-fp16.engine") == os.path.join("e", "m-fp16.json")
    make = inspect.signature(sidecar.make_sidecar).parameters
    for name in ("builder", "toolkit_version", "built_utc"):
        assert name in make, name
    assert callable(trt_runner.engine_io) and callable(sidecar.write_sidecar)
    from bisenet_deploy.portable.files import bundle_manifest
    from bisenet_deploy.portable.running import engine_load

    assert list(inspect.signature(engine_load.sidecar_from_engine).parameters)[:9] == [
        "trt", "engine_file", "engine_path", "gpu", "precision", "onnx_path", "record", "options",
        "seconds"]
    assert list(inspect.signature(bundle_manifest.verify_bundle).parameters) == ["bundle_dir"]
    assert list(inspect.signature(bundle_manifest.load_manifest).parameters) == ["bundle_dir"]
