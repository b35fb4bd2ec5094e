"""Process-wide environment, set before gradio, huggingface_hub or transformers import.

Runs on the main thread, first thing, from ``desktop/__init__.py``; it sets environment
variables (no folders are created; ``setdefault`` so a user or a test can still override any of
them) and keeps Gradio from writing type stubs while it imports (:func:`skip_gradio_stub_writer`).
"""

from __future__ import annotations

import importlib.abc
import os
import sys
from typing import Any

from desktop import paths

#: Gradio's module whose ``create_or_modify_pyi`` runs for every component class as Gradio imports.
GRADIO_STUBS = "gradio.component_meta"


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
    skip_gradio_stub_writer()


def skip_gradio_stub_writer() -> None:
    """Gradio (6.x) regenerates the ``.pyi`` type stubs of its components each time it is imported:
    it reads and parses each component's source file, a third of ``import gradio`` (2.6 s -> 1.7 s
    on 2 cores, benchmarks/README.md) and so of the page's start. Stubs are for editors, never for
    running; this drops that one step (an import hook on ``gradio.component_meta``). Nothing
    happens when Gradio is imported already, or when a later Gradio has no such step."""
    if "gradio" not in sys.modules and not any(isinstance(f, _NoStubs) for f in sys.meta_path):
        sys.meta_path.insert(0, _NoStubs())


def _no_stubs(*_args: Any, **_kwargs: Any) -> None:
    return None


class _NoStubs(importlib.abc.MetaPathFinder):
    """Finds ``gradio.component_meta`` as the other finders do, and replaces its stub writer once it
    has run; then leaves ``sys.meta_path``."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != GRADIO_STUBS:
            return None
        sys.meta_path.remove(self)
        spec = next(
            (s for f in sys.meta_path if (s := getattr(f, "find_spec", lambda *_: None)(name, path, target))),
            None,
        )
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run = loader.exec_module

        def exec_module(module: Any) -> None:
            # The loader's own method again at once: a frozen app's one loader serves every module.
            vars(loader).pop("exec_module", None)
            run(module)
            if module.__name__ == GRADIO_STUBS and callable(getattr(module, "create_or_modify_pyi", None)):
                module.create_or_modify_pyi = _no_stubs

        try:
            loader.exec_module = exec_module
        except (AttributeError, TypeError):  # a loader that takes no attributes: Gradio as it is
            pass
        return spec
