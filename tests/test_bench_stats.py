"""Timing statistics and the timing loop: fake runners with known latencies on a fake clock."""

import math

import numpy as np
import pytest

from bisenet_deploy.bench.harness import (BenchmarkError, check_outputs, make_inputs,
                                          time_runner)
from bisenet_deploy.errors import InputError
from bisenet_deploy.portable.shared import timing_stats
from bisenet_deploy.portable.shared.timing_stats import percentile, stability_warning, summarize
from support.bench_fakes import FakeClock, FakeRunner
from support.records import bench_record as make_record


# -- pure statistics ---------------------------------------------------------------------------
def test_summary_of_1_to_100_ms():
    s = summarize(range(1, 101), batch=1)
    assert s["count"] == 100 and s["min_ms"] == 1 and s["max_ms"] == 100
    assert s["mean_ms"] == pytest.approx(50.5)
    assert s["median_ms"] == pytest.approx(50.5)
    assert s["p90_ms"] == pytest.approx(90.1)
    assert s["p95_ms"] == pytest.approx(95.05)
    assert s["p99_ms"] == pytest.approx(99.01)
    assert s["std_ms"] == pytest.approx(math.sqrt((100 ** 2 - 1) / 12.0))
    assert s["cv"] == pytest.approx(s["std_ms"] / 50.5)
    assert s["fps"] == pytest.approx(1000 / 50.5)
    assert s["unstable"] is True
    assert tuple(s) == timing_stats.SUMMARY_KEYS


def test_percentiles_match_numpy_linear_interpolation():
    rng = np.random.default_rng(3)
    data = rng.gamma(2.0, 3.0, 257)
    for q in (0, 12.5, 50, 90, 95, 99, 100):
        assert percentile(data, q) == pytest.approx(float(np.percentile(data, q)))


def test_images_per_second_scales_with_batch():
    s = summarize([20.0] * 10, batch=4)
    assert s["fps"] == pytest.approx(50.0)
    assert s["images_per_s"] == pytest.approx(200.0)
    assert s["cv"] == 0.0 and s["unstable"] is False


def test_cv_warning_threshold_is_2_5_percent():
    steady = summarize([10.0, 10.2, 9.8, 10.0])          # cv ~1.4%
    noisy = summarize([10.0, 11.0, 9.0, 10.0])           # cv ~7.1%
    assert not steady["unstable"] and stability_warning(steady) is None
    assert noisy["unstable"]
    msg = stability_warning(noisy, "torch latency")
    assert "torch latency" in msg and "7.1%" in msg and "2.5%" in msg


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [-1.0]])
def test_bad_samples_are_refused(bad):
    with pytest.raises(ValueError):
        summarize(bad)


# -- the timing loop ---------------------------------------------------------------------------
def _inputs(record, n=3, batch=1):
    return [np.full((batch, 3) + tuple(record["export"]["input_size"][::-1]), i, np.float32)
            for i in range(n)]


def test_loop_reports_exactly_the_latencies_the_runner_took():
    record = make_record()
    clock = FakeClock()
    latencies = [5.0, 7.0, 6.0, 30.0]
    runner = FakeRunner(record, latencies, clock, device_ms=[4.0, 4.5])
    with runner:
        result = time_runner(runner, _inputs(record), iters=8, warmup=4, record=record,
                             clock=clock, progress=False)
    # warm-up (4) + check (1) calls consumed latencies[0..4]; the timed ones start at index 5
    expected = [latencies[i % 4] for i in range(5, 13)]
    assert result["latency_samples_ms"] == pytest.approx(expected)
    lat = result["latency_ms"]
    assert lat["count"] == 8
    assert lat["median_ms"] == pytest.approx(float(np.median(expected)))
    assert lat["p99_ms"] == pytest.approx(float(np.percentile(expected, 99)))
    assert lat["mean_ms"] == pytest.approx(float(np.mean(expected)))
    assert result["loop_wall_s"] == pytest.approx(sum(expected) / 1000.0)
    assert result["throughput_images_per_s"] == pytest.approx(8 * 1000.0 / sum(expected))
    assert result["device_ms"]["count"] == 8
    # the 30 ms outlier makes the run unstable: a warning, not a silent number
    assert lat["unstable"] and any("varies" in w for w in result["warnings"])
    assert runner.calls == 4 + 1 + 8


def test_inputs_are_rotated_among_the_buffers():
    record = make_record()
    runner = FakeRunner(record, [1.0], FakeClock())
    inputs = _inputs(record, n=3)
    with runner:
        time_runner(runner, inputs, iters=7, warmup=0, record=record, clock=runner.clock,
                    progress=False)
    timed = runner.seen[1:]  # the first call is the output check
    assert [int(x.flat[0]) for x in timed] == [0, 1, 2, 0, 1, 2, 0]
    assert all(x is inputs[i % 3] for i, x in enumerate(timed))


