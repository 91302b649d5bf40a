"""Ports for bisenet-serve: a port in use is one line naming its option, not a server log."""

from __future__ import annotations

import contextlib
import errno
import socket

from ..errors import InputError


def check_port_free(host: str, port: int, option: str) -> None:
    """Refuse a port something already listens on, naming the option that chose it."""
    if not 0 < int(port) < 65536:
        raise InputError(f"{option} {port} is not a port number (1..65535)")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with contextlib.closing(socket.socket(family, socket.SOCK_STREAM)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, int(port)))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise InputError(f"port {port} on {host} is in use (another server?): choose "
                                f"another with {option}") from None
            raise InputError(f"cannot listen on {host}:{port} ({exc.strerror or exc}): check "
                            f"--host and {option}") from None


def free_loopback_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
