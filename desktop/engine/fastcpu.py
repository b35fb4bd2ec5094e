"""Fast CPU mode, decided per machine: int8 weights only where they really are faster.

Dynamic int8 (``torch.ao.quantization.quantize_dynamic``) ran a DistilBERT-size classifier 1.74x
faster on one 2-core machine (AMD EPYC, AVX2) and 0.93-1.0x on another (Intel Xeon, AVX-512
without VNNI). So the first time Fast CPU mode meets a processor, a short measurement (a few
forward passes of a synthetic batch, full precision against int8) decides, and the answer is kept
in the settings for that processor and torch version. Whisper's engine keeps its own answer the
same way (:func:`remembered_speedup`, :mod:`desktop.engine.whisper`). Called on the thread that runs
the model or loads it.
"""

from __future__ import annotations

import logging
import statistics
import time
from typing import Any

from desktop.engine.copies import int8_copy
from desktop.engine.loaded import Loaded
from desktop.engine.speedups import MIN_SPEEDUP, cpu_name, remembered_speedup

log = logging.getLogger(__name__)

ROWS, TOKENS, REPEATS = 16, 128, 3


def machine_key() -> str:
    import torch

    return f"{cpu_name()} | torch {torch.__version__}"


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
