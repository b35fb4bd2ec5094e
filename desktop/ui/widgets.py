"""Each task's widgets: the Gradio components its inputs and outputs need, by task id.

Adding a task is one module under ``desktop/tasks/`` plus an entry here. Components are built
unrendered (``render=False``) and rendered by the task tab; their order follows the task's
``inputs`` and the values its results show (``Result.outputs``). Built on the main thread.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from desktop import fs
from desktop.tasks import classify, detect, label_rules, ner, transcribe
from desktop.tasks.spec import Option, Result, TaskSpec


@dataclass(frozen=True)
class Widgets:
    """How a task looks: input components (API order), output components, extra wiring, and how a
    Result becomes the output components' values (by default ``Result.outputs`` as they are)."""

    inputs: Callable[[], list[gr.Component]]
    outputs: Callable[[], list[gr.Component]]
    #: ``wire(inputs, model, shown)``: extra events (show/hide inputs); ``shown`` is the outputs then
    #: the message box, to clear when what they show no longer matches the input.
    wire: Callable[[list[Any], Any, list[Any]], None] | None = None
    #: ``present(result, folder)``: files it offers for download are written under ``folder``.
    present: Callable[[Result, Path], tuple[Any, ...]] = lambda result, folder: result.outputs


def option_widget(option: Option) -> gr.Component:
    """The control for a task option, from its ``widget`` description."""
    kind, label, *rest = option.widget
    if kind == "slider":
        step, info = rest
        return gr.Slider(
            option.minimum,
            option.maximum,
            value=option.default,
            step=step,
            label=label,
            info=info,
            render=False,
        )
    if kind == "textbox":
        info, placeholder, lines = rest
        return gr.Textbox(
            value=option.default, label=label, info=info, placeholder=placeholder, lines=lines, render=False
        )
    (info,) = rest
    if kind == "dropdown":
        return gr.Dropdown(list(option.choices), value=option.default, label=label, info=info, render=False)
    if kind == "checkbox":
        return gr.Checkbox(value=option.default, label=label, info=info, render=False)
    return gr.Number(value=option.default, precision=0, label=label, info=info, render=False)


def option_controls(
    specs: list[TaskSpec], shown: str, prefix: str
) -> tuple[list[tuple[str, str]], list[gr.Component], dict[str, gr.Column]]:
    """Every task's options as controls (rendered here), each task's in a column ``{prefix}-{task id}``
    shown while that task is chosen (``shown`` at first): text boxes in view (a prompt), the rest
    under "Options". Returns (task, option name) per control, the controls, the columns by task."""
    keys: list[tuple[str, str]] = []
    controls: list[gr.Component] = []
    columns: dict[str, gr.Column] = {}
    for spec in specs:
        if not spec.options:
            continue
        boxes = [option for option in spec.options if _in_view(option)]
        rest = [option for option in spec.options if not _in_view(option)]
        with gr.Column(visible=spec.id == shown, elem_id=f"{prefix}-{spec.id}") as column:
            controls += [option_widget(option).render() for option in boxes]
            if rest:
                with gr.Accordion("Options", open=False):
                    controls += [option_widget(option).render() for option in rest]
        keys += [(spec.id, option.name) for option in [*boxes, *rest]]
        columns[spec.id] = column
    return keys, controls, columns


def _in_view(option: Option) -> bool:
    """Shown with the inputs, not folded under Options: what a person fills in (Labels' labels, a
    prompt, a system prompt)."""
    return option.main or option.widget[0] == "textbox"


def _text(label: str, lines: int, placeholder: str) -> Callable[[], list[gr.Component]]:
    return lambda: [gr.Textbox(label=label, lines=lines, placeholder=placeholder, render=False)]


def _answer(label: str, lines: int) -> Callable[[], list[gr.Component]]:
    return lambda: [gr.Textbox(label=label, lines=lines, buttons=["copy"], render=False)]


def _text_or_image(image_label: str, placeholder: str) -> Callable[[], list[gr.Component]]:
    """An input type switch ("Text" or ``image_label``, whose value is "Image"), a text box and an
    image box (Classify, Labels)."""

    def inputs() -> list[gr.Component]:
        return [
            gr.Radio(["Text", (image_label, "Image")], value="Text", label="Input type", render=False),
            gr.Textbox(label="Text", lines=3, placeholder=placeholder, render=False),
            # image_mode=None: Gradio reads only the header and hands over the file; the task checks
            # it before anything decodes it (the tab sends image inputs unprocessed).
            gr.Image(
                label=image_label,
                type="filepath",
                image_mode=None,
                sources=["upload", "clipboard"],
                visible=False,
                render=False,
            ),
        ]

    return inputs


