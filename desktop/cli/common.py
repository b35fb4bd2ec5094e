"""What every command shares: terminal progress, task options as flags, the device flag, streams.

Runs on the main thread of ``pipedesk``; imports nothing heavy.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any


def ensure_streams() -> None:
    """Windowed builds start with no stdout/stderr: give them somewhere harmless to write."""
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115


def terminal_progress() -> Callable[[int, int, str], None]:
    """A ``progress(done, total, desc)`` that draws a tqdm bar on stderr."""
    from tqdm import tqdm

    current: dict[str, Any] = {}

    def report(done: int, total: int, desc: str, unit: str = "bytes") -> None:
        bar = current.get("bar")
        if not total:
            if bar is not None:
                current.pop("bar").close()
            print(desc, file=sys.stderr)
            return
        # One bar per transfer; tqdm shows speed and time left, so the text keeps only what is moving.
        label = desc.split(" · ")[0]
        if bar is None or bar.total != total or done < bar.n:
            if bar is not None:
                bar.close()
            scaled = unit == "bytes"
            bar = current["bar"] = tqdm(
                total=total,
                desc=label,
                unit="B" if scaled else f" {unit}",
                unit_scale=scaled,
                file=sys.stderr,
            )
        bar.set_description_str(label, refresh=False)
        bar.update(done - bar.n)
        if done >= total:
            current.pop("bar").close()

    return report


def add_device(parser: argparse.ArgumentParser) -> None:
    """The ``--device`` flag of the commands that run models."""
    parser.add_argument(
        "--device",
        default=None,
        help="auto (default: CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:N or mps",
    )


def add_task_options(parser: argparse.ArgumentParser, spec: Any) -> None:
    """One ``--option-name`` per task option (``run`` and ``batch``), defaulting as in the UI."""
    for option in spec.options:
        if option.type is bool:
            parser.add_argument(
                option.flag,
                dest=option.name,
                action=argparse.BooleanOptionalAction,
                default=option.default,
                help=f"{option.help} (default: {'on' if option.default else 'off'})".replace("%", "%%"),
            )
            continue
        known = f"; one of {', '.join(value for _label, value in option.choices)}" if option.choices else ""
        shown = f" (default {option.default}{known})" if option.default != "" else ""
        parser.add_argument(
            option.flag,
            dest=option.name,
            type=option.type,
            default=option.default,
            metavar="TEXT" if option.type is str and not option.choices else None,
            help=f"{option.help}{shown}".replace("%", "%%"),
        )
