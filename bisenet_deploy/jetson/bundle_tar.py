"""The Jetson bundle as one .tar.gz: a single top-level folder of regular files and folders, owner-
free entries, modes no wider than rwxr-xr-x. It is unpacked with the system's `tar -xzf` (the
bundle README's step); the toolkit has no extractor of its own. portable/files/ownership.py checks such a
tarball against its manifest before `--force` replaces it.
"""

from __future__ import annotations

import tarfile


def _tar_filter(info: tarfile.TarInfo) -> tarfile.TarInfo:
    if not (info.isfile() or info.isdir()):
        raise ValueError(f"{info.name} is not a regular file or folder: a bundle holds none")
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode &= 0o755  # no setuid/setgid/sticky bit, nothing writable by others
    return info


def write_tar(folder: str, tar_path: str, arcname: str) -> None:
    """A .tar.gz of `folder` whose single top-level entry is `arcname` (modes kept, masked)."""
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(folder, arcname=arcname, recursive=True, filter=_tar_filter)
