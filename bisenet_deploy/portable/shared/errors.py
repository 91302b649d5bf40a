"""The toolkit's user-facing errors and the exit codes every command shares.

A `UserError` carries a message written for the person at the terminal: what was wrong and what to
do. The command-line entry points print it on one line and exit with `exit_code`; anything else
that escapes is a bug in the toolkit and is reported as such (EXIT_INTERNAL).

One kind of problem gets one exit code in every command (the README's table is EXIT_CODES):
a corrupt ONNX is EXIT_UNUSABLE_FILE whether predict, compare, bench or check met it.
"""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CHECK_FAILED = 3
EXIT_UNAVAILABLE = 4
EXIT_UNUSABLE_FILE = 5
EXIT_SKIPPED_INPUTS = 6
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130

#: exit code -> what it means, in every command (README "Exit codes" quotes this table)
EXIT_CODES = (
    (EXIT_OK, "success"),
    (EXIT_FAILED, "a step failed: export, engine build or a backend's run (the line says which), "
                  "or the disk refused a write (full, over quota, read-only)"),
    (EXIT_USAGE, "usage: a wrong option or value, a path that does not exist or is of the wrong "
                 "kind, an output that would replace something bisenet-deploy did not write, a "
                 "precision this TensorRT or GPU cannot build, an option asking for more memory "
                 "than the machine has"),
    (EXIT_CHECK_FAILED, "a check failed: outputs outside tolerance (compare, export parity), "
                        "target rules broken or the real TensorRT parser rejecting the graph "
                        "(check), invalid outputs (bench)"),
    (EXIT_UNAVAILABLE, "not available here: a missing optional dependency, no GPU, a GPU this "
                       "TensorRT does not support, no backend could run"),
    (EXIT_UNUSABLE_FILE, "an unusable file: corrupt, truncated, empty, another kind of file, an "
                         "ONNX without bisenet-deploy metadata, another network's checkpoint, an "
                         "engine for another GPU or TensorRT, an ONNX given for an engine, an "
                         "unreadable image"),
    (EXIT_SKIPPED_INPUTS, "done, but some inputs could not be read and were skipped (listed at "
                          "the end); the others' results are written"),
    (EXIT_INTERNAL, "internal error: a bug in bisenet-deploy (--debug shows the traceback)"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C or SIGTERM); nothing half-written is left"),
)


class UserError(Exception):
    """An error caused by input, environment or configuration; its message is shown as is."""

    exit_code = EXIT_FAILED


class InputError(UserError, ValueError):
    """Wrong tensor/image shape, dtype, size, a malformed option value or a missing path."""

    exit_code = EXIT_USAGE


class UnusableFileError(UserError):
    """A file that exists but cannot be used: corrupt, truncated, of another kind, or without
    the metadata the toolkit needs."""

    exit_code = EXIT_UNUSABLE_FILE


class NoMetadataError(UnusableFileError):
    """A model file without the bisenet_deploy metadata record: a foreign ONNX (e.g. the one
    CoinCheung/BiSeNet's own script exports), or an engine built from one. Its input size and
    layout, normalization, channel order, classes and output meaning are unknown, and guessing
    them would give wrong labels without an error, so every command refuses it in one line."""

    def __init__(self, path, kind="ONNX"):
        if kind == "engine":
            what, fix = "'s sidecar records", "rebuild it from an ONNX made by `bisenet-export onnx`"
        else:
            what, fix = (" carries", "export the checkpoint with `bisenet-export onnx --checkpoint "
                                     "CKPT` and use that ONNX")
        super(NoMetadataError, self).__init__(
            "%s%s no bisenet-deploy metadata (input size, channel order, mean/std, classes, "
            "outputs), a foreign %s: %s" % (path, what, kind, fix))


class CheckpointError(UnusableFileError):
    """A checkpoint that cannot be read, is corrupt, or belongs to another network."""


class ExportError(UserError):
    """ONNX export, simplification, checking or target rules failed."""


class ParityError(UserError):
    """A backend's outputs differ from the reference beyond the tolerances."""

    exit_code = EXIT_CHECK_FAILED


class EngineError(UserError):
    """TensorRT engine building, loading or running failed."""


class EngineFileError(EngineError):
    """An engine file that cannot be used: its sidecar missing, corrupt or not matching it, or a
    plan TensorRT cannot load."""

    exit_code = EXIT_UNUSABLE_FILE


class IncompatibleEngineError(EngineError):
    """An engine built for another GPU or TensorRT version than the one present."""

    exit_code = EXIT_UNUSABLE_FILE


class MissingDependencyError(UserError):
    """An optional dependency (tensorrt, pycuda, onnxruntime-gpu, opencv...) is not installed."""

    exit_code = EXIT_UNAVAILABLE


class OutputWriteError(UserError):
    """The disk refused to write an output (full, over quota, read-only, an I/O error): the step
    failed, nothing half-written is left, and the user can free space or choose another path."""

    reason = ""  # the system's words ("No space left on device")


class SkippedInputsError(UserError):
    """Raised after a command finished the inputs it could read; names the ones it skipped."""

    exit_code = EXIT_SKIPPED_INPUTS
