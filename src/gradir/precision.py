"""Numeric precision of training: fp32, or bf16 (bfloat16 mixed precision) where the hardware has it.

Mixed precision (Micikevicius et al. 2018, "Mixed Precision Training"; bfloat16 as in
Kalamkar et al. 2019) runs the encoder's matrix products in bfloat16 under
``torch.autocast`` while the weights, the optimiser state and — in gradir — the loss stay
in float32. bfloat16 keeps float32's exponent range, so no loss scaling is needed.

It pays only where the hardware multiplies bfloat16 natively: CUDA GPUs that support it
(Ampere and later) and CPUs with AMX or AVX-512 BF16 (Intel Sapphire Rapids and later,
AMD Zen 4). On a 2-core Sapphire Rapids machine (2026-12-05, all-MiniLM-L6-v2, 80
sequences of 128 tokens) a training step took 2.5 s instead of 5.7 s. Elsewhere bfloat16
is emulated and slower than float32, so ``auto`` chooses fp32 there, and asking for bf16
by name there prints a warning (:func:`warn_if_emulated`): on a 2-core AMD Zen 3 machine
(AVX2 only, 2026-12-07) NFCorpus training steps of 16 x 4 texts took about 150 s in bf16
and about 12 s in fp32 (one run after the other, read off their progress lines).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any, Literal

from gradir.console import err_console

TrainingPrecision = Literal["auto", "fp32", "bf16"]
TRAINING_PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")


def native_bfloat16() -> bool:
    """Whether this machine's training device multiplies bfloat16 natively (see the module docstring)."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    # Private helpers of torch.cpu (present since 2.1); a torch without them gets float32.
    checks = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    return any(check() for check in checks if check is not None)


def emulated_bfloat16_warning(precision: str) -> str | None:
    """Why ``precision`` will be slow here: bf16 asked for on hardware that only emulates it; else None."""
    if precision != "bf16" or native_bfloat16():
        return None
    return ("bf16 was asked for, but this machine has no native bfloat16 (a CUDA GPU from Ampere on, or a CPU "
            "with AMX or AVX-512 BF16): it is emulated, many times slower than fp32; precision \"auto\" picks "
            "fp32 here")


@functools.cache
def warn_if_emulated(precision: str) -> None:
    """Print :func:`emulated_bfloat16_warning` on stderr, once per process."""
    warning = emulated_bfloat16_warning(precision)
    if warning is not None:
        err_console.print(f"[yellow]{warning}[/yellow]")


def resolve_precision(precision: str) -> str:
    """``fp32`` or ``bf16``: ``auto`` becomes bf16 where :func:`native_bfloat16` holds."""
    if precision not in TRAINING_PRECISIONS:
        raise ValueError(f"unknown training precision '{precision}' (choose from {', '.join(TRAINING_PRECISIONS)})")
    if precision == "auto":
        return "bf16" if native_bfloat16() else "fp32"
    return precision


@contextlib.contextmanager
def float32_forward(model: Any) -> Iterator[None]:
    """Inside the block, ``model`` runs its own forward, not the mixed-precision one.

    For bf16 training, accelerate (under transformers' Trainer) replaces the model's
    ``forward`` with one wrapped in ``torch.autocast`` and keeps the original as
    ``_original_forward``; an outer ``autocast(enabled=False)`` cannot undo it, since the
    wrapper enters autocast again. Validation scores the base model before training in
    float32, so the checkpoints scored during training must be encoded in float32 too, or
    the selection would compare unlike with unlike. Outside mixed precision this does nothing.
    """
    original = vars(model).get("_original_forward")
    if original is None:
        yield
        return
    wrapped = model.forward
    model.forward = original
    try:
        yield
    finally:
        model.forward = wrapped
