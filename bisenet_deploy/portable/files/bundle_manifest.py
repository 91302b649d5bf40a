"""The manifest of a folder this toolkit writes: the sha256 of every file in it, checked by content.

`bisenet-export jetson` and `bisenet-export triton` list every file of the folder they assemble
with `hash_tree` into manifest.json. Two checks read it back:

- `compare_tree` walks a folder against the list, entry by entry at any depth (dotfiles,
  __pycache__/, symbolic links, FIFOs included): what is not listed, what was changed, what is
  missing. portable/files/ownership.py lets `--force` replace a folder only when nothing in it is
  unlisted or changed;
- `verify_bundle` is the Jetson bundle's own check (`jetson_run.py verify`, run by
  setup_jetson.sh): every listed file present and unchanged, the scripts executable, and nothing
  else in the bundle but the folders its own commands write on the device (`DEVICE_OUTPUTS`).

This module imports only the standard library, and nothing relative: jetson_run.py hashes this
file against the manifest and runs it by its path before it imports anything from the bundle, so
`verify` runs no code of a bundle it has not checked. Python 3.6 compatible.
"""

import hashlib
import json
import os
import re
import stat

MANIFEST_NAME = "manifest.json"
BUNDLE_FORMAT = "bisenet-deploy-jetson-bundle"
#: the folders a bundle's own commands write on the device (setup_jetson.sh's venv, engines,
#: benchmark reports, predictions): not in the manifest, so `verify` names them without checking
DEVICE_OUTPUTS = (".venv", "engines", "benchmarks", "predictions")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ManifestError(Exception):
    """A manifest that is missing, unreadable or malformed; the message says what to do."""

    exit_code = 1


def sha256_file(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                return digest.hexdigest()
            digest.update(block)


def load_manifest(bundle_dir):
    """The manifest dict of the Jetson bundle in `bundle_dir`, its file list checked
    (`listed_files`); ManifestError saying what to do otherwise."""
    path = os.path.join(bundle_dir, MANIFEST_NAME)
    try:
        with open(path, "rb") as f:
            manifest = json.loads(f.read().decode("utf-8"))
    except (IOError, OSError):
        raise ManifestError("%s not found: run this from an unpacked bisenet-deploy Jetson bundle "
                            "(tar -xzf BUNDLE.tar.gz, then cd into the folder)" % path) from None
    except ValueError as exc:
        raise ManifestError("%s is not valid JSON (%s): copy the bundle again"
                            % (path, exc)) from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise ManifestError("%s is not a bisenet-deploy Jetson bundle manifest" % path)
    listed_files(manifest, path)
    return manifest


def listed_files(manifest, where=MANIFEST_NAME):
    """The manifest's `files` ({relative path: {"sha256", "bytes"}}) once every entry is a clean
    relative path with a sha256 and a size; ManifestError naming the first fault otherwise."""
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        raise ManifestError("%s has no list of files (`files`): it is damaged or was not written "
                            "by bisenet-deploy; copy the bundle again" % where)
    for rel, entry in files.items():
        parts = rel.split("/") if isinstance(rel, str) else [""]
        if rel == MANIFEST_NAME or any(p in ("", ".", "..") for p in parts) or "\\" in rel:
            raise ManifestError("%s lists a file %r that cannot be in the folder: it is damaged "
                                "or was not written by bisenet-deploy; copy the bundle again"
                                % (where, rel))
        size = entry.get("bytes") if isinstance(entry, dict) else None
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if not (isinstance(digest, str) and _SHA256.match(digest)) or isinstance(size, bool) \
                or not isinstance(size, int) or size < 0:
            raise ManifestError("%s: the entry of %s has no valid sha256 and size: it is damaged "
                                "or was not written by bisenet-deploy; copy the bundle again"
                                % (where, rel))
    return files


def hash_tree(root, skip=MANIFEST_NAME):
    """{relative path: {sha256, bytes}} of every file under root (sorted, '/'-separated), but the
    manifest itself (`skip`): dotfiles and __pycache__ too, so the manifest lists everything the
    folder holds. Our writers put only folders and regular files there; anything else is a bug."""
    files = {}
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + names):
            path = os.path.join(folder, name)
            if os.path.islink(path) or not (os.path.isdir(path) or os.path.isfile(path)):
                raise ValueError("%s is not a regular file or folder: the toolkit writes none"
                                 % path)
        for name in sorted(names):
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            if rel != skip:
                files[rel] = {"sha256": sha256_file(path), "bytes": os.path.getsize(path)}
    return files


