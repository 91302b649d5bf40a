"""Host-side preparation of camera images into the graph input an exported model declares.

One function serves every consumer (the runtime API, the INT8 calibrator, the Jetson bundle,
eval/predict), so an image is prepared the same way everywhere and exactly as the export metadata
says: size, channel order, dtype, and normalization when the graph does not normalize itself.

Python 3.6 / numpy 1.19 compatible (see the package docstring).
"""

import numpy as np

from ..shared.errors import InputError


def resize_bilinear(image, width, height):
    """Resize an H x W x C array with bilinear interpolation, half-pixel centres, no antialiasing.

    This is the sampling of PyTorch's `interpolate(mode="bilinear", align_corners=False)` and of
    ONNX Resize(linear, half_pixel), so host-resized images match the in-graph resize.
    Returns float32.
    """
    src = np.asarray(image, dtype=np.float32)
    in_h, in_w = src.shape[0], src.shape[1]
    if (in_w, in_h) == (width, height):
        return src.copy()

    def axis(n_in, n_out):
        scale = float(n_in) / float(n_out)
        pos = (np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5
        pos = np.clip(pos, 0.0, n_in - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        frac = (pos - lo).astype(np.float32)
        return lo, hi, frac

    y0, y1, fy = axis(in_h, height)
    x0, x1, fx = axis(in_w, width)
    fx = fx[None, :, None]
    top = src[y0][:, x0] * (1 - fx) + src[y0][:, x1] * fx
    bottom = src[y1][:, x0] * (1 - fx) + src[y1][:, x1] * fx
    fy = fy[:, None, None]
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def check_image(image):
    """An image is an H x W x 3 uint8 array; anything else is refused with what was given."""
    if not isinstance(image, np.ndarray):
        raise InputError("image must be a numpy array (H x W x 3, uint8), got %s"
                         % type(image).__name__)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError("image must be H x W x 3, got shape %s" % (image.shape,))
    if image.dtype != np.uint8:
        raise InputError("image must be uint8 (0..255), got %s" % image.dtype.name)


def prepare_input(images, record, image_channel_order="rgb"):
    """Turn one H x W x 3 uint8 image, or a list of them, into the graph input (N x 3 x H x W).

    `record` is the bisenet_deploy metadata dict ({"model": ..., "export": ...}) of the ONNX or
    engine. Images of another size than the graph input are resized on the host first
    (bilinear, half-pixel); the graph's own in-graph resize to the network size then follows.
    """
    export = record["export"]
    model = record["model"]
    if isinstance(images, np.ndarray) and images.ndim == 3:
        images = [images]
    width, height = int(export["input_size"][0]), int(export["input_size"][1])
    batch = []
    for image in images:
        check_image(image)
        want_order = export["channel_order"] if export["normalize"] == "in-graph" \
            else model["channel_order"]
        if image_channel_order not in ("rgb", "bgr"):
            raise InputError("image_channel_order must be 'rgb' or 'bgr'")
        pixels = image if image_channel_order == want_order else image[:, :, ::-1]
        if (pixels.shape[1], pixels.shape[0]) != (width, height):
            pixels = resize_bilinear(pixels, width, height)
            if export["input_dtype"] == "uint8":
                pixels = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
        if export["normalize"] == "none":
            mean = np.asarray(model["mean"], dtype=np.float32) * 255.0
            std = np.asarray(model["std"], dtype=np.float32) * 255.0
            pixels = (pixels.astype(np.float32) - mean) / std
        batch.append(np.ascontiguousarray(np.transpose(pixels, (2, 0, 1))))
    out = np.stack(batch, axis=0)
    dtype = np.uint8 if export["input_dtype"] == "uint8" else np.float32
    return np.ascontiguousarray(out.astype(dtype, copy=False))
