"""Progress bars with an ETA for the long loops, drawn only where someone watches them.

A bar is drawn on stderr when stderr is a terminal and the command was not given --no-progress;
anywhere else (a log file, a CI job, a pipe, a test capturing output) the same code runs with a
silent pass-through, so no carriage-return debris lands in captured logs. While a bar is drawn, the
toolkit's log lines and the lines a command prints go through `tqdm.write`, which lifts the bar
first, so no line is glued onto it.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Any, Iterable, Iterator, Optional


def on_terminal(stream=None) -> bool:
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or a minimal stream
        return False


@contextlib.contextmanager
def progress_bar(iterable: Optional[Iterable[Any]] = None, *, total: Optional[int] = None,
                 desc: str = "", unit: str = "it", enabled: bool = True) -> Iterator[Any]:
    """`with progress_bar(items, desc=...) as bar: for x in bar: ...` (or `bar.update(n)`).

    A tqdm bar on stderr when `enabled` and stderr is a terminal, else a disabled tqdm that only
    passes the items through. While it is drawn, the `bisenet_deploy` log lines are written
    above it."""
    from tqdm import tqdm

    draw = bool(enabled) and on_terminal()
    bar = tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, file=sys.stderr,
               disable=not draw, dynamic_ncols=True)
    try:
        if not draw:
            yield bar
            return
        from tqdm.contrib.logging import logging_redirect_tqdm

        with logging_redirect_tqdm(loggers=[logging.getLogger("bisenet_deploy")]):
            yield bar
    finally:
        bar.close()


def start_bar(*, total: Optional[int], desc: str = "", unit: str = "it", enabled: bool = True):
    """progress_bar() for a loop someone else drives (TensorRT pulling calibration batches): the
    bar is open until its close()."""
    stack = contextlib.ExitStack()
    bar = stack.enter_context(progress_bar(total=total, desc=desc, unit=unit, enabled=enabled))
    return _OpenBar(bar, stack)


class _OpenBar:
    """update(n) advances the bar; close() leaves progress_bar's context (the bar is removed,
    log lines go straight to stderr again)."""

    def __init__(self, bar, stack: contextlib.ExitStack) -> None:
        self.bar = bar
        self.close = stack.close

    def update(self, n: int = 1) -> None:
        self.bar.update(n)


def write_line(text: str) -> None:
    """print() for a command's result lines inside a loop with a bar: the bar is lifted first."""
    from tqdm import tqdm

    tqdm.write(text, file=sys.stdout)