def test_make_inputs_gives_distinct_synthetic_buffers_in_the_graph_format():
    record = make_record(input_size=(64, 32), input_dtype="uint8")
    buffers, source = make_inputs(record, batch=2, num_buffers=3)
    assert len(buffers) == 3
    assert all(b.shape == (2, 3, 32, 64) and b.dtype == np.uint8 for b in buffers)
    assert not np.array_equal(buffers[0], buffers[1])
    assert not np.array_equal(buffers[0][0], buffers[0][1])
    assert source["kind"] == "synthetic" and len(source["seeds"]) == 6


def test_make_inputs_from_an_image_resizes_on_the_host_once():
    record = make_record(input_size=(64, 32))
    image = np.zeros((50, 90, 3), np.uint8)
    buffers, source = make_inputs(record, batch=1, num_buffers=2, image=image)
    assert buffers[0].shape == (1, 3, 32, 64) and buffers[0] is not buffers[1]
    assert source["resized_on_host_to"] == [64, 32]


def test_fixed_batch_model_refuses_another_batch():
    record = make_record(batch=1)
    runner = FakeRunner(record)
    with pytest.raises(InputError, match="batch 1 exactly"):
        make_inputs(record, batch=2, input_spec=runner.input_spec())


def test_nan_logits_fail_the_run():
    record = make_record(output="both")
    runner = FakeRunner(record, mode="nan", clock=FakeClock())
    with runner, pytest.raises(BenchmarkError, match="NaN"):
        time_runner(runner, _inputs(record), iters=3, warmup=1, record=record,
                    clock=runner.clock, progress=False)


def test_labels_out_of_range_fail_the_run():
    record = make_record()
    runner = FakeRunner(record, mode="range", clock=FakeClock())
    with runner, pytest.raises(BenchmarkError, match="outside the model's 5 classes"):
        time_runner(runner, _inputs(record), iters=3, warmup=0, record=record,
                    clock=runner.clock, progress=False)


def test_output_check_describes_valid_outputs():
    record = make_record(output="both")
    runner = FakeRunner(record)
    with runner:
        checked = check_outputs(runner.infer(_inputs(record)[0]), record, batch=1)
    assert checked["labels"]["min"] == 0 and checked["labels"]["max"] == 4
    assert checked["logits"]["dtype"] == "float32"
    with pytest.raises(BenchmarkError, match="batch 2"):
        check_outputs({"labels": np.zeros((1, 4, 4), np.int32)}, record, batch=2)


@pytest.mark.parametrize("iters,warmup", [(0, 1), (3, -1)])
def test_bad_iteration_counts_are_refused(iters, warmup):
    record = make_record()
    with FakeRunner(record) as runner, pytest.raises(InputError):
        time_runner(runner, _inputs(record), iters=iters, warmup=warmup, progress=False)


def test_garbage_collector_is_paused_during_timing_and_restored():
    import gc
    record = make_record()
    states = []

    class Probe(FakeRunner):
        def _infer(self, batch):
            states.append(gc.isenabled())
            return FakeRunner._infer(self, batch)

    assert gc.isenabled()
    with Probe(record, clock=FakeClock()) as runner:
        time_runner(runner, _inputs(record), iters=3, warmup=1, record=record,
                    clock=runner.clock, progress=False)
    assert states == [True, True, False, False, False]  # warm-up and check, then timed calls
    assert gc.isenabled()


def test_backends_timing_different_graphs_are_flagged():
    from bisenet_deploy.bench.session import run_benchmarks

    records = {"a": make_record(input_size=(32, 16), model_size=(16, 8)),
               "b": make_record(input_size=(64, 32), model_size=(32, 16)),
               "c": make_record(input_size=(32, 16), model_size=(16, 8))}
    clock = FakeClock()

    def opener(name):
        return FakeRunner(records[name], [2.0], clock=clock, name=name)

    entries, _record, _source = run_benchmarks(["a", "c"], opener, iters=3, warmup=0,
                                               clock=clock)
    assert all(e["status"] == "ok" and not e["warnings"] for e in entries)
    entries, _record, _source = run_benchmarks(["a", "b"], opener, iters=3, warmup=0,
                                               clock=clock)
    for e in entries:
        assert e["graph"]["input_size"] == records[e["backend"]]["export"]["input_size"]
        assert any("different graphs" in w and "32x16" in w and "64x32" in w
                   for w in e["warnings"])
