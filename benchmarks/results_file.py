"""The one way every benchmark script here records its figures in benchmarks/RESULTS.md.

A section is ``## title (date)``, the command that reproduces it, the machine, a line
or two on the data, and the table; it is appended atomically, so an interrupted script
never leaves RESULTS.md half-written.
"""

from __future__ import annotations

import os
import platform
from datetime import date
from pathlib import Path

from gradir.atomic import write_text_atomic

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def cpu_model() -> str:
    """The CPU's name as the kernel gives it (``AMD EPYC``, ``Intel(R) Xeon(R) Platinum 8481C``), or the architecture."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_description(accelerator: str = "CPU") -> str:
    """``x86_64 (AMD EPYC, bf16 emulated), 2 cores, CPU, Python 3.11.7``: what a figure was measured on.

    The project's machines of one kind differ in CPU (Sapphire Rapids with AMX one day, an
    AVX2-only EPYC the next), and bf16 training is ~2x faster on the first and many times
    slower on the second, so timings name the CPU and whether it multiplies bfloat16.
    """
    from gradir.precision import native_bfloat16

    bf16 = "bf16 native" if native_bfloat16() else "bf16 emulated"
    return (f"{platform.machine()} ({cpu_model()}, {bf16}), {os.cpu_count()} cores, {accelerator}, "
            f"Python {platform.python_version()}")


def append_section(title: str, command: str, details: str, table: str, machine: str | None = None) -> None:
    """Append one dated section to RESULTS.md (atomically: written in full or not at all)."""
    section = (
        f"\n## {title} ({date.today().isoformat()})\n\n"
        f"Command: `{command}`  \n"
        f"Machine: {machine or machine_description()}  \n"
        f"{details}\n\n"
        f"{table}\n"
    )
    write_text_atomic(RESULTS, RESULTS.read_text(encoding="utf-8") + section)
