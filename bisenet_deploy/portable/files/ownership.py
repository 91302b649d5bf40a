"""Which existing outputs a command may replace: only what bisenet-deploy wrote itself.

Every command that writes over an existing path first calls

    check_replaceable(path, kind, force=None, option="-o")

which returns when nothing is at `path`, or when what is there is this tool's own output of the
same `kind`; anything else is refused with one line (InputError) and nothing is touched:

- `force=None`: a command that replaces its own outputs without asking (predict's pictures, a
  report, an ONNX exported again under the same name, an engine built again);
- `force=False`: a command with a `--force` option that was not given: anything there is refused;
- `force=True`: `--force` given: replaced only when it is ours of that kind.

Kinds and how "ours" is recognised (each output carries its mark, see `MARK`):

- "onnx": an ONNX file whose metadata_props hold the bisenet_deploy record;
- "safetensors": a .safetensors file whose header metadata holds the bisenet_deploy record;
- "engine": a TensorRT engine whose JSON sidecar beside it is ours (the sidecar is checked too);
- "json": a JSON object we wrote: a report or manifest with "toolkit_version", an engine sidecar;
- "png": a PNG carrying the text chunk Software = "bisenet-deploy ..." (pictures, plots; OpenCV's
  PNGs on the Jetson get it from `marked_png`);
- "ppm": a binary PPM whose header holds the comment line `ppm_header` writes (the Jetson
  bundle's pictures without OpenCV);
- "video": an MP4 ending in a `free` box holding MARK (predict's videos; players skip it);
- "folder": a folder whose manifest.json has a `format` listed in FOLDER_FORMATS and lists every
  file with its sha256 (the Jetson bundle, a Triton model repository), and in which every entry,
  at any depth (dotfiles, __pycache__/, symbolic links included), is one of those files,
  unchanged, or a folder leading to one; an empty folder holds nothing to lose and may go too.
  A manifest's word is not enough: the content proves it (portable/files/bundle_manifest.compare_tree);
- "tarball": a .tar.gz of one such folder: regular files and folders only, its files exactly the
  manifest's, with their sha256.

Another output kind that writes a folder with a manifest (e.g. a model repository) joins by
adding its manifest's `format` to FOLDER_FORMATS.

Python 3.6 compatible; standard library only.
"""

import hashlib
import json
import os
import struct
import tarfile
import zlib

from .bundle_manifest import MANIFEST_NAME, ManifestError, compare_tree, listed_files
from ..shared.errors import InputError

#: the "kind" of an engine sidecar (trt/sidecar.py writes it; recognised here as ours)
SIDECAR_KIND = "bisenet_deploy.engine"

