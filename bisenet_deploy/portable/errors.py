"""The toolkit's user-facing errors.

A `UserError` carries a message written for the person at the terminal: what was wrong and what to
do. The command-line entry points print it on one line and exit with `exit_code`; anything else
that escapes is a bug in the toolkit and is reported as such.
"""


class UserError(Exception):
    """An error caused by input, environment or configuration; its message is shown as is."""

    exit_code = 1


class InputError(UserError, ValueError):
    """Wrong tensor/image shape, dtype, size or a malformed option value."""

    exit_code = 2


class CheckpointError(UserError):
    """A checkpoint that cannot be read, is corrupt, or belongs to another network."""


class ExportError(UserError):
    """ONNX export, simplification, checking or target rules failed."""


class ParityError(UserError):
    """A backend's outputs differ from the reference beyond the tolerances."""

    exit_code = 3


class EngineError(UserError):
    """TensorRT engine building, loading or running failed."""


class IncompatibleEngineError(EngineError):
    """An engine built for another GPU or TensorRT version than the one present."""


class MissingDependencyError(UserError):
    """An optional dependency (tensorrt, pycuda, onnxruntime-gpu, opencv...) is not installed."""

    exit_code = 4
