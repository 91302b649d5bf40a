"""One vocabulary for every command: each shared concept has one option name, declared here.

Commands declare a shared option through these helpers instead of `add_argument`, so the same
concept is spelled the same way everywhere (the README's option table lists them, and
tests/test_cli_vocabulary.py checks every parser against `VOCABULARY`). Each action a helper
adds carries `concept` (and deprecated spellings `deprecated_for`), which that test reads.

Renames keep the old spelling for one release: `alias` adds it hidden, and using it prints one
line on stderr naming the new spelling. An old spelling that would now mean something else is
never taken silently: `refuse_values` turns it into a usage error naming the new option.

The helpers, for commands that add `--json`, `--plot` or `--no-progress`:
- `add_json(group, help)`: `--json [PATH]`: the command's result record as JSON into PATH, or on
  stdout without PATH (or with `-`); then everything else the command prints goes to stderr
  (`run_cli` arranges it) and `common.write_json_report(args.json, record)` writes either.
- `add_plot(group, help)`: `--plot [PATH]`: a PNG at PATH, or without PATH (`args.plot ==
  PLOT_AUTO`) at the command's default place; `plot_path(args.plot, default)` resolves it.
- `add_no_progress(group)`: `--no-progress` (dest `no_progress`), no progress bar.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Dict, Iterable, Optional, Sequence

#: concept -> its one option spelling (short forms included); the README option table lists these
VOCABULARY: Dict[str, Sequence[str]] = {
    "output": ("-o", "--output"),             # the file or folder a command writes
    "network-size": ("--network-size",),      # the size the network runs at, WxH
    "input-size": ("--input-size",),          # the size of the image the graph takes, WxH
    "batch": ("--batch",),                    # batch size N: images per call / static graph batch
    "batch-range": ("--batch-range",),        # dynamic batch MIN:OPT:MAX (optimization profile)
    "precision": ("--precision",),            # fp32 | fp16 | int8 (with --fp32/--fp16/--int8)
    "images": ("--images",),                  # image files or folders to work on
    "backend": ("--backend",),                # the runtime: BACKEND[:PATH][@PRECISION]
    "trt-flavour": ("--trt-flavour",),        # which TensorRT builds: tensorrt | tensorrt-rtx
    "graph-outputs": ("--outputs",),          # what the graph returns: labels | logits | both
    "json": ("--json",),                      # the result record as JSON (PATH, or stdout)
    "plot": ("--plot",),                      # a PNG (PATH, or the command's default place)
    "no-progress": ("--no-progress",),        # no progress bar
    "onnx": ("--onnx",),                      # an ONNX from `bisenet-export onnx`
    "engine": ("--engine",),                  # an engine from `bisenet-build-engine`
    "calib-images": ("--calib-images",),      # the folder of INT8 calibration images
    "calib-count": ("--calib-count",),        # how many of them calibrate
}

#: shorthand flags kept as documented synonyms of one value (users' scripts: build-engine --fp16)
SHORTHANDS: Dict[str, str] = {"--fp32": "precision", "--fp16": "precision", "--int8": "precision"}

#: old spellings -> the concept they now belong to (kept hidden for one release, with a notice)
DEPRECATED: Dict[str, str] = {
    "--output-path": "output", "--output-dir": "output", "--model-size": "network-size",
    "--dynamic-batch": "batch-range", "--image": "images", "--calib-max-images": "calib-count",
}

#: old spellings that are another concept's option now: kept (hidden, with the notice) for one
#: release only in a command without that concept, where they cannot be misread (build-engine has
#: no batch size and no runtime: `--batch 1:4:8` and `--backend tensorrt-rtx` still say what they
#: said); anywhere else they would mean the other concept
REUSED_OLD_SPELLINGS: Dict[str, str] = {"--batch": "batch-range", "--backend": "trt-flavour"}

#: `--plot` without a PATH
PLOT_AUTO = "auto"
#: `--json` without a PATH: the record goes to stdout
JSON_STDOUT = "-"

_SHORTHAND_LABEL = {"fp32": "FP32", "fp16": "FP16", "int8": "INT8 (calibrated)"}


def _tag(action: argparse.Action, concept: str, deprecated_for: Optional[str] = None):
    action.concept = concept  # type: ignore[attr-defined]
    action.deprecated_for = deprecated_for  # type: ignore[attr-defined]
    return action


def _notice(old: str, new: str) -> None:
    sys.stderr.write(f"warning: {old} is deprecated and goes in the next release: use {new}\n")


def _deprecated_class(base: type, old: str, new: str) -> type:
    class Deprecated(base):  # type: ignore[misc, valid-type]
        def __call__(self, parser, namespace, values, option_string=None):
            _notice(option_string or old, new)
            super().__call__(parser, namespace, values, option_string)

    Deprecated.__name__ = "Deprecated" + base.__name__
    return Deprecated


def option(group, concept: str, *, alias: Iterable[str] = (), **kwargs) -> argparse.Action:
    """`group.add_argument(<the concept's spelling>, **kwargs)` plus hidden deprecated `alias`
    spellings that store into the same place after a one-line notice."""
    spellings = VOCABULARY[concept]
    alias = tuple(alias)
    # argparse would call a required option missing when only its old spelling was given:
    # `check_required` (run by run_cli) asks for it instead
    required = bool(kwargs.pop("required", False))
    action = _tag(group.add_argument(*spellings, required=required and not alias, **kwargs),
                  concept)
    action.required_here = required  # type: ignore[attr-defined]
    for old in alias:
        add_alias(group, action, old)
    return action


def check_required(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The usage error argparse gives for a missing required option, for those with an old
    spelling (argparse cannot see that the old spelling gave it)."""
    for action in parser._actions:
        if getattr(action, "required_here", False) and getattr(args, action.dest, None) is None:
            parser.error(f"the following arguments are required: {'/'.join(action.option_strings)}")


