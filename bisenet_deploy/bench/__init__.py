"""Benchmarking: one timing loop for every backend, statistics, environment, JSON report and plot.

`harness.time_runner` times any `portable.running.runner_base.Runner`; `session.run_benchmarks` drives
several backends side by side for `bisenet-bench`; `report` writes and validates the JSON report.
"""
