"""Every directory Pipedesk reads or writes, and nothing else.

``PIPEDESK_HOME`` moves all of them under one folder (tests, portable installs);
otherwise platformdirs picks the platform's usual places. Nothing is created at
import time: callers that write call :func:`ensure`.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "Pipedesk"
HOME_ENV = "PIPEDESK_HOME"


def _home() -> Path | None:
    value = os.environ.get(HOME_ENV, "").strip()
    return Path(value).expanduser().resolve() if value else None


def _dirs() -> platformdirs.PlatformDirs:
    return platformdirs.PlatformDirs(APP_NAME, appauthor=False)


def config_dir() -> Path:
    """Settings (``settings.json``)."""
    home = _home()
    return home / "config" if home else Path(_dirs().user_config_dir)


def data_dir() -> Path:
    """Data the user made: window state, web storage, batch results."""
    home = _home()
    return home / "data" if home else Path(_dirs().user_data_dir)


def cache_dir() -> Path:
    """Downloads and other things that can be fetched again."""
    home = _home()
    return home / "cache" if home else Path(_dirs().user_cache_dir)


def log_dir() -> Path:
    """The rotating log file."""
    home = _home()
    return home / "logs" if home else Path(_dirs().user_log_dir)


def default_models_dir() -> Path:
    """Where models live unless the user chose another folder in Settings."""
    return cache_dir() / "models"


def hf_home() -> Path:
    """A private HF_HOME, so no library ever writes to ~/.cache/huggingface."""
    return cache_dir() / "huggingface"


def gradio_temp_dir() -> Path:
    """Gradio's upload and result cache."""
    return cache_dir() / "gradio"


def ensure(path: Path) -> Path:
    """Create ``path`` (and parents) if missing and return it."""
    path.mkdir(parents=True, exist_ok=True)
    return path
