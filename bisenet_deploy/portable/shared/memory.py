"""What this machine can hold, for the options that size memory.

Input buffers and batches (`bisenet-bench --buffers/--batch`), the timed calls whose samples a
report keeps (`--iters`) and the images a comparison keeps (`bisenet-compare --synthetic`,
`--limit`) grow with a number the user types. Too large a number used to run for minutes and
then die of a MemoryError (exit 70); `check_fits` refuses it first, in one line (exit 2), naming
what it would need and what the machine has.

Python 3.6 compatible; pure (reads /proc and the cgroup limit on Linux).
"""

import os

from .errors import InputError

#: share of the available memory one run may plan to fill: the rest is for the model, the
#: runtime and the rest of the machine
USABLE_SHARE = 0.8


class MemoryBudgetError(InputError):
    """An option asks for more memory than this machine has (a usage error, exit 2): the run
    is refused as a whole, before any work."""


def _meminfo_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (IOError, OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def _cgroup_limit():
    """The container's memory limit left (cgroup v2 or v1), or None."""
    for limit_path, usage_path in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_path) as f:
                text = f.read().strip()
            if text == "max":
                return None
            limit = int(text)
            with open(usage_path) as f:
                used = int(f.read().strip())
        except (IOError, OSError, ValueError):
            continue
        if limit >= 1 << 60:  # v1 "no limit"
            return None
        return max(0, limit - used)
    return None


def available_bytes():
    """Memory a new allocation can get now (the smaller of the system's available memory and
    the container's limit left), or None when this system does not say."""
    known = [v for v in (_meminfo_available(), _cgroup_limit()) if v is not None]
    return min(known) if known else None


def human_bytes(n):
    """1536 -> '1.5 KiB'."""
    n = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return ("%d %s" % (n, unit)) if unit == "bytes" else ("%.1f %s" % (n, unit))
        n /= 1024.0
    return "%.1f PiB" % n


def check_fits(need_bytes, what, fix, available=None):
    """Refuse (MemoryBudgetError, exit 2) a plan needing more than USABLE_SHARE of the memory
    available; `what` names what needs it ("--buffers 1000000 x --batch 1 input buffers of
    2048x1024"), `fix` what to do. `available` overrides the measurement (tests)."""
    if available is None:
        available = available_bytes()
    if available is None or need_bytes <= available * USABLE_SHARE:
        return
    raise MemoryBudgetError("%s need about %s of memory, more than this machine can give (%s "
                            "available): %s" % (what, human_bytes(need_bytes),
                                                human_bytes(available), fix))