def add_alias(group, action: argparse.Action, old: str, type: Optional[Callable] = None):
    """A hidden old spelling of `action`: same dest and value, plus the deprecation notice."""
    new = max(action.option_strings, key=len)
    base = type_of_action(action)
    kwargs = dict(dest=action.dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS,
                  action=_deprecated_class(base, old, new))
    if base in (argparse._StoreAction, argparse._AppendAction):
        kwargs.update(nargs=action.nargs, type=type or action.type, choices=action.choices,
                      metavar=action.metavar)
    elif base in (argparse._StoreConstAction, argparse._AppendConstAction):
        kwargs.update(const=action.const)
    alias = group.add_argument(old, **kwargs)
    return _tag(alias, getattr(action, "concept", ""), deprecated_for=new)


def type_of_action(action: argparse.Action) -> type:
    for base in (argparse._StoreAction, argparse._StoreConstAction, argparse._StoreTrueAction,
                 argparse._AppendAction, argparse._AppendConstAction, argparse._CountAction):
        if isinstance(action, base):
            return base
    raise TypeError(f"no alias for {type(action).__name__}")  # a bug in a parser definition


def refuse_values(values: Iterable[str], message: str, inner: Callable = str) -> Callable:
    """argparse `type=` that refuses the values an old spelling took (a usage error saying what
    to use instead), so an old `--output labels` is never taken as a file called 'labels'."""
    refused = set(values)

    def parse(text: str):
        if text in refused:
            raise argparse.ArgumentTypeError(message.format(value=text))
        return inner(text)

    parse.__name__ = getattr(inner, "__name__", "value")
    return parse


# -- the shared options ---------------------------------------------------------------------------

#: what `--output KIND` chose before it became the path to write (export onnx, jetson)
GRAPH_OUTPUT_KINDS = ("labels", "logits", "both")
_OLD_OUTPUT_KIND = ("-o/--output is the file to write, and '{value}' is what `--output {value}` "
                    "chose before, the graph outputs: that is `--outputs {value}` now (for a "
                    "file of that name: ./{value})")


def add_output(group, help: str, *, alias: Iterable[str] = (), metavar: str = "PATH",
               required: bool = False, refuse_graph_outputs: bool = False):
    """`-o/--output PATH`: what the command writes (a file or a folder). With
    `refuse_graph_outputs` (commands whose `--output` chose labels|logits|both before), those
    values are refused with a line naming `--outputs` instead of being taken as a path."""
    kind = refuse_values(GRAPH_OUTPUT_KINDS, _OLD_OUTPUT_KIND) if refuse_graph_outputs else None
    extra = {"type": kind} if kind else {}
    return option(group, "output", alias=alias, metavar=metavar, required=required, default=None,
                  help=help, **extra)


def add_graph_outputs(group, choices: Sequence[str], default: str, help: str):
    """`--outputs labels|logits|both`: what an exported graph returns. Its old spelling,
    `--output KIND`, names the file to write now: `add_output(refuse_graph_outputs=True)`."""
    return option(group, "graph-outputs", choices=tuple(choices), default=default, help=help)


def add_network_size(group, help: str, *, alias: Iterable[str] = (), **kwargs):
    from .arg_types import size_arg

    return option(group, "network-size", alias=alias, type=size_arg, metavar="WxH", help=help,
                  **kwargs)


def add_input_size(group, help: str, **kwargs):
    """`--input-size WxH`: the size of the image the graph takes (the camera's)."""
    from .arg_types import size_arg

    return option(group, "input-size", type=size_arg, metavar="WxH", help=help, **kwargs)


def add_batch(group, help: str, default: int = 1):
    """`--batch N`: images per call, and an export's static batch (the same N dimension)."""
    from .arg_types import positive_int

    return option(group, "batch", type=positive_int, default=default, metavar="N", help=help)


def add_batch_range(group, help: str, *, alias: Iterable[str] = ()):
    """`--batch-range MIN:OPT:MAX`: a dynamic batch and its optimization profile."""
    from .arg_types import batch_profile_arg

    return option(group, "batch-range", alias=alias, type=batch_profile_arg, default=None,
                  metavar="MIN:OPT:MAX", help=help)


