"""int8's speedup over full precision on this processor, measured once and remembered.

Whether int8 pays depends on the processor (fast int8 instructions or not) and on the engine, so
the first time an engine meets a processor a short measurement decides, and the answer is kept in
the settings (``fast_cpu_speedups``, by processor and engine version): Fast CPU mode for text
(:mod:`desktop.engine.fastcpu`) and Whisper (:mod:`desktop.engine.whisper`). Any thread.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from desktop import settings

log = logging.getLogger(__name__)

#: int8 must be at least this much faster to be used (below it, rounding noise is not worth it).
MIN_SPEEDUP = 1.05


def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux), else what Python knows of it."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


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


def fastest(call: Callable[[], Any], rounds: int = 2) -> float:
    """Seconds of the fastest of ``rounds`` timed calls of ``call()``, after one warm-up call: what a
    speedup measurement compares (the fastest run is the least disturbed by other work)."""
    call()
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return max(best, 1e-9)
