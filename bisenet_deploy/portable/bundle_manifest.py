"""A Jetson bundle's manifest: the sha256 of every file, made on the desktop, checked on both sides.

`bisenet-export jetson` (jetson/bundle.py) lists the bundle's files with `hash_tree` into
manifest.json; `verify_bundle` checks a bundle folder against it: the exporter on the bundle it
wrote, the device (`jetson_run.py verify`, run by setup_jetson.sh) on its copy. The manifest also
lists the files that must stay executable (the scripts the README tells the user to run).

Python 3.6 compatible; standard library only (the device verifies before numpy is set up).
"""

import json
import os
import stat

from .errors import UserError
from .fileio import sha256_file

MANIFEST_NAME = "manifest.json"
BUNDLE_FORMAT = "bisenet-deploy-jetson-bundle"


def load_manifest(bundle_dir):
    """The manifest dict of the bundle in `bundle_dir`; UserError saying what to do otherwise."""
    path = os.path.join(bundle_dir, MANIFEST_NAME)
    try:
        with open(path, "r") as f:
            manifest = json.load(f)
    except (IOError, OSError):
        raise UserError("%s not found: run this from an unpacked bisenet-deploy Jetson bundle "
                        "(tar -xzf BUNDLE.tar.gz, then cd into the folder)" % path) from None
    except ValueError as exc:
        raise UserError("%s is not valid JSON (%s): copy the bundle again" % (path, exc)) from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise UserError("%s is not a bisenet-deploy Jetson bundle manifest" % path)
    return manifest


def hash_tree(root, skip=MANIFEST_NAME):
    """{relative path: {sha256, bytes}} of every file under root (sorted, '/'-separated), but
    `skip` (the manifest itself) and __pycache__ folders."""
    files = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(names):
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            if rel == skip:
                continue
            files[rel] = {"sha256": sha256_file(path), "bytes": os.path.getsize(path)}
    return files


def verify_bundle(bundle_dir):
    """Problems of the bundle in `bundle_dir` against its manifest, one line each ([]: intact):
    a file missing, changed or truncated, or no longer executable."""
    manifest = load_manifest(bundle_dir)
    executables = set(manifest.get("executables") or ())
    problems = []
    for rel, entry in sorted(manifest["files"].items()):
        path = os.path.join(bundle_dir, rel)
        if not os.path.isfile(path):
            problems.append("missing: %s" % rel)
            continue
        if sha256_file(path) != entry["sha256"]:
            problems.append("changed or truncated: %s (sha256 differs from the manifest)" % rel)
        if rel in executables and not os.stat(path).st_mode & stat.S_IXUSR:
            problems.append("not executable: %s (chmod +x it, or unpack the bundle with tar -xzf, "
                            "which keeps the modes)" % rel)
    return problems
