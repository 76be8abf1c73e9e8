"""
The C allocator's handling of large freed blocks, for training on the CPU.

An update allocates and frees the same large tensors again and again: the activations of a full-batch forward
pass and their gradients (``batch size x hidden units`` each, 2 MiB for 8,192 steps and 64 units), many times
per update with a value baseline. With glibc's default settings such a block is often served by ``mmap`` and
given back by ``munmap`` when freed, or, once glibc's adaptive threshold has risen, taken from the heap whose free
top is given back to the system (trimmed) when it exceeds twice that threshold. Either way the next pass touches
fresh pages, and the kernel takes a page fault and zeroes a page for every 4 KiB the pass writes.
:func:`keep_freed_memory` raises the two thresholds so that blocks up to 32 MiB come from the heap and freed
memory stays there for the next pass: the process keeps, between updates, the memory its largest update used,
instead of giving it back and faulting it in again (``benchmarks/allocator.py`` measures the effect).

REINFORCE calls it when ``learn()`` starts. It changes nothing when:

- the C library is not glibc (macOS, Windows, musl), or another allocator is preloaded (``LD_PRELOAD``);
- the user set glibc's own settings (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_``,
  ``MALLOC_MMAP_MAX_`` or ``glibc.malloc`` tunables in ``GLIBC_TUNABLES``): theirs stay;
- the environment variable ``SB3_REINFORCE_KEEP_FREED_MEMORY`` is ``0``.
"""

import ctypes
import os
import platform
import sys

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Blocks up to this size come from the heap: glibc's largest accepted value on 64-bit systems (32 MiB).
MMAP_THRESHOLD = 32 * 1024**2
# Free memory at the top of the heap is given back to the system beyond this size.
TRIM_THRESHOLD = 1024**3
SWITCH = "SB3_REINFORCE_KEEP_FREED_MEMORY"
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")

_applied: bool | None = None


def why_not_applicable() -> str | None:
    """Why :func:`keep_freed_memory` leaves the allocator alone in this process, or None when it applies."""
    if os.environ.get(SWITCH, "1") == "0":
        return f"{SWITCH}=0"
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return "the C library is not glibc"
    if os.environ.get("LD_PRELOAD"):
        return "LD_PRELOAD is set (another allocator may be in use)"
    user_set = [name for name in _USER_SETTINGS if name in os.environ]
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        user_set.append("GLIBC_TUNABLES")
    if user_set:
        return f"the allocator's settings were given ({', '.join(user_set)})"
    return None


def keep_freed_memory() -> bool:
    """
    Serve blocks up to ``MMAP_THRESHOLD`` from the heap and give freed heap memory back to the system only beyond
    ``TRIM_THRESHOLD`` (glibc's ``mallopt``), once per process; see the module's docstring for when it does
    nothing. Returns whether the settings are in effect.
    """
    global _applied
    if _applied is None:
        _applied = False
        if why_not_applicable() is None:
            try:
                libc = ctypes.CDLL(None)
                mallopt = libc.mallopt
            except (OSError, AttributeError):
                return False
            mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            mallopt.restype = ctypes.c_int
            # mallopt returns 1 on success; the trim threshold is set first so that it never ends below the other.
            _applied = bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    return _applied
