"""Exports in two worker processes, for test modules that make many small exports.

At the test sizes an export is single-threaded work (the TorchScript or torch.export trace, the
simplifier, the checker, the parser): one process keeps one core busy. `ExportPool` runs them in
`workers` spawned processes (spawned, not forked: a fork of a process that holds torch's thread
pools can hang), each with the suite's warning rules, so a 2-core machine exports two at a time.
The results (`ExportResult`, its parser verdict included) come back to the test, which checks
them as it would its own.
"""

import concurrent.futures
import multiprocessing
import os
import warnings

_MODELS = {}


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _init_worker():
    import torch

    torch.set_num_threads(1)
    apply_suite_warning_filters()


def apply_suite_warning_filters():
    """setup.cfg's filterwarnings, which pytest applies to its own process only, read and applied
    the way pytest does (in order, later lines win): a warning from bisenet_deploy's code fails
    an export in a worker too."""
    import configparser

    from _pytest.config import parse_warning_filter

    config = configparser.ConfigParser(interpolation=None)
    config.read(os.path.join(ROOT, "setup.cfg"))
    lines = config.get("tool:pytest", "filterwarnings", fallback="").splitlines()
    for line in (item.strip() for item in lines):
        if line:
            warnings.filterwarnings(*parse_warning_filter(line, escape=False))


def _model(arch):
    if arch not in _MODELS:
        from bisenet_deploy.checkpoint import load_model

        loaded = load_model(None, arch=arch, dataset="cityscapes", seed=0)
        _MODELS[arch] = (loaded.model, loaded.metadata)
    return _MODELS[arch]


def export(arch, options_kwargs):
    """export_onnx(ExportOptions(**options_kwargs)) of the seeded random-init `arch` (the same
    weights as `load_model(None, arch=arch, dataset="cityscapes", seed=0)` in the test)."""
    from bisenet_deploy.export.pipeline import ExportOptions, export_onnx

    return export_onnx(ExportOptions(**options_kwargs), loaded=_model(arch))


class ExportPool(object):
    """submit(arch, **options) -> a future of the ExportResult; `workers` <= 1 exports in the
    calling process when the future's result is asked for."""

    def __init__(self, workers=None):
        self.workers = workers if workers is not None else min(2, os.cpu_count() or 1)
        self._pool = None
        if self.workers > 1:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker)

    def submit(self, arch, **options):
        if self._pool is not None:
            return self._pool.submit(export, arch, options)
        future = concurrent.futures.Future()
        try:
            future.set_result(export(arch, options))
        except Exception as exc:  # noqa: BLE001 - handed to the test through the future
            future.set_exception(exc)
        return future

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