class TreeReport(object):
    """What `compare_tree` found, as '/'-separated relative paths (folders end in '/')."""

    def __init__(self):
        self.unlisted = []   # entries the manifest does not list: files, folders, links, FIFOs...
        self.changed = []    # listed files whose size or sha256 differs
        self.missing = []    # listed files that are not there (or not regular files)
        self.unreadable = []  # entries that could not be read (permissions)
        self.outputs = []    # entries of `outputs` folders, not looked into


def compare_tree(root, files, outputs=()):
    """Walk `root` (never following links) against `files` (`listed_files`); top-level folders
    named in `outputs` are not looked into, only reported. Returns a TreeReport."""
    report = TreeReport()
    folders = set()
    for rel in files:
        parts = rel.split("/")
        folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
    seen = set()

    def walk(folder, prefix):
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            report.unreadable.append(prefix or "./")
            return
        for name in names:
            rel = prefix + name
            path = os.path.join(folder, name)
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                report.unreadable.append(rel)
                continue
            if not prefix and name == MANIFEST_NAME and stat.S_ISREG(mode):
                continue
            if not prefix and name in outputs and stat.S_ISDIR(mode):
                report.outputs.append(rel + "/")
            elif stat.S_ISDIR(mode) and rel in folders:
                walk(path, rel + "/")
            elif stat.S_ISREG(mode) and rel in files:
                seen.add(rel)
                entry = files[rel]
                try:
                    same = (os.path.getsize(path) == entry["bytes"]
                            and sha256_file(path) == entry["sha256"])
                except (IOError, OSError):
                    report.unreadable.append(rel)
                    continue
                if not same:
                    report.changed.append(rel)
            else:
                report.unlisted.append(rel + ("/" if stat.S_ISDIR(mode) else ""))

    walk(root, "")
    report.missing = sorted(set(files) - seen - set(report.unreadable))
    return report


def verify_bundle(bundle_dir):
    """Problems of the bundle in `bundle_dir` against its manifest, one line each ([]: intact):
    a file missing, changed or truncated, not executable, or an entry the manifest does not list
    (only the folders of DEVICE_OUTPUTS may be there besides the listed files)."""
    manifest = load_manifest(bundle_dir)
    files = manifest["files"]
    executables = set(manifest.get("executables") or ())
    report = compare_tree(bundle_dir, files, outputs=DEVICE_OUTPUTS)
    problems = ["missing: %s" % rel for rel in report.missing]
    problems += ["changed or truncated: %s (sha256 differs from the manifest)" % rel
                 for rel in report.changed]
    problems += ["not in the manifest: %s (the bundle never holds it: delete it, or copy the "
                 "bundle again)" % rel for rel in report.unlisted]
    problems += ["unreadable: %s" % rel for rel in report.unreadable]
    for rel in sorted(executables & set(files) - set(report.missing) - set(report.unreadable)):
        if not os.stat(os.path.join(bundle_dir, rel)).st_mode & stat.S_IXUSR:
            problems.append("not executable: %s (chmod +x it, or unpack the bundle with tar -xzf, "
                            "which keeps the modes)" % rel)
    return sorted(problems)


def device_outputs(bundle_dir):
    """The DEVICE_OUTPUTS folders present in the bundle (not checked by `verify_bundle`)."""
    return [name + "/" for name in DEVICE_OUTPUTS
            if os.path.isdir(os.path.join(bundle_dir, name))
            and not os.path.islink(os.path.join(bundle_dir, name))]
