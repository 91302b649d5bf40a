"""Reading an image file into the H x W x 3 uint8 RGB array every consumer expects.

One reader for predict, bench, eval, compare and INT8 calibration, so an image means the same
everywhere. 16-bit images (PNG and TIFF from industrial and HDR cameras) are scaled to 8 bits by
keeping the high byte (v >> 8, what Pillow does for 16-bit RGB and OpenCV for any 16-bit file):
Pillow's own `convert("RGB")` clips a 16-bit grey image at 255, which turned almost every pixel
white and gave wrong labels without an error. Grey images become three equal channels, alpha is
dropped, palette images are expanded. Floating-point images are refused: their range is unknown.

Pillow is used when present, else OpenCV (a Jetson has OpenCV from JetPack, not Pillow).

An image may declare at most MAX_PIXELS pixels (about 89 megapixels, Pillow's own limit): a PNG of
a few KiB can declare 100000 x 100000 pixels and ask for 30 GB once decoded (a "decompression
bomb"). Such a file is an unreadable image (exit 5; skipped and listed in a folder of inputs).

Python 3.6 / numpy 1.19 compatible.
"""

import os
import warnings

import numpy as np

from ..shared.errors import InputError, MissingDependencyError, UnusableFileError

#: the most pixels (width x height) an input image may declare; larger ones are refused before
#: decoding. Pillow's own decompression-bomb threshold: 12000 x 7456, 16384 x 5461...
MAX_PIXELS = 89478485


def too_many_pixels(path, size=None):
    """The UnusableFileError for an image over MAX_PIXELS (`size` (w, h) when it is known)."""
    declared = "%dx%d pixels, more than" % tuple(size) if size else "more than"
    return UnusableFileError("cannot read image %s: it declares %s the %d pixels (about 89 "
                             "megapixels) bisenet-deploy decodes (a damaged file, or a "
                             "decompression bomb); scale it down first" % (path, declared,
                                                                          MAX_PIXELS))


def check_pixel_count(size, path):
    """Refuse an image whose header declares more than MAX_PIXELS pixels; `size` is (w, h)."""
    if int(size[0]) * int(size[1]) > MAX_PIXELS:
        raise too_many_pixels(path, size)


def open_pillow(path, Image):
    """Image.open, refusing a declared size over MAX_PIXELS before anything is decoded (and
    without Pillow's own DecompressionBombWarning on stderr)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(path)
        except Image.DecompressionBombError:
            raise too_many_pixels(path) from None
    try:
        check_pixel_count(im.size, path)
    except UnusableFileError:
        im.close()
        raise
    return im


#: Pillow modes holding 16-bit (or wider integer) grey values
_WIDE_GREY_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def to_rgb8(pixels, path="the image"):
    """A decoded image array (H x W, H x W x 1/3/4; uint8, uint16 or 32-bit integers holding
    16-bit values; channels already in RGB order) -> H x W x 3 uint8 RGB."""
    pixels = np.asarray(pixels)
    if pixels.dtype.kind == "f":
        raise UnusableFileError("%s is a floating-point image, whose value range is unknown: "
                                "convert it to 8 or 16 bits" % path)
    if pixels.dtype.kind in "iu" and pixels.dtype != np.uint8:
        if pixels.size and (pixels.min() < 0 or pixels.max() > 65535):
            raise UnusableFileError("%s holds values outside 0..65535 (%s): convert it to 8 or "
                                    "16 bits" % (path, pixels.dtype))
        pixels = (pixels.astype(np.uint32) >> 8).astype(np.uint8)  # 16 -> 8 bits: high byte
    elif pixels.dtype != np.uint8:
        raise UnusableFileError("%s has an unsupported pixel type %s" % (path, pixels.dtype))
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    if pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise UnusableFileError("%s is not an RGB or grey image (shape %s)" % (path, pixels.shape))
    return np.ascontiguousarray(pixels[:, :, :3])


def _read_pillow(path, Image):
    with open_pillow(path, Image) as im:
        if im.mode in _WIDE_GREY_MODES or im.mode == "F":
            return to_rgb8(np.asarray(im), path)
        return to_rgb8(np.asarray(im if im.mode == "RGB" else im.convert("RGB")), path)


def _read_opencv(path, cv2):
    pixels = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise UnusableFileError("cannot read image %s (corrupt, or not an image): give a PNG or "
                                "JPEG file" % path)
    if pixels.ndim == 3:  # OpenCV decodes to BGR(A)
        pixels = pixels[:, :, [2, 1, 0] + ([3] if pixels.shape[2] == 4 else [])]
    return to_rgb8(pixels, path)


def check_not_special(path, what="image"):
    """A FIFO, socket or device in place of a file is unusable, refused before anything opens it
    (opening a FIFO waits for a writer forever): exit 5 alone, skipped and listed in a folder."""
    if os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path):
        raise UnusableFileError("%s %s is not a regular file (a FIFO, socket or device): give a "
                                "file" % (what, path))


def read_image_rgb(path):
    """An image file -> H x W x 3 uint8 RGB (see the module docstring).

    A missing path or a folder is an InputError; a file that cannot be decoded, a float image
    and the like are an UnusableFileError (exit code 5).
    """
    path = str(path)
    if os.path.isdir(path):
        raise InputError("image %s is a folder, not an image file" % path)
    if os.path.islink(path) and not os.path.exists(path):  # skipped and listed in a folder
        raise UnusableFileError("image %s is a symbolic link to nothing (its target is gone, or "
                                "the link points back to itself)" % path)
    check_not_special(path)
    if not os.path.isfile(path):
        raise InputError("image %s does not exist" % path)
    try:
        from PIL import Image
    except ImportError:
        Image = None
    if Image is not None:
        try:
            return _read_pillow(path, Image)
        except UnusableFileError:
            raise
        except (IOError, OSError, SyntaxError, ValueError, EOFError) as exc:
            # UnidentifiedImageError is an OSError; truncated files raise OSError or SyntaxError
            raise UnusableFileError("cannot read image %s (%s): give a PNG or JPEG file"
                                    % (path, str(exc).splitlines()[0] if str(exc) else
                                       type(exc).__name__)) from None
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))  # before cv2 loads
    try:
        import cv2
    except ImportError:
        raise MissingDependencyError("reading %s needs Pillow or OpenCV: pip install pillow" % path)
    return _read_opencv(path, cv2)
