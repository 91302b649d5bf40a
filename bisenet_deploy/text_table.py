"""The aligned plain-text table every report prints (bench, eval, the export summary), kept below
both the library and the command line so neither imports the other for it."""

from typing import List, Sequence


def format_table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    """A plain aligned text table for terminal output: header, a dashed rule, one line a row."""
    table = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines: List[str] = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
