"""One task's tab, built from its TaskSpec: inputs, model list, options, Run and Stop, outputs and
a message line that keeps the last error's (or the notes') words next to the output.

Built on the main thread inside ``build_app``; the handlers run on Gradio's workers. A run is
three chained events: ``begin`` (clear the message, show Stop; not queued), the task itself (the
public API endpoint ``/<task id>``, on the one inference queue) and ``end`` (the message, Run back,
the status line), which runs whether the task succeeded or failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from desktop.tasks.spec import TaskSpec
from desktop.ui import model_lists, uploads
from desktop.ui.handlers import RunControl, make_handler, message_box, output_folder, status_text
from desktop.ui.widgets import WIDGETS, option_widget

INFERENCE_QUEUE = "inference"
#: Requests Gradio hands to the engine at once: the engine's device lock runs one batch at a time
#: and merges the requests that wait together (desktop.engine.batcher). As many as one CPU batch
#: holds on 2 cores (32 rows), so no request waits in Gradio's queue for a later batch while the
#: engine could have taken it (16 before: with 20 LAN visitors, side by side, the visitors' p95
#: fell by a quarter to a third and the owner's by a sixth to a quarter; benchmarks/README.md).
#: Each holds one of Gradio's 40 worker threads while it waits.
CONCURRENT_REQUESTS = 32
PRIVATE: dict[str, Any] = {"api_visibility": "private"}


@dataclass
class TaskTab:
    """What the rest of the app needs of a built task tab."""

    spec: TaskSpec
    model: gr.Dropdown
    tab: gr.Tab


def message_html(control: RunControl) -> str:
    """The line under the output: the last error in words, or the notes of the last run (and, for
    scripts and tests that drive the page, how many runs have finished: ``data-runs``)."""
    return message_box(control.message, control.failed, control.runs)


def _takes_raw_files(components: list[Any]) -> bool:
    """True when an input is an image or a recording: the task checks the file itself before
    anything decodes it (and decodes every audio format itself)."""
    return any(isinstance(component, (gr.Image, gr.Audio)) for component in components)


def model_dropdown(spec: TaskSpec, door: Any, local: bool) -> gr.Dropdown:
    """A task's Model list: its models with their states, the sensible one picked."""
    first = model_lists.update(spec, door.store, None, local=local)
    return gr.Dropdown(
        choices=first["choices"],
        value=first["value"],
        label="Model",
        info="Pick one, or type a Hub id (owner/name), an imported name or a model folder path."
        if local
        else "The models installed on the computer you are visiting.",
        allow_custom_value=True,  # a name typed (or sent by the API) is checked by the door
        filterable=True,
        elem_id=f"model-{spec.id}",
    )


def api_endpoint(spec: TaskSpec, door: Any, model: Any, options: list[Any]) -> None:
    """The public API ``/<task id>`` on hidden components, for a task whose page runs other events
    (the Chat tab) or that has no tab (prompts over files): the same handler, parameters and order as
    every task's API; values reach the task unprocessed, so its own checks word every refusal."""
    widgets = WIDGETS[spec.id]
    folder = output_folder(not door.visitor)
    with gr.Column(visible=False):
        inputs = [component.render() for component in widgets.inputs()]
        outputs = [component.render() for component in widgets.outputs()]
        trigger = gr.Button(f"{spec.id} API", visible=False)
    trigger.click(
        make_handler(spec, door, None, lambda result: widgets.present(result, folder)),
        inputs=[*inputs, model, *options, gr.State(RunControl())],
        outputs=outputs,
        api_name=spec.id,
        concurrency_id=INFERENCE_QUEUE,
        concurrency_limit=CONCURRENT_REQUESTS,
        preprocess=False,
    )


def build_api_only(spec: TaskSpec, door: Any) -> None:
    """A task with no tab of its own (``ui == "files"``): its API endpoint only."""
    with gr.Column(visible=False):
        model = gr.Textbox(label="Model")
        options = [option_widget(option).render() for option in spec.options]
    api_endpoint(spec, door, model, options)


