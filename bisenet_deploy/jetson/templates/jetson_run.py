#!/usr/bin/env python3
"""Command line of a bisenet-deploy Jetson bundle: verify, check, build, bench, predict, demo.

This file is copied into the bundle as-is by `bisenet-export jetson`. It runs on a Jetson TX2 with
JetPack 4.6 as shipped: Python 3.6, numpy 1.19, the system TensorRT 8.2 and pycuda 2022.1. It
imports only the standard library, numpy and the bundle's own `bisenet_trt` package (the
toolkit's portable runtime, copied unchanged); tensorrt and pycuda are imported only by the
commands that need them, so `verify`, `check` and `--help` work before `setup_jetson.sh` ran.

    python jetson_run.py verify            every bundle file is intact (sha256 from manifest.json)
    python jetson_run.py check             versions of L4T, Python, numpy, TensorRT, pycuda, GPU
    python jetson_run.py build [--fp32]    engine + sidecar under engines/ (FP16 by default)
    python jetson_run.py bench             5000-iteration timing, reported like bisenet-bench
    python jetson_run.py predict [IMAGE]   label map of an image (default: the bundled sample)
    python jetson_run.py demo ...          live overlay on a video file or camera (see demo.py)
"""

import argparse
import datetime
import json
import logging
import os
import platform
import re
import subprocess
import sys
import time

BUNDLE_DIR = os.path.dirname(os.path.abspath(__file__))
if BUNDLE_DIR not in sys.path:
    sys.path.insert(0, BUNDLE_DIR)

from bisenet_trt import fileio  # noqa: E402
from bisenet_trt.errors import (  # noqa: E402
    EngineError,
    InputError,
    MissingDependencyError,
    ParityError,
    UserError,
)

log = logging.getLogger("bisenet_jetson")

MANIFEST_NAME = "manifest.json"
BUNDLE_FORMAT = "bisenet-deploy-jetson-bundle"
#: folders the device writes into; not part of the bundle's hashed content
DEVICE_FOLDERS = ("engines", "benchmarks", "predictions", ".venv")
TRTEXEC_JETSON = "/usr/src/tensorrt/bin/trtexec"
TEGRA_RELEASE_FILE = "/etc/nv_tegra_release"
NUMPY_HINT = ("run ./setup_jetson.sh (it installs numpy 1.19.4 into .venv) and use .venv/bin/python")
#: L4T release -> JetPack, for the releases a TX2 can run (JetPack 4.6.x is the last for the TX2)
L4T_TO_JETPACK = {
    (32, 6): "4.6",
    (32, 7): "4.6.1 or later 4.6.x",
    (32, 5): "4.5",
    (32, 4): "4.4",
}
#: identical-label share the engine must reach against the desktop ONNX Runtime labels
PARITY_MIN_IDENTICAL = {"fp32": 0.999, "fp16": 0.98}


def numpy():
    """numpy, imported when a command needs it: `verify` and `check` run on a bare python3."""
    try:
        import numpy as np
    except ImportError:
        raise MissingDependencyError("numpy is not importable: " + NUMPY_HINT) from None
    return np


def prepare_input(images, record, image_channel_order="rgb"):
    """The toolkit's host preprocessing (bisenet_trt.preprocess), imported on first use."""
    numpy()
    from bisenet_trt.preprocess import prepare_input as prepare
    return prepare(images, record, image_channel_order=image_channel_order)


# -- the bundle ------------------------------------------------------------------------------------

def load_manifest(bundle_dir=BUNDLE_DIR):
    path = os.path.join(bundle_dir, MANIFEST_NAME)
    try:
        with open(path, "r") as f:
            manifest = json.load(f)
    except (IOError, OSError):
        raise UserError("%s not found: run this from an unpacked bisenet-deploy Jetson bundle "
                        "(tar -xzf BUNDLE.tar.gz, then cd into the folder)" % path) from None
    except ValueError as exc:
        raise UserError("%s is not valid JSON (%s): copy the bundle again" % (path, exc)) from None
    if manifest.get("format") != BUNDLE_FORMAT:
        raise UserError("%s is not a bisenet-deploy Jetson bundle manifest" % path)
    return manifest


