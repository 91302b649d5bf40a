"""Paths in the command lines we print or write (`next:` lines, READMEs, hints): one shell word
each, so a pasted line never runs what a file name says (`;touch X`, `$(...)`, a space).

Python 3.6 compatible; standard library only.
"""

import shlex


def quote_path(path):
    """`path` as one shell word: shlex.quote, with './' before a relative path that starts with
    '-' so that no program reads it as an option."""
    text = str(path)
    if text.startswith("-"):
        text = "./" + text
    return shlex.quote(text)
