"""Process-wide environment, set before gradio, huggingface_hub or transformers import.

Runs on the main thread, first thing, from ``desktop/__init__.py``; it only sets
environment variables (no folders are created). ``setdefault`` is used so a user
or a test can still override any of them.
"""

from __future__ import annotations

import os

from desktop import paths


def configure_environment() -> None:
    """Turn off telemetry and keep every library cache inside Pipedesk's own folders."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HOME", str(paths.hf_home()))
    os.environ.setdefault("GRADIO_TEMP_DIR", str(paths.gradio_temp_dir()))
    # transformers otherwise prints advice about missing optional backends, and warns about
    # lengths the app handles itself (chunking, truncation with a note to the user).
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
