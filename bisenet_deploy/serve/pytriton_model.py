"""What `bisenet-serve` changes in the model PyTriton hands to Triton (nvidia-pytriton 0.7.0).

PyTriton generates the model's configuration and sends it, with the Python-backend stub (its
proxy `model.py`) that forwards each batch to our process, through Triton's repository API. It
offers no public hook for either, so this module adjusts its `Model` object before the load:

- the export's metadata record goes into the configuration's parameters (clients read it there);
- PyTriton's own `workspace-path` parameter (an internal folder, where the stub finds its sockets)
  stays out of the configuration, which Triton shows to anyone (HTTP and gRPC `ModelConfig`): the
  stub reads the path from a file sent beside its `model.py` instead (one line of it changed);
- with `execute_timeout_s`, the stub stops waiting for a batch our process has not answered in
  that time (a frozen or hung runner) and answers its requests with an error; Triton itself has
  no deadline for a request that is executing (its queue policy covers waiting ones only).

A stub whose source does not have the expected lines is refused (`tested_pytriton`), never
loaded half-changed.
"""

from __future__ import annotations

from typing import Any, Dict

from .triton_process import tested_pytriton

WORKSPACE_PARAMETER = "workspace-path"
#: the file beside the stub's model.py that names PyTriton's workspace
WORKSPACE_FILE = "pytriton-workspace"

# (what PyTriton 0.7.0's proxy/model.py says, what ours says instead); each must occur once
_READ_WORKSPACE = (
    'workspace_path = pathlib.Path(model_config["parameters"]["workspace-path"]["string_value"])',
    'workspace_path = pathlib.Path(pathlib.Path(__file__).with_name("%s")'
    '.read_text(encoding="utf-8"))' % WORKSPACE_FILE)
_IMPORT = ("from concurrent.futures import Future as ConcurrentFuture\n",
           "from concurrent.futures import Future as ConcurrentFuture\n"
           "from concurrent.futures import TimeoutError as ExecuteTimeout\n")
_WAIT = "triton_responses_or_error = handle_responses_concurrent_future.result()\n"
_WAIT_BOUNDED = """\
try:
    triton_responses_or_error = handle_responses_concurrent_future.result(timeout=%r)
except ExecuteTimeout:
    triton_responses_or_error = [pb_utils.InferenceResponse(error=pb_utils.TritonError(%r))
                                 for _ in triton_requests]
"""


def execute_timeout_message(seconds: float) -> str:
    return (f"the model did not answer within {seconds:g} s (bisenet-serve --execute-timeout): "
            f"its runner is frozen or hung")


def _replace_once(source: str, old: str, new: str) -> str:
    if source.count(old) != 1:
        raise tested_pytriton("change its Python-backend stub (model.py)")
    return source.replace(old, new)


def stub_source(source: str, execute_timeout_s: float = 0.0) -> str:
    """PyTriton's stub `model.py` as we send it: the workspace read from WORKSPACE_FILE, and, with
    a timeout, a bounded wait for each batch's answer."""
    source = _replace_once(source, *_READ_WORKSPACE)
    if execute_timeout_s > 0:
        source = _replace_once(source, *_IMPORT)
        indent = next(line[:len(line) - len(line.lstrip())] for line in source.splitlines()
                      if line.strip() == _WAIT.strip())
        bounded = _WAIT_BOUNDED % (float(execute_timeout_s),
                                   execute_timeout_message(execute_timeout_s))
        source = _replace_once(source, indent + _WAIT, "".join(
            indent + line + "\n" for line in bounded.splitlines()))
    return source


def public_config(config: Dict[str, Any]) -> Dict[str, Any]:
    """The configuration as Triton gets it (and shows it): without the internal parameter."""
    parameters = config.get("parameters")
    if isinstance(parameters, dict):
        parameters.pop(WORKSPACE_PARAMETER, None)
    return config


def prepare_model(triton: Any, parameters: Dict[str, str], execute_timeout_s: float = 0.0) -> None:
    """Adjust the one model bound to `triton` (a pytriton Triton) before it is loaded."""
    try:
        model = list(triton._model_manager.models)[0]
        backend_parameters = model._get_triton_model_config().backend_parameters
        backend_parameters.update(parameters)
        workspace = str(backend_parameters[WORKSPACE_PARAMETER])  # PyTriton's own side needs it
        version = model.model_version
        pytriton_config, pytriton_files = model.get_model_config, model.get_proxy_model_files
    except (AttributeError, IndexError, KeyError, TypeError):
        raise tested_pytriton("put the model's metadata into its configuration") from None
    stub_key = f"file:{version}/model.py"

    def get_model_config() -> Dict[str, Any]:
        return public_config(pytriton_config())

    def get_proxy_model_files() -> Dict[str, bytes]:
        files = dict(pytriton_files())
        if stub_key not in files:
            raise tested_pytriton("change its Python-backend stub (model.py)")
        files[stub_key] = stub_source(files[stub_key].decode("utf-8"),
                                      execute_timeout_s).encode("utf-8")
        files[f"file:{version}/{WORKSPACE_FILE}"] = workspace.encode("utf-8")
        return files

    get_proxy_model_files()  # an unexpected stub is refused now, not in PyTriton's loader
    model.get_model_config = get_model_config
    model.get_proxy_model_files = get_proxy_model_files


def restrict_http_inference(triton: Any) -> None:
    """tritonserver's HTTP port (loopback, behind our validating front) takes inference only with
    the access token, which the front adds to the requests it accepts. PyTriton gives both
    protocols one restricted-API list; gRPC (the user's port) keeps it."""
    try:
        config = triton._triton_server_config
        apis, sep, header = str(config["http-restricted-api"]).partition(":")
    except (AttributeError, KeyError, TypeError):
        raise tested_pytriton("restrict inference on tritonserver's HTTP port") from None
    if not sep:
        raise tested_pytriton("restrict inference on tritonserver's HTTP port")
    if "inference" not in apis.split(","):
        config["http-restricted-api"] = f"{apis},inference:{header}"
