"""Shared command-line plumbing: logging, error reporting, and the option parsers every command uses.

Every console script runs through `run_cli`, which turns a `UserError` into one clear line on
stderr and its exit code (the shared table in `errors.EXIT_CODES`), any other exception into a
one-line "internal error" (the full traceback only with --debug), and Ctrl-C or SIGTERM into
"interrupted" after every temporary file was cleaned up, so users never read a traceback from deep
inside torch or onnx.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import signal
import sys
from typing import Callable, List, Optional, Sequence

from .. import __version__
from ..model import ARCHITECTURES, DEFAULT_ARCH
from ..errors import (EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_UNAVAILABLE, EXIT_USAGE,
                      UserError)
from ..portable.shared import interrupts
from ..portable.shared.interrupts import Terminated  # noqa: F401 - the commands raise it
from .arg_types import (batch_profile_arg, non_negative_int, parse_batch_profile,  # noqa: F401
                        parse_size, positive_int, size_arg)  # (the commands take them from here)
from .options import JSON_STDOUT, check_required

#: the real stdout while `--json` without a PATH sends everything else to stderr
_json_stdout = None

log = logging.getLogger("bisenet_deploy")


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 0 else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s" if verbose else "%(message)s"))
    root = logging.getLogger("bisenet_deploy")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def add_logging_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output")
    group.add_argument("-v", "--verbose", action="count", default=0, help="more detail in the log")
    group.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    group.add_argument("--debug", action="store_true",
                       help="show the full Python traceback of unexpected errors")


#: exit code of a run stopped by SIGTERM (128 + 15, the shell's convention)
EXIT_TERMINATED = 128 + signal.SIGTERM


def run_cli(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None) -> int:
    """Parse `argv`, run `args.func(args)` and map errors to exit codes. Returns the exit code.

    `args.argv` holds the arguments as given, for reports that record the command that was run.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--version" not in parser._option_string_actions:
        parser.add_argument("--version", action="version",
                            version=f"%(prog)s (bisenet-deploy {__version__})")
    _one_line_usage_errors(parser)
    args, extras = parser.parse_known_args(_join_negative_values(parser, argv))
    usage_parser = getattr(args, "_usage_parser", parser)
    if hasattr(args, "_usage_parser"):
        del args._usage_parser
    if extras:  # named by the sub-command that was given, whose --help lists its options
        usage_parser.error(f"unrecognized arguments: {' '.join(extras)}")
    check_required(usage_parser, args)
    args.argv = argv
    setup_logging(getattr(args, "verbose", 0), getattr(args, "quiet", False))
    func: Optional[Callable[[argparse.Namespace], Optional[int]]] = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    previous = interrupts.install()  # None outside the main thread: the defaults stay
    try:
        if getattr(args, "json", None) in (JSON_STDOUT, True):  # stdout: the JSON record only
            return _run_json_to_stdout(func, args)
        return int(func(args) or 0)
    except UserError as exc:
        log.error("error: %s", _one_line(_with_doctor_hint(exc)))
        return exc.exit_code
    except Terminated:
        log.error("terminated (SIGTERM); temporary files were removed")
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        _forget_interrupt_inside_exec()
        log.error("interrupted; temporary files were removed")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug in the toolkit, not the user's fault
        if getattr(args, "debug", False):
            raise
        log.error("internal error: %s: %s (a bug in bisenet-deploy: re-run with --debug for the "
                  "traceback and report it)", type(exc).__name__, _one_line(str(exc)))
        return EXIT_INTERNAL
    finally:
        interrupts.restore(previous)


def _run_json_to_stdout(func, args) -> int:
    """`--json` without a PATH: the record (emit_json) is all stdout gets; the rest goes to stderr."""
    global _json_stdout
    _json_stdout = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return int(func(args) or 0)
    finally:
        _json_stdout = None


def _with_doctor_hint(exc: UserError) -> str:
    """A "not available here" error (exit 4) ends by pointing to bisenet-doctor."""
    from ..portable.shared.install_hints import doctor_hint

    text = str(exc)
    if exc.exit_code != EXIT_UNAVAILABLE or "bisenet-doctor" in text:
        return text
    return f"{text.rstrip('. ')} ({doctor_hint()})"


def _forget_interrupt_inside_exec() -> None:
    """CPython 3.11 remembers a Ctrl-C that hit code run by exec() of a string (dataclasses and
    namedtuples build methods that way during imports) and, even when we handled it, ends a
    `python -m` run by SIGINT instead of our documented exit code 130. A later successful exec() of a
    string clears that memory."""
    exec("pass")  # noqa: S102 - a constant string