def build_task_tab(spec: TaskSpec, door: Any, status: gr.Markdown, local: bool) -> TaskTab:
    """Add ``spec``'s tab (inside the app's gr.Tabs) and wire its events."""
    widgets = WIDGETS[spec.id]
    with gr.Tab(spec.title, id=spec.id) as tab:
        gr.Markdown(spec.description, elem_classes="task-description")
        control = gr.State(RunControl())
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                inputs = [_watched(component).render() for component in widgets.inputs()]
                # What a person must fill in (Labels' labels) comes with the inputs; the rest folds away.
                shown = {o.name: option_widget(o).render() for o in spec.options if o.main}
                model = model_dropdown(spec, door, local)
                if len(shown) < len(spec.options):
                    with gr.Accordion("Options", open=False):
                        for option in spec.options:
                            if not option.main:
                                shown[option.name] = option_widget(option).render()
                options = [shown[option.name] for option in spec.options]
                with gr.Row():
                    run = gr.Button("Run", variant="primary", elem_id=f"run-{spec.id}", scale=3)
                    stop = gr.Button(
                        "Stop", variant="stop", visible=False, elem_id=f"stop-{spec.id}", scale=1
                    )
                gr.Markdown("Ctrl+Enter (⌘+Enter on a Mac) runs from the text box.", elem_classes="pd-hint")
            with gr.Column(scale=1):
                outputs = [component.render() for component in widgets.outputs()]
                message = gr.HTML("", elem_id=f"message-{spec.id}", show_progress="hidden")
                guarded = any(uploads.kind_of(component) for component in inputs)
                if guarded:  # pressed by the page's upload guard (desktop.ui.uploads)
                    refused = gr.Textbox(label="Refused file", elem_classes="pd-hidden")
                    refuse = gr.Button("Refuse", elem_id=f"refuse-{spec.id}", elem_classes="pd-hidden")
        if spec.examples:
            filled = [*inputs, *(shown[option.name] for option in spec.options if option.main)]
            gr.Examples(
                examples=[list(example) for example in spec.examples],
                inputs=filled[: len(spec.examples[0])],
                label="Examples",
            )
        if widgets.wire:
            widgets.wire(inputs, model, [*outputs, message])

    remember = (lambda name: model_lists.remember(spec.id, name)) if local else None
    folder = output_folder(local)

    def begin(current: RunControl) -> tuple[Any, ...]:
        return "", gr.update(visible=False), gr.update(visible=True)

    def end(current: RunControl, chosen: str | None) -> tuple[Any, ...]:
        # The list is refreshed too: a model the run just downloaded now says "ready".
        return (
            message_html(current),
            gr.update(visible=True),
            gr.update(visible=False),
            status_text(door, current.model, current.latency_ms),
            model_lists.update(spec, door.store, chosen, local=local),
        )

    started = run.click(begin, inputs=control, outputs=[message, run, stop], queue=False, **PRIVATE)
    running = started.then(
        make_handler(spec, door, remember, lambda result: widgets.present(result, folder)),
        inputs=[*inputs, model, *options, control],
        outputs=outputs,
        api_name=spec.id,
        concurrency_id=INFERENCE_QUEUE,
        concurrency_limit=CONCURRENT_REQUESTS,
        preprocess=not _takes_raw_files(inputs),
        show_progress_on=outputs[:1],  # one progress bar (and one error mark) per run, not one per output
    )
    # Gradio's frontend skips ``.then`` after a failure: ``end`` is chained to both outcomes.
    ended: dict[str, Any] = {"inputs": [control, model], "outputs": [message, run, stop, status, model]}
    running.success(end, **ended, queue=False, **PRIVATE)
    running.failure(end, **ended, queue=False, **PRIVATE)
    stop.click(
        lambda current: current.request_stop(), inputs=control, cancels=[running], queue=False, **PRIVATE
    )
    if guarded:
        _guard_files(inputs, outputs, message, control, refused, refuse)
    return task_tab(spec, door, model, tab, local)


def _watched(component: Any) -> Any:
    uploads.watch(component)
    return component


def _guard_files(
    inputs: list[Any], outputs: list[Any], message: Any, control: Any, refused: Any, refuse: Any
) -> None:
    """A photo or recording box: a file Pipedesk does not read is refused in the message box (the
    CLI's sentence) and the box emptied; a new file (or none) clears the results of the last one."""
    box = next(component for component in inputs if uploads.kind_of(component))
    cleared = [None] * len(outputs)

    def refusal(name: str, current: RunControl) -> tuple[Any, ...]:
        current.message, current.failed = str(uploads.refusal(uploads.kind_of(box), name)), True
        return None, *cleared, message_html(current)

    refuse.click(
        refusal,
        inputs=[refused, control],
        outputs=[box, *outputs, message],
        js=uploads.REFUSED_JS,
        queue=False,
        **PRIVATE,
    )
    box.upload(lambda: (*cleared, ""), outputs=[*outputs, message], queue=False, **PRIVATE)
    box.clear(lambda: (*cleared, ""), outputs=[*outputs, message], queue=False, **PRIVATE)


def task_tab(spec: TaskSpec, door: Any, model: gr.Dropdown, tab: gr.Tab, local: bool) -> TaskTab:
    """The built tab, its Model list refreshed whenever the tab is shown (a model downloaded elsewhere
    now says "ready")."""
    tab.select(
        lambda current: model_lists.update(spec, door.store, current, local=local),
        inputs=model,
        outputs=model,
        queue=False,
        **PRIVATE,
    )
    return TaskTab(spec=spec, model=model, tab=tab)


def refresh_lists(tabs: list[TaskTab], door: Any, local: bool) -> Any:
    """A handler (current values in, updates out) that refreshes every tab's Model list."""

    def refresh(*current: str | None) -> list[Any]:
        return [
            model_lists.update(tab.spec, door.store, value, local=local)
            for tab, value in zip(tabs, current, strict=True)
        ]

    return refresh


def preselect(tabs: list[TaskTab], door: Any, local: bool) -> Any:
    """A page-load handler: every Model list with its states and the sensible pick."""

    def load() -> list[Any]:
        return [model_lists.update(tab.spec, door.store, None, local=local) for tab in tabs]

    return load
