"""Turn a TaskSpec into the function Gradio calls: public parameter names, clear errors.

Runs on Gradio's worker threads. User errors become ``gr.Error`` (a message in
the UI, an error — not a traceback — in the API); notes become ``gr.Warning``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

import gradio as gr

from desktop.errors import UserError
from desktop.runtime import Runtime
from desktop.tasks.spec import Result, TaskSpec

log = logging.getLogger(__name__)


def public_parameters(spec: TaskSpec) -> list[inspect.Parameter]:
    """The API parameters of a task, in contract order: the input(s), the model, the options."""
    params = list(inspect.signature(spec.predict).parameters.values())[1:]  # drop runtime
    return [p for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]


def progress_reporter(progress: gr.Progress) -> Callable[[int, int, str], None]:
    """Adapt ``progress(done, total, desc)`` calls to Gradio's progress bar."""

    def report(done: int, total: int, desc: str) -> None:
        if total:
            progress((done, total), desc=desc, unit="bytes")
        else:
            progress(None, desc=desc)

    return report


def user_error(exc: BaseException) -> gr.Error:
    """The gr.Error a user sees for ``exc``: its own words for UserError, a short note otherwise."""
    if isinstance(exc, UserError):
        return gr.Error(str(exc), print_exception=False)
    log.exception("Task failed", exc_info=exc)
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return gr.Error(
        f"Something went wrong: {first}. The app is still working; details are in the log file.",
        print_exception=False,
    )


def _outputs(result: Result) -> Any:
    return result.outputs[0] if len(result.outputs) == 1 else result.outputs


def make_handler(spec: TaskSpec, runtime: Runtime) -> Callable[..., Any]:
    """A function with the task's public signature that runs it and reports errors clearly."""
    params = public_parameters(spec)
    # Gradio passes the progress tracker positionally, after the inputs.
    progress_param = inspect.Parameter(
        "progress", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=gr.Progress()
    )

    if spec.stream is not None:
        stream = spec.stream

        def handler(*args: Any) -> Any:
            *values, progress = args
            result = None
            try:
                for result in stream(runtime, *values, progress=progress_reporter(progress)):
                    yield _outputs(result)
            except Exception as exc:
                raise user_error(exc) from None
            for note in result.notes if result else []:
                gr.Warning(note)

    else:

        def handler(*args: Any) -> Any:
            *values, progress = args
            try:
                result = spec.predict(runtime, *values, progress=progress_reporter(progress))
            except Exception as exc:
                raise user_error(exc) from None
            for note in result.notes:
                gr.Warning(note)
            return _outputs(result)

    handler.__signature__ = inspect.Signature([*params, progress_param])  # type: ignore[attr-defined]
    handler.__name__ = spec.id
    handler.__doc__ = spec.description
    return handler
