"""Which floating-point type a model runs in: names, "auto", and the hardware's native type.

    resolve_dtype("bfloat16")            # torch.bfloat16
    resolve_dtype("auto", device="cpu")  # native_dtype("cpu"): bfloat16 on AVX-512 BF16 / AMX
    dtype_name(torch.bfloat16)           # "bfloat16"

`native_dtype(device)` is bfloat16 where the processor has native bf16 matrix units (an x86 CPU
with AVX-512 BF16 or AMX-BF16, read from /proc/cpuinfo or else from torch's own CPU probe; any
CUDA device for which `torch.cuda.is_bf16_supported()` holds), float32 elsewhere. The default of
`load_model` and of every command stays float32 until bfloat16 has been measured to give the same
answers (issue 19, point 3); "auto" follows the hardware now.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch

__all__ = [
    "AUTO",
    "DEFAULT_DTYPE",
    "DTYPE_CHOICES",
    "DTYPES",
    "cpu_flags",
    "cpu_has_native_bf16",
    "dtype_name",
    "full_float32_products",
    "native_dtype",
    "resolve_dtype",
]

AUTO = "auto"
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
DTYPE_CHOICES = (*DTYPES, AUTO)
DEFAULT_DTYPE = torch.float32
# /proc/cpuinfo flags of native bf16 matrix units (AVX-512 BF16 dot products, AMX BF16 tiles).
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags from /proc/cpuinfo, or None where that file cannot be read."""
    try:
        text = CPUINFO.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bfloat16 matrix products natively (AVX-512 BF16 or AMX-BF16).

    Linux's /proc/cpuinfo decides when it is readable; elsewhere torch's CPU probe does.
    """
    flags = cpu_flags()
    if flags is not None:
        return any(flag in flags for flag in BF16_CPU_FLAGS)
    probe = getattr(torch, "cpu", None)
    capabilities = getattr(probe, "get_capabilities", None)
    if capabilities is None:
        return False
    try:
        found = capabilities()
    except (RuntimeError, OSError):
        return False
    return any(bool(found.get(flag)) for flag in BF16_CPU_FLAGS)


def native_dtype(device: str | torch.device = "cpu") -> torch.dtype:
    """What "auto" means on `device`: bfloat16 where it has native bf16 units, else float32."""
    kind = torch.device(device).type
    if kind == "cuda":
        available = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if available else torch.float32
    if kind == "cpu":
        return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    return torch.float32


def resolve_dtype(
    dtype: torch.dtype | str | None, device: str | torch.device = "cpu"
) -> torch.dtype:
    """A torch floating dtype from a dtype, a name ("float32", "bfloat16", "float16", also
    "torch.bfloat16", "bf16", "fp32", "fp16") or "auto" (`native_dtype(device)`); None is the
    default, float32. Anything else is a ValueError naming the choices."""
    if dtype is None:
        return DEFAULT_DTYPE
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ValueError(
                f"dtype {dtype} is not supported: use one of {', '.join(DTYPE_CHOICES)}"
            )
        return dtype
    if isinstance(dtype, str):
        name = dtype.strip().lower().removeprefix("torch.")
        name = {"bf16": "bfloat16", "fp32": "float32", "fp16": "float16", "half": "float16"}.get(
            name, name
        )
        if name == AUTO:
            return native_dtype(device)
        if name in DTYPES:
            return DTYPES[name]
    raise ValueError(f"unknown dtype {dtype!r}: use one of {', '.join(DTYPE_CHOICES)}")


def dtype_name(dtype: torch.dtype) -> str:
    """ "bfloat16" for torch.bfloat16: the name used in flags, configs and fingerprints."""
    return str(dtype).removeprefix("torch.")


@contextlib.contextmanager
def full_float32_products() -> Iterator[None]:
    """Float32 matrix products in full float32 within the block, whatever
    `torch.set_float32_matmul_precision` allows outside ("high": TF32, "medium": bfloat16), and
    the setting restored after: for the steps that decide in float32 on purpose."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)
