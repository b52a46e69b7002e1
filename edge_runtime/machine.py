"""What a benchmark was measured on (CPU, board, OS, thread settings) and how much memory this
process holds, from /proc and /sys where Linux has them."""

from __future__ import annotations

import os
import platform
import resource
import sys
from pathlib import Path
from typing import Any

import numpy as np

# ARM "CPU part" codes (implementer 0x41) -> core name, for boards whose /proc/cpuinfo has no
# "model name" line (Raspberry Pi OS on Pi 3/4/5, Zero 2 W).
ARM_PARTS = {
    "0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1", "0xd0d": "Cortex-A77", "0xd40": "Neoverse-V1", "0xd41": "Cortex-A78",
    "0xd46": "Cortex-A510", "0xd47": "Cortex-A710", "0xd49": "Neoverse-N2",
}
# CPU flags that decide int8 / float kernel speed (x86 and arm64 spellings).
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16",
              "avx_vnni", "amx_int8", "asimd", "asimddp", "i8mm", "sve", "fphp", "asimdhp")


THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def rss_breakdown_bytes() -> dict[str, int]:
    """Current RSS split into anonymous (this process's own) and file-backed (shared
    libraries, mapped model) pages, from /proc/self/status; empty where unavailable."""
    wanted = {"RssAnon": "anon", "RssFile": "file", "RssShmem": "shmem"}
    found = {}
    for line in (_read_text("/proc/self/status") or "").splitlines():
        key, _, value = line.partition(":")
        if key in wanted and value.strip().endswith("kB"):
            found[wanted[key]] = int(value.split()[0]) * 1024
    return found


def current_rss_bytes() -> int | None:
    try:
        resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def _read_text(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").replace("\x00", "").strip()
    except OSError:
        return None


def _cpuinfo() -> dict[str, str]:
    """First value of each key in /proc/cpuinfo (keys lower-cased)."""
    values: dict[str, str] = {}
    for line in (_read_text("/proc/cpuinfo") or "").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            values.setdefault(key.strip().lower(), value.strip())
    return values


def device_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = _cpuinfo()
    model_name = cpu.get("model name") or cpu.get("cpu model")
    if not model_name and cpu.get("cpu implementer") == "0x41":
        model_name = ARM_PARTS.get(cpu.get("cpu part", ""), f"ARM part {cpu.get('cpu part')}")
    mhz: float | None = None
    if "cpu mhz" in cpu:
        mhz = float(cpu["cpu mhz"])
    else:
        max_khz = _read_text("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
        mhz = int(max_khz) / 1000 if max_khz and max_khz.isdigit() else None
    flags = set((cpu.get("flags") or cpu.get("features") or "").split())
    os_release = {}
    for line in (_read_text("/etc/os-release") or "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            os_release[key] = value.strip('"')
    board = _read_text("/proc/device-tree/model") or _read_text("/sys/class/dmi/id/product_name")
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "hostname": platform.node(),
        "arch": platform.machine(),
        "cpu_model": model_name or platform.processor() or None,
        "cpu_mhz": mhz,
        "simd": [flag for flag in SIMD_FLAGS if flag in flags],
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "board": board,
        "os": os_release.get("PRETTY_NAME") or platform.system(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        # Thread pools of numpy's BLAS: on a busy machine a second OpenBLAS thread turns the
        # front end's small matmul from 0.1 ms into tens of ms at p95.
        "env": {key: os.environ.get(key) for key in THREAD_ENV},
    }
