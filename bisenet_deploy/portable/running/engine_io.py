"""The I/O of a deserialized TensorRT engine, for both API generations, as plain numpy facts.

8.2-8.4 engines address their I/O by binding index (execute_async_v2), 8.5+ (and TensorRT-RTX) by
tensor name (execute_async_v3); which one is a feature test on the engine, not a version parse.
Everything here is a pure function of the engine object (tested with fake engines): the tensors'
names, shapes, numpy dtypes and optimization-profile ranges, buffer sizes, and the checks on a
batch before it is run.

Python 3.6 / numpy 1.19 compatible; imports no TensorRT.
"""

import numpy as np

from ..shared.errors import EngineError, InputError
from ..trt.trt_api import engine_uses_tensor_api

BINDINGS = "bindings"   # TensorRT 8.2-8.4: binding indices, execute_async_v2
TENSORS = "tensors"     # TensorRT 8.5+: named I/O tensors, execute_async_v3

# TensorRT DataType member name -> numpy dtype. Looked up by name on the module present, so an
# 8.2 module without UINT8/INT64 simply has fewer entries (trt.nptype in 8.2 lacks UINT8).
_DTYPE_NAMES = (
    ("FLOAT", np.float32),
    ("HALF", np.float16),
    ("INT8", np.int8),
    ("INT32", np.int32),
    ("INT64", np.int64),
    ("UINT8", np.uint8),
    ("BOOL", np.bool_),
)


def api_generation(engine):
    """BINDINGS for TensorRT 8.2-8.4 engines, TENSORS for 8.5+ (feature test, not a version parse)."""
    return TENSORS if engine_uses_tensor_api(engine) else BINDINGS


def numpy_dtype(trt_dtype, trt):
    """numpy dtype of a TensorRT DataType; EngineError for types numpy cannot hold (BF16, FP8)."""
    for name, dtype in _DTYPE_NAMES:
        member = getattr(trt.DataType, name, None)
        if member is not None and trt_dtype == member:
            return np.dtype(dtype)
    raise EngineError("the engine has an I/O tensor of type %s, which this runtime cannot hold "
                      "in numpy: export the model with float32/float16/int32 inputs and outputs"
                      % (trt_dtype,))


class IOTensor(object):
    """One engine input or output: name, binding index (bindings API), mode, shape, dtype."""

    def __init__(self, name, index, is_input, shape, dtype):
        self.name = str(name)
        self.index = index
        self.is_input = bool(is_input)
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        #: (min, opt, max) shapes of the optimization profile, for dynamic inputs
        self.profile = None

    @property
    def is_dynamic(self):
        return any(d < 0 for d in self.shape)

    def __repr__(self):
        return "IOTensor(%r, %s, %r, %s)" % (self.name, "in" if self.is_input else "out",
                                             self.shape, self.dtype.name)


def engine_io(engine, trt, profile_index=0):
    """The engine's I/O tensors in engine order, with numpy dtypes and, for dynamic inputs, the
    optimization profile's (min, opt, max) shapes."""
    tensors = []
    if api_generation(engine) == TENSORS:
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            tensor = IOTensor(name, None, is_input, tuple(engine.get_tensor_shape(name)),
                              numpy_dtype(engine.get_tensor_dtype(name), trt))
            if is_input and tensor.is_dynamic:
                tensor.profile = tuple(tuple(int(d) for d in s) for s in
                                       engine.get_tensor_profile_shape(name, profile_index))
            tensors.append(tensor)
    else:
        # with several optimization profiles the binding list repeats once per profile
        profiles = max(1, int(getattr(engine, "num_optimization_profiles", 1) or 1))
        for i in range(engine.num_bindings // profiles):
            name = engine.get_binding_name(i)
            is_input = bool(engine.binding_is_input(i))
            tensor = IOTensor(name, i, is_input, tuple(engine.get_binding_shape(i)),
                              numpy_dtype(engine.get_binding_dtype(i), trt))
            if is_input and tensor.is_dynamic:
                tensor.profile = tuple(tuple(int(d) for d in s) for s in
                                       engine.get_profile_shape(profile_index, name))
            tensors.append(tensor)
    return tensors


def max_input_shape(tensor):
    """The largest shape an input can take: its static shape or the profile's max."""
    if not tensor.is_dynamic:
        return tensor.shape
    if tensor.profile is None:
        raise EngineError("input %r has a dynamic shape %s but the engine has no optimization "
                          "profile for it: rebuild the engine" % (tensor.name, tensor.shape))
    return tensor.profile[2]


def batch_range(tensor):
    """(min, max) batch an input accepts: fixed for a static shape, the profile's otherwise."""
    if tensor.shape[0] >= 0:
        return tensor.shape[0], tensor.shape[0]
    return tensor.profile[0][0], tensor.profile[2][0]


def check_batch_in_profile(n, tensor):
    """Refuse a batch size outside the engine's optimization profile, naming the range."""
    lo, hi = batch_range(tensor)
    if not lo <= n <= hi:
        if lo == hi:
            raise InputError("the engine was built for batch %d, got a batch of %d: feed %d "
                             "images, or rebuild the engine with a dynamic batch profile"
                             % (lo, n, lo))
        raise InputError("batch %d is outside the engine's optimization profile (batch %d..%d): "
                         "feed %d to %d images, or rebuild the engine with a wider "
                         "--batch MIN:OPT:MAX" % (n, lo, hi, lo, hi))


def volume(shape):
    result = 1
    for d in shape:
        if d < 0:
            raise EngineError("cannot size a buffer for the unresolved shape %s" % (shape,))
        result *= int(d)
    return result


def buffer_nbytes(shape, dtype):
    return volume(shape) * np.dtype(dtype).itemsize


def resolved_output_shapes(context, tensors, generation):
    """Output shapes the execution context reports once all input shapes are set."""
    shapes = {}
    for t in tensors:
        if t.is_input:
            continue
        if generation == TENSORS:
            shape = tuple(int(d) for d in context.get_tensor_shape(t.name))
        else:
            shape = tuple(int(d) for d in context.get_binding_shape(t.index))
        if any(d < 0 for d in shape):
            raise EngineError("TensorRT could not resolve the shape of output %r (%s): the "
                              "input shapes were not all set" % (t.name, shape))
        shapes[t.name] = shape
    return shapes


def set_input_shape(context, tensor, shape, generation):
    """Set a dynamic input's shape on the execution context (no-op for static inputs)."""
    if not tensor.is_dynamic:
        return
    shape = tuple(int(d) for d in shape)
    if generation == TENSORS:
        ok = context.set_input_shape(tensor.name, shape)
    else:
        ok = context.set_binding_shape(tensor.index, shape)
    if ok is False:  # 8.x returns a bool; some 10.x builds return None on success
        raise InputError("TensorRT refused the input shape %s for %r (profile %s..%s)"
                         % (shape, tensor.name, tensor.profile[0], tensor.profile[2]))

