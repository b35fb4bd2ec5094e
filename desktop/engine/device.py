"""Which device runs the models, and how much memory loaded models may use there."""

from __future__ import annotations

import os

from desktop.errors import UserError


def check_device_name(requested: str | None) -> str:
    """``requested`` (or ``PIPEDESK_DEVICE``, or auto) if it names a device kind, else UserError
    (pure: whether that device exists here is :func:`choose_device`'s question)."""
    name = (requested or os.environ.get("PIPEDESK_DEVICE") or "auto").strip().lower()
    head, _, index = name.partition(":")
    if name in ("auto", "cpu", "cuda", "mps") or (head == "cuda" and index.isdigit()):
        return name
    raise UserError(f"Unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps.")


def choose_device(requested: str | None = None) -> str:
    """CUDA, then Apple MPS, then the CPU; ``requested`` ('cpu', 'cuda', 'cuda:1', 'mps') overrides."""
    import torch

    requested = (requested or os.environ.get("PIPEDESK_DEVICE") or "auto").strip().lower()
    mps = getattr(torch.backends, "mps", None)
    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if mps and mps.is_available():
            return "mps"
        return "cpu"
    if requested == "cpu":
        return "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {requested}: no CUDA GPU is available on this computer.")
        return requested
    if requested == "mps":
        if not (mps and mps.is_available()):
            raise UserError("--device mps: Apple's Metal GPU is not available on this computer.")
        return "mps"
    raise UserError(f"Unknown device {requested!r}: use auto, cpu, cuda, cuda:N or mps.")


def default_budget_bytes(device: str) -> int:
    """How much memory loaded models may use: ``PIPEDESK_MEMORY_BUDGET_MB`` or a share of the device."""
    env = os.environ.get("PIPEDESK_MEMORY_BUDGET_MB", "").strip()
    if env:
        return int(float(env) * 1024 * 1024)
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.get_device_properties(torch.device(device)).total_memory * 0.7)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 1024**3
    return int(total * 0.4)


def dtype_name(device: str) -> str:
    """What the status line says about precision on ``device``."""
    import torch

    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float16" if device == "mps" else "float32"
