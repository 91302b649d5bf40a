"""The small pieces every other floor uses: errors and their exit codes, Ctrl-C and
SIGTERM handling, step timing and timing statistics, install hints, parity limits,
shell quoting of paths, what memory the machine can give.

Python 3.6 compatible (see ../__init__.py).
"""
