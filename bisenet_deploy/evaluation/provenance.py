"""Can two models give the same answers at all? Their metadata says so before any comparison.

A comparison of a checkpoint against an ONNX exported from another architecture, another class
count or random weights cannot pass, and used to end in a bare FAIL (0.05 % identical labels).
`disagreements` reads the model sections of two metadata records (arch, num_classes, weights,
checkpoint sha256) and returns what rules a pass out (`fatal`) and what makes one doubtful
(`doubtful`: another checkpoint file, which may still hold the same weights, e.g. a .pth and the
.safetensors converted from it).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple


def model_section(meta: Any) -> Dict[str, Any]:
    """The fields that matter here, from a record's "model" dict or a ModelMetadata."""
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        meta = {k: getattr(meta, k, None) for k in
                ("arch", "num_classes", "weights", "checkpoint_sha256")}
    return {k: meta.get(k) for k in ("arch", "num_classes", "weights", "checkpoint_sha256")}


def _short(sha: Optional[str]) -> str:
    return (sha or "?")[:12] + "..."


def disagreements(reference: Any, candidate: Any, candidate_label: str,
                  reference_label: str = "the reference") -> Tuple[List[str], List[str]]:
    """(fatal, doubtful) one-line reasons why `candidate` may not reproduce `reference`."""
    ref, cand = model_section(reference), model_section(candidate)
    fatal: List[str] = []
    doubtful: List[str] = []
    if ref.get("arch") and cand.get("arch") and ref["arch"] != cand["arch"]:
        fatal.append(f"{candidate_label} is a {cand['arch']} model but {reference_label} is "
                     f"{ref['arch']}")
    if ref.get("num_classes") and cand.get("num_classes") and \
            int(ref["num_classes"]) != int(cand["num_classes"]):
        fatal.append(f"{candidate_label} predicts {cand['num_classes']} classes but "
                     f"{reference_label} {ref['num_classes']}")
    weights = {ref.get("weights"), cand.get("weights")}
    if weights == {"random-init", "checkpoint"}:
        which = candidate_label if cand.get("weights") == "random-init" else reference_label
        fatal.append(f"{which} holds seeded random weights and the other trained ones")
    elif weights == {"checkpoint"} and ref.get("checkpoint_sha256") and \
            cand.get("checkpoint_sha256") and ref["checkpoint_sha256"] != cand["checkpoint_sha256"]:
        doubtful.append(f"{candidate_label} was exported from another checkpoint file than "
                        f"{reference_label} (sha256 {_short(cand['checkpoint_sha256'])} vs "
                        f"{_short(ref['checkpoint_sha256'])}): it fails unless that file holds "
                        f"the same weights")
    return fatal, doubtful
