"""The inner loop (`pytest -m "not slow"`, README "Tests") stays what it promises: one real export,
one real TensorRT-RTX build and one real server start, and every heavy-test entry of conftest.py
still names a test (a renamed test would otherwise quietly come back into the inner loop)."""

import os
import re
import subprocess
import sys

import pytest

import conftest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def collect(*args):
    """(node ids, files skipped whole at collection, e.g. TensorRT-RTX or mmsegmentation missing)."""
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-rs",
                          "-p", "no:cacheprovider"] + list(args),
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode in (0, 5), out.stdout[-3000:] + out.stderr[-3000:]  # 5: none collected
    nodes = [line.strip() for line in out.stdout.splitlines() if "::" in line
             and not line.startswith("SKIPPED")]
    skipped = set(re.findall(r"SKIPPED \[\d+\] (tests/[\w/]+\.py)", out.stdout))
    return nodes, skipped


@pytest.mark.slow
def test_the_inner_loop_keeps_one_real_export_build_and_server_start():
    """(Two collections, a few seconds of imports each: run with the full suite.)"""
    kept, skipped = collect("-m", "not slow", *conftest.INNER_LOOP)
    for node in conftest.INNER_LOOP:
        assert node in kept or node.split("::")[0] in skipped, "the inner loop lost %s" % node


@pytest.mark.slow
def test_every_heavy_entry_names_a_test():
    files = sorted({p.split("::")[0] for p in conftest.HEAVY})
    nodes, skipped = collect(*files)
    for pattern in conftest.HEAVY:
        regex = conftest.node_pattern(pattern)
        assert pattern.split("::")[0] in skipped or any(regex.match(n) for n in nodes), \
            "%s matches no test: update tests/conftest.py HEAVY" % pattern


def test_heavy_patterns_take_brackets_literally():
    regex = conftest.node_pattern("tests/t.py::test_x[*]")
    assert regex.match("tests/t.py::test_x[a-b]")
    assert not regex.match("tests/t.py::test_xa")


def test_heavy_tests_are_marked_slow_and_the_inner_loop_never_is(pytestconfig):
    class Item(object):
        def __init__(self, nodeid):
            self.nodeid, self.keywords, self.marks = nodeid, {}, []

        def add_marker(self, mark):
            self.marks.append(mark.name)

    heavy = Item("tests/test_export.py::test_each_target_writes_a_checked_graph_matching_pytorch"
                 "[trt10-dynamo]")
    light = Item("tests/test_export.py::test_each_target_writes_a_checked_graph_matching_pytorch"
                 "[trt10-torchscript]")
    kept = Item(conftest.INNER_LOOP[0])
    conftest.pytest_collection_modifyitems(pytestconfig, [heavy, light, kept])
    assert "slow" in heavy.marks and "slow" not in light.marks and "slow" not in kept.marks


def test_export_workers_turn_the_toolkits_warnings_into_errors_as_the_suite_does():
    import warnings

    from support.export_pool import apply_suite_warning_filters

    with warnings.catch_warnings(record=True) as seen:
        warnings.resetwarnings()
        apply_suite_warning_filters()
        with pytest.raises(UserWarning):
            warnings.warn_explicit("from the toolkit", UserWarning, "x.py", 1,
                                   module="bisenet_deploy.export.pipeline")
        warnings.warn_explicit("from elsewhere", UserWarning, "y.py", 1, module="somewhere")
    assert [str(w.message) for w in seen] == ["from elsewhere"]


def test_the_slow_list_script_adds_up_each_tests_phases_whole_node_ids_included():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "measure_slow_tests", os.path.join(ROOT, "scripts", "measure_slow_tests.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    seconds = script.parse_durations(
        "============ slowest durations ============\n"
        "2.50s setup    tests/test_a.py::test_x[b ;touch pwned]\n"
        "1.25s call     tests/test_a.py::test_x[b ;touch pwned]\n"
        "0.01s teardown tests/test_a.py::test_x[b ;touch pwned]\n"
        "0.30s call     tests/test_b.py::test_y\n"
        "(12 durations < 0.005s hidden.)\n")
    assert dict(seconds) == pytest.approx({"tests/test_a.py::test_x[b ;touch pwned]": 3.76,
                                           "tests/test_b.py::test_y": 0.30})
