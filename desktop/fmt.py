"""How sizes and durations read: short, rounded, the same everywhere (pure)."""

from __future__ import annotations


def human_size(nbytes: float) -> str:
    """``1536`` -> ``'1.5 KB'``: decimal units, as disks and browsers show them."""
    value = float(nbytes)
    for unit in ("bytes", "KB", "MB", "GB"):
        if abs(value) < 1000 or unit == "GB":
            if unit == "bytes":
                return f"{int(value)} bytes"
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover - the loop returns first


def human_duration(seconds: float) -> str:
    """``75`` -> ``'about 1 min'``; short, rounded, never a false precision."""
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    if seconds < 3600:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"


def duration(seconds: float) -> str:
    """``103`` -> ``'1 min 43 s'``: a time so far or left, to the second."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
