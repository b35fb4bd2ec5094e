"""Files a person drops on (or picks for) a photo, recording or Batch box that Pipedesk does not read:
refused in Pipedesk's own words, not in Gradio's list of MIME types.

:data:`GUARD_JS` runs in the page (added to the app's start-up script): before Gradio's upload
box sees a file whose name ends in no extension the box takes (the allow-lists of
:mod:`desktop.files`), it stops the upload and presses the tab's hidden refusal button, handing over
the file's name; :func:`refusal` (on Gradio's workers) gives the sentence the CLI gives for that file
(:func:`desktop.files.audio.not_audio`, :func:`desktop.files.images.not_an_image`; the Batch tab's
own, :func:`desktop.ui.batch_view.not_handed_in`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gradio as gr

from desktop.errors import UserError
from desktop.files.audio import AUDIO_EXTENSIONS, not_audio
from desktop.files.images import IMAGE_EXTENSIONS, not_an_image
from desktop.ui.batch_view import not_handed_in, taken_extensions

#: The class of an upload box the guard watches, and of its kind (what the box takes).
WATCHED = "pd-upload"
KINDS = {
    "audio": (AUDIO_EXTENSIONS, not_audio),
    "image": (IMAGE_EXTENSIONS, not_an_image),
    "batch": (set(taken_extensions(local=True)), not_handed_in),  # the Batch tab's box
    "batch-lan": (set(taken_extensions(local=False)), not_handed_in),  # the visitors' Batch tab's
}


def kind_of(component: Any) -> str | None:
    """ "audio" or "image" for a recording or photo box, None for other components."""
    if isinstance(component, gr.Audio):
        return "audio"
    return "image" if isinstance(component, gr.Image) else None


def watched(kind: str) -> list[str]:
    """The classes that have the guard watch an upload box of ``kind`` (a key of :data:`KINDS`)."""
    return [WATCHED, f"{WATCHED}-{kind}"]


def watch(component: Any) -> None:
    """Mark a photo or recording box for the guard (before it is rendered)."""
    kind = kind_of(component)
    if kind is not None:
        component.elem_classes = [*(component.elem_classes or []), *watched(kind)]


def refusal(kind: str, name: str | None) -> UserError:
    """The refusal of the file named ``name`` handed to a box of ``kind``."""
    return KINDS[kind][1](Path(name or "").name or "This file")


GUARD_JS = """
() => {
  const allowed = ALLOWED;
  const suffix = (name) => { const dot = name.lastIndexOf("."); return dot < 0 ? "" : name.slice(dot).toLowerCase(); };
  const guard = (event, files) => {
    const box = event.target.closest && event.target.closest(".WATCHED");
    if (!box || !files || !files.length) return;
    const kind = Object.keys(allowed).find((name) => box.classList.contains(`WATCHED-${name}`));
    const refused = [...files].find((file) => !allowed[kind].includes(suffix(file.name)));
    if (!refused) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    if (event.type === "change") event.target.value = "";
    window.pdRefused = refused.name;
    const panel = box.closest(".tabitem") || document;
    const button = panel.querySelector("button[id^='refuse-']");
    if (button) button.click();
  };
  document.addEventListener("change", (e) => { if (e.target.type === "file") guard(e, e.target.files); }, true);
  document.addEventListener("drop", (e) => guard(e, e.dataTransfer && e.dataTransfer.files), true);
}
""".replace("WATCHED", WATCHED).replace(
    "ALLOWED", json.dumps({kind: sorted(extensions) for kind, (extensions, _say) in KINDS.items()})
)

#: The refusal button's script: the name of the file the guard stopped (then the other inputs).
REFUSED_JS = "(name, ...rest) => [window.pdRefused || '', ...rest]"
