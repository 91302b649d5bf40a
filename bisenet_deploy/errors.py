"""Public home of the error classes and exit codes (defined in the Jetson-portable subpackage so
both share them)."""

from .portable.shared.errors import (  # noqa: F401
    EXIT_CODES,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    CheckpointError,
    EngineError,
    EngineFileError,
    ExportError,
    IncompatibleEngineError,
    InputError,
    MissingDependencyError,
    NoMetadataError,
    OutputWriteError,
    ParityError,
    SkippedInputsError,
    UnusableFileError,
    UserError,
)