def model_paths(manifest, bundle_dir=BUNDLE_DIR):
    """(onnx path, metadata record) of the bundled model."""
    model = manifest["model"]
    onnx_path = os.path.join(bundle_dir, model["onnx"])
    with open(os.path.join(bundle_dir, model["record"]), "r") as f:
        record = json.load(f)["record"]
    return onnx_path, record


def verify_bundle(bundle_dir=BUNDLE_DIR):
    """Problems found comparing the bundle's files with the sha256 list of its manifest."""
    manifest = load_manifest(bundle_dir)
    problems = []
    for rel, entry in sorted(manifest["files"].items()):
        path = os.path.join(bundle_dir, rel)
        if not os.path.isfile(path):
            problems.append("missing: %s" % rel)
        elif fileio.sha256_file(path) != entry["sha256"]:
            problems.append("changed or truncated: %s (sha256 differs from the manifest)" % rel)
    return problems


# -- environment -------------------------------------------------------------------------------

def parse_tegra_release(text):
    """'# R32 (release), REVISION: 6.1, ...' -> (32, 6, 1); None when the text is not one."""
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*(\d+)(?:\.(\d+))?", text)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def jetpack_for(release):
    if release is None:
        return None
    return L4T_TO_JETPACK.get((release[0], release[1]))


def read_tegra_release(path=TEGRA_RELEASE_FILE):
    try:
        with open(path, "r") as f:
            return parse_tegra_release(f.read())
    except (IOError, OSError):
        return None


