#!/usr/bin/env python3
"""Live segmentation demo of a bisenet-deploy Jetson bundle: video file, CSI or USB camera.

Frames come from OpenCV (JetPack 4.6 ships OpenCV 4.1 with GStreamer for the system python3);
a CSI camera is read through an `nvarguscamerasrc` GStreamer pipeline, a USB camera through V4L2,
or any pipeline string you pass with --pipeline. Each frame is prepared on the host exactly as
the exported model expects (bisenet_trt.running.preprocess.prepare_input), segmented by the TensorRT
engine, and drawn with the class palette over the picture, with the frame rate.

    python3 demo.py --video street.mp4 --output overlay.mp4 --no-display
    python3 demo.py --camera csi --sensor-id 0
    python3 demo.py --camera usb --device /dev/video1
    python3 demo.py --pipeline "videotestsrc ! videoconvert ! video/x-raw,format=BGR ! appsink"

This is the only file of the bundle that uses OpenCV (cv2), imported lazily; the pure helpers
(pipelines, colours, overlay, PPM writing) need only numpy and are unit-tested on the desktop.
"""

import sys

# the bundle's commands leave no __pycache__ in it (it stays exactly what its manifest lists)
sys.dont_write_bytecode = True

import argparse  # noqa: E402
import contextlib  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

BUNDLE_DIR = os.path.dirname(os.path.abspath(__file__))
if BUNDLE_DIR not in sys.path:
    sys.path.insert(0, BUNDLE_DIR)

import numpy as np  # noqa: E402

from bisenet_trt.shared.errors import (InputError, MissingDependencyError, ParityError,  # noqa: E402
                                UserError)
from bisenet_trt.running.preprocess import prepare_input  # noqa: E402
from bisenet_trt.files.fileio import atomic_output, check_writable  # noqa: E402
from bisenet_trt.files.ownership import (check_replaceable, marked_png, ppm_header,  # noqa: E402
                                         video_mark)

log = logging.getLogger("bisenet_jetson.demo")


# -- pure helpers (numpy only) -------------------------------------------------------------------

def csi_pipeline(sensor_id=0, capture_width=1920, capture_height=1080, framerate=30,
                 width=None, height=None, flip_method=0):
    """GStreamer pipeline string for a CSI camera (nvarguscamerasrc) ending in BGR appsink.

    The ISP delivers NV12 in NVMM memory; nvvidconv scales it to width x height (default: the
    capture size) and converts to BGRx, videoconvert to the BGR OpenCV reads. `drop=true` with one
    buffer keeps the newest frame, so a slow model never works on stale frames.
    """
    width = int(width or capture_width)
    height = int(height or capture_height)
    return ("nvarguscamerasrc sensor-id=%d ! "
            "video/x-raw(memory:NVMM), width=(int)%d, height=(int)%d, framerate=(fraction)%d/1, "
            "format=(string)NV12 ! "
            "nvvidconv flip-method=%d ! "
            "video/x-raw, width=(int)%d, height=(int)%d, format=(string)BGRx ! "
            "videoconvert ! video/x-raw, format=(string)BGR ! "
            "appsink drop=true max-buffers=1"
            % (int(sensor_id), int(capture_width), int(capture_height), int(framerate),
               int(flip_method), width, height))


def usb_pipeline(device="/dev/video0", width=1280, height=720, framerate=30):
    """GStreamer pipeline string for a USB (V4L2) camera ending in BGR appsink."""
    return ("v4l2src device=%s ! "
            "video/x-raw, width=(int)%d, height=(int)%d, framerate=(fraction)%d/1 ! "
            "videoconvert ! video/x-raw, format=(string)BGR ! "
            "appsink drop=true max-buffers=1"
            % (device, int(width), int(height), int(framerate)))


