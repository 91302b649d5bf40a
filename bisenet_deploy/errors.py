"""Public home of the error classes (defined in the Jetson-portable subpackage so both share them)."""

from .portable.errors import (  # noqa: F401
    CheckpointError,
    EngineError,
    ExportError,
    IncompatibleEngineError,
    InputError,
    MissingDependencyError,
    ParityError,
    UserError,
)