def _one_line(text: str) -> str:
    """Messages from libraries can span lines; the user gets one."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


#: a value that argparse would take for an option because it starts with "-": "-1x5", "-2:4:8"
_NEGATIVE_VALUE = re.compile(r"^-[0-9.]")


def _all_parsers(parser: argparse.ArgumentParser) -> List[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                if sub not in found:
                    found.extend(p for p in _all_parsers(sub) if p not in found)
    return found


def _join_negative_values(parser: argparse.ArgumentParser, argv: List[str]) -> List[str]:
    """`--input-size -1x5` -> `--input-size=-1x5`, so the option's own check says what is wrong
    ("size '-1x5' is not WIDTHxHEIGHT with positive integers") instead of argparse's "expected
    one argument". Only for options taking one value, and only when the value is no option."""
    takes_one = set()
    known = set()
    for p in _all_parsers(parser):
        for option, action in p._option_string_actions.items():
            known.add(option)
            if action.nargs is None and not isinstance(action, (
                    argparse._StoreConstAction, argparse._CountAction, argparse._HelpAction,
                    argparse._VersionAction)):
                takes_one.add(option)
    out: List[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            out.extend(argv[i:])
            break
        if token in takes_one and i + 1 < len(argv) and argv[i + 1] not in known \
                and _NEGATIVE_VALUE.match(argv[i + 1]):
            out.append(f"{token}={argv[i + 1]}")
            i += 2
            continue
        out.append(token)
        i += 1
    return out


def _one_line_usage_errors(parser: argparse.ArgumentParser) -> None:
    """A wrong option is one line on stderr (exit 2), like every other user error, instead of
    argparse's usage block above it; --help still shows the usage. Sub-commands included."""
    seen = set()

    def patch(p: argparse.ArgumentParser) -> None:
        if id(p) in seen:
            return
        seen.add(id(p))

        def error(message: str) -> None:
            p.exit(2, f"error: {p.prog}: {message} (see `{p.prog} --help`)\n")

        setattr(p, "error", error)  # this parser instance only
        if p is not parser:  # run_cli names this sub-command's --help for unknown options
            p.set_defaults(_usage_parser=p)
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    patch(sub)

    patch(parser)


def add_model_args(parser: argparse.ArgumentParser, required: bool = False) -> None:
    """--checkpoint / --arch / --dataset / --num-classes, shared by every command that builds a model."""
    group = parser.add_argument_group("model")
    group.add_argument("--checkpoint", metavar="PATH", required=required,
                       help="our .safetensors checkpoint, a CoinCheung/BiSeNet .pth or an "
                            "mmsegmentation BiSeNetV2 .pth" + (
                           "" if required else " (without one: seeded random weights, for trying "
                                               "the pipeline only)"))
    group.add_argument("--arch", default=None, choices=list(ARCHITECTURES), metavar="ARCH",
                       help=f"architecture: {', '.join(ARCHITECTURES)} (default: from the "
                            f"checkpoint; {DEFAULT_ARCH} without one)")
    group.add_argument("--dataset", default=None,
                       help="dataset metadata: cityscapes, cityscapes-mmseg, coco-stuff, ade20k, "
                            "custom, or a .json "
                            "file with class_names (+ optional palette, mean, std, channel_order, "
                            "ignore_index, train_size); default: from the checkpoint, or guessed "
                            "from the class count")
    group.add_argument("--num-classes", type=int, default=None,
                       help="the class count the checkpoint's head must have (read from the "
                            "file; a different count is refused)" + (
                           "" if required else "; without --checkpoint: the random weights' "
                                               "classes (default: the dataset's)"))


def check_report_path(path: Optional[str], option: str, kind: str = "json") -> None:
    """Before the work: a report (or plot) path must be writable and, when something is there
    already, an earlier report of ours (portable.files.ownership): never a user's file."""
    from ..portable.files.fileio import check_writable
    from ..portable.files.ownership import check_replaceable

    if path and path != JSON_STDOUT:
        check_writable(path, option)
        check_replaceable(path, kind, option=option)


def write_json_report(path: str, report: dict) -> None:
    """Write a command's JSON report atomically, marked with the toolkit version (the mark that
    lets a later run replace it); `-` (`--json` without a PATH): on stdout."""
    from ..portable.files.fileio import write_json_atomic

    if path == JSON_STDOUT:
        emit_json({"toolkit_version": __version__, **report})
        return
    write_json_atomic(path, {"toolkit_version": __version__, **report})


def emit_json(record: dict) -> None:
    """The JSON record on stdout: the real one when `run_cli` sent the rest to stderr."""
    out = _json_stdout or sys.stdout
    json.dump(record, out, indent=2, default=str)
    out.write("\n")
    out.flush()