def colorize(labels, palette):
    """H x W class ids -> H x W x 3 uint8 colours (palette order: RGB). Unknown ids are black."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise InputError("labels must be H x W, got shape %s" % (labels.shape,))
    table = np.zeros((256, 3), dtype=np.uint8)
    colours = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)[:256]
    table[:len(colours)] = colours
    ids = labels.astype(np.int64)
    ids = np.where((ids >= 0) & (ids < len(colours)), ids, 255 if len(colours) < 256 else 0)
    return table[ids]


def resize_nearest(image, width, height):
    """Nearest-neighbour resize of an H x W (x C) array: class colours stay exact."""
    in_h, in_w = image.shape[0], image.shape[1]
    if (in_w, in_h) == (width, height):
        return image
    ys = np.minimum((np.arange(height) + 0.5) * in_h / float(height), in_h - 1).astype(np.int64)
    xs = np.minimum((np.arange(width) + 0.5) * in_w / float(width), in_w - 1).astype(np.int64)
    return image[ys][:, xs]


def overlay(frame, colours, alpha=0.5):
    """Blend the colour map over the frame (both H x W x 3 uint8, same channel order)."""
    if not 0.0 <= alpha <= 1.0:  # also checked for the live loop in main()
        raise InputError("--alpha must be within 0..1, got %s" % alpha)
    colours = resize_nearest(colours, frame.shape[1], frame.shape[0])
    mixed = frame.astype(np.float32) * (1.0 - alpha) + colours.astype(np.float32) * alpha
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def write_ppm(path, rgb):
    """Write an H x W x 3 uint8 RGB image as binary PPM (readable everywhere, no OpenCV needed)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(ppm_header(rgb.shape[1], rgb.shape[0]))  # marked: a later run may replace it
        f.write(rgb.tobytes())


def read_ppm(path):
    with open(path, "rb") as f:
        data = f.read()
    fields, pos = [], 0
    while len(fields) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    if fields[0] != b"P6" or int(fields[3]) != 255:
        raise InputError("%s is not an 8-bit binary PPM (P6)" % path)
    width, height = int(fields[1]), int(fields[2])
    pixels = np.frombuffer(data[pos + 1:pos + 1 + width * height * 3], dtype=np.uint8)
    if pixels.size != width * height * 3:
        raise InputError("%s is truncated" % path)
    return pixels.reshape(height, width, 3).copy()


def import_cv2():
    try:
        import cv2
    except ImportError:
        raise MissingDependencyError(
            "OpenCV for Python is not importable: on JetPack 4.6 it comes with the system "
            "python3 (sudo apt-get install python3-opencv, or nvidia-jetpack); run from the "
            ".venv that setup_jetson.sh made (it sees the system packages)") from None
    return cv2


def read_image_rgb(path):
    """An image file as H x W x 3 uint8 RGB: .npy and .ppm without OpenCV, anything else with it."""
    if not os.path.isfile(path):
        raise InputError("image %s not found" % path)
    lower = path.lower()
    if lower.endswith(".npy"):
        image = np.load(path)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError("%s must hold an H x W x 3 uint8 RGB array" % path)
        return image
    if lower.endswith(".ppm"):
        return read_ppm(path)
    cv2 = import_cv2()
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError("OpenCV cannot read %s (not an image, or a format it lacks)" % path)
    return np.ascontiguousarray(bgr[:, :, ::-1])


def write_prediction(out_dir, name, image_rgb, labels, palette):
    """Colour map and overlay as PNG (with OpenCV) or PPM (without); returns the paths. Files
    already there are replaced only when this tool wrote them (marked), else nothing is written."""
    colours = colorize(labels, palette)
    mixed = overlay(image_rgb, colours)
    try:
        cv2 = import_cv2()
    except MissingDependencyError:
        cv2 = None
    kind = "png" if cv2 is not None else "ppm"
    paths = [os.path.join(out_dir, "%s_%s.%s" % (name, suffix, kind))
             for suffix in ("labels", "overlay")]
    for path in paths:
        check_replaceable(path, kind, option="-o")
    for path, rgb in zip(paths, (colours, mixed)):
        with atomic_output(path) as tmp:  # a new temporary name: nothing else is touched
            if cv2 is None:
                write_ppm(tmp, rgb)
            else:
                ok, data = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
                if not ok:
                    raise UserError("OpenCV could not write %s" % path)
                with open(tmp, "wb") as f:
                    f.write(marked_png(data.tobytes()))
    return paths


# -- the live loop ---------------------------------------------------------------------------------

