#!/usr/bin/env python3
"""Keep the inner loop (`pytest -m "not slow"`) short by measurement, not by guesswork.

Runs the inner-loop selection once, serially, with pytest's per-test durations (setup + call +
teardown), and adds every test that took longer than `--over` seconds to tests/slow_tests.txt,
which tests/conftest.py reads into the heavy list (the full suite still runs them all). The tests
in conftest.INNER_LOOP are never added. A test that pays for a fixture shared with others hands
that cost to the next one once it leaves, so run it again until it adds nothing.

    python scripts/measure_slow_tests.py            # measure, add, print the selection's total
    python scripts/measure_slow_tests.py --dry-run  # measure and print only
"""

import argparse
import os
import re
import subprocess
import sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIST = os.path.join(ROOT, "tests", "slow_tests.txt")
DURATION = re.compile(r"^\s*([0-9.]+)s (setup|call|teardown)\s+(tests/\S.*?)\s*$")


def measure(extra):
    """{node id: seconds} of one serial inner-loop run (pytest's --durations=0 lines)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "not slow", "-p", "no:xdist",
           "-p", "no:cacheprovider", "--durations=0", "--durations-min=0"] + extra
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("the inner loop failed (exit %d); fix it first:\n%s"
                 % (out.returncode, out.stdout[-3000:]))
    return parse_durations(out.stdout)


def parse_durations(text):
    """{node id: setup + call + teardown seconds} from pytest's --durations lines."""
    seconds = defaultdict(float)
    for line in text.splitlines():
        found = DURATION.match(line)
        if found:
            seconds[found.group(3)] += float(found.group(1))
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--over", type=float, default=1.5,
                        help="seconds above which a test leaves the inner loop (default 1.5)")
    parser.add_argument("--dry-run", action="store_true", help="measure and print only")
    args, extra = parser.parse_known_args()
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import conftest  # the hand-picked heavy list and the tests the inner loop always keeps

    seconds = measure(extra)
    slow = sorted(node for node, s in seconds.items()
                  if s > args.over and node not in conftest.INNER_LOOP)
    kept = sum(s for node, s in seconds.items() if node not in slow)
    print("inner loop: %d tests, %.0f s serial; %d over %.1f s (%.0f s); %.0f s without them"
          % (len(seconds), sum(seconds.values()), len(slow), args.over,
             sum(seconds[n] for n in slow), kept))
    for node in slow:
        print("  %6.2f s  %s" % (seconds[node], node))
    if slow and not args.dry_run:
        with open(LIST, "a", encoding="utf-8") as f:
            f.writelines(node + "\n" for node in slow)
        print("added to %s; run again until it adds nothing" % os.path.relpath(LIST, ROOT))


if __name__ == "__main__":
    main()
