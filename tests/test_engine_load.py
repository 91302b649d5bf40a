"""The process's one TensorRT logger, and what happens before and around loading an engine:
its flavour (sidecar, else the file header), TensorRT-RTX's validity check and runtime cache.
Fakes stand for TensorRT here; the real ones run in test_engine_rtx_build.py (logger) and
test_engine_rtx_gpu.py (runtime cache, on a GPU)."""

import logging
import os
import types

import pytest

from bisenet_deploy.errors import EngineFileError, IncompatibleEngineError
from bisenet_deploy.portable.running import engine_load
from bisenet_deploy.portable.trt import trt_logger


class _Severity(object):
    def __init__(self, name):
        self.name = name


def _fake_trt_with_ilogger():
    class ILogger(object):
        def __init__(self):
            pass

    plugins = []
    return types.SimpleNamespace(
        __name__="tensorrt", ILogger=ILogger,
        init_libnvinfer_plugins=lambda logger, ns: plugins.append(logger), plugins=plugins)


def test_one_forwarding_logger_per_library(caplog):
    trt = _fake_trt_with_ilogger()
    first = trt_logger.tensorrt_logger(trt)
    assert trt_logger.tensorrt_logger(trt, verbose=True) is first and trt.plugins == [first]
    other = _fake_trt_with_ilogger()  # another library (e.g. TensorRT-RTX next to TensorRT)
    assert trt_logger.tensorrt_logger(other) is not first
    with caplog.at_level(logging.DEBUG, logger=trt_logger.__name__):
        first.log(_Severity("VERBOSE"), "tactic timing")
        first.log(_Severity("INFO"), "engine generation completed")
        first.log(_Severity("ERROR"), "cudaError 35")
        trt_logger.tensorrt_logger(trt, verbose=False)
        first.log(_Severity("VERBOSE"), "dropped when not verbose")
        first.log(_Severity("INFO"), "debug when not verbose")
        first.log(_Severity("WARNING"), "always a warning")
        with trt_logger.quiet(first, "Plugin not found"):
            first.log(_Severity("ERROR"), "node 3: Plugin not found")
        first.log(_Severity("ERROR"), "after the block: Plugin not found")
    got = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert got == [
        (logging.DEBUG, "TensorRT: tactic timing"),
        (logging.INFO, "TensorRT: engine generation completed"),
        (logging.ERROR, "TensorRT: cudaError 35"),
        (logging.DEBUG, "TensorRT: debug when not verbose"),
        (logging.WARNING, "TensorRT: always a warning"),
        (logging.DEBUG, "TensorRT: node 3: Plugin not found"),
        (logging.ERROR, "TensorRT: after the block: Plugin not found"),
    ]


def test_plain_logger_where_ilogger_cannot_be_subclassed():
    class Logger(object):
        WARNING, VERBOSE = 2, 4

        def __init__(self, level):
            self.min_severity = level

    trt = types.SimpleNamespace(__name__="tensorrt", Logger=Logger)
    logger = trt_logger.tensorrt_logger(trt, verbose=True)
    assert logger.min_severity == Logger.VERBOSE
    assert trt_logger.tensorrt_logger(trt, verbose=False) is logger
    assert logger.min_severity == Logger.WARNING


def test_engine_flavour_from_sidecar_else_header(tmp_path):
    rtx = tmp_path / "rtx.engine"
    rtx.write_bytes(b"vtrt\x00\x00\x00\x00rest of a TensorRT-RTX plan")
    full = tmp_path / "full.engine"
    full.write_bytes(b"ftrt\x00\x00plan")
    assert engine_load.engine_flavour(str(rtx)) == "tensorrt-rtx"
    assert engine_load.engine_flavour(str(full)) == "tensorrt"
    assert engine_load.engine_flavour(str(full), {"flavour": "tensorrt-rtx"}) == "tensorrt-rtx"
    assert engine_load.engine_flavour(str(rtx), {"schema": 1}) == "tensorrt"  # before RTX


def test_validity_check_names_tensorrt_rtx_reasons():
    diagnostics = types.SimpleNamespace(__members__={"VERSION_MISMATCH": 1, "UNSUPPORTED_CC": 2,
                                                     "OLD_CUDA_DRIVER": 4})
    trt = types.SimpleNamespace(__name__="tensorrt_rtx_bindings.tensorrt_rtx",
                                EngineInvalidityDiagnostics=diagnostics)
    bad = types.SimpleNamespace(get_engine_validity=lambda blob: (_Severity("INVALID"), 2 | 4))
    with pytest.raises(IncompatibleEngineError, match="unsupported cc, old cuda driver"):
        engine_load.check_engine_validity(trt, bad, b"vtrt", "m.engine")
    fine = types.SimpleNamespace(get_engine_validity=lambda blob: (_Severity("VALID"), 0))
    engine_load.check_engine_validity(trt, fine, b"vtrt", "m.engine")
    engine_load.check_engine_validity(trt, object(), b"plan", "m.engine")  # full TensorRT: no call


