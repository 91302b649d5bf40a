"""A separate process that cleans up after `bisenet-serve`, however `bisenet-serve` ends.

tritonserver, its Python-backend stubs and their helpers, a shared-memory region in /dev/shm and
scratch folders outlive a `bisenet-serve` killed with `kill -9`: nothing in the dead process can
run. So `bisenet-serve` starts this watchdog first (in its own session, so a signal sent to the
server's process group does not reach it) and keeps the write end of a pipe to its stdin. It
tells the watchdog what to clean up, one JSON object a line:

    {"add": "group", "value": 4242}            tritonserver's process group (killed with SIGKILL)
    {"add": "shm", "value": "pytrtion42-ab"}   /dev/shm files starting with this prefix
    {"add": "path", "value": "/tmp/bisenet-serve-x"}   a scratch folder (removed)
    {"remove": "group", "value": 4242}         already cleaned up by bisenet-serve itself

When the pipe reaches end-of-file (bisenet-serve exited, cleanly or not: the kernel closes its
end), the watchdog kills what is left, removes what is listed, and exits. After a clean stop
there is nothing left, so the sweep does nothing. Standard library only: it starts fast and
imports nothing that could fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Set

SHM_DIR = "/dev/shm"
KINDS = ("group", "shm", "path")


def group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's group now: not ours to touch
        return False
    return True


def kill_group(pgid: int, wait_s: float = 5.0) -> bool:
    """SIGKILL every process of group `pgid` and wait until none is left; True when gone."""
    if pgid <= 1 or pgid == os.getpgid(0):
        return True  # never our own group (or init's)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return True
    deadline = time.monotonic() + wait_s
    while group_exists(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not group_exists(pgid)


def remove_shm(prefix: str, shm_dir: str = SHM_DIR) -> None:
    if not prefix or "/" in prefix:
        return
    try:
        names = os.listdir(shm_dir)
    except OSError:
        return
    for name in names:
        if name.startswith(prefix):
            try:
                os.unlink(os.path.join(shm_dir, name))
            except OSError:
                pass


#: the copy of a model Triton's core makes to load it (hard-wired under /tmp, TMPDIR ignored)
_LOCALIZED = re.compile(r"^(/tmp/folder[A-Za-z0-9]{6})/")


def group_members(pgid: int, proc: str = "/proc") -> List[int]:
    """pids of the processes of group `pgid` (Linux /proc; [] elsewhere)."""
    members = []
    try:
        names = os.listdir(proc)
    except OSError:
        return []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(os.path.join(proc, name, "stat"), "r") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) "
        if len(fields) > 2 and fields[2] == str(pgid):
            members.append(int(name))
    return members


def localized_folders(pgid: int, proc: str = "/proc") -> List[str]:
    """The /tmp/folderXXXXXX copies of models the server's Python-backend stubs run from (named
    on their command lines); Triton leaves them behind when it stops."""
    found = set()
    for pid in group_members(pgid, proc):
        try:
            with open(os.path.join(proc, str(pid), "cmdline"), "rb") as f:
                argv = f.read().decode("utf-8", "replace").split("\0")
        except OSError:
            continue
        for arg in argv:
            match = _LOCALIZED.match(arg)
            if match and os.path.isdir(match.group(1)):
                if os.stat(match.group(1)).st_uid == os.getuid():
                    found.add(match.group(1))
    return sorted(found)


def shared_memory_of(pids: List[int], proc: str = "/proc", shm_dir: str = SHM_DIR) -> List[str]:
    """Files in /dev/shm the processes map or hold open: the Python-backend helpers'
    multiprocessing segments (psm_*), which a SIGKILL leaves behind (their resource tracker
    dies with them)."""
    found = set()
    for pid in pids:
        try:
            with open(os.path.join(proc, str(pid), "maps"), "r") as f:
                for line in f:
                    parts = line.split(None, 5)
                    path = parts[5].strip() if len(parts) == 6 else ""
                    if path.startswith(shm_dir + "/"):
                        found.add(path.replace(" (deleted)", ""))
        except OSError:
            continue
    return sorted(p for p in found if os.path.dirname(p) == shm_dir)


def sweep(owned: Dict[str, Set[Any]]) -> None:
    """Kill the groups (first noting the model copies their stubs run from: a server killed
    while loading never told us), then remove shared memory and folders (a live process could
    recreate them)."""
    segments = []
    for pgid in owned["group"]:
        owned["path"].update(localized_folders(int(pgid)))
        segments += shared_memory_of(group_members(int(pgid)))
        kill_group(int(pgid))
    for path in segments:
        try:
            os.unlink(path)
        except OSError:
            pass
    for prefix in owned["shm"]:
        remove_shm(str(prefix))
    for path in owned["path"]:
        shutil.rmtree(str(path), ignore_errors=True)


def serve_forever(stream: Any) -> None:
    owned: Dict[str, Set[Any]] = {kind: set() for kind in KINDS}
    for line in stream:
        try:
            message = json.loads(line)
            kind, value = message.get("add") or message.get("remove"), message["value"]
        except (ValueError, KeyError, AttributeError, TypeError):
            continue
        if kind not in KINDS:
            continue
        if "add" in message:
            owned[kind].add(value)
        else:
            owned[kind].discard(value)
    sweep(owned)


def main() -> int:
    # our parent decides when we stop (end-of-file); Ctrl-C in its terminal is not for us
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve_forever(sys.stdin)
    return 0


class Watchdog(object):
    """The server side: starts the watchdog process and tells it what to clean up."""

    def __init__(self) -> None:
        self._proc: Optional[subprocess.Popen] = None

    def start(self) -> "Watchdog":
        # -I: no user site, no PYTHON* variables: it needs only the standard library and this file
        self._proc = subprocess.Popen(
            [sys.executable, "-I", os.path.abspath(__file__)], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            close_fds=True)
        return self

    @property
    def pid(self) -> Optional[int]:
        return None if self._proc is None else self._proc.pid

    def _send(self, message: Dict[str, Any]) -> None:
        if self._proc is None or self._proc.stdin is None:
            return
        try:
            self._proc.stdin.write((json.dumps(message) + "\n").encode())
            self._proc.stdin.flush()
        except (OSError, ValueError):  # the watchdog died: nothing to tell any more
            pass

    def own(self, kind: str, value: Any) -> None:
        self._send({"add": kind, "value": value})

    def disown(self, kind: str, value: Any) -> None:
        self._send({"remove": kind, "value": value})

    def close(self, wait_s: float = 10.0) -> None:
        """End-of-file: the watchdog sweeps what is still listed and exits."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    raise SystemExit(main())
