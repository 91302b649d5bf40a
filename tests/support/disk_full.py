"""A full disk under one folder, for tests: every write below it fails with ENOSPC after
writing part of its data, as a real full file system does (Python file objects, shutil copies
alike). Files elsewhere (the inputs) are read and written normally."""

import builtins
import errno
import io
import os
import shutil

import pytest

_ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _below(path, folder):
    try:
        path = os.path.abspath(os.fspath(path))
    except TypeError:  # a file descriptor
        return False
    return path == folder or path.startswith(folder + os.sep)


class _FullFile(object):
    """A real file that takes a few bytes, then reports the disk full."""

    def __init__(self, f):
        self._f = f

    def write(self, data):
        self._f.write(data[:8])
        raise OSError(_ENOSPC.errno, _ENOSPC.strerror)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()

    def __getattr__(self, name):
        return getattr(self._f, name)


@pytest.fixture
def disk_full(monkeypatch):
    """`disk_full(folder)`: from now on the disk holding `folder` is full."""

    def fill(folder):
        folder = os.path.abspath(str(folder))
        real_open, real_copyfile = builtins.open, shutil.copyfile

        def full_open(file, mode="r", *args, **kwargs):
            f = real_open(file, mode, *args, **kwargs)
            if any(m in mode for m in "wax+") and _below(file, folder):
                return _FullFile(f)
            return f

        def full_copyfile(src, dst, *args, **kwargs):
            if _below(dst, folder):
                with real_open(dst, "wb") as f:
                    f.write(b"partial")
                raise OSError(_ENOSPC.errno, _ENOSPC.strerror)
            return real_copyfile(src, dst, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", full_open)
        monkeypatch.setattr(io, "open", full_open)
        monkeypatch.setattr(shutil, "copyfile", full_copyfile)

    return fill


def files_under(folder):
    """Every file and folder below `folder` (relative paths, sorted), hidden ones included."""
    found = []
    for root, dirs, files in os.walk(str(folder)):
        for name in dirs + files:
            found.append(os.path.relpath(os.path.join(root, name), str(folder)))
    return sorted(found)
