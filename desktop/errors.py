"""Errors a user can cause. Each carries one sentence meant for people, not a traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a bad choice: shown as-is in the UI, the API and the CLI (exit code 2)."""


class ModelError(UserError):
    """A model that cannot be found, downloaded or loaded for the task asked."""


class Stopped(UserError):
    """The person pressed Stop: the run ended early and its partial result was dropped."""

    def __init__(self, message: str = "Stopped: nothing was kept of the unfinished run.") -> None:
        super().__init__(message)