class _FakeRuntimeCache(object):
    def __init__(self, accepts):
        self.data = b""
        self.accepts = accepts

    def deserialize(self, blob):
        if self.accepts:
            self.data = bytes(blob)
        return self.accepts

    def serialize(self):
        return self.data


def _fake_engine(accepts=True):
    cache = _FakeRuntimeCache(accepts)
    config = types.SimpleNamespace(create_runtime_cache=lambda: cache,
                                   set_runtime_cache=lambda c: True)
    return types.SimpleNamespace(create_runtime_config=lambda: config), cache


def test_runtime_cache_beside_the_engine(tmp_path, caplog):
    engine_path = str(tmp_path / "m-fp16.engine")
    cache = engine_load.RuntimeCache(engine_path, (8, 9))
    assert cache.path == str(tmp_path / "m-fp16.sm89.runtime.cache")
    engine, fake = _fake_engine()
    cache.runtime_config(engine)
    fake.data = b"kernels compiled for SM 8.9"  # what TensorRT-RTX adds while it runs
    assert cache.save() == len(fake.data)
    assert open(cache.path, "rb").read() == b"kernels compiled for SM 8.9"
    # the next load reads it back; a cache TensorRT-RTX refuses (other GPU/driver) is replaced
    again = engine_load.RuntimeCache(engine_path, (8, 9))
    engine, fake = _fake_engine()
    again.runtime_config(engine)
    assert fake.data == b"kernels compiled for SM 8.9" and again.loaded_bytes == len(fake.data)
    with caplog.at_level(logging.WARNING):
        engine, fake = _fake_engine(accepts=False)
        engine_load.RuntimeCache(engine_path, (8, 9)).runtime_config(engine)
    assert any("made for another GPU" in r.getMessage() for r in caplog.records)
    # an unwritable folder costs compile time on the next load, never the run
    blocked = engine_load.RuntimeCache(str(tmp_path / "file" / "m.engine"), (8, 9))
    (tmp_path / "file").write_text("not a folder")
    engine, fake = _fake_engine()
    blocked.runtime_config(engine)
    fake.data = b"kernels"
    with caplog.at_level(logging.WARNING):
        assert blocked.save() == 0
    assert not os.path.isdir(str(tmp_path / "file"))


def _fake_trt_that_refuses(message):
    """A TensorRT whose Runtime reports a refusal the way TensorRT does: an ERROR through the
    logger it was given, then None."""
    trt = _fake_trt_with_ilogger()

    class Runtime(object):
        def __init__(self, logger):
            self.logger = logger

        def deserialize_cuda_engine(self, blob):
            if blob == b"good plan":
                return "engine"
            self.logger.log(_Severity("ERROR"), message)
            return None

    trt.Runtime = Runtime
    return trt


def test_engine_from_bytes_quotes_tensorrt_own_words(tmp_path, caplog):
    said = "1: [stdArchiveReader.cpp::StdArchiveReader::32] Error Code 1: Serialization " \
           "(Version tag does not match)"
    trt = _fake_trt_that_refuses(said)
    engine, runtime = engine_load.engine_from_bytes(trt, b"good plan", "m.engine")
    assert engine == "engine" and runtime.logger is trt_logger.tensorrt_logger(trt)
    path = tmp_path / "m.engine"
    path.write_bytes(b"old plan")
    with caplog.at_level(logging.ERROR, logger=trt_logger.__name__):
        with pytest.raises(IncompatibleEngineError) as err:
            engine_load.engine_from_path(trt, str(path), "could not load it",
                                         IncompatibleEngineError)
    assert str(err.value) == 'could not load it; TensorRT said: "%s"' % said
    assert caplog.records[-1].getMessage() == "TensorRT: " + said  # still logged as usual
    # the default refusal names the file and the usual causes; only this call's lines are quoted
    with pytest.raises(EngineFileError, match=r"could not load .*m\.engine: built by another "
                                              r"TensorRT version") as err:
        engine_load.engine_from_path(trt, str(path))
    assert str(err.value).endswith('; TensorRT said: "%s"' % said)
    assert str(err.value).count(said) == 1
    logger = trt_logger.tensorrt_logger(trt)
    assert logger.error_sinks == []
    with trt_logger.errors(logger) as found:
        logger.log(_Severity("WARNING"), "a warning is not an error")
        logger.log(_Severity("INTERNAL_ERROR"), "internal")
    assert found == ["internal"]
    assert trt_logger.quote([]) == ""
