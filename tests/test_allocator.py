"""The allocator setting that REINFORCE applies when learn() starts (sb3_reinforce.common.allocator)."""

import os
import platform
import subprocess
import sys

import pytest

from sb3_reinforce.common import allocator

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# After a short learn(), 10 rounds of allocating, writing and freeing four 8 MiB tensors; prints the minor page
# faults of those rounds. 10 x 32 MiB of fresh 4 KiB pages would be 81,920 faults.
CHURN = """
import resource
import torch as th
from sb3_reinforce import REINFORCE
from sb3_reinforce.common import allocator

REINFORCE("MlpPolicy", "CartPole-v1", n_steps=8, device="cpu").learn(16)

def churn():
    blocks = [th.ones(2 * 1024**2) for _ in range(4)]
    del blocks

churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    churn()
print(allocator.keep_freed_memory(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
PAGES = 10 * 4 * 8 * 1024**2 // 4096


def _small_pages_only() -> bool:
    """Whether fresh memory is faulted in 4 KiB at a time (transparent huge pages not always on)."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return "[always]" not in f.read()
    except OSError:
        return True


def _churn(**env: str) -> tuple[bool, int]:
    clean = {key: value for key, value in os.environ.items() if key != allocator.SWITCH and not key.startswith("MALLOC_")}
    clean.pop("LD_PRELOAD", None)
    out = subprocess.run(
        [sys.executable, "-c", CHURN], env={**clean, **env}, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not GLIBC, reason="the setting applies to glibc's allocator only")
def test_learn_keeps_freed_memory_for_the_next_allocations() -> None:
    applied, faults = _churn()
    assert applied
    assert faults < PAGES // 20  # freed blocks are reused: no fresh pages to fault in
    applied, faults = _churn(**{allocator.SWITCH: "0"})
    assert not applied
    if _small_pages_only():
        # glibc's defaults give blocks back and fault them in again: all of them in most runs (81,581 faults), an
        # eighth in some (10,189), as its thresholds adapt to what the process freed before and the heap's top can
        # only be trimmed when nothing lies above the freed blocks
        assert faults > PAGES // 20


@pytest.mark.skipif(not GLIBC, reason="the setting applies to glibc's allocator only")
def test_the_users_allocator_settings_are_left_alone() -> None:
    # The user's own thresholds (128 KiB: every 8 MiB block is mapped and unmapped) stay in effect.
    applied, faults = _churn(MALLOC_MMAP_THRESHOLD_="131072")
    assert not applied
    if _small_pages_only():
        assert faults > PAGES // 2


def test_reasons_for_leaving_the_allocator_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (allocator.SWITCH, "LD_PRELOAD", "GLIBC_TUNABLES", *allocator._USER_SETTINGS):
        monkeypatch.delenv(name, raising=False)
    assert (allocator.why_not_applicable() is None) == GLIBC
    if not GLIBC:
        return
    monkeypatch.setenv(allocator.SWITCH, "0")
    assert allocator.why_not_applicable() == f"{allocator.SWITCH}=0"
    monkeypatch.setenv(allocator.SWITCH, "1")
    assert allocator.why_not_applicable() is None
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1000")
    assert allocator.why_not_applicable() == "the allocator's settings were given (GLIBC_TUNABLES)"
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.cpu.hwcaps=-AVX2")  # not an allocator setting
    assert allocator.why_not_applicable() is None
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "4096")
    assert allocator.why_not_applicable() == "the allocator's settings were given (MALLOC_TRIM_THRESHOLD_)"
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/libjemalloc.so")
    assert allocator.why_not_applicable() == "LD_PRELOAD is set (another allocator may be in use)"
