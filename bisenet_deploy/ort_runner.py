"""onnxruntime behind the `Runner` contract: CPU always, CUDA / TensorRT execution providers when
onnxruntime-gpu offers them.

It sits below both export/ (export parity runs the graph here) and runtime/ (the runner factory,
the Segmenter API), so neither reaches into the other for it.

Host -> host honestly. On the CPU, `session.run` takes the host numpy batch and returns host
arrays. With the CUDA or TensorRT provider the call goes through onnxruntime's I/O binding in
three synchronous steps: the input is copied to the GPU (`OrtValue.ortvalue_from_numpy` on the
device, `synchronize_inputs`), the graph runs with its outputs bound on the device
(`run_with_iobinding`, `synchronize_outputs`), and the outputs are copied back
(`copy_outputs_to_cpu`). The whole call is still host -> host, like the TensorRT runner, and
`last_phase_times_ms` reports the three steps. onnxruntime exposes no CUDA events, so they are
timed with the host clock around those synchronous calls (phase_clock "host-clock"): each
includes onnxruntime's own overhead, and `last_device_time_ms` stays None.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from .errors import InputError, MissingDependencyError, UserError
from .metadata import METADATA_KEY, ONNX_REMEDY, loads_record
from .portable.shared.install_hints import pip_extra
from .portable.shared.phase_timing import HOST_CLOCK, host_phases
from .portable.running.runner_base import Runner, TensorSpec

log = logging.getLogger(__name__)

# our short names -> onnxruntime provider names
PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}

_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}

GPU_HINT = ("install onnxruntime-gpu in place of onnxruntime (`pip uninstall onnxruntime`, then "
            "`%s` in the bisenet-deploy checkout), with a CUDA/cuDNN it supports"
            % pip_extra("gpu"))


def import_onnxruntime():
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingDependencyError("onnxruntime is not installed: `pip install onnxruntime` "
                                     "(or onnxruntime-gpu for the CUDA/TensorRT providers)") from None
    return ort


def available_providers() -> List[str]:
    """Our short names of the execution providers this onnxruntime offers ("cpu", "cuda", ...)."""
    try:
        ort = import_onnxruntime()
    except MissingDependencyError:
        return []
    present = set(ort.get_available_providers())
    return [short for short, name in PROVIDERS.items() if name in present]


def numpy_dtype(ort_type: str) -> np.dtype:
    if ort_type not in _ORT_TYPES:
        raise UserError(f"the ONNX graph has an input/output of type {ort_type}, which the "
                        f"runtime does not handle")
    return np.dtype(_ORT_TYPES[ort_type])


def spec_shape(shape: Sequence) -> tuple:
    """onnxruntime shapes hold ints, symbolic names ("batch") or None: the latter two are -1."""
    return tuple(d if isinstance(d, int) and d >= 0 else -1 for d in shape)


def read_record_from_session(session, source: str = "the ONNX model") -> Optional[dict]:
    """The bisenet_deploy record from the ONNX's metadata_props, validated (a damaged one is
    refused naming `source` and the field), or None when absent."""
    props = session.get_modelmeta().custom_metadata_map or {}
    text = props.get(METADATA_KEY)
    return loads_record(text, source, require_export=True, remedy=ONNX_REMEDY) if text else None


def _is_session(source: Any) -> bool:
    """An already-made onnxruntime.InferenceSession (duck-typed: onnxruntime is imported lazily)."""
    return all(callable(getattr(source, name, None))
               for name in ("run", "get_inputs", "get_outputs", "get_providers"))


class OnnxRuntimeRunner(Runner):
    """An ONNX model run by onnxruntime on the given execution providers (in priority order).

    The model source is an ONNX file path, the serialized ONNX (bytes), or an already-made
    `onnxruntime.InferenceSession`; nothing is read or created before `activate()`.
    """

    backend = "onnxruntime"
    #: read from the session on the first activation and kept (specs, metadata, providers used)
    model_facts = ("metadata", "_input", "_outputs", "_output_names", "_provider_names")

    def __init__(self, model: Union[str, "os.PathLike[str]", bytes, Any],
                 providers: Union[str, Sequence[str]] = ("cpu",),
                 threads: Optional[int] = None, precision: Optional[str] = None,
                 device: int = 0, io_binding: Optional[bool] = None):
        """`io_binding`: run through I/O binding with the three timed steps (default: with a GPU
        provider; True on the CPU binds host memory, which tests the same code path).
        `threads` and `precision` shape a session the runner makes: with a session given as the
        model they are refused (that session already has its own)."""
        super().__init__()
        if isinstance(providers, str):
            providers = (providers,)
        self.providers = tuple(p.lower() for p in providers)
        unknown = [p for p in self.providers if p not in PROVIDERS]
        if unknown or not self.providers:
            raise InputError(f"unknown onnxruntime provider(s) {unknown or providers}: choose "
                             f"from {', '.join(PROVIDERS)}")
        if threads is not None and int(threads) < 1:
            raise InputError(f"threads must be >= 1, got {threads}")
        self.threads = None if threads is None else int(threads)
        if precision not in (None, "fp32", "fp16"):
            raise InputError(f"precision must be fp32 or fp16, got {precision!r}")
        if precision == "fp16" and self.providers[0] != "tensorrt":
            raise InputError("onnxruntime runs an ONNX in the precision it was exported in; "
                             "fp16 as an option exists only with the TensorRT provider "
                             "(onnxruntime-trt). Export an fp16 ONNX for the others")
        self.precision = precision
        self.device = int(device)
        self._source = self._checked_source(model)
        self._session: Any = None
        self._input: Optional[TensorSpec] = None
        self._outputs: Optional[List[TensorSpec]] = None
        self._output_names: Optional[List[str]] = None
        self._provider_names: List[str] = []
        self.io_binding = self.providers[0] != "cpu" if io_binding is None else bool(io_binding)
        self.phase_clock = HOST_CLOCK if self.io_binding else None
        self._bind_device = "cpu" if self.providers[0] == "cpu" else "cuda"
        self._ort: Any = None
        self._phases_ms: Optional[Dict[str, float]] = None

    def _checked_source(self, model: Any) -> Any:
        """The model source, with the cheap checks done now: a path names an existing file (not
        read yet), bytes are non-empty, a session is not given options it cannot take."""
        #: the ONNX file, or None for a model given as bytes or as a session
        self.onnx_path: Optional[str] = None
        if isinstance(model, (bytes, bytearray, memoryview)):
            if not len(model):
                raise InputError("the ONNX model given as bytes is empty")
            self.source_name = "the in-memory ONNX model"
            return bytes(model)
        if _is_session(model):
            if self.threads or self.precision:
                raise InputError("threads and precision shape a session the runner makes; a "
                                 "prepared InferenceSession already has its own")
            self.source_name = "the given onnxruntime session"
            return model
        if not isinstance(model, (str, os.PathLike)):
            raise InputError(f"the ONNX model must be a file path, bytes or an onnxruntime "
                             f"InferenceSession, got {type(model).__name__}")
        self.onnx_path = self.source_name = os.fspath(model)
        if os.path.isdir(self.onnx_path):
            raise InputError(f"{self.onnx_path} is a folder, not an ONNX file: give the .onnx "
                             f"file in it")
        if not os.path.isfile(self.onnx_path):
            raise InputError(f"ONNX file {self.onnx_path} does not exist: create it with "
                             f"`bisenet-export onnx`")
        return self.onnx_path

    def describe(self) -> str:
        names = "+".join(self.providers)
        extra = f", {self.threads} threads" if self.threads else ""
        extra += ", fp16" if self.precision == "fp16" else ""
        extra += ", io-binding" if self.io_binding else ""
        return f"onnxruntime ({names}{extra})"

    # -- lifecycle -----------------------------------------------------------------------------
    def _provider_list(self, ort) -> list:
        present = set(ort.get_available_providers())
        chosen: List[Any] = []
        for short in self.providers:
            name = PROVIDERS[short]
            if name not in present:
                raise MissingDependencyError(
                    f"this onnxruntime ({ort.__version__}) has no {name}: {GPU_HINT}")
            if short == "cuda":
                chosen.append((name, {"device_id": self.device}))
            elif short == "tensorrt":
                chosen.append((name, {"device_id": self.device,
                                      "trt_fp16_enable": self.precision == "fp16"}))
            else:
                chosen.append(name)
        if "cpu" not in self.providers:
            chosen.append("CPUExecutionProvider")  # onnxruntime's fallback for unsupported nodes
        return chosen

    def _make_session(self, ort) -> Any:
        """The session of the model source: the given one, or one made from the path/bytes."""
        if _is_session(self._source):
            return self._source
        options = ort.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        options.log_severity_level = 3
        providers = self._provider_list(ort)
        try:
            return ort.InferenceSession(self._source, sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own types for corrupt/unsupported files
            raise UserError(f"onnxruntime could not load {self.source_name}: {exc}") from None

    def _activate(self) -> None:
        ort = import_onnxruntime()
        session = self._make_session(ort)
        used = session.get_providers()
        wanted = PROVIDERS[self.providers[0]]
        if wanted not in used:
            raise MissingDependencyError(
                f"onnxruntime could not start {wanted} (it fell back to {', '.join(used)}): "
                f"check the CUDA/cuDNN/TensorRT libraries onnxruntime-gpu needs")
        self._provider_names = used
        self.metadata = read_record_from_session(session, self.source_name)
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise UserError(f"{self.source_name} has {len(inputs)} inputs; bisenet-deploy models "
                            f"have one image input")
        self._input = TensorSpec(inputs[0].name, spec_shape(inputs[0].shape),
                                 numpy_dtype(inputs[0].type))
        self._outputs = [TensorSpec(o.name, spec_shape(o.shape), numpy_dtype(o.type))
                         for o in session.get_outputs()]
        self._output_names = [o.name for o in self._outputs]
        self._session = session
        self._ort = ort
        log.debug("onnxruntime session on %s: %s -> %s", used, self._input, self._outputs)

    def _deactivate(self) -> None:
        self._session = None
        self._ort = None

    # -- specs and inference -------------------------------------------------------------------
    def input_spec(self) -> TensorSpec:
        if self._input is None:
            raise UserError("the ONNX's input is known after activate()")
        return self._input

    def output_specs(self) -> List[TensorSpec]:
        if self._outputs is None:
            raise UserError("the ONNX's outputs are known after activate()")
        return list(self._outputs)

    def last_phase_times_ms(self) -> Optional[Dict[str, float]]:
        return self._phases_ms

    def _infer(self, batch: np.ndarray) -> Dict[str, np.ndarray]:
        if self.io_binding:
            return self._infer_bound(batch)
        results = self._session.run(self._output_names, {self.input_spec().name: batch})
        return dict(zip(self._output_names, results))

    def _infer_bound(self, batch: np.ndarray) -> Dict[str, np.ndarray]:
        """Copy in, run, copy out as three synchronous steps, each timed on the host clock."""
        clock, device = time.perf_counter, self._bind_device
        binding = self._session.io_binding()
        t0 = clock()
        value = self._ort.OrtValue.ortvalue_from_numpy(batch, device, self.device)
        binding.bind_ortvalue_input(self.input_spec().name, value)
        binding.synchronize_inputs()
        t1 = clock()
        for name in self._output_names:
            binding.bind_output(name, device, self.device)
        self._session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        t2 = clock()
        results = binding.copy_outputs_to_cpu()
        t3 = clock()
        self._phases_ms = host_phases(t0, t1, t2, t3)
        return dict(zip(self._output_names, results))
