"""Make the Triton Python backend run this interpreter's own libpython.

PyTriton's tritonserver runs our model through Triton's Python backend, whose stub program links
`libpython3.X.so.1.0` and finds it through the dynamic loader: usually the *system's* library
(Debian's 3.11.2, say), while the standard library and packages it imports are this
interpreter's (pyenv's 3.11.7). A patch-level mismatch breaks model loading deep inside
(`'_thread.RLock' object has no attribute '_recursion_count'`). The fix is to put this
interpreter's own library folder (`sysconfig LIBDIR`) first on the server's LD_LIBRARY_PATH. An
interpreter built without a shared libpython cannot be fixed that way; then a system library of
exactly the same version works, and anything else is refused with one line saying what to do.
"""

from __future__ import annotations

import ctypes.util
import logging
import os
import platform
import subprocess
import sys
import sysconfig
from typing import Callable, Dict, Optional

from ..errors import MissingDependencyError

log = logging.getLogger(__name__)

_VERSION_OF = ("import ctypes, sys; lib = ctypes.CDLL(sys.argv[1]); "
               "lib.Py_GetVersion.restype = ctypes.c_char_p; "
               "print(lib.Py_GetVersion().decode().split()[0])")


def library_version(path: str) -> Optional[str]:
    """'3.11.2' for a libpython file (read in a child process, never loaded here), or None."""
    try:
        out = subprocess.run([sys.executable, "-c", _VERSION_OF, path], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def find_system_library(soname: str) -> Optional[str]:
    """The name the dynamic loader resolves for `soname` without our help (ldconfig's cache),
    or None when it finds none."""
    stem = soname.split(".so")[0]
    return ctypes.util.find_library(stem[3:] if stem.startswith("lib") else stem)


def plan_library_path(config: Callable[[str], object] = sysconfig.get_config_var,
                      version: str = platform.python_version(),
                      system_library: Callable[[str], Optional[str]] = find_system_library,
                      version_of: Callable[[str], Optional[str]] = library_version) -> Optional[str]:
    """The folder to put first on the server's LD_LIBRARY_PATH, or None when none is needed.

    Raises MissingDependencyError (one line) when the backend would run a different Python.
    """
    soname = str(config("INSTSONAME") or f"libpython{sys.version_info[0]}.{sys.version_info[1]}"
                 ".so.1.0")
    libdir = config("LIBDIR")
    if config("Py_ENABLE_SHARED") and libdir and os.path.isfile(os.path.join(str(libdir), soname)):
        return str(libdir)
    found = system_library(soname)
    if found is None:
        raise MissingDependencyError(
            f"the Triton Python backend needs {soname}, and neither this Python ({sys.executable}, "
            f"built without a shared libpython) nor the system has it: use a Python built with "
            f"--enable-shared (pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install "
            f"{version}), or the system's python{sys.version_info[0]}.{sys.version_info[1]}")
    theirs = version_of(found)
    if theirs != version:
        raise MissingDependencyError(
            f"the Triton Python backend would run the system's {found} (Python {theirs or '?'}) "
            f"with this Python's {version} standard library, and fail to load the model; this "
            f"Python ({sys.executable}) has no shared libpython to use instead: run bisenet-serve "
            f"from a Python built with --enable-shared (pyenv: PYTHON_CONFIGURE_OPTS="
            f"--enable-shared pyenv install {version}) or from the system's Python {theirs}")
    return None


def server_environment(environ: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """`environ` (default os.environ) with LD_LIBRARY_PATH fixed for the Python backend."""
    env = dict(os.environ if environ is None else environ)
    folder = plan_library_path()
    if folder:
        parts = [p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p and p != folder]
        env["LD_LIBRARY_PATH"] = os.pathsep.join([folder] + parts)
        log.debug("Triton Python backend: LD_LIBRARY_PATH starts with %s", folder)
    return env