def _text_or_image_wire(inputs: list[Any], model: Any, shown: list[Any]) -> None:
    """Show the text box or the image box, whichever the input type asks for; the result of the
    other kind of input (and its message) goes."""
    kind, text, image, *_options = inputs
    kind.change(
        lambda value: (
            gr.update(visible=value != "Image"),
            gr.update(visible=value == "Image"),
            *[None] * (len(shown) - 1),
            "",
        ),
        inputs=kind,
        outputs=[text, image, *shown],
        api_visibility="private",
        queue=False,
    )


def _ner_outputs() -> list[gr.Component]:
    return [
        gr.HighlightedText(label="Entities in the text", combine_adjacent=False, render=False),
        gr.Dataframe(
            label="Entities",
            headers=ner.COLUMNS,
            datatype=["str", "str", "number", "number", "number"],
            interactive=False,
            buttons=["copy"],
            render=False,
        ),
    ]


def _transcribe_inputs() -> list[gr.Component]:
    # Sent unprocessed (like images): the task decodes the file itself, whatever the format.
    return [
        gr.Audio(
            label="Recording", type="filepath", sources=["upload", "microphone"], render=False, format="wav"
        )
    ]


def _transcribe_outputs() -> list[gr.Component]:
    return [
        gr.Textbox(label="Transcript", lines=8, buttons=["copy"], render=False),
        gr.Dataframe(
            label="Segments",
            headers=transcribe.COLUMNS,
            datatype=["number", "number", "str"],
            interactive=False,
            render=False,
        ),
        gr.File(
            label="Download (TXT, SRT, VTT, JSON)", file_count="multiple", interactive=False, render=False
        ),
    ]


def _transcribe_files(result: Result, folder: Path) -> tuple[Any, ...]:
    """The transcript, its subtitles and its data (word times too) as files to download, next to the
    text and the segments."""
    files = {f"transcript.{kind}": text for kind, text in transcribe.SPEC.exports(result).items()}
    return (*result.outputs, [str(path) for path in _export(files, folder)])


def _export(files: dict[str, str], root: Path) -> list[Path]:
    """``files`` (name -> text) written under ``root`` (the app's output folder, as the Batch tab's
    exports are; not the system's temporary folder, where nothing would ever remove them): a
    sub-folder per content, so concurrent answers never touch each other's files. Any thread."""
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode("utf-8")).hexdigest()[:24]
    folder = root / "pipedesk-transcripts" / digest
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        target = folder / name
        if not target.exists():
            fs.write_text(target, text)
        written.append(target)
    return written


def _detect_inputs() -> list[gr.Component]:
    return [
        gr.Image(
            label="Photo", type="filepath", image_mode=None, sources=["upload", "clipboard"], render=False
        )
    ]


def _detect_outputs() -> list[gr.Component]:
    return [
        gr.AnnotatedImage(label="Objects found", render=False),
        gr.Dataframe(label="Objects", headers=detect.COLUMNS, interactive=False, render=False),
    ]


WIDGETS: dict[str, Widgets] = {
    "sentiment": Widgets(
        _text("Text", 4, "Type or paste a review, a message, a sentence…"),
        lambda: [gr.Label(label="Sentiment", num_top_classes=5, render=False)],
    ),
    "generate": Widgets(_text("Prompt", 4, "Once upon a time…"), _answer("Generated text", 8)),
    "ner": Widgets(_text("Text", 5, "Paste a paragraph…"), _ner_outputs),
    "classify": Widgets(
        _text_or_image("Image", "A sentence to classify…"),
        lambda: [gr.Label(label="Top 5", num_top_classes=classify.TOP_K, render=False)],
        _text_or_image_wire,
    ),
    "labels": Widgets(
        _text_or_image("Photo", "A support ticket, a review, a message…"),
        lambda: [gr.Label(label="Labels", num_top_classes=label_rules.MAX_LABELS, render=False)],
        _text_or_image_wire,
    ),
    "translate": Widgets(_text("Text", 5, "Text to translate…"), _answer("Translation", 5)),
    "summarize": Widgets(_text("Text", 10, "Paste an article…"), _answer("Summary", 6)),
    "transcribe": Widgets(_transcribe_inputs, _transcribe_outputs, present=_transcribe_files),
    "detect": Widgets(_detect_inputs, _detect_outputs),
    # The API's components (the Chat tab's page is its own, desktop.ui.chat_tab; prompts have no tab).
    "chat": Widgets(
        lambda: [gr.Textbox(label="Message", render=False), gr.JSON(label="History", render=False)],
        lambda: [gr.Textbox(label="Answer", render=False), gr.JSON(label="History", render=False)],
        present=lambda result, _folder: (result.data["answer"], result.data["history"]),
    ),
    "prompt": Widgets(
        lambda: [gr.JSON(label="Row", render=False)],
        lambda: [gr.Textbox(label="Answer", render=False), gr.JSON(label="Fields", render=False)],
    ),
    # No tab: the API (a text or a list of texts in, the vectors out) and the Local API's /v1/embeddings.
    "embed": Widgets(
        lambda: [gr.JSON(label="Text", render=False)], lambda: [gr.JSON(label="Embeddings", render=False)]
    ),
}
