"""The native window's own file dialogs, for the UI: "Choose…" buttons beside the boxes that take a
path on this computer (a model folder to import, the models folder, a folder for the Batch tab).

The launcher (:mod:`desktop.shell.window`) knows it made a window and hands a chooser here with
:func:`provide` before it builds the interface; the UI never imports the shell. With no window (``serve``,
tests, the LAN visitors' app) there is no chooser and no button: a browser keeps the typed path or
the upload. Buttons are built on the main thread; their handlers run on Gradio's workers and wait
there while the dialog is open (the dialog itself runs on the GUI thread: pywebview hands it there).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gradio as gr

log = logging.getLogger(__name__)

#: ``chooser(kind, start)``: the path a person chose in the system's dialog ("folder" or "file"),
#: starting in the folder ``start`` (or anywhere when it is empty); None when they cancelled.
Chooser = Callable[[str, str], str | None]

_chooser: Chooser | None = None


def provide(chooser: Chooser | None) -> None:
    """Called by the launcher once it has a window (None again when the window is gone)."""
    global _chooser
    _chooser = chooser


def in_window() -> bool:
    """True while the interface is built for (and shown in) the native window."""
    return _chooser is not None


def choose_button(box: gr.Textbox, kind: str = "folder", local: bool = True) -> Any:
    """A "Choose…" button that fills ``box`` with a path chosen in the system's dialog; built only
    in the native window of this computer's app (None elsewhere). Returns the click event, so a
    caller can chain what typing the path and pressing Enter would do (``.then(...)``)."""
    chooser = _chooser
    if chooser is None or not local:
        return None
    button = gr.Button("Choose…", size="sm", scale=0, min_width=90, elem_id=f"{box.elem_id}-choose")

    def choose(current: str) -> Any:
        try:
            chosen = chooser(kind, (current or "").strip())
        except Exception:  # the window closed while the dialog was asked for: nothing chosen
            log.warning("The file dialog could not open", exc_info=True)
            chosen = None
        return chosen if chosen else gr.update()

    return button.click(choose, box, box, api_visibility="private", queue=False)


def then_read(chose: Any, read: Callable[[str], Any], box: gr.Textbox, outputs: list[Any]) -> None:
    """After the "Choose…" click event ``chose`` (None: no button), ``read(path)`` into ``outputs`` as
    pressing Enter in ``box`` would; a cancelled dialog with an empty box changes nothing."""
    if chose is None:
        return

    def after(text: str) -> Any:
        return read(text) if (text or "").strip() else tuple(gr.skip() for _ in outputs)

    chose.then(after, box, outputs, api_visibility="private")