def environment_checks():
    """List of (item, found, ok, what to do) for the person at the device."""
    rows = []
    release = read_tegra_release()
    if release is None:
        rows.append(("L4T / JetPack", "not a Jetson (no %s)" % TEGRA_RELEASE_FILE, False,
                     "run this bundle on the Jetson TX2 itself; engines must be built there"))
    else:
        jp = jetpack_for(release)
        found = "L4T R%d.%d.%d (JetPack %s)" % (release + (jp or "unknown",))
        ok = release[0] == 32 and release[1] >= 6
        rows.append(("L4T / JetPack", found, ok,
                     "" if ok else "this bundle targets JetPack 4.6 (L4T R32.6/R32.7): flash "
                     "JetPack 4.6.x with NVIDIA SDK Manager"))
    py = sys.version_info
    rows.append(("Python", "%d.%d.%d" % (py[0], py[1], py[2]), py[:2] >= (3, 6),
                 "" if py[:2] >= (3, 6) else "use the system python3 (3.6) of JetPack 4.6"))
    try:
        np = numpy()
        nv = tuple(int(p) for p in re.findall(r"\d+", np.__version__)[:2])
        rows.append(("numpy", np.__version__, nv >= (1, 19), "" if nv >= (1, 19) else NUMPY_HINT))
    except MissingDependencyError:
        rows.append(("numpy", "not importable", False, NUMPY_HINT))
    try:
        from bisenet_trt.flavours import import_tensorrt
        trt_version = import_tensorrt("tensorrt").__version__
        ok = trt_version.split(".")[:2] == ["8", "2"]
        rows.append(("TensorRT", trt_version, True,
                     "" if ok else "not the 8.2 of JetPack 4.6: engines still build on the "
                     "device, but this combination is untested"))
    except (ImportError, MissingDependencyError) as exc:
        rows.append(("TensorRT", "not importable (%s)" % exc, False,
                     "sudo apt-get install python3-libnvinfer (JetPack), and use the .venv that "
                     "setup_jetson.sh made with --system-site-packages"))
    try:
        import pycuda
        import pycuda.driver as cuda
        cuda.init()
        rows.append(("pycuda", getattr(pycuda, "VERSION_TEXT", "?"), True, ""))
        if cuda.Device.count() < 1:
            rows.append(("GPU", "none visible", False, "check that the user is in the 'video' "
                         "group and that /dev/nvhost-* exist"))
        else:
            dev = cuda.Device(0)
            cc = dev.compute_capability()
            rows.append(("GPU", "%s (SM %d.%d, %d MiB)" % (dev.name(), cc[0], cc[1],
                                                            dev.total_memory() // (1 << 20)),
                         True, ""))
    except ImportError as exc:
        rows.append(("pycuda", "not importable (%s)" % exc, False,
                     "run ./setup_jetson.sh (builds pycuda 2022.1 against /usr/local/cuda)"))
    except Exception as exc:  # pycuda.driver.Error and friends
        rows.append(("GPU", "CUDA initialisation failed (%s)" % exc, False,
                     "check the user is in the 'video' group; reboot if the GPU driver is stuck"))
    return rows


def power_state():
    """The nvpmodel mode recorded by bench.sh (or queried now), for the benchmark report."""
    state = {"nvpmodel": os.environ.get("BISENET_NVPMODEL") or None,
             "jetson_clocks": os.environ.get("BISENET_JETSON_CLOCKS") or None}
    if state["nvpmodel"] is None:
        try:
            out = subprocess.check_output(["nvpmodel", "-q"], stderr=subprocess.STDOUT,
                                          universal_newlines=True, timeout=10)
            state["nvpmodel"] = " ".join(out.split())
        except Exception:  # not a Jetson, or nvpmodel needs root here
            pass
    return state


# -- engines -----------------------------------------------------------------------------------

def default_precision(manifest):
    return manifest.get("build_defaults", {}).get("precision", "fp16")


def default_engine_path(manifest, precision, bundle_dir=BUNDLE_DIR):
    stem = os.path.splitext(os.path.basename(manifest["model"]["onnx"]))[0]
    return os.path.join(bundle_dir, "engines", "%s-%s.engine" % (stem, precision))


def find_engine(manifest, requested=None):
    """The engine to run: the one given, else the default precision's, else any built one."""
    if requested:
        if not os.path.isfile(requested):
            raise UserError("engine %s not found: build it with ./build_engine.sh" % requested)
        return requested
    candidates = [default_engine_path(manifest, default_precision(manifest))]
    candidates += [default_engine_path(manifest, p) for p in ("fp16", "fp32")]
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise UserError("no engine built yet in %s: run ./build_engine.sh first"
                    % os.path.join(BUNDLE_DIR, "engines"))


def open_runner(engine_path, zero_copy=False, use_cuda_graph=False):
    """The bundle's TensorRT runner (pycuda), with the sidecar checks of the desktop runtime."""
    from bisenet_trt import trt_runner
    return trt_runner.TensorRTRunner(engine_path, zero_copy=zero_copy,
                                     use_cuda_graph=use_cuda_graph)


def runner_record(runner, fallback):
    return runner.metadata if getattr(runner, "metadata", None) else fallback


def load_sample(manifest, bundle_dir=BUNDLE_DIR):
    """(uint8 RGB image at the graph's input size, reference labels from ONNX Runtime or None)."""
    sample = manifest["model"].get("sample")
    if not sample:
        raise UserError("this bundle carries no sample image: pass an image file")
    data = numpy().load(os.path.join(bundle_dir, sample))
    labels = data["labels"] if "labels" in data.files else None
    return data["image"], labels


def label_parity(labels, reference):
    """Share of identical labels between the engine's and the desktop's label maps."""
    np = numpy()
    labels = np.asarray(labels).reshape(-1)
    reference = np.asarray(reference).reshape(-1)
    if labels.shape != reference.shape:
        raise InputError("label maps differ in size: %s vs %s" % (labels.shape, reference.shape))
    return float(np.mean(labels.astype(np.int64) == reference.astype(np.int64)))


def check_parity(manifest, engine_path, record, zero_copy=False):
    """Run the bundled sample through the engine and compare with the desktop labels."""
    image, reference = load_sample(manifest)
    if reference is None:
        return None
    with open_runner(engine_path, zero_copy=zero_copy) as runner:
        rec = runner_record(runner, record)
        outputs = runner.infer(prepare_input(image, rec))
    labels = outputs["labels"][0]
    return label_parity(labels, reference)


def precision_of(engine_path, manifest):
    from bisenet_trt.engine_paths import sidecar_path
    try:
        with open(sidecar_path(engine_path), "r") as f:
            return json.load(f).get("precision") or default_precision(manifest)
    except (IOError, OSError, ValueError):
        return default_precision(manifest)


def report_parity(share, precision, record):
    """Log the parity figure; True when it passes (or cannot be judged on random weights)."""
    need = PARITY_MIN_IDENTICAL.get(precision, PARITY_MIN_IDENTICAL["fp16"])
    passed = share >= need
    random_weights = record.get("model", {}).get("weights") == "random-init"
    log.info("parity with the desktop (ONNX Runtime) on the bundled sample: %.3f%% identical "
             "labels (%s needs >= %.1f%%)", 100.0 * share, precision, 100.0 * need)
    if not passed and random_weights:
        log.warning("below the threshold, but the model has random weights (near-tie scores "
                    "flip easily): not judged; export a trained checkpoint for a real check")
        return True
    return passed


# -- commands ----------------------------------------------------------------------------------

def cmd_verify(args):
    problems = verify_bundle()
    manifest = load_manifest()
    if problems:
        for p in problems:
            print("  " + p)
        raise UserError("%d bundle file(s) do not match manifest.json: copy the bundle again "
                        "(scp the .tar.gz and unpack it with tar -xzf)" % len(problems))
    print("bundle OK: %d files match manifest.json (toolkit %s, model %s)"
          % (len(manifest["files"]), manifest.get("toolkit_version"),
             manifest["model"]["onnx"]))
    return 0


def cmd_check(args):
    rows = environment_checks()
    width = max(len(r[0]) for r in rows)
    bad = 0
    for item, found, ok, fix in rows:
        print("%s  %-*s  %s" % ("ok " if ok else "BAD", width, item, found))
        if fix:
            print("      -> %s" % fix)
        bad += 0 if ok else 1
    if bad:
        raise UserError("%d environment problem(s), see the lines marked BAD above" % bad)
    print("environment OK")
    return 0


def cmd_build(args):
    manifest = load_manifest()
    onnx_path, record = model_paths(manifest)
    precision = args.precision or default_precision(manifest)
    engine_path = os.path.abspath(args.output or default_engine_path(manifest, precision))
    from bisenet_trt.ownership import check_replaceable
    # without --force nothing is replaced; with it only an engine with the toolkit's sidecar
    check_replaceable(engine_path, "engine", force=args.force)
    os.makedirs(os.path.dirname(engine_path), exist_ok=True)
    started = time.time()
    if args.trtexec:
        build_with_trtexec(onnx_path, record, engine_path, precision, args)
    else:
        build_with_builder(onnx_path, record, engine_path, precision, args)
    print("engine: %s (%s, built in %.0f s)" % (engine_path, precision, time.time() - started))
    from bisenet_trt.engine_paths import sidecar_path
    print("sidecar: %s" % sidecar_path(engine_path))
    if args.no_parity:
        return 0
    share = check_parity(manifest, engine_path, record)
    if share is None:
        return 0
    print("parity with the desktop ONNX Runtime labels: %.3f%% identical" % (100.0 * share))
    if not report_parity(share, precision, record):
        raise ParityError("the engine's labels differ from the desktop's on the bundled sample "
                          "(%.3f%% identical): rebuild with --fp32 to see whether FP16 is the "
                          "cause" % (100.0 * share))
    return 0


def build_with_builder(onnx_path, record, engine_path, precision, args):
    """The toolkit's own builder (bisenet_trt.builder), as bisenet-build-engine uses it."""
    from bisenet_trt import builder
    options = builder.BuildOptions(precision=precision, output=engine_path,
                                   workspace_mib=args.workspace, timing_cache=args.timing_cache,
                                   flavour="tensorrt")
    return builder.build_engine(onnx_path, record, options)


def build_with_trtexec(onnx_path, record, engine_path, precision, args):
    """NVIDIA's trtexec builds the engine; our sidecar is then written from the engine itself."""
    from bisenet_trt import trtexec
    from bisenet_trt.flavours import import_tensorrt
    trt = import_tensorrt("tensorrt")
    exe = args.trtexec_path
    if not os.path.isfile(exe):
        raise UserError("%s not found: install it with `sudo apt-get install libnvinfer-bin` "
                        "(part of JetPack) or build without --trtexec" % exe)
    started = time.time()
    with fileio.atomic_output(engine_path) as tmp:
        line = trtexec.build_command(trt.__version__, onnx_path, tmp, precision=precision,
                                     workspace_mib=args.workspace,
                                     timing_cache=args.timing_cache, binary=exe)
        print("running: " + trtexec.format_command(line))
        rc = subprocess.call([str(a) for a in line])
        if rc != 0 or not os.path.isfile(tmp) or os.path.getsize(tmp) == 0:
            raise EngineError("trtexec failed (exit %d): read its output above; the usual causes "
                              "are too little memory (close other programs, or --workspace 512) "
                              "or an ONNX exported for another target than trt8.2" % rc)
        shown = [engine_path if a == tmp else a for a in line]
        shown = [a.replace(tmp, engine_path) for a in shown]
        sidecar = sidecar_from_engine(trt, tmp, engine_path, onnx_path, record, precision,
                                      time.time() - started,
                                      {"precision": precision, "workspace_mib": args.workspace,
                                       "timing_cache": args.timing_cache,
                                       "trtexec": trtexec.format_command(shown)})
        from bisenet_trt.sidecar import write_sidecar
        write_sidecar(engine_path, sidecar)
    return sidecar


def sidecar_from_engine(trt, engine_file, engine_path, onnx_path, record, precision, seconds,
                        options):
    """The same sidecar our builder writes, read off an engine another tool built."""
    from bisenet_trt import sidecar as sidecar_mod
    from bisenet_trt.gpu_info import query_gpu
    from bisenet_trt.trt_api import api_generation
    from bisenet_trt.trt_runner import engine_io
    with open(engine_file, "rb") as f:
        blob = f.read()
    from bisenet_trt.trt_logger import tensorrt_logger
    runtime = trt.Runtime(tensorrt_logger(trt))
    engine = runtime.deserialize_cuda_engine(blob)
    if engine is None:
        raise EngineError("TensorRT cannot load the engine trtexec wrote (%s)" % engine_file)
    io, profiles = [], []
    for t in engine_io(engine, trt):
        io.append(sidecar_mod.tensor_entry(t.name, "input" if t.is_input else "output",
                                           t.shape, t.dtype.name))
        if t.is_input and t.profile is not None:
            profiles.append(sidecar_mod.profile_entry(t.name, *t.profile))
    del engine
    gpu = query_gpu(0)
    return sidecar_mod.make_sidecar(
        engine_path, fileio.sha256_bytes(blob), len(blob), trt.__version__, api_generation(trt),
        gpu.as_dict(), precision, io, profiles, onnx_path, fileio.sha256_file(onnx_path), record,
        options, seconds, builder="trtexec", toolkit_version=record.get("toolkit_version"),
        built_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def default_warmup(iters):
    """bisenet-bench's default: 5% of the timed calls, at least 3, at most 50."""
    return min(50, max(3, int(iters) // 20))


def cmd_bench(args):
    np = numpy()
    from bisenet_trt import timing_stats
    manifest = load_manifest()
    onnx_path, record = model_paths(manifest)
    engine_path = find_engine(manifest, args.engine)
    image, _ = load_sample(manifest)
    # distinct input buffers, rotated, so caches do not flatter the result (the sample and its
    # mirror images: BiSeNet's work does not depend on the pixel values)
    variants = [image, image[:, ::-1], image[::-1, :], image[::-1, ::-1]]
    variants = [variants[i % 4] for i in range(max(1, args.buffers))]
    iters = int(args.iters)
    warmup = default_warmup(iters) if args.warmup is None else int(args.warmup)
    if iters < 1 or warmup < 0 or args.batch < 1:
        raise InputError("--iters and --batch must be >= 1 and --warmup >= 0")
    with open_runner(engine_path, zero_copy=args.zero_copy,
                     use_cuda_graph=args.cuda_graph) as runner:
        rec = runner_record(runner, record)
        batches = [prepare_input([np.ascontiguousarray(v)] * args.batch, rec) for v in variants]
        for i in range(warmup):
            runner.infer(batches[i % len(batches)])
        check = runner.infer(batches[0])
        for name, value in check.items():
            if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
                raise EngineError("output %r has NaN/Inf values after warm-up: the engine is "
                                  "broken (FP16 overflow?): rebuild with --fp32" % name)
        latencies, device = [], []
        phases = dict((k, []) for k in ("h2d", "compute", "d2h"))  # CUDA events per part
        step = max(1, iters // 20)
        for i in range(iters):
            batch = batches[i % len(batches)]
            t0 = time.perf_counter()
            runner.infer(batch)
            latencies.append((time.perf_counter() - t0) * 1000.0)
            dev = runner.last_device_time_ms()
            if dev is not None:
                device.append(dev)
            for name, ms in (runner.last_phase_times_ms() or {}).items():
                phases[name].append(ms)
            if not args.quiet and (i + 1) % step == 0:
                sys.stderr.write("\r  %d/%d" % (i + 1, iters))
                sys.stderr.flush()
        if not args.quiet:
            sys.stderr.write("\n")
        describe = runner.describe()
    e2e = timing_stats.summarize(latencies, batch=args.batch)
    dev_stats = timing_stats.summarize(device, batch=args.batch) if device else None
    phase_stats = dict((k, timing_stats.summarize(v, batch=args.batch)) for k, v in
                       phases.items()) if all(len(v) == iters for v in phases.values()) else None
    export = record["export"]
    print("bisenet-deploy Jetson bench: %s" % os.path.basename(engine_path))
    print("runner: %s" % describe)
    print("input %dx%d -> network %dx%d, batch %d, %d iterations after %d warm-up"
          % (export["input_size"][0], export["input_size"][1], export["model_size"][0],
             export["model_size"][1], args.batch, iters, warmup))
    print(timing_stats.format_summary(e2e, "end-to-end (host input -> host labels)"))
    if dev_stats:
        print(timing_stats.format_summary(dev_stats, "device compute (CUDA events)"))
    if phase_stats:
        print("copies and compute (CUDA events), median: h2d %.3f ms, compute %.3f ms, d2h %.3f "
              "ms" % tuple(phase_stats[k]["median_ms"] for k in ("h2d", "compute", "d2h")))
    for summary, what in ((e2e, "end-to-end latency"), (dev_stats, "device time")):
        warning = timing_stats.stability_warning(summary, what) if summary else None
        if warning:
            log.warning(warning)
    report = {
        "schema": 1,
        "kind": "bisenet-jetson-bench",
        "created_utc": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "engine": os.path.relpath(engine_path, BUNDLE_DIR),
        "runner": describe,
        "zero_copy": bool(args.zero_copy),
        "cuda_graph": bool(args.cuda_graph),
        "iterations": iters,
        "warmup": warmup,
        "buffers": len(variants),
        "batch": args.batch,
        "what_is_timed": "runner.infer: host float32 input -> H2D -> engine (in-graph resize, "
                         "network, resize of the logits back to the input size, argmax) -> D2H "
                         "labels; host preprocessing excluded",
        "end_to_end": e2e,
        "device_compute": dev_stats,
        "phases": phase_stats,
        "environment": {
            "machine": platform.machine(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "l4t": ".".join(str(v) for v in (read_tegra_release() or ())) or None,
            "power": power_state(),
        },
        "record": record,
    }
    from bisenet_trt.engine_paths import sidecar_path
    if os.path.isfile(sidecar_path(engine_path)):
        with open(sidecar_path(engine_path), "r") as f:
            report["sidecar"] = json.load(f)
    out = args.json or os.path.join(
        BUNDLE_DIR, "benchmarks", "%s-%s.json" % (
            os.path.splitext(os.path.basename(engine_path))[0],
            datetime.datetime.utcnow().strftime("%Y%m%d-%H%M%S")))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fileio.write_json_atomic(out, report)
    print("report: %s" % out)
    return 0


def cmd_predict(args):
    np = numpy()
    manifest = load_manifest()
    _, record = model_paths(manifest)
    engine_path = find_engine(manifest, args.engine)
    import demo
    reference = None
    if args.image:
        image = demo.read_image_rgb(args.image)
        name = os.path.splitext(os.path.basename(args.image))[0]
    else:
        image, reference = load_sample(manifest)
        name = "sample"
    with open_runner(engine_path, zero_copy=args.zero_copy) as runner:
        rec = runner_record(runner, record)
        batch = prepare_input(image, rec)
        runner.infer(batch)  # first call pays for lazy initialisation
        t0 = time.perf_counter()
        labels = runner.infer(batch)["labels"][0]
        ms = (time.perf_counter() - t0) * 1000.0
    names = rec["model"]["class_names"]
    counts = np.bincount(labels.reshape(-1).astype(np.int64), minlength=len(names))
    print("%s: %dx%d labels in %.1f ms" % (name, labels.shape[1], labels.shape[0], ms))
    for cls in np.argsort(-counts)[:5]:
        if counts[cls]:
            print("  %-16s %5.1f%%" % (names[cls], 100.0 * counts[cls] / labels.size))
    out_dir = args.output or os.path.join(BUNDLE_DIR, "predictions")
    os.makedirs(out_dir, exist_ok=True)
    written = demo.write_prediction(out_dir, name, image, labels, rec["model"]["palette"])
    for path in written:
        print("wrote %s" % path)
    if reference is not None:
        share = label_parity(labels, reference)
        precision = precision_of(engine_path, manifest)
        print("parity with the desktop ONNX Runtime labels: %.3f%% identical" % (100.0 * share))
        if not report_parity(share, precision, rec):
            raise ParityError("the engine's labels differ from the desktop's (%.3f%% identical)"
                              % (100.0 * share))
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="jetson_run.py",
        description="bisenet-deploy Jetson bundle: verify, check, build the engine, benchmark, "
                    "predict and run the camera/video demo.")
    parser.add_argument("-v", "--verbose", action="store_true", help="more detail in the log")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    p = sub.add_parser("verify", help="check every bundle file against manifest.json")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("check", help="check L4T/JetPack, Python, numpy, TensorRT, pycuda, GPU")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("build", help="build the TensorRT engine on this device (FP16 default)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--fp16", dest="precision", action="store_const", const="fp16",
                       help="FP16 engine (the bundle's default: full rate on the TX2)")
    group.add_argument("--fp32", dest="precision", action="store_const", const="fp32",
                       help="FP32 engine (the paper's other TX2 figure; slower)")
    p.add_argument("--trtexec", action="store_true",
                   help="build with NVIDIA's trtexec instead of the bundle's builder")
    p.add_argument("--trtexec-path", default=TRTEXEC_JETSON, help="default: %(default)s")
    p.add_argument("--workspace", type=int, default=1024, metavar="MiB",
                   help="builder scratch memory (default: %(default)s; the TX2 shares 8 GB "
                        "between CPU and GPU)")
    p.add_argument("--timing-cache", default=None, metavar="PATH",
                   help="timing cache file, read and written back (speeds up rebuilds)")
    p.add_argument("-o", "--output", default=None, metavar="ENGINE",
                   help="engine path (default: engines/<model>-<precision>.engine)")
    p.add_argument("--force", action="store_true", help="replace an existing engine")
    p.add_argument("--no-parity", action="store_true",
                   help="skip the comparison with the desktop labels after the build")
    p.set_defaults(func=cmd_build, precision=None)

    p = sub.add_parser("bench", help="time the engine like bisenet-bench (5000 iterations)")
    p.add_argument("--engine", default=None, help="default: the engine build_engine.sh made")
    p.add_argument("--iters", type=int, default=5000, help="timed iterations (%(default)s)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed calls first (default: 5%% of --iters, 3..50, as bisenet-bench)")
    p.add_argument("--batch", type=int, default=1,
                   help="images per call (%(default)s; the bundle's graph has a static batch of 1)")
    p.add_argument("--buffers", type=int, default=4,
                   help="distinct input buffers rotated through (%(default)s)")
    p.add_argument("--zero-copy", action="store_true",
                   help="host-mapped buffers shared by CPU and GPU (no H2D/D2H copies)")
    p.add_argument("--cuda-graph", action="store_true",
                   help="capture the enqueue in a CUDA graph (less CPU launch overhead; needs "
                        "cuda-python, which JetPack 4.6's Python 3.6 lacks)")
    p.add_argument("--json", default=None, help="report path (default: benchmarks/...)")
    p.add_argument("--quiet", action="store_true", help="no progress counter")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("predict", help="segment one image (default: the bundled sample)")
    p.add_argument("image", nargs="?", default=None,
                   help="image file (needs OpenCV; .npy/.ppm work without it)")
    p.add_argument("--engine", default=None, help="default: the engine build_engine.sh made")
    p.add_argument("-o", "--output", default=None, help="folder (default: predictions/)")
    p.add_argument("--zero-copy", action="store_true", help="host-mapped buffers")
    p.set_defaults(func=cmd_predict)

    # handled in main(): `jetson_run.py demo ARGS` is `demo.py ARGS`
    sub.add_parser("demo", help="live overlay on a video file or a CSI/USB camera (the options "
                                "of demo.py: jetson_run.py demo --help)")
    return parser


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["demo"]:
        # everything after `demo` belongs to demo.py (argparse's REMAINDER cannot take options)
        import demo
        return demo.main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(message)s")
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except UserError as exc:
        sys.stderr.write("error: %s\n" % exc)
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
