"""INT8 calibration: images from a folder, prepared exactly as the engine will be fed.

Peers calibrated with ImageNet statistics while their models were trained on Cityscapes ones, so the
INT8 engines were quietly worse than they had to be. Here every calibration image goes through
`preprocess.prepare_input(images, record)`, the same function the runtime uses, driven by the
ONNX's own metadata record (input size, channel order, dtype, and mean/std when the graph does not
normalize itself): calibration batches are bit-for-bit what the network sees at inference time.

Images: `.npy` (H x W x 3 uint8, RGB) always work - the Jetson bundle has no PIL; PNG/JPEG are
read with OpenCV or Pillow when either is importable. The calibrator class itself derives from
`tensorrt.IInt8EntropyCalibrator2`, which exists only at run time, so it is created by a factory.

Python 3.6 compatible.
"""

import logging
import os
from typing import Any  # noqa: F401 (type comments)

import numpy as np

from ..trt.cuda_context import import_pycuda_driver
from ..shared.errors import InputError, MissingDependencyError
from ..files.fileio import write_bytes_atomic
from ..files.image_io import read_image_rgb
from ..running.preprocess import prepare_input

log = logging.getLogger(__name__)

NPY_EXTENSIONS = (".npy",)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")


def _image_reader():
    """(name, function path -> RGB uint8 array) for PNG/JPEG, or None when neither Pillow nor
    OpenCV is importable. The function is `image_io.read_image_rgb`, the reader every command
    uses, so a calibration image (16-bit ones included) is read as at inference."""
    for module, name in (("PIL", "pillow"), ("cv2", "opencv")):
        try:
            __import__(module)  # noqa: WPS421 - lazy on purpose
        except ImportError:
            continue
        return name, read_image_rgb
    return None


def load_npy_image(path):
    """A .npy calibration image: H x W x 3 uint8 in RGB order."""
    try:
        image = np.load(path, allow_pickle=False)
    except (ValueError, IOError, OSError) as exc:
        raise InputError("cannot read %s as a .npy image (%s)" % (path, exc))
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError("%s must hold an H x W x 3 uint8 RGB image, it holds %s %s"
                         % (path, image.dtype, image.shape))
    return image


def list_calibration_images(folder):
    """Sorted calibration image paths in `folder` (not recursive).

    .npy is always accepted; PNG/JPEG/BMP when OpenCV or Pillow is importable, otherwise such files
    are refused with what to install or convert.
    """
    if os.path.isfile(str(folder)):
        raise InputError("calibration images: %s is a file; give the folder that holds the "
                         "images" % folder)
    if not os.path.isdir(str(folder)):
        raise InputError("calibration image folder %s does not exist" % folder)
    names = sorted(os.listdir(str(folder)))
    npy = [n for n in names if n.lower().endswith(NPY_EXTENSIONS)]
    pictures = [n for n in names if n.lower().endswith(IMAGE_EXTENSIONS)]
    if pictures and _image_reader() is None:
        raise MissingDependencyError(
            "%d PNG/JPEG calibration images in %s but neither OpenCV nor Pillow is installed: "
            "install python3-opencv (JetPack has it) or pillow, or save the images as "
            ".npy (H x W x 3 uint8 RGB)" % (len(pictures), folder))
    paths = [os.path.join(str(folder), n) for n in sorted(npy + pictures)]
    if not paths:
        raise InputError("no calibration images (.npy, .png, .jpg) in %s" % folder)
    return paths


def load_image(path):
    """Any supported calibration image file -> H x W x 3 uint8 RGB."""
    if path.lower().endswith(NPY_EXTENSIONS):
        return load_npy_image(path)
    reader = _image_reader()
    if reader is None:
        raise MissingDependencyError("reading %s needs OpenCV or Pillow" % path)
    return reader[1](path)


