"""What bisenet-serve needs from the tritonserver process PyTriton starts, and is not public.

PyTriton 0.7 starts `tritonserver` through the `sh` package and keeps the handle private. The
supervisor needs four things from it, each read here and nowhere else, so a PyTriton that moved
them fails in one place with one line (`MissingDependencyError`) instead of deep inside:

- its own process group (`own_process_group`): SIGKILL to the group takes the server, its
  Python-backend stubs and their helpers down together, and Ctrl-C in bisenet-serve's terminal
  reaches bisenet-serve only (which then stops the server in order);
- its pid and exit status (`server_pid`, `exit_status`), to tell why it died;
- what it printed (`server_output`): an abort's reason ("std::bad_alloc") is on its stderr;
- the Python backend's shared-memory prefix (`shm_prefix`), to remove a dead server's region;
- the /tmp/folderXXXXXX model copies its stubs run from (`localized_folders`), which Triton
  leaves behind even after a clean stop.
"""

from __future__ import annotations

import contextlib
import re
import signal
from typing import Any, Iterator, Optional

from ..errors import MissingDependencyError
from .watchdog import group_members, localized_folders  # noqa: F401 - re-exported

#: lines of tritonserver's output that say why it aborted (a C++ exception, a fatal signal)
_REASON = re.compile(r"terminate called|what\(\):|Segmentation fault|out of memory|Killed",
                     re.IGNORECASE)


def tested_pytriton(what: str) -> MissingDependencyError:
    import pytriton

    return MissingDependencyError(
        f"this PyTriton ({getattr(pytriton, '__version__', '?')}) does not let bisenet-serve "
        f"{what}: install the tested nvidia-pytriton==0.7.0 (pip install -e '.[serve]')")


@contextlib.contextmanager
def own_process_group() -> Iterator[None]:
    """While inside, processes PyTriton starts (through `sh`) get a process group of their own.

    `sh` has the option (new_group) but PyTriton does not pass it; its defaults are a class
    attribute read at each call, set here for the duration of the start only.
    """
    try:
        import sh

        defaults = sh.Command._call_args
        saved = defaults["new_group"]
    except (ImportError, AttributeError, KeyError):
        raise tested_pytriton("start tritonserver in a process group of its own") from None
    defaults["new_group"] = True
    try:
        yield
    finally:
        defaults["new_group"] = saved


def _command(triton: Any) -> Any:
    server = getattr(triton, "_triton_server", None)
    return getattr(server, "_tritonserver_running_cmd", None)


def server_pid(triton: Any) -> Optional[int]:
    """tritonserver's pid (also its process group: `own_process_group`), None before start."""
    cmd = _command(triton)
    pid = getattr(cmd, "pid", None)
    return int(pid) if pid else None


def exit_status(triton: Any) -> Optional[int]:
    """tritonserver's exit code, -N for a signal N; None while it runs or when unknown."""
    cmd = _command(triton)
    process = getattr(cmd, "process", None)
    try:
        code = process.exit_code if process is not None else None
    except Exception:  # sh raises for a process it never reaped
        return None
    return None if code is None else int(code)


def quiet(triton: Any) -> None:
    """Keep tritonserver's stdout/stderr (an abort's backtrace, stub warnings) off our terminal;
    PyTriton still records them (`server_output`)."""
    server = getattr(triton, "_triton_server", None)
    if server is not None and hasattr(server, "_verbose"):
        server._verbose = False


def server_output(triton: Any) -> str:
    server = getattr(triton, "_triton_server", None)
    try:
        return str(server.logs()) if server is not None else ""
    except Exception:
        return ""


def shm_prefix(triton: Any) -> Optional[str]:
    config = getattr(triton, "_python_backend_config", None)
    try:
        value = config["shm-region-prefix-name"] if config is not None else None
    except (KeyError, TypeError):
        return None
    return str(value) if value else None


def death_reason(triton: Any) -> str:
    """Why this PyTriton server's tritonserver is gone, for a one-line message."""
    if triton is None:
        return "stopped"
    return describe_exit(exit_status(triton), server_output(triton))


def describe_exit(code: Optional[int], output: str) -> str:
    """'killed by SIGABRT (terminate called after throwing an instance of 'std::bad_alloc')'."""
    if code is None:
        what = "stopped"
    elif code < 0:
        try:
            what = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            what = f"was killed by signal {-code}"
    else:
        what = f"exited with code {code}"
    reasons = [ln.strip() for ln in output.splitlines() if _REASON.search(ln)]
    return what + (f" ({reasons[0][:160]})" if reasons else "")
