"""The Gradio Blocks: one tab per task from the registry, then the app's own panels.

Built on the main thread at start-up; event handlers run on Gradio's workers.
Every model call shares one queue (``concurrency_id="inference"``), so a GPU
sees one job at a time however many tabs or visitors ask.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from desktop import assets
from desktop.runtime import Runtime
from desktop.tasks import TASKS
from desktop.tasks.spec import TaskSpec
from desktop.ui.handlers import make_handler

INFERENCE_QUEUE = "inference"

@dataclass(frozen=True)
class AppContext:
    """What panels need to know about the app they are built into."""

    local: bool = True  # False for the LAN visitors' app: no model management, no settings
    status: Any = None  # the status-line gr.Markdown
    header: Any = None  # the header row above the tabs: ``with context.header:`` adds a banner there


def _panels() -> list[Callable[[Runtime, AppContext], None]]:
    """Tabs after the task tabs: each module's ``build(runtime, context)`` runs inside the Tabs.

    ``context.local`` is False in the app LAN visitors see: management tabs then build nothing.
    """
    from desktop.ui import batch_tab, models_tab, sharing_tab

    return [batch_tab.build, models_tab.build, sharing_tab.build]


def _model_dropdown(spec: TaskSpec) -> gr.Dropdown:
    return gr.Dropdown(
        choices=spec.model_choices(),
        value=spec.default_model.repo,
        label="Model",
        info="Pick one, or type a Hub id (owner/name), an imported name or a model folder path.",
        allow_custom_value=True,
        filterable=True,
    )


def model_choices(spec: TaskSpec, runtime: Runtime) -> list[tuple[str, str]]:
    """The task's own models, then the models the user imported or added for it."""
    from desktop import catalog

    root = runtime.store.root
    choices = spec.model_choices()
    known = {value for _, value in choices}
    for name, entry in catalog.imported(root).items():
        if entry.get("task") == spec.id and name not in known:
            choices.append((f"{name} (imported)", name))
    for repo, entry in catalog.custom(root).items():
        if entry.get("task") == spec.id and repo not in known:
            choices.append((repo, repo))
    return choices


def _task_tab(spec: TaskSpec, runtime: Runtime, status: gr.Markdown) -> gr.Dropdown:
    with gr.Tab(spec.title, id=spec.id):
        gr.Markdown(spec.description, elem_classes="task-description")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                inputs = [component.render() for component in spec.inputs()]
                model = _model_dropdown(spec)
                options = []
                if spec.options:
                    with gr.Accordion("Options", open=False):
                        options = [option.component().render() for option in spec.options]
                run = gr.Button("Run", variant="primary", elem_id=f"run-{spec.id}")
            with gr.Column(scale=1):
                outputs = [component.render() for component in spec.outputs()]
        if spec.examples:
            gr.Examples(
                examples=[list(example) for example in spec.examples],
                inputs=inputs[: len(spec.examples[0])],
                label="Examples",
            )
        if spec.wire:
            spec.wire(inputs, model)
        run.click(
            make_handler(spec, runtime),
            inputs=[*inputs, model, *options],
            outputs=outputs,
            api_name=spec.id,
            concurrency_id=INFERENCE_QUEUE,
            concurrency_limit=1,
        ).then(lambda: runtime.status.line(), outputs=status, api_visibility="private", queue=False)
    return model


def build_app(runtime: Runtime, local: bool = True) -> gr.Blocks:
    """The whole interface for ``runtime``; ``local=False`` builds the LAN visitors' version."""
    if local:  # sharing builds the visitors' version itself (on its own thread) when switched on
        from desktop import sharing

        sharing.controller(runtime, visitors_app=lambda guest: build_app(guest, local=False))
    with gr.Blocks(title="Pipedesk", analytics_enabled=False) as blocks:
        with gr.Row(elem_id="header") as header:
            gr.Markdown("# Pipedesk\nHugging Face models on your own computer — offline once downloaded.")
        status = gr.Markdown(runtime.status.line(), elem_id="status-line")
        with gr.Tabs():
            dropdowns = {spec.id: _task_tab(spec, runtime, status) for spec in TASKS.values()}
            context = AppContext(local=local, status=status, header=header)
            for build in _panels():
                build(runtime, context)
        blocks.load(lambda: runtime.status.line(), outputs=status, api_visibility="private", queue=False)
        # Imported and added models appear in each task's list (read when the page opens).
        blocks.load(
            lambda: [gr.update(choices=model_choices(TASKS[task], runtime)) for task in dropdowns],
            outputs=list(dropdowns.values()),
            api_visibility="private",
            queue=False,
        )
    return blocks


def launch_options() -> dict[str, Any]:
    """App-level look passed to ``launch()`` (gradio 6 moved these there). No Hub themes."""
    return {
        "theme": gr.themes.Soft(),
        "css": assets.read_text("app.css"),
        "favicon_path": str(assets.path("icon.png")),
    }
