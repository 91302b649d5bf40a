"""Pictures a user looks at first: images, folders or videos -> colour label maps and overlays.

For an image `<stem>.<ext>` it writes `<stem>_labels.png` (the label map in the model's palette,
exactly the image's size: one colour per class, for tools and diffs) and `<stem>_overlay.png`
(that map blended over the image, with a legend of the classes present, class -> colour, to its
right; `legend=False` keeps it at the image's size); with `label_ids`, `<stem>_labelIds.png`
(Cityscapes label ids, see `cityscapes_official`) instead, so that the folder holds one prediction
per image, as the Cityscapes evaluation expects. A video gives `<stem>_overlay.mp4` and
`<stem>_labels.mp4` (needs OpenCV), without a legend: the frame size must stay constant. Every
inference is timed:
`infer_ms` is the runner's `infer` call on the prepared input (host -> host), `total_ms` adds
reading, preparation, resizing to the image size and colourising (not the PNG writing).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError, MissingDependencyError, UnusableFileError
from ..portable.files.fileio import atomic_output
from ..portable.files.image_io import check_not_special
from ..portable.shared.install_hints import pip_extra
from ..portable.shared.shell_words import quote_path
from ..portable.files.ownership import check_replaceable, is_ours, video_mark
from ..portable.running.preprocess import prepare_input
from ..progress import progress_bar
from ..runtime.api import pad_batch
from ..runtime.images import read_image
from .cityscapes_official import check_cityscapes_model, train_ids_to_label_ids
from .colorize import colorize, overlay, palette_from_record, write_png
from .datasets_io import IMAGE_EXTENSIONS
from .evaluate import labels_at
from .legend import with_legend, with_warning_band

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


def collect_inputs(paths: Sequence[str], videos: bool = True) -> List[str]:
    """Expand folders (images, and videos unless `videos` is False, sorted, not recursive);
    refuse missing and unknown files. In a folder, the pictures and videos bisenet-deploy wrote
    (marked, see portable.files.ownership) are outputs, never inputs: `bisenet-predict DIR -o DIR` run
    twice reads the same images both times. A broken link in a folder is kept: reading it
    fails, and it is skipped and listed like any unreadable image."""
    exts = IMAGE_EXTENSIONS + (VIDEO_EXTENSIONS if videos else ())
    kinds = f"images ({', '.join(IMAGE_EXTENSIONS)})" + (
        f" or videos ({', '.join(VIDEO_EXTENSIONS)})" if videos else "")
    found: List[str] = []
    for p in paths:
        if os.path.isdir(p):
            inside = sorted(os.path.join(p, f) for f in os.listdir(p)
                            if os.path.splitext(f)[1].lower() in exts and not f.startswith("."))
            ours = [f for f in inside if is_ours(f, "video" if is_video(f) else "png")]
            if ours:
                log.info("%s: %d picture(s)/video(s) bisenet-deploy wrote are outputs, not "
                         "inputs: not read", p, len(ours))
            inside = [f for f in inside if f not in ours]
            if not inside:
                raise InputError(f"folder {p} holds no {kinds}" + (
                    " (only pictures bisenet-deploy wrote)" if ours else ""))
            found.extend(inside)
        elif os.path.lexists(p):  # a file, or a broken link, FIFO or device: reading it says
            ext = os.path.splitext(p)[1].lower()  # so (exit 5 alone, or skipped and listed)
            if ext not in exts:
                raise InputError(f"{p}: unsupported file type {ext or '(none)'}; give {kinds}")
            found.append(p)
        else:
            raise InputError(f"input {p} does not exist")
    if not found:
        raise InputError("no inputs given")
    return found


def is_video(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def _unique_stem(path: str, used: Dict[str, int]) -> str:
    stem = os.path.splitext(os.path.basename(path))[0]
    n = used.get(stem, 0)
    used[stem] = n + 1
    return stem if n == 0 else f"{stem}_{n + 1}"


def plan_outputs(inputs: Sequence[str], outdir: str, kinds: Sequence[str] = ("labels", "overlay")
                 ) -> List[Tuple[str, Dict[str, str]]]:
    """(input, {kind: path}) for every input, in order (kinds "labels" and "overlay", or
    "labelIds"): PNGs for an image, MP4s for a video; inputs with the same stem get _2, _3...
    suffixes."""
    used: Dict[str, int] = {}
    plan = []
    for path in inputs:
        stem = _unique_stem(path, used)
        ext = ".mp4" if is_video(path) else ".png"
        plan.append((path, {kind: os.path.join(outdir, f"{stem}_{kind}{ext}")
                            for kind in kinds}))
    return plan


def check_outputs(plan: Sequence[Tuple[str, Dict[str, str]]]) -> None:
    """Refuse, before any inference, to write over a file this tool did not write (a user's own
    picture or video of the same name): see portable.files.ownership."""
    for path, outputs in plan:
        for target in outputs.values():
            check_replaceable(target, "video" if is_video(path) else "png", option="-o")


def predict_image(runner, image: np.ndarray, palette, alpha: float = 0.5) -> Dict[str, Any]:
    """One RGB image -> labels, colour map, overlay and timings (ms)."""
    start = time.perf_counter()
    batch = pad_batch(runner, prepare_input(image, runner.metadata))
    t0 = time.perf_counter()
    out = runner.infer(batch)
    infer_ms = (time.perf_counter() - t0) * 1e3
    h, w = image.shape[:2]
    labels = labels_at(out, w, h)
    colour = colorize(labels, palette)
    blended = overlay(image, colour, alpha)
    total_ms = (time.perf_counter() - start) * 1e3
    return {"labels": labels, "colour": colour, "overlay": blended, "infer_ms": infer_ms,
            "total_ms": total_ms, "device_ms": runner.last_device_time_ms()}


def _open_video(path: str):
    # FFmpeg inside OpenCV prints its own lines ("moov atom not found") for a broken file; the
    # user gets ours, one line (the user's own setting wins)
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    try:
        import cv2
    except ImportError:
        raise MissingDependencyError(
            f"{path} is a video; reading and writing video needs OpenCV: "
            f"pip install opencv-python-headless (or {pip_extra('video')} in the bisenet-deploy "
            f"checkout), or "
            f"extract the frames as images (e.g. ffmpeg -i {quote_path(path)} "
            f"frames/%05d.png) and pass the folder") from None
    check_not_special(path, "video")
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise UnusableFileError(f"OpenCV cannot open the video {path} (corrupt, or a codec "
                                f"it lacks)")
    return cv2, cap


def predict_paths(runner, paths: Sequence[str], outdir: str, *, alpha: float = 0.5,
                  max_frames: Optional[int] = None, legend: bool = True,
                  on_result: Optional[Callable[[Dict[str, Any]], None]] = None,
                  skipped: Optional[List[Tuple[str, str]]] = None,
                  label_ids: bool = False, progress: bool = True) -> List[Dict[str, Any]]:
    """Run every input through the active runner and write the pictures into `outdir`.

    Returns one entry per image / video frame: {"input", "frame", "outputs", "infer_ms",
    "total_ms", "device_ms"}. `on_result` is called after each (the CLI prints latency there).
    With a `skipped` list, an input that cannot be read (a corrupt image or video) is appended
    there as (path, reason) and the others still run; without one it stops the run. `progress`:
    bars over the inputs and a video's frames, on a terminal only (bisenet_deploy.progress).
    """
    inputs = collect_inputs(paths)
    if label_ids:  # refused before anything is written
        check_cityscapes_model((runner.metadata or {}).get("model") or {}, "--label-ids")
        video = next((p for p in inputs if is_video(p)), None)
        if video is not None:
            raise InputError(f"--label-ids writes one PNG per image, but {video} is a video: "
                             f"extract its frames as images, or leave --label-ids out")
    plan = plan_outputs(inputs, outdir, kinds=("labelIds",) if label_ids else ("labels", "overlay"))
    check_outputs(plan)
    palette = palette_from_record(runner.metadata)
    class_names = ((runner.metadata or {}).get("model") or {}).get("class_names")
    random_weights = ((runner.metadata or {}).get("model") or {}).get("weights") == "random-init"
    mark = with_warning_band if random_weights else (lambda picture: picture)
    results: List[Dict[str, Any]] = []
    with progress_bar(plan, desc="predicting", unit="file", enabled=progress) as bar:
        for path, outputs in bar:
            try:
                if is_video(path):
                    results.extend(_predict_video(runner, path, outputs, palette, alpha,
                                                  max_frames, on_result, progress, mark))
                    continue
                image = read_image(path)
            except UnusableFileError as exc:
                if skipped is None:
                    raise
                skipped.append((path, str(exc)))
                log.warning("skipped %s: %s", path, exc)
                continue
            r = predict_image(runner, image, palette, alpha)
            if label_ids:
                write_png(outputs["labelIds"], train_ids_to_label_ids(r["labels"]))
            else:
                write_png(outputs["labels"], r["colour"])
                write_png(outputs["overlay"], mark(with_legend(r["overlay"], r["labels"], palette,
                                                               class_names) if legend
                                                   else r["overlay"]))
            entry = {"input": path, "frame": None, "outputs": list(outputs.values()),
                     "size": [int(image.shape[1]), int(image.shape[0])],
                     "infer_ms": r["infer_ms"], "total_ms": r["total_ms"],
                     "device_ms": r["device_ms"],
                     "classes": [int(c) for c in np.unique(r["labels"])]}
            results.append(entry)
            if on_result:
                on_result(entry)
    if random_weights and results:  # as bench, compare and eval say it; the overlays show it
        log.warning("RANDOM WEIGHTS: the model was exported without a trained checkpoint, its "
                    "labels mean nothing; every overlay is marked with a red band saying so")
    return results


def _predict_video(runner, path, targets, palette, alpha, max_frames, on_result, progress=True,
                   mark=lambda picture: picture):
    cv2, cap = _open_video(path)
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) or None  # an estimate; None: unknown
    if max_frames is not None:
        frames = min(frames or max_frames, max_frames)
    results = []
    writers = {}
    try:
        with atomic_output(targets["overlay"], suffix=".mp4") as tmp_overlay, \
                atomic_output(targets["labels"], suffix=".mp4") as tmp_labels, \
                progress_bar(total=frames, desc=os.path.basename(path), unit="frame",
                             enabled=progress) as bar:
            index = 0
            while max_frames is None or index < max_frames:
                ok, frame_bgr = cap.read()
                if not ok:
                    break
                image = np.ascontiguousarray(frame_bgr[:, :, ::-1])
                r = predict_image(runner, image, palette, alpha)
                if not writers:
                    h, w = image.shape[:2]
                    fourcc = cv2.VideoWriter_fourcc(*"mp4v")
                    for key, tmp in (("overlay", tmp_overlay), ("labels", tmp_labels)):
                        writers[key] = cv2.VideoWriter(tmp, fourcc, float(fps), (w, h))
                        if not writers[key].isOpened():
                            raise InputError(f"OpenCV cannot write MP4 video to {tmp}")
                writers["overlay"].write(np.ascontiguousarray(mark(r["overlay"])[:, :, ::-1]))
                writers["labels"].write(np.ascontiguousarray(r["colour"][:, :, ::-1]))
                entry = {"input": path, "frame": index, "outputs": list(targets.values()),
                         "size": [int(image.shape[1]), int(image.shape[0])],
                         "infer_ms": r["infer_ms"], "total_ms": r["total_ms"],
                         "device_ms": r["device_ms"]}
                results.append(entry)
                if on_result:
                    on_result(entry)
                index += 1
                bar.update(1)
            for w in writers.values():
                w.release()
            writers = {}
            if index == 0:
                raise UnusableFileError(f"no frames could be read from the video {path}")
            for tmp in (tmp_overlay, tmp_labels):  # the mark that lets a later run replace them
                with open(tmp, "ab") as f:
                    f.write(video_mark())
    finally:
        for w in writers.values():
            w.release()
        cap.release()
    return results
