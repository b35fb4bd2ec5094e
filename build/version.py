"""The version the packages carry: ``[project].version`` of pyproject.toml, the one definition.

The running app reads the same number from its installed metadata (``desktop.__version__``);
the build reads the file, so a package is never named after a stale editable install.
"""

from __future__ import annotations

from pathlib import Path

import tomllib

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def project_version(pyproject: Path = PYPROJECT) -> str:
    """``0.1.0``: pyproject.toml's ``[project].version``."""
    with pyproject.open("rb") as file:
        return str(tomllib.load(file)["project"]["version"])