def open_capture(args, input_size):
    """cv2.VideoCapture of the video file, camera or pipeline. A CSI camera's frames are scaled to
    the graph's input size by the Jetson's hardware converter (nvvidconv), not on the CPU."""
    cv2 = import_cv2()
    if args.video:
        if not os.path.isfile(args.video):
            raise InputError("video %s not found" % args.video)
        cap = cv2.VideoCapture(args.video)
        source = args.video
    else:
        if args.pipeline:
            pipeline = args.pipeline
        elif args.camera == "csi":
            pipeline = csi_pipeline(args.sensor_id, args.capture_width, args.capture_height,
                                    args.framerate, width=input_size[0], height=input_size[1],
                                    flip_method=args.flip_method)
        else:
            pipeline = usb_pipeline(args.device, args.capture_width, args.capture_height,
                                    args.framerate)
        info = cv2.getBuildInformation()
        gst_line = [line for line in info.splitlines() if "GStreamer" in line]
        if gst_line and "YES" not in gst_line[0]:
            raise MissingDependencyError(
                "this OpenCV was built without GStreamer (%s): use JetPack's own OpenCV "
                "(python3-opencv), not a pip opencv-python wheel" % gst_line[0].strip())
        log.info("GStreamer pipeline: %s", pipeline)
        cap = cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER)
        source = "camera"
    if not cap.isOpened():
        raise UserError(
            "cannot open %s: for a CSI camera check `ls /dev/video*` and that "
            "`gst-launch-1.0 nvarguscamerasrc num-buffers=30 ! fakesink` runs (restart "
            "nvargus-daemon: sudo systemctl restart nvargus-daemon); for a USB camera try "
            "--device /dev/videoN; for a file check the codec" % source)
    return cap


def predict(args):
    """`jetson_run.py predict`: one image (default: the bundled sample) through the engine, the
    label map and overlay written, the labels compared with the desktop's for the sample."""
    import jetson_model as bundled
    from jetson_parity import label_parity, precision_of, report_parity
    manifest = bundled.load_manifest()
    _, record = bundled.model_paths(manifest)
    engine_path = bundled.find_engine(manifest, args.engine)
    out_dir = args.output or os.path.join(BUNDLE_DIR, "predictions")
    check_writable(os.path.join(out_dir, "x.png"), "-o")  # a file there: one line, before work
    reference = None
    if args.image:
        image = read_image_rgb(args.image)
        name = os.path.splitext(os.path.basename(args.image))[0]
    else:
        image, reference = bundled.load_sample(manifest)
        name = "sample"
    with bundled.open_runner(engine_path, zero_copy=args.zero_copy) as runner:
        rec = bundled.runner_record(runner, record)
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
    os.makedirs(out_dir, exist_ok=True)
    for path in write_prediction(out_dir, name, image, labels, rec["model"]["palette"]):
        print("wrote %s" % path)
    if reference is not None:
        share = label_parity(labels, reference)
        precision = precision_of(engine_path, bundled.default_precision(manifest))
        print("parity with the desktop ONNX Runtime labels: %.3f%% identical" % (100.0 * share))
        if not report_parity(share, precision, rec):
            raise ParityError("the engine's labels differ from the desktop's (%.3f%% identical)"
                              % (100.0 * share))
    return 0