#: what our outputs carry to be recognised (PNG Software text, MP4 free box)
MARK = "bisenet-deploy"
#: the PNG text chunk our pictures and plots carry (Pillow `PngInfo`, matplotlib `metadata=`)
PNG_TEXT = {"Software": MARK}
METADATA_KEY = "bisenet_deploy"
#: manifest `format` values of the folders this toolkit writes
FOLDER_FORMATS = {"bisenet-deploy-jetson-bundle", "bisenet-deploy-triton-repository"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: kind -> the words that say what was expected, for the refusal
_DESCRIBED = {
    "onnx": "an ONNX with bisenet-deploy metadata",
    "safetensors": "a .safetensors with bisenet-deploy metadata",
    "engine": "an engine with its bisenet-deploy sidecar",
    "json": "a bisenet-deploy JSON report",
    "png": "a PNG written by bisenet-deploy",
    "ppm": "a PPM written by bisenet-deploy",
    "video": "a video written by bisenet-deploy",
    "folder": "a folder whose manifest.json bisenet-deploy wrote",
    "tarball": "a bundle tarball written by bisenet-deploy",
}


def check_replaceable(path, kind, force=None, option="-o"):
    """Refuse (InputError, nothing touched) to replace `path` unless it is our own `kind` of
    output; see the module docstring for `force`. Nothing at `path`: returns at once."""
    if kind not in _DESCRIBED:
        raise ValueError("unknown output kind %r" % (kind,))
    path = str(path)
    targets = [path]
    if kind == "engine":
        targets.append(os.path.splitext(path)[0] + ".json")  # the sidecar goes beside it
    existing = [p for p in targets if os.path.lexists(p)]
    if not existing:
        return
    if force is False:
        raise InputError("%s already exists: pass --force to replace it, or choose another %s"
                         % (existing[0], option))
    problem = why_not_ours(path, kind)
    if problem:
        raise InputError("refusing to replace %s: %s; bisenet-deploy replaces only its own "
                         "outputs (here: %s): move it away or choose another %s"
                         % (path, problem, _DESCRIBED[kind], option))


def is_ours(path, kind):
    """True when `path` is this tool's own output of `kind` (see the module docstring)."""
    return why_not_ours(str(path), kind) is None


def why_not_ours(path, kind):
    """None when `path` is our `kind` of output, else a few words saying why it is not."""
    check = _CHECKS[kind]
    if kind == "engine":
        return check(path)
    if os.path.islink(path):
        return "it is a symbolic link"
    if kind == "folder":
        return check(path) if os.path.isdir(path) else "it is not a folder"
    if not os.path.isfile(path):
        return "it is a folder" if os.path.isdir(path) else "it is not a regular file"
    try:
        return check(path)
    except (IOError, OSError, ValueError, KeyError, IndexError, struct.error, tarfile.TarError,
            UnicodeDecodeError, EOFError, zlib.error) as exc:
        return "it cannot be read as %s (%s)" % (_DESCRIBED[kind], exc)


def _onnx(path):
    from .onnx_reader import _fields, _text_fields  # the ONNX protobuf walker (no onnx package)

    with open(path, "rb") as f:
        data = f.read()
    for field, wire, value in _fields(memoryview(data)):  # top level: ModelProto
        if field == 14 and wire == 2 and _text_fields(value, 1)[0] == METADATA_KEY:
            return None
    return "it carries no bisenet-deploy metadata"


def _safetensors(path):
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            return "it is not a .safetensors file"
        size = struct.unpack("<Q", head)[0]
        if size > 100 << 20:
            return "it is not a .safetensors file"
        header = json.loads(f.read(size).decode("utf-8"))
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if isinstance(meta, dict) and METADATA_KEY in meta:
        return None
    return "it carries no bisenet-deploy metadata"


def _json_object(path):
    with open(path, "rb") as f:
        return json.loads(f.read().decode("utf-8"))


def _json_or_none(path):
    """The JSON in `path`, or None when it cannot be read or parsed (then it proves nothing)."""
    try:
        return _json_object(path)
    except (IOError, OSError, ValueError, UnicodeDecodeError):
        return None


def _json(path):
    data = _json_object(path)
    if isinstance(data, dict) and ("toolkit_version" in data or data.get("kind") == SIDECAR_KIND):
        return None
    return "it is not a JSON report of bisenet-deploy"


def _engine(path):
    sidecar = os.path.splitext(path)[0] + ".json"
    if not os.path.lexists(sidecar):
        return "it has no bisenet-deploy sidecar (%s)" % os.path.basename(sidecar)
    if os.path.islink(sidecar) or not os.path.isfile(sidecar):
        return "its sidecar %s is not a regular file" % sidecar
    data = _json_or_none(sidecar)
    if not isinstance(data, dict) or data.get("kind") != SIDECAR_KIND:
        return "%s beside it is not a bisenet-deploy engine sidecar" % os.path.basename(sidecar)
    if os.path.lexists(path) and (os.path.islink(path) or not os.path.isfile(path)):
        return "it is not a regular file"
    return None


def _png(path):
    with open(path, "rb") as f:
        if f.read(8) != _PNG_SIGNATURE:
            return "it is not a PNG"
        while True:
            head = f.read(8)
            if len(head) < 8:
                break
            length, ctype = struct.unpack(">I4s", head)
            if ctype == b"tEXt":
                key, _, value = f.read(length).partition(b"\0")
                f.seek(4, 1)  # CRC
                if key == b"Software" and value.startswith(MARK.encode("ascii")):
                    return None
                continue
            if ctype == b"IEND":
                break
            f.seek(length + 4, 1)
    return "it carries no bisenet-deploy mark"


def _video(path):
    """An ISO media file (MP4) whose top-level boxes include our `free` box."""
    size_all = os.path.getsize(path)
    pos = 0
    with open(path, "rb") as f:
        while pos + 8 <= size_all:
            f.seek(pos)
            size, box = struct.unpack(">I4s", f.read(8))
            header = 8
            if size == 1:
                size = struct.unpack(">Q", f.read(8))[0]
                header = 16
            elif size == 0:
                size = size_all - pos
            if size < header:
                break
            if box == b"free" and size - header < 256:
                if f.read(size - header).startswith(MARK.encode("ascii")):
                    return None
            pos += size
    return "it carries no bisenet-deploy mark"


def marked_png(data):
    """PNG bytes (e.g. OpenCV's imencode) with our Software text chunk after the header chunk."""
    if data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    end = 8 + 12 + struct.unpack(">I", data[8:12])[0]  # signature, then IHDR with its CRC
    body = b"tEXt" + b"Software\0" + MARK.encode("ascii")
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
    return data[:end] + chunk + data[end:]


def ppm_header(width, height):
    """A binary PPM header carrying our mark as a comment line (readers skip comments)."""
    return ("P6\n# %s\n%d %d\n255\n" % (MARK, width, height)).encode("ascii")


def _ppm(path):
    with open(path, "rb") as f:
        head = f.read(64)
    if head[:3] != b"P6\n":
        return "it is not a binary PPM"
    return None if head[3:].startswith(("# %s\n" % MARK).encode("ascii")) else \
        "it carries no bisenet-deploy mark"


def video_mark():
    """The bytes to append to a finished MP4 so it is recognised as ours: a top-level `free`
    box, which every player skips."""
    payload = MARK.encode("ascii")
    return struct.pack(">I4s", 8 + len(payload), b"free") + payload


def _manifest_format(data):
    return data.get("format") if isinstance(data, dict) else None


def _shown(paths):
    paths = sorted(paths)
    return ", ".join(paths[:3]) + (" and %d more" % (len(paths) - 3) if len(paths) > 3 else "")


def _folder(path):
    """Ours: empty, or our manifest lists every entry in it, at any depth, unchanged."""
    try:
        if not os.listdir(path):
            return None  # nothing to lose
    except OSError as exc:
        return "it cannot be read (%s)" % (exc.strerror or exc)
    manifest = os.path.join(path, MANIFEST_NAME)
    if os.path.islink(manifest) or not os.path.isfile(manifest):
        return "it has no %s" % MANIFEST_NAME
    data = _json_or_none(manifest)
    if _manifest_format(data) not in FOLDER_FORMATS:
        return "its %s is not one bisenet-deploy writes" % MANIFEST_NAME
    try:
        files = listed_files(data)
    except ManifestError:
        return "its %s does not list its files with their sha256" % MANIFEST_NAME
    report = compare_tree(path, files)
    if report.unlisted:
        return "it holds entries its manifest does not list (%s)" % _shown(report.unlisted)
    if report.changed:
        return ("files in it were changed after bisenet-deploy wrote them (%s)"
                % _shown(report.changed))
    if report.unreadable:
        return "entries in it cannot be read (%s)" % _shown(report.unreadable)
    return None


#: the largest manifest.json read from a tarball (a real one is a few kB)
_MAX_MANIFEST_BYTES = 16 << 20


def _tarball(path):
    """Ours: one top folder whose members are exactly its manifest's files, unchanged (plus the
    manifest and the folders that lead to them); no links, devices or duplicate names."""
    found, folders, manifest_bytes, top = {}, set(), None, None
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            parts = member.name.rstrip("/").split("/")
            if any(p in ("", ".", "..") for p in parts) or (top or parts[0]) != parts[0]:
                return "it does not hold exactly one bundle folder (%s)" % member.name
            top, rel = parts[0], "/".join(parts[1:])
            if rel in found or rel in folders or (rel == MANIFEST_NAME and manifest_bytes):
                return "it holds %s twice" % member.name
            if member.isdir():
                folders.add(rel)
            elif not member.isreg():
                return "it holds %s, which is not a regular file or folder" % member.name
            elif rel == MANIFEST_NAME:
                if member.size > _MAX_MANIFEST_BYTES:
                    return "its %s is not one bisenet-deploy writes" % MANIFEST_NAME
                manifest_bytes = tar.extractfile(member).read()
            else:
                digest = hashlib.sha256()
                handle = tar.extractfile(member)
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
                found[rel] = digest.hexdigest()
    if manifest_bytes is None:
        return "it holds no %s" % MANIFEST_NAME
    data = json.loads(manifest_bytes.decode("utf-8"))
    if _manifest_format(data) not in FOLDER_FORMATS:
        return "its %s is not one bisenet-deploy writes" % MANIFEST_NAME
    try:
        files = listed_files(data)
    except ManifestError:
        return "its %s does not list its files with their sha256" % MANIFEST_NAME
    unlisted = [rel for rel in found if rel not in files]
    unlisted += [rel + "/" for rel in folders
                 if rel and not any(f.startswith(rel + "/") for f in files)]
    if unlisted:
        return "it holds files its manifest does not list (%s)" % _shown(unlisted)
    changed = [rel for rel, digest in found.items() if files[rel]["sha256"] != digest]
    if changed:
        return "files in it differ from its manifest (%s)" % _shown(changed)
    missing = [rel for rel in files if rel not in found]
    if missing:
        return "it lacks files its manifest lists (%s)" % _shown(missing)
    return None


_CHECKS = {"onnx": _onnx, "safetensors": _safetensors, "engine": _engine, "json": _json,
           "png": _png, "ppm": _ppm, "video": _video, "folder": _folder, "tarball": _tarball}
