"""The inner loop (`pytest -m "not slow"`, README "Tests") stays what it promises: one real export,
one real TensorRT-RTX build and one real server start, and every heavy-test entry of conftest.py
still names a test (a renamed test would otherwise quietly come back into the inner loop)."""

import os
import subprocess
import sys

import pytest

import conftest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_the_inner_loop_keeps_its_real_runs_and_every_heavy_entry_names_a_slow_test():
    """One collection (a few seconds of imports, so it runs with the full suite): the heavy files
    filtered to `slow`, plus the inner loop's tests by node id (a missing one is an error)."""
    files = sorted({p.split("::")[0] for p in conftest.HEAVY})
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "slow",
                          "-p", "no:cacheprovider"] + files + list(conftest.INNER_LOOP),
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    slow = [line.strip() for line in out.stdout.splitlines() if "::" in line]
    assert not set(conftest.INNER_LOOP) & set(slow), "the inner loop lost a real run"
    for pattern in conftest.HEAVY:
        regex = conftest.node_pattern(pattern)
        assert any(regex.match(node) for node in slow), "%s matches no test" % pattern


def test_heavy_patterns_take_brackets_literally():
    regex = conftest.node_pattern("tests/t.py::test_x[*]")
    assert regex.match("tests/t.py::test_x[a-b]")
    assert not regex.match("tests/t.py::test_xa")