def run(args):
    import jetson_model as bundled
    cv2 = import_cv2()
    manifest = bundled.load_manifest()
    _, record = bundled.model_paths(manifest)
    engine_path = bundled.find_engine(manifest, args.engine)
    input_size = tuple(int(v) for v in record["export"]["input_size"])
    outputs, partial = contextlib.ExitStack(), None
    if args.output:  # written beside it, renamed once complete; replaces only our own video
        check_replaceable(args.output, "video", option="--output")
        partial = outputs.enter_context(atomic_output(args.output,
                                                      os.path.splitext(args.output)[1]))
    cap = open_capture(args, input_size)
    writer = None
    frames, started = 0, time.time()
    fps, interrupted = 0.0, False
    with outputs:
        try:
            with bundled.open_runner(engine_path, zero_copy=args.zero_copy) as runner:
                rec = bundled.runner_record(runner, record)
                palette_bgr = [list(reversed(c)) for c in rec["model"]["palette"]]
                while args.max_frames <= 0 or frames < args.max_frames:
                    ok, frame = cap.read()
                    if not ok or frame is None:
                        break
                    t0 = time.perf_counter()
                    if (frame.shape[1], frame.shape[0]) != input_size:
                        # the TX2's CPU is slow for prepare_input's exact numpy resize of every
                        # frame; OpenCV's bilinear resize samples the same half-pixel grid
                        frame = cv2.resize(frame, input_size, interpolation=cv2.INTER_LINEAR)
                    batch = prepare_input(frame, rec, image_channel_order="bgr")
                    labels = runner.infer(batch)["labels"][0]
                    dt = time.perf_counter() - t0
                    fps = 1.0 / dt if fps == 0.0 else 0.9 * fps + 0.1 / dt
                    colours = colorize(labels, palette_bgr)
                    shown = cv2.addWeighted(frame, 1.0 - args.alpha, colours, args.alpha, 0.0)
                    cv2.putText(shown, "%.1f FPS (%.1f ms)" % (fps, dt * 1000.0), (10, 30),
                                cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
                    if partial:
                        if writer is None:
                            writer = cv2.VideoWriter(partial, cv2.VideoWriter_fourcc(*"mp4v"),
                                                     float(args.framerate),
                                                     (shown.shape[1], shown.shape[0]))
                            if not writer.isOpened():
                                raise UserError("cannot write %s (try a .avi name)"
                                                % args.output)
                        writer.write(shown)
                    if not args.no_display:
                        cv2.imshow("bisenet-deploy", shown)
                        if cv2.waitKey(1) & 0xFF in (27, ord("q")):
                            break
                    frames += 1
        except KeyboardInterrupt:
            interrupted = True  # Ctrl-C is how a live demo ends: the video so far is kept
        finally:
            cap.release()
            if writer is not None:
                writer.release()
            if not args.no_display:
                cv2.destroyAllWindows()
        if partial and writer is None:
            raise UserError("no frame was read: %s not written" % args.output)
        if partial and os.path.splitext(partial)[1].lower() in (".mp4", ".m4v", ".mov"):
            with open(partial, "ab") as f:
                f.write(video_mark())  # a later run may replace it
    elapsed = max(time.time() - started, 1e-9)
    print("%d frames in %.1f s (%.1f FPS including capture and drawing)"
          % (frames, elapsed, frames / elapsed))
    if args.output:
        print("wrote %s" % args.output)
    if interrupted:
        raise KeyboardInterrupt
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="demo.py", description="Segment a video file or a CSI/USB camera live with the "
                                    "bundle's TensorRT engine and draw the overlay.")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--video", help="video file to segment")
    src.add_argument("--camera", choices=["csi", "usb"], help="CSI (nvarguscamerasrc) or USB")
    src.add_argument("--pipeline", help="your own GStreamer pipeline string ending in appsink")
    parser.add_argument("--sensor-id", type=int, default=0, help="CSI sensor (%(default)s)")
    parser.add_argument("--device", default="/dev/video0", help="USB camera (%(default)s)")
    parser.add_argument("--capture-width", type=int, default=1920)
    parser.add_argument("--capture-height", type=int, default=1080)
    parser.add_argument("--framerate", type=int, default=30)
    parser.add_argument("--flip-method", type=int, default=0, help="nvvidconv flip (0..7)")
    parser.add_argument("--engine", default=None, help="default: the engine build_engine.sh made")
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity (0..1)")
    parser.add_argument("--output", default=None, help="also write the overlay video (.mp4)")
    parser.add_argument("--no-display", action="store_true", help="no window (headless, ssh)")
    parser.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0: all)")
    parser.add_argument("--zero-copy", action="store_true", help="host-mapped buffers")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0.0 <= args.alpha <= 1.0:
        parser.error("--alpha must be within 0..1")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.no_display and not os.environ.get("DISPLAY"):
        log.warning("no DISPLAY: showing no window (run on the Jetson's desktop, or pass "
                    "--no-display --output out.mp4 over ssh)")
        args.no_display = True
    try:
        return run(args)
    except UserError as exc:
        sys.stderr.write("error: %s\n" % exc)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
