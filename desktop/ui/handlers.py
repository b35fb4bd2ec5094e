"""Turn a TaskSpec into the function Gradio calls: public parameter names, clear errors, Stop.

Runs on Gradio's worker threads. A user error becomes a ``gr.Error`` (an error,
not a traceback, for API callers) and its words are also kept in the tab's
:class:`RunControl` so the page can show them next to the output until the next
run; notes (a long text read in parts...) are kept there too. Stop sets the
control's flag: model loops that take long (generation, seq2seq) check it
between steps and end early, so the device is free again at once.
"""

from __future__ import annotations

import dataclasses
import html
import inspect
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from desktop.engine.client import Door
from desktop.errors import Stopped, UserError
from desktop.tasks.spec import Result, TaskSpec

log = logging.getLogger(__name__)


class RunControl:
    """One browser session's view of its runs in one tab (held in a ``gr.State``).

    ``stop_requested`` is read by the model loop (any thread); ``message`` and ``failed`` describe
    the last run for the page. Gradio deep-copies a State's initial value for each new session,
    which here means: a fresh control.
    """

    def __init__(self) -> None:
        self._stop = threading.Event()
        self.message = ""
        self.failed = False
        self.runs = 0  # runs started in this session's tab (the page marks each finished one)
        self.model = ""  # the model of this session's last successful run, and how long it took
        self.latency_ms: float | None = None
        self._started = 0.0

    def __deepcopy__(self, memo: dict[int, Any]) -> RunControl:
        return RunControl()

    def start(self) -> None:
        self.runs += 1
        self._stop.clear()
        self.message, self.failed = "", False
        self._started = time.perf_counter()

    def request_stop(self) -> None:
        """Ask the run to end early (Stop); the page then says so."""
        self._stop.set()
        self.message, self.failed = "Stopped.", False

    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def finish(self, notes: list[str] | None = None, error: str | None = None) -> None:
        if self.stop_requested():
            self.message, self.failed = "Stopped.", False
        elif error is not None:
            self.message, self.failed = error, True
        else:
            self.message, self.failed = "\n".join(f"ℹ️ {note}" for note in notes or []), False


def status_text(door: Door, model: str = "", latency_ms: float | None = None) -> str:
    """The status line: the device and what ran last. A visitor sees only their own runs (``model``
    and ``latency_ms``), never what the owner or other visitors ran."""
    if not door.visitor:
        return door.status.line()
    return dataclasses.replace(door.status, model=model, latency_ms=latency_ms).line()


def message_box(text: str = "", failed: bool = False, runs: int | None = None) -> str:
    """The HTML of a tab's message box, the one place a tab's words stay until its next action: the
    last error (``failed``), or notes and results in words; empty text, an empty box. ``runs`` (how
    many runs have finished) is a mark for scripts and tests that drive the page (``data-runs``)."""
    done = "" if runs is None else f'<span hidden data-runs="{runs}"></span>'
    if not text:
        return done
    kind = "pd-error" if failed else "pd-note"
    role = "alert" if failed else "status"
    words = html.escape(text).replace("\n", "<br>")
    return f'{done}<div class="pd-message {kind}" role="{role}">{words}</div>'


def output_folder(local: bool) -> Path:
    """Where this app writes the files it offers for download (transcripts, exports): Gradio's
    upload folder for the owner; for visitors, the visitors' folder, removed when sharing stops."""
    if local:
        return Path(gr.utils.get_upload_folder())
    from desktop.share.controller import visitors_upload_folder

    return visitors_upload_folder()


def public_parameters(spec: TaskSpec) -> list[inspect.Parameter]:
    """The API parameters of a task, in contract order: the input(s), the model, the options."""
    defaults = {"model": None, **{option.name: option.default for option in spec.options}}
    return [
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=defaults.get(name))
        for name in spec.parameters
    ]


def progress_reporter(progress: gr.Progress) -> Callable[[int, int, str], None]:
    """Adapt ``progress(done, total, desc)`` calls to Gradio's progress bar."""

    def report(done: int, total: int, desc: str, unit: str = "bytes") -> None:
        if total:
            progress((done, total), desc=desc, unit=unit)
        else:  # the last stages (checking files, loading into memory): Gradio shows words only with a bar
            progress(1.0, desc=desc)

    return report


def error_text(exc: BaseException, guest: bool = False) -> str:
    """What a person reads for ``exc``: its own words for UserError, a short note otherwise (for a
    guest, a note that names nothing on this computer)."""
    if isinstance(exc, UserError):
        return str(exc)
    log.exception("Task failed", exc_info=exc)
    if guest:
        return "Something went wrong on the computer running Pipedesk; its owner can find the details in its log."
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return f"Something went wrong: {first}. The app is still working; details are in the log file."


def user_error(exc: BaseException, visible: bool = True) -> gr.Error:
    """The gr.Error for ``exc`` (``visible=False``: no pop-up, the page shows the words itself)."""
    return gr.Error(error_text(exc), print_exception=False, visible=visible)


def _outputs(values: tuple[Any, ...]) -> Any:
    return values[0] if len(values) == 1 else values


def make_handler(
    spec: TaskSpec,
    door: Door,
    on_success: Callable[[str | None], None] | None = None,
    present: Callable[[Result], tuple[Any, ...]] | None = None,
) -> Callable[..., Any]:
    """A function with the task's public signature (then a RunControl and Gradio's progress) that runs
    the task; ``on_success(model)`` is called after each successful run (remembering the model);
    ``present(result)`` gives the output components' values (default: ``result.outputs``)."""
    present = present or (lambda result: result.outputs)
    params = public_parameters(spec)
    guest = door.visitor
    model_index = [p.name for p in params].index("model")
    extra = [
        inspect.Parameter("control", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None),
        # Gradio passes the progress tracker positionally, after the inputs.
        inspect.Parameter("progress", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=gr.Progress()),
    ]

    def begin(args: tuple[Any, ...]) -> tuple[list[Any], RunControl, dict[str, Any]]:
        *values, control, progress = args
        control = control if isinstance(control, RunControl) else RunControl()
        control.start()
        kwargs: dict[str, Any] = {"progress": progress_reporter(progress), "stop": control.stop_requested}
        return values, control, kwargs

    def failed(control: RunControl, exc: Exception) -> gr.Error:
        control.finish(error=None if isinstance(exc, Stopped) else error_text(exc, guest))
        return gr.Error(control.message, print_exception=False, visible=False)

    def succeeded(control: RunControl, values: list[Any], result: Result | None) -> None:
        control.finish(result.notes if result else [])
        control.model = result.model if result else control.model
        control.latency_ms = (time.perf_counter() - control._started) * 1000
        if on_success is not None:
            try:
                on_success(values[model_index] if model_index < len(values) else None)
            except OSError:
                log.exception("Could not remember the model used")

    if spec.streams:

        def handler(*args: Any) -> Any:
            values, control, kwargs = begin(args)
            result = None
            try:
                for result in door.stream(spec, *values, **kwargs):
                    yield _outputs(present(result))
            except Exception as exc:
                raise failed(control, exc) from None
            succeeded(control, values, result)

    else:

        def handler(*args: Any) -> Any:  # type: ignore[misc]
            values, control, kwargs = begin(args)
            try:
                result = door.predict(spec, *values, **kwargs)
            except Exception as exc:
                raise failed(control, exc) from None
            succeeded(control, values, result)
            return _outputs(present(result))

    handler.__signature__ = inspect.Signature([*params, *extra])  # type: ignore[attr-defined]
    handler.__name__ = spec.id
    handler.__doc__ = spec.description
    return handler