class CalibrationBatches(object):
    """Iterates prepared calibration batches (N x 3 x H x W, the graph input's dtype).

    Only full batches are produced (TensorRT expects `batch_size` images per call); leftover
    images are skipped with a log line. `max_images` caps the number read.
    """

    def __init__(self, paths, record, batch_size=1, max_images=None, progress=None):
        if batch_size < 1:
            raise InputError("calibration batch size must be >= 1")
        if max_images is not None and max_images < 1:
            raise InputError("the calibration image limit must be >= 1, got %d" % max_images)
        self.paths = list(paths)[:max_images] if max_images else list(paths)
        self.record = record
        self.batch_size = int(batch_size)
        #: None, or a callable(total) -> a bar with update(n) and close() (the desktop command
        #: passes bisenet_deploy.progress.start_bar; this package imports no tqdm)
        self.progress = progress
        if len(self.paths) < self.batch_size:
            raise InputError("%d calibration image(s) cannot fill one batch of %d"
                             % (len(self.paths), self.batch_size))
        self.num_batches = len(self.paths) // self.batch_size
        leftover = len(self.paths) - self.num_batches * self.batch_size
        if leftover:
            log.info("calibration: %d image(s) left over after %d full batches of %d are not used",
                     leftover, self.num_batches, self.batch_size)

    def input_shape(self):
        width, height = self.record["export"]["input_size"]
        return (self.batch_size, 3, int(height), int(width))

    def input_dtype(self):
        return np.uint8 if self.record["export"]["input_dtype"] == "uint8" else np.float32

    def __len__(self):
        return self.num_batches

    def __iter__(self):
        bar = self.progress(self.num_batches) if self.progress is not None else None
        try:
            for b in range(self.num_batches):
                chunk = self.paths[b * self.batch_size:(b + 1) * self.batch_size]
                yield prepare_input([load_image(p) for p in chunk], self.record)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()



def read_calibration_cache(path):
    """Bytes of an existing calibration cache, or None."""
    if path and os.path.isfile(str(path)):
        with open(str(path), "rb") as f:
            data = f.read()
        if data:
            return data
    return None


def write_calibration_cache(path, data):
    if path:
        write_bytes_atomic(str(path), bytes(data))


def make_entropy_calibrator(trt, batches, cache_path, input_name):
    """Build a `trt.IInt8EntropyCalibrator2` that feeds `batches` (CalibrationBatches).

    The base class comes from the TensorRT module given, so this module imports TensorRT nowhere.
    Device buffers are pycuda allocations in the current CUDA context (the builder pushes one).
    With an existing cache file the images are not read at all: TensorRT asks for the cache first.

    TensorRT calls these methods from C++ through `noexcept` overrides: a Python exception escaping
    one (a corrupt image, an unwritable cache) would abort the whole process. So each callback
    catches its error, keeps the first one in `error`, and answers "no more data"; the builder
    raises `error` once `build_serialized_network` returns.
    """
    cuda = import_pycuda_driver()
    # the TensorRT class of the module given (mypy cannot check overrides of a runtime base)
    base = trt.IInt8EntropyCalibrator2  # type: Any

    class EntropyCalibrator(base):
        """Hands TensorRT one prepared batch per get_batch call, from a device buffer."""

        def __init__(self):
            base.__init__(self)
            self._iter = None
            self._device = None
            self._count = 0
            self.cache_path = cache_path
            #: the first exception raised inside a TensorRT callback, for the builder to raise
            self.error = None

        def _failed(self, what, exc):
            if self.error is None:
                self.error = exc
            log.error("INT8 calibration: %s failed: %s", what, exc)

        def get_batch_size(self):
            return batches.batch_size

        def get_batch(self, names, *unused):
            if self.error is not None:
                return None
            try:
                return self._next_batch(names)
            except Exception as exc:  # noqa: B902 - must not reach TensorRT's noexcept caller
                self._failed("reading calibration batch %d" % (self._count + 1), exc)
                return None

        def _next_batch(self, names):
            if self._iter is None:
                self._iter = iter(batches)
            try:
                batch = next(self._iter)
            except StopIteration:
                return None
            batch = np.ascontiguousarray(batch)
            if self._device is None:
                self._device = cuda.mem_alloc(batch.nbytes)
            cuda.memcpy_htod(self._device, batch)
            self._count += 1
            log.info("calibration batch %d/%d", self._count, len(batches))
            if list(names) != [input_name]:
                log.warning("calibration: TensorRT asked for inputs %s, feeding %s",
                            list(names), input_name)
            return [int(self._device)]

        def read_calibration_cache(self):
            try:
                data = read_calibration_cache(cache_path)
            except Exception as exc:  # noqa: B902 - see the factory's docstring
                self._failed("reading the calibration cache %s" % cache_path, exc)
                return None
            if data is not None:
                log.info("using the calibration cache %s (delete it to recalibrate)", cache_path)
            return data

        def write_calibration_cache(self, cache):
            try:
                write_calibration_cache(cache_path, cache)
            except Exception as exc:  # noqa: B902 - see the factory's docstring
                self._failed("writing the calibration cache %s" % cache_path, exc)
                return
            log.info("calibration cache written: %s", cache_path)

        def free(self):
            if self._device is not None:
                self._device.free()
                self._device = None

    return EntropyCalibrator()
