"""Shared command-line plumbing: logging, error reporting, and the option parsers every command uses.

Every console script runs through `run_cli`, which turns a `UserError` into one clear line on
stderr and a non-zero exit, and any other exception into a short "internal error" line (the full
traceback only with --debug), so users never read a traceback from deep inside torch or onnx.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, List, Optional, Sequence, Tuple

from .. import __version__
from ..errors import InputError, UserError

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


def run_cli(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None) -> int:
    """Parse `argv`, run `args.func(args)` and map errors to exit codes. Returns the exit code.

    `args.argv` holds the arguments as given, for reports that record the command that was run.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--version" not in parser._option_string_actions:
        parser.add_argument("--version", action="version",
                            version=f"%(prog)s (bisenet-deploy {__version__})")
    _one_line_usage_errors(parser)
    args = parser.parse_args(argv)
    args.argv = argv
    setup_logging(getattr(args, "verbose", 0), getattr(args, "quiet", False))
    func: Optional[Callable[[argparse.Namespace], Optional[int]]] = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except UserError as exc:
        log.error("error: %s", exc)
        return exc.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except Exception as exc:  # a bug in the toolkit, not the user's fault
        if getattr(args, "debug", False):
            raise
        log.error("internal error: %s: %s\n(this is a bug in bisenet-deploy; re-run with --debug "
                  "for the traceback and report it)", type(exc).__name__, exc)
        return 1


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
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    patch(sub)

    patch(parser)


def parse_size(text: str) -> Tuple[int, int]:
    """'2048x1024' -> (2048, 1024): width x height, both positive integers."""
    parts = str(text).lower().replace("*", "x").split("x")
    try:
        if len(parts) != 2:
            raise ValueError
        width, height = int(parts[0]), int(parts[1])
        if width <= 0 or height <= 0:
            raise ValueError
    except ValueError:
        raise InputError(f"size {text!r} is not WIDTHxHEIGHT with positive integers "
                         f"(e.g. 2048x1024)") from None
    return width, height


def parse_batch_profile(text: str) -> Tuple[int, int, int]:
    """'1:4:8' -> (1, 4, 8) with 1 <= min <= opt <= max."""
    try:
        values = [int(v) for v in str(text).split(":")]
        if len(values) != 3:
            raise ValueError
    except ValueError:
        raise InputError(f"batch profile {text!r} is not MIN:OPT:MAX (e.g. 1:4:8)") from None
    lo, opt, hi = values
    if not 1 <= lo <= opt <= hi:
        raise InputError(f"batch profile {text!r} needs 1 <= MIN <= OPT <= MAX")
    return lo, opt, hi


def size_arg(text: str) -> Tuple[int, int]:
    """argparse `type=` wrapper: a bad size is an argparse usage error, not a traceback."""
    try:
        return parse_size(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def batch_profile_arg(text: str) -> Tuple[int, int, int]:
    try:
        return parse_batch_profile(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_model_args(parser: argparse.ArgumentParser, required: bool = False) -> None:
    """--checkpoint / --arch / --dataset / --num-classes, shared by every command that builds a model."""
    group = parser.add_argument_group("model")
    group.add_argument("--checkpoint", metavar="PATH", required=required,
                       help="our .safetensors checkpoint, a CoinCheung/BiSeNet .pth or an "
                            "mmsegmentation BiSeNetV2 .pth" + (
                           "" if required else " (without one: seeded random weights, for trying "
                                               "the pipeline only)"))
    group.add_argument("--arch", default=None,
                       help="architecture (default: from the checkpoint; bisenetv2 without one)")
    group.add_argument("--dataset", default=None,
                       help="dataset metadata: cityscapes, cityscapes-mmseg, coco-stuff, ade20k, "
                            "custom, or a .json "
                            "file with class_names (+ optional palette, mean, std, channel_order, "
                            "ignore_index, train_size); default: from the checkpoint, or guessed "
                            "from the class count")
    group.add_argument("--num-classes", type=int, default=None,
                       help="classes for random weights (default: the dataset's)")


def format_table(rows: List[List[str]], header: List[str]) -> str:
    """A plain aligned text table for terminal output."""
    table = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
