"""User settings, stored as JSON in the config directory.

Read on demand (cheap) so every thread sees the latest saved values; written
atomically so a crash never leaves a half-written file. An unreadable file is
kept aside as ``settings.json.bad`` and defaults are used: settings are never
silently lost.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from desktop import fs, paths


@dataclass(frozen=True)
class Settings:
    """Everything the user can change in the Settings tab."""

    models_dir: Path | None = None
    offline: bool = False
    lan_password: str = ""
    device: str = "auto"  # auto, cpu, cuda:N, mps: used from the next start (desktop.engine.device)
    theme: str = "system"  # system, light, dark
    fast_cpu: bool = False
    window: dict[str, int] | None = None
    last_models: dict[str, str] | None = None  # the model last used in each task tab, by task id
    fast_cpu_speedups: dict[str, float] | None = None  # int8 against fp32, measured once per processor
    local_api: bool = False  # the Local API switch: other programs may use /v1 and /mcp with the key
    api_key: str = ""  # the Local API's key (this file is readable by its owner only)
    api_port: int | None = None  # the window's port when the Local API was switched on: kept if free
    unload_after_min: int = 30  # models leave memory after this many idle minutes (0: never)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["models_dir"] = str(self.models_dir) if self.models_dir else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Settings:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if values.get("models_dir"):
            values["models_dir"] = Path(values["models_dir"])
        return cls(**values)


#: Serialises read-modify-write updates: the UI's worker threads (e.g. the Sharing tab creating a
#: password while the Models tab moves the models folder) must not lose each other's changes.
_WRITE_LOCK = threading.RLock()


def settings_file() -> Path:
    return paths.config_dir() / "settings.json"


def load() -> Settings:
    """The saved settings, or defaults when there are none."""
    path = settings_file()
    try:
        loaded = Settings.from_json(json.loads(path.read_text(encoding="utf-8")))
        if os.name == "posix" and path.stat().st_mode & 0o077:
            path.chmod(0o600)  # written by an older version for everyone to read
        return loaded
    except FileNotFoundError:
        return Settings()
    except (OSError, ValueError, TypeError):
        try:
            os.replace(path, path.with_suffix(".json.bad"))
        except OSError:
            pass
        return Settings()


def save(settings: Settings) -> Settings:
    """Write ``settings`` atomically (owner-only: they hold the LAN password) and return them."""
    with _WRITE_LOCK:
        path = settings_file()
        paths.ensure(path.parent)
        fs.write_text(path, json.dumps(settings.to_json(), indent=2), private=True)
    return settings


def update(**changes: Any) -> Settings:
    """Load, change the given fields, save."""
    with _WRITE_LOCK:
        return save(replace(load(), **changes))


def models_dir() -> Path:
    """The folder models live in: the one chosen in the Models tab, else the default."""
    return load().models_dir or paths.default_models_dir()
