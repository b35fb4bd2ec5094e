"""``pipedesk doctor``: what is installed, which device, where files live, online or not."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import sys
from typing import Any

from desktop import __version__, logs, paths, settings
from desktop.cli.common import add_device

PACKAGES = ("torch", "transformers", "gradio", "huggingface_hub", "tokenizers", "pywebview", "platformdirs")


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def report(device: str | None = None) -> dict[str, Any]:
    from desktop.engine.device import choose_device
    from desktop.errors import UserError
    from desktop.models import ModelStore, hub_endpoint, offline_mode

    try:
        chosen = choose_device(device)
    except UserError as exc:
        chosen = f"unavailable ({exc})"
    from desktop.engine.inventory import entries
    from desktop.models import READY

    store = ModelStore()
    # Everything ready to use: downloaded, imported, added or inside the app.
    installed = sorted(f"{e.id} ({e.source})" for e in entries(store) if e.status == READY)
    return {
        "pipedesk": __version__,
        "python": f"{platform.python_version()} ({sys.executable})",
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "device": chosen,
        "folders": {
            "config": paths.config_dir(),
            "data": paths.data_dir(),
            "cache": paths.cache_dir(),
            "models": store.root,
            "logs": paths.log_dir(),
            "log file": logs.log_file(),
        },
        "offline": {
            "offline mode": offline_mode(),
            "setting": settings.load().offline,
            "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", ""),
            "hub": hub_endpoint(),
        },
        "models installed": installed,
    }


def format_report(data: dict[str, Any]) -> str:
    lines = [
        f"Pipedesk {data['pipedesk']}",
        f"Python    {data['python']}",
        f"Platform  {data['platform']}",
        "",
    ]
    lines.append("Packages")
    lines += [f"  {name:<16} {version}" for name, version in data["packages"].items()]
    lines += ["", f"Device    {data['device']}", "", "Folders"]
    lines += [f"  {name:<9} {value}" for name, value in data["folders"].items()]
    lines += ["", "Network"]
    lines += [f"  {name:<13} {value}" for name, value in data["offline"].items()]
    lines += ["", f"Models installed: {len(data['models installed'])}"]
    lines += [f"  {name}" for name in data["models installed"]]
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``doctor``."""
    doctor = sub.add_parser("doctor", help="print versions, device, folders and offline state")
    doctor.add_argument("--json", action="store_true")
    add_device(doctor)
    doctor.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    """Versions, device, folders and offline state: what support asks for first."""
    data = report(device=args.device)
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        print(format_report(data))
    return 0


# --- parser -----------------------------------------------------------------------------
