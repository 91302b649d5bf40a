"""`bisenet-bench --rounds`: backends timed in alternating rounds, their calls pooled
(bench/rounds.py), so a machine that drifts during the run favours none of them."""

import json

import pytest
from support.bench_fakes import FakeClock, FakeRunner
from support.records import bench_record as make_record

from bisenet_deploy.bench.report import validate_report
from bisenet_deploy.bench.rounds import default_rounds, round_order, split_iterations
from bisenet_deploy.bench.session import exit_code_for, run_benchmarks


class SlowingMachine(object):
    """Every call on it takes 1 ms plus 0.01 ms per call made before it, whoever made them: a
    CPU heating up, or another job starting, while the benchmark runs."""

    def __init__(self):
        self.clock = FakeClock()
        self.calls = 0
        self.opened = []

    def opener(self, record):
        machine = self

        class Runner(FakeRunner):
            def _infer(self, batch):
                self.latencies = [1.0 + 0.01 * machine.calls]
                machine.calls += 1
                return FakeRunner._infer(self, batch)

        def open_backend(name):
            machine.opened.append(name)
            return Runner(record, clock=machine.clock, name=name)

        return open_backend


def _median_ratio(entries):
    a, b = (e["latency_ms"]["median_ms"] for e in entries)
    return b / a


def test_split_and_order():
    assert split_iterations(10, 4) == [3, 3, 2, 2]
    assert split_iterations(5000, 4) == [1250] * 4
    assert split_iterations(3, 5) == [1, 1, 1]  # never a round of no calls
    assert split_iterations(7, 1) == [7]
    assert [round_order("ab", r) for r in range(4)] == [list("ab"), list("ba"), list("ab"),
                                                        list("ba")]
    assert default_rounds(1) == 1 and default_rounds(3) == 4


def test_alternating_rounds_cancel_a_drift_that_sequential_timing_blames_on_one_backend():
    """Two identical backends on a machine slowing down: one after the other, the second looks
    about a third slower; in 4 alternating rounds (A B, B A, A B, B A) both time alike."""
    record = make_record()
    sequential = SlowingMachine()
    entries, _, _ = run_benchmarks(["a", "b"], sequential.opener(record), iters=40, warmup=0,
                                   clock=sequential.clock, rounds=1)
    assert sequential.opened == ["a", "b"]
    assert _median_ratio(entries) > 1.25

    rounds = SlowingMachine()
    entries, _, _ = run_benchmarks(["a", "b"], rounds.opener(record), iters=40, warmup=0,
                                   clock=rounds.clock, rounds=4)
    assert rounds.opened == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert abs(_median_ratio(entries) - 1.0) < 0.03
    for e in entries:  # the rounds' calls pooled into one result of the calls asked
        assert e["status"] == "ok" and e["rounds"] == 4
        assert e["iterations"] == e["requested_iterations"] == 40
        assert len(e["latency_samples_ms"]) == e["latency_ms"]["count"] == 40
        assert not e.get("interrupted")


def test_bench_cli_times_in_alternating_rounds_and_says_so(tiny_export, tmp_path, capsys,
                                                            monkeypatch):
    """Two backends by default: 4 rounds, recorded in the report (which validates) and said
    under the table; one backend: 1; --rounds is capped by --iters."""
    from bisenet_deploy.cli import bench_main

    monkeypatch.chdir(tmp_path)
    _, _, onnx = tiny_export()
    both = ["--onnx", onnx, "--backend", "onnxruntime", "onnxruntime:%s" % onnx]
    assert bench_main.main(both + ["--iters", "6", "--warmup", "0", "--no-progress", "--json",
                                   "r.json"]) == 0
    assert "timed in 4 alternating rounds: A B, B A, ..." in capsys.readouterr().out
    with open("r.json") as f:
        report = validate_report(json.load(f))
    assert report["config"]["rounds"] == 4
    assert [(b["rounds"], b["iterations"]) for b in report["backends"]] == [(4, 6), (4, 6)]
    assert bench_main.main(both + ["--iters", "2", "--rounds", "5", "--warmup", "0",
                                   "--no-progress", "--json", "r.json"]) == 0
    with open("r.json") as f:
        assert json.load(f)["config"]["rounds"] == 2
    assert bench_main.main(["--onnx", onnx, "--backend", "onnxruntime", "--iters", "3",
                            "--warmup", "0", "--no-progress", "--json", "r.json"]) == 0
    with open("r.json") as f:
        assert json.load(f)["backends"][0]["rounds"] == 1
    capsys.readouterr()
    assert bench_main.main(both + ["--rounds", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --rounds must be >= 1, got 0"


def test_a_backend_that_fails_in_a_later_round_is_reported_failed_and_the_other_still_runs():
    record = make_record()
    clock = FakeClock()
    opened = []

    def opener(name):
        opened.append(name)
        mode = "range" if name == "b" and opened.count("b") == 2 else "ok"
        return FakeRunner(record, [1.0], clock=clock, name=name, mode=mode)

    entries, first, _ = run_benchmarks(["a", "b"], opener, iters=8, warmup=0, clock=clock,
                                       rounds=4)
    assert opened == ["a", "b", "b", "a", "a", "a"]  # b is not opened again once it failed
    assert entries[0]["status"] == "ok" and entries[0]["iterations"] == 8
    assert entries[1]["status"] == "failed" and "labels" in entries[1]["error"]
    assert exit_code_for(entries) == 3 and first is record


def test_ctrl_c_in_a_later_round_keeps_every_backends_calls_so_far():
    """Ctrl-C while b times its second round: a keeps its first round, b its calls so far,
    both marked interrupted with how many of the calls asked ran; nothing else is opened."""
    record = make_record()
    clock = FakeClock()
    opened = []

    def opener(name):
        opened.append(name)
        stop = 2 if name == "b" and opened.count("b") == 2 else None  # the check call is 0
        return FakeRunner(record, [1.0], clock=clock, name=name, interrupt_at=stop)

    entries, _, _ = run_benchmarks(["a", "b"], opener, iters=8, warmup=0, clock=clock,
                                   rounds=4)
    assert opened == ["a", "b", "b"]
    a, b = entries
    assert a["status"] == b["status"] == "ok"
    assert (a["iterations"], b["iterations"]) == (2, 3)  # round 1: 2 calls each; b's 2nd: 1
    for e in entries:
        assert e["interrupted"] and e["interrupted_by"] == "Ctrl-C"
        assert e["requested_iterations"] == 8 and len(e["latency_samples_ms"]) == e["iterations"]
        assert any("after %d of 8 timed calls" % e["iterations"] in w for w in e["warnings"])
    assert exit_code_for(entries) == 130
