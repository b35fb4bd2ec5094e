"""Which device runs the models, what this computer has, and how much memory models may use there.

The device asked for is, first to last: ``--device``, ``PIPEDESK_DEVICE``, the Settings tab's
choice (``settings.device``), auto. Any thread; nothing here imports torch at import time.
"""

from __future__ import annotations

import logging
import os

from desktop import settings
from desktop.errors import UserError

log = logging.getLogger(__name__)


def _wanted(requested: str | None) -> tuple[str, bool]:
    """(the device asked for, whether it came from the saved setting)."""
    given = requested or os.environ.get("PIPEDESK_DEVICE")
    name = given or settings.load().device or "auto"
    return name.strip().lower(), not given


def check_device_name(requested: str | None) -> str:
    """``requested`` (or ``PIPEDESK_DEVICE``, the setting, auto) if it names a device kind, else
    UserError (pure: whether that device exists here is :func:`choose_device`'s question)."""
    name, saved = _wanted(requested)
    head, _, index = name.partition(":")
    if name in ("auto", "cpu", "cuda", "mps") or (head == "cuda" and index.isdigit()):
        return name
    if saved:  # a setting from another computer or version: never a reason not to start
        return "auto"
    raise UserError(f"Unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps.")


def choose_device(requested: str | None = None) -> str:
    """CUDA, then Apple MPS, then the CPU; ``requested`` ('cpu', 'cuda', 'cuda:1', 'mps') overrides.
    A saved choice this computer no longer has (a GPU taken out) falls back to auto, in the log."""
    name, saved = _wanted(requested)
    try:
        return _choose(check_device_name(name))
    except UserError as exc:
        if not saved:
            raise
        log.warning("The device chosen in Settings is not available (%s): choosing automatically", exc)
        return _choose("auto")


def detected() -> tuple[list[tuple[str, str]], str]:
    """The devices this computer offers as (label, value) pairs, Auto and CPU first, and a sentence
    saying what was found and why (imports torch: call it off the UI's start)."""
    import torch

    choices = [("Auto (a GPU when there is one)", "auto"), ("CPU", "cpu")]
    found: list[str] = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            name = torch.cuda.get_device_name(index)
            choices.append((f"GPU {index}: {name}", f"cuda:{index}"))
            found.append(f"GPU {index} ({name}, CUDA)")
    elif torch.version.cuda is None:
        found.append(f"no NVIDIA GPU: this PyTorch ({torch.__version__}) is built for the CPU only")
    else:
        found.append(f"no NVIDIA GPU: PyTorch (CUDA {torch.version.cuda}) found no GPU or no driver")
    mps = getattr(torch.backends, "mps", None)
    if mps and mps.is_available():
        choices.append(("Apple GPU (Metal)", "mps"))
        found.append("the Apple GPU (Metal)")
    cores = os.cpu_count() or 1
    return choices, f"Found: {'; '.join(found)}; a CPU with {cores} core{'s' if cores > 1 else ''}."


def _choose(requested: str) -> str:
    import torch

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
