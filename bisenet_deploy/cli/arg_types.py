"""argparse `type=` converters shared by every command's options: sizes, batch profiles and
counts. A bad value is one argparse usage line (exit 2), never a traceback. Below both common.py
and options.py, which both use them."""

from __future__ import annotations

import argparse
from typing import Callable, Tuple

from ..errors import InputError


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


def _int_at_least(minimum: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
        return value

    parse.__name__ = "count" if minimum >= 1 else "index"  # argparse names it in messages
    return parse


#: argparse `type=` for counts (frames, images, threads, ...): 1 or more
positive_int = _int_at_least(1, ">= 1")
#: argparse `type=` for indices (a GPU): 0 or more
non_negative_int = _int_at_least(0, ">= 0 (a device index)")
