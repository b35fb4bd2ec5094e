"""Fast CPU mode, decided per machine: int8 weights only where they really are faster.

Dynamic int8 (``torch.ao.quantization.quantize_dynamic``) ran a DistilBERT-size classifier 1.74x
faster on one 2-core machine (AMD EPYC, AVX2) and 0.93-1.0x on another (Intel Xeon, AVX-512
without VNNI). So the first time Fast CPU mode meets a processor, a short measurement (a few
forward passes of a synthetic batch, full precision against int8) decides, and the answer is kept
in the settings for that processor and torch version. Called on a file run's thread.
"""

from __future__ import annotations

import logging
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from desktop import settings
from desktop.engine.copies import int8_copy
from desktop.engine.loaded import Loaded

log = logging.getLogger(__name__)

#: int8 must be at least this much faster to be used (below it, rounding noise is not worth it).
MIN_SPEEDUP = 1.05
ROWS, TOKENS, REPEATS = 16, 128, 3


def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux), else what Python knows of it."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_key() -> str:
    import torch

    return f"{cpu_name()} | torch {torch.__version__}"


def speedup_key(engine: str) -> str:
    """Where the settings keep int8's speedup for this processor and ``engine``."""
    return f"{cpu_name()} | {engine}"


def remembered_speedup(engine: str, measure: Callable[[], float]) -> float:
    """How much faster int8 runs than full precision on this processor with ``engine`` (e.g.
    ``"torch 2.13.0"``): ``measure()`` the first time, then what the settings remember."""
    key = speedup_key(engine)
    known = dict(settings.load().fast_cpu_speedups or {})
    speedup = known.get(key)
    if speedup is None:
        speedup = known[key] = round(measure(), 3)
        settings.update(fast_cpu_speedups=known)
        log.info("int8 on %s ran %.2fx full precision", key, speedup)
    return float(speedup)


def measure_speedup(full: Loaded, int8: Loaded) -> float:
    """How many times faster ``int8`` runs a synthetic batch than ``full`` (median of a few runs)."""
    import torch

    vocab = max(2, int(getattr(full.model.config, "vocab_size", 1000)))
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1, vocab, (ROWS, min(TOKENS, full.max_tokens)), generator=generator)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    def seconds(model: Any) -> float:
        started = time.perf_counter()
        model(**inputs)
        return time.perf_counter() - started

    with torch.inference_mode():
        seconds(full.model), seconds(int8.model)  # warm-up
        ratios = [seconds(full.model) / max(seconds(int8.model), 1e-9) for _ in range(REPEATS)]
    return statistics.median(ratios)


def fast_cpu(loaded: Loaded) -> tuple[Loaded, str | None]:
    """The model a Fast CPU run should use, and a note when it is the full-precision one."""
    import torch

    int8 = int8_copy(loaded)
    speedup = remembered_speedup(f"torch {torch.__version__}", lambda: measure_speedup(loaded, int8))
    if speedup >= MIN_SPEEDUP:
        return int8, None
    return loaded, (
        f"Fast CPU mode is not faster on this computer's processor (int8 ran at {speedup:.2f}x full "
        "precision when measured), so this run uses full precision."
    )
