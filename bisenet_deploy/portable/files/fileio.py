"""Atomic file writing and hashing: a failed or interrupted write never leaves a half-written file."""

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile

from ..shared.errors import InputError, OutputWriteError

#: OSError numbers that mean the disk refused a write (not a bug): full, over quota, a file too
#: large for the file system, read-only, an I/O error
WRITE_FAILURES = frozenset(getattr(errno, name) for name in (
    "ENOSPC", "EDQUOT", "EFBIG", "EROFS", "EIO") if hasattr(errno, name))


def raise_if_write_failure(exc, path):
    """Raise `exc` again as one line and exit 1 (OutputWriteError, naming `path`) when it is a
    write the disk refused; otherwise return, and the caller re-raises it unchanged. Every writer
    calls this after its clean-up (atomic_output, and the staged folders of the Jetson bundle and
    the Triton repository, whose message names the folder, not a file in its staging copy), so a
    full disk reads the same in every command."""
    if isinstance(exc, OutputWriteError):
        reason = exc.reason
    elif isinstance(exc, OSError) and exc.errno in WRITE_FAILURES:
        reason = exc.strerror or str(exc)
    else:
        return
    error = OutputWriteError("cannot write %s: %s; nothing was written: free some space or "
                             "choose another path" % (path, reason))
    error.reason = reason
    raise error from None


def make_folders(folder):
    """Create `folder` and its missing parents; returns the ones created, deepest first, so a
    failed write can take them away again (`remove_empty_folders`)."""
    created = []
    current = os.path.abspath(str(folder))
    while current and not os.path.exists(current):
        created.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    if created:
        os.makedirs(created[0], exist_ok=True)
    return created


def remove_empty_folders(created):
    """Remove the folders `make_folders` created, deepest first, as long as they are empty: a
    failed command leaves no empty output folder behind."""
    for folder in created:
        try:
            os.rmdir(folder)
        except OSError:  # not empty (something else wrote there) or already gone
            return


def move_folder_into_place(staging, final):
    """Rename the finished folder `staging` to `final` (same parent); an existing `final` is moved
    aside first and deleted after, so `final` is always a complete folder."""
    if not os.path.exists(final):
        os.rename(staging, final)
        return
    old = tempfile.mkdtemp(prefix="." + os.path.basename(final) + ".", suffix=".old",
                           dir=os.path.dirname(final))
    os.rmdir(old)
    os.rename(final, old)
    try:
        os.rename(staging, final)
    except BaseException:
        os.rename(old, final)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_output(path, suffix=""):
    """Yield a temporary path next to `path`; on success rename it over `path`, on error delete it
    (and the folders this call created for it, when they are left empty).

    The temporary file lives in the destination folder so the final rename is atomic on POSIX.
    """
    path = os.path.abspath(str(path))
    folder = os.path.dirname(path)
    created = []
    try:
        if folder:
            created = make_folders(folder)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".",
                                   suffix=".tmp" + suffix, dir=folder)
    except OSError as exc:  # a file in the way, no permission, a read-only or pseudo file system
        remove_empty_folders(created)
        if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):  # no inode left
            raise OutputWriteError("cannot write %s: %s; free some space or choose another path"
                                   % (path, exc.strerror)) from None
        raise InputError("cannot write %s: %s; choose another path"
                         % (path, exc.strerror or exc)) from None
    os.close(fd)
    try:
        yield tmp
        # mkstemp creates the file private (0600); give the result the permissions an ordinary
        # open() would have had under the current umask
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        remove_empty_folders(created)
        raise_if_write_failure(exc, path)
        raise


def write_bytes_atomic(path, data):
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_text_atomic(path, text):
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path, obj):
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def sha256_file(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(str(path), "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def check_writable(path, what):
    """Refuse, before a long run, an output that could not be written afterwards: a folder where
    the file must go, or a nearest existing ancestor that is a file or not writable (missing
    folders below it are created when writing). `what` names the output for the message (an
    option such as "--json", or "the engine"). None means no output: nothing to check."""
    if not path:
        return
    target = os.path.abspath(str(path))
    if os.path.isdir(target):
        raise InputError("%s %s is a folder: give a file name" % (what, path))
    folder = os.path.dirname(target)
    while not os.path.exists(folder):  # the nearest existing ancestor will hold the new folders
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    if not os.path.isdir(folder):
        raise InputError("cannot write %s to %s: %s is a file, not a folder" % (what, path, folder))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError("cannot write %s to %s: %s is not a writable folder; choose another path"
                         % (what, path, folder))


def require_file(path, what, hint=""):
    """Refuse a missing input file, or a folder given where a file is needed, naming which
    (`what` is e.g. "ONNX file"; `hint` is appended to the missing-file message)."""
    if os.path.isdir(str(path)):
        article = "an" if what[:1].lower() in "aeiou" else "a"
        raise InputError("%s is a folder, not %s %s: give the file in it" % (path, article, what))
    if not os.path.isfile(str(path)):
        raise InputError("%s %s does not exist%s" % (what, path, hint))