def add_precision(group, choices: Sequence[str], help: str, default: Optional[str] = None,
                  shorthands: bool = True, refused: Optional[Dict[str, str]] = None):
    """`--precision P` plus the shorthand flags `--fp32/--fp16[/--int8]` (each `--precision P`),
    mutually exclusive. A command's default goes in `parser.set_defaults(precision=...)` or
    `default`. `refused`: precisions this command knows but cannot take, each with the reason
    its usage error gives (`--int8` on the TX2 bundle), so the user reads why, not
    "unrecognized argument"."""
    refused = dict(refused or {})
    excl = group.add_mutually_exclusive_group()

    def precision(text: str) -> str:
        if text in refused:
            raise argparse.ArgumentTypeError(refused[text])
        return text

    action = option(excl, "precision", choices=tuple(choices), default=default, help=help,
                    type=precision)
    if shorthands:
        for value in choices:
            _tag(excl.add_argument(f"--{value}", dest="precision", action="store_const",
                                   const=value, help=f"{_SHORTHAND_LABEL.get(value, value)}: the "
                                                     f"same as --precision {value}"),
                 "precision")
        for value, reason in refused.items():
            _tag(excl.add_argument(f"--{value}", dest="precision", nargs=0, const=value,
                                   help=argparse.SUPPRESS, action=_refusal(reason)),
                 "precision")
    return action


def _refusal(reason: str) -> type:
    class Refused(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            parser.error(f"{option_string}: {reason}")

    return Refused


def add_images(group, help: str, *, alias: Iterable[str] = (), required: bool = False):
    """`--images PATH [PATH ...]`: image files or folders."""
    return option(group, "images", alias=alias, nargs="+", metavar="PATH", required=required,
                  help=help)


def add_backend(group, help: str, **kwargs):
    """`--backend`: the runtime that runs the model (torch, onnxruntime..., tensorrt); one in
    commands that run one model (predict, serve), one or more BACKEND[:PATH][@PRECISION] in those
    that put several side by side (bench, eval). Never the TensorRT flavour (`--trt-flavour`)."""
    kwargs.setdefault("metavar", "BACKEND")
    return option(group, "backend", help=help, **kwargs)


def add_trt_flavour(group, help: str, *, alias: Iterable[str] = ()):
    return option(group, "trt-flavour", alias=alias, choices=("tensorrt", "tensorrt-rtx"),
                  default=None, help=help)


def add_json(group, help: str):
    """`--json [PATH]`: the result record as JSON into PATH, or on stdout without one."""
    return option(group, "json", nargs="?", const=JSON_STDOUT, default=None, metavar="PATH",
                  help=help + " (without PATH or with -: on stdout, everything else on stderr)")


def add_plot(group, help: str):
    """`--plot [PATH]`: a PNG at PATH, or at the command's default place without one."""
    return option(group, "plot", nargs="?", const=PLOT_AUTO, default=None, metavar="PATH",
                  help=help)


def plot_path(value: Optional[str], default: str) -> Optional[str]:
    """The PNG to write for `--plot` (None: no plot): PATH as given, `default` without one."""
    if not value:
        return None
    return default if value == PLOT_AUTO else value


def add_no_progress(group):
    return option(group, "no-progress", action="store_true", help="no progress bar")


class _OneOnnx(argparse.Action):
    """Stores the ONNX path given as the operand or as `--onnx`; two different ones are a usage
    error, so neither silently wins."""

    def __call__(self, parser, namespace, values, option_string=None):
        if values is None or values == argparse.SUPPRESS:  # an operand left out
            return
        given = getattr(namespace, self.dest, None)
        if given is not None and given != values:
            parser.error(f"two ONNX files given, {given} and {values}: give one")
        setattr(namespace, self.dest, values)


def add_onnx(group, help: str, **kwargs):
    """`--onnx PATH`: an ONNX exported by `bisenet-export onnx`. Commands that take one ONNX
    as their operand (build-engine, export check) also take it this way: `add_onnx_operand`."""
    return option(group, "onnx", metavar="PATH", help=help, action=_OneOnnx, **kwargs)


def add_onnx_operand(parser, help: str):
    """`MODEL.onnx` as the operand, and `--onnx PATH` as the other commands spell it; both
    land in args.onnx."""
    parser.add_argument("onnx", nargs="?", metavar="MODEL.onnx", help=help, action=_OneOnnx,
                        default=argparse.SUPPRESS)
    return add_onnx(parser, "the same as the MODEL.onnx operand (the spelling the other "
                            "commands use)")


def add_engine(group, help: str, **kwargs):
    """`--engine PATH`: an engine built by `bisenet-build-engine` (its sidecar beside it)."""
    return option(group, "engine", metavar="PATH", help=help, **kwargs)


def add_calib_images(group, help: str):
    """`--calib-images DIR`: the folder of INT8 calibration images."""
    return option(group, "calib-images", metavar="DIR", default=None, help=help)


def add_calib_count(group, help: str, default: Optional[int], *, alias: Iterable[str] = ()):
    """`--calib-count N`: calibrate on (at most) the first N images of --calib-images."""
    return option(group, "calib-count", alias=alias, type=int, default=default, metavar="N",
                  help=help)
