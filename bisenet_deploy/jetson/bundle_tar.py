"""The Jetson bundle as one .tar.gz: written with a single top-level folder and owner-free entries,
and unpacked only when every entry stays inside the destination (no links, no `..`).
"""

from __future__ import annotations

import os
import tarfile

from ..errors import UserError


def _tar_filter(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_tar(folder: str, tar_path: str, arcname: str) -> None:
    """A .tar.gz of `folder` whose single top-level entry is `arcname` (modes kept)."""
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(folder, arcname=arcname, recursive=True, filter=_tar_filter)


def extract_tar(tar_path: str, dest: str) -> str:
    """Unpack a bundle tarball into `dest` (refusing paths that leave it); returns the folder."""
    dest = os.path.abspath(dest)
    with tarfile.open(tar_path, "r:gz") as tar:
        members = tar.getmembers()
        tops = set()
        for member in members:
            target = os.path.abspath(os.path.join(dest, member.name))
            if not (target == dest or target.startswith(dest + os.sep)) or member.issym() \
                    or member.islnk():
                raise UserError(f"{tar_path} holds an unsafe entry {member.name!r}: not a "
                                f"bundle written by bisenet-export jetson")
            tops.add(member.name.split("/")[0])
        if len(tops) != 1:
            raise UserError(f"{tar_path} should hold one bundle folder, found {sorted(tops)}")
        for member in members:
            tar.extract(member, dest)
    return os.path.join(dest, tops.pop())
