"""The Gradio Blocks: one tab per task from the registry, then the app's own panels.

Built on the main thread at start-up; event handlers run on Gradio's workers.
Task events share one Gradio queue (``concurrency_id="inference"``) that hands several requests
at once to the engine, which runs one batch at a time on the device and merges the requests that
wait together (``desktop.engine.batcher``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from desktop import assets
from desktop.api import LocalApi
from desktop.engine.client import Door
from desktop.server import API, LOOK
from desktop.tasks import TASKS
from desktop.ui import uploads
from desktop.ui.chat_tab import build_chat_tab
from desktop.ui.handlers import status_text
from desktop.ui.task_tab import PRIVATE, TaskTab, build_api_only, build_task_tab, preselect, refresh_lists

#: How each shape of task page is built (``TaskSpec.ui``); "files" tasks have no tab of their own.
TAB_BUILDERS = {"form": build_task_tab, "chat": build_chat_tab}


@dataclass(frozen=True)
class AppContext:
    """What panels need to know about the app they are built into."""

    local: bool = True  # False for the LAN visitors' app: no model management, no settings
    status: Any = None  # the status-line gr.Markdown
    header: Any = None  # the header row above the tabs: ``with context.header:`` adds a banner there
    tabs: tuple[TaskTab, ...] = ()  # the task tabs, in order
    door: Any = None
    strip: Any = None  # the gr.Tabs of the whole app: ``gr.Tabs(selected=id)`` opens a tab

    def after_models_change(self, event: Any) -> Any:
        """Chain onto ``event`` (a download, an import, a delete...) a refresh of every task's Model
        list, keeping what each list shows selected when it is still there."""
        if not self.tabs:
            return event
        door = self.door
        lists = [tab.model for tab in self.tabs]
        return event.then(
            refresh_lists(list(self.tabs), door, self.local), inputs=lists, outputs=lists, **PRIVATE
        )


def _panels() -> list[Callable[[Door, AppContext], None]]:
    """Tabs after the task tabs: each module's ``build(door, context)`` runs inside the Tabs.

    ``context.local`` is False in the app LAN visitors see: management tabs then build nothing.
    """
    from desktop.ui import batch_tab, models_tab, settings_tab, sharing_tab

    return [batch_tab.build, models_tab.build, sharing_tab.build, settings_tab.build]


def build_app(door: Door, local: bool = True) -> gr.Blocks:
    """The whole interface for ``door``; ``local=False`` builds the LAN visitors' version."""
    if local:  # sharing builds the visitors' version itself (on its own thread) when switched on
        from desktop.share import controller as sharing

        sharing.controller(door, visitors_app=lambda guest: build_app(guest, local=False))
    with gr.Blocks(title="Pipedesk", analytics_enabled=False) as blocks:
        with gr.Row(elem_id="header") as header:
            gr.Markdown("# Pipedesk\nHugging Face models on your own computer — offline once downloaded.")
        status = gr.Markdown(status_text(door), elem_id="status-line")
        # Tabs that do not fit a narrow window wrap onto a second row: all in view, none behind "...".
        with gr.Tabs(elem_id="tabs", overflow_behavior="wrap") as strip:
            tabs = tuple(
                TAB_BUILDERS[spec.ui](spec, door, status, local)
                for spec in TASKS.values()
                if spec.ui in TAB_BUILDERS
            )
            context = AppContext(local=local, status=status, header=header, tabs=tabs, door=door, strip=strip)
            for build in _panels():
                build(door, context)
        for spec in TASKS.values():
            if spec.ui == "files":  # no tab of its own: the Batch tab runs it; its API is here
                build_api_only(spec, door)
        blocks.load(lambda: status_text(door), outputs=status, **PRIVATE, queue=False)
        # Every Model list with its states, and the model last used (or a ready one) picked.
        blocks.load(
            preselect(list(tabs), door, local), outputs=[tab.model for tab in tabs], **PRIVATE, queue=False
        ).then(None, js=READY_JS, **PRIVATE, queue=False)
    setattr(blocks, LOOK, launch_options())  # gradio 6 takes these at launch(): server.start reads them
    setattr(blocks, API, LocalApi(door))  # /v1 and /mcp on the same server, for this door
    return blocks


#: Once the page has its first values: the window lifts its splash then (desktop/shell/splash.py).
READY_JS = f"() => {{ document.dispatchEvent(new Event('{assets.PAGE_READY_EVENT}')); }}"

#: Ctrl+Enter (Cmd+Enter on macOS) in a tab's text box clicks that tab's Run button.
SHORTCUTS_JS = """
() => {
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
    const panel = event.target.closest && event.target.closest(".tabitem");
    if (!panel) return;
    const run = [...panel.querySelectorAll("button[id^='run-'], button#batch-run")]
      .find((button) => button.offsetParent !== null && !button.disabled);
    if (run) { event.preventDefault(); run.click(); }
  }, true);
}
"""


def launch_options() -> dict[str, Any]:
    """App-level look passed to ``launch()`` (gradio 6 moved these there). No Hub themes."""
    return {
        "theme": gr.themes.Soft(),
        "css": assets.read_text("app.css"),
        "favicon_path": str(assets.path("icon.png")),
        "js": f"() => {{ ({SHORTCUTS_JS})(); ({uploads.GUARD_JS})(); }}",
        # The API page helps scripts; Gradio's Settings panel speaks to developers (PWA, recording).
        "footer_links": ["api"],
    }
