"""The Settings tab (this computer only): theme, device, Fast CPU mode, Offline mode, where the models
folder is and whether the Local API is on.

Every control says when it takes effect (at once, the next run, the next start) and is saved in
``desktop.settings`` (one file, written atomically) as soon as it changes. The LAN visitors' app
(``context.local`` False) builds nothing here: visitors neither see nor change the owner's settings,
and no handler of this tab exists in their app. The models folder is changed in Models → Storage
(moving models takes a while and shows progress there) and the Local API is switched in the Sharing
tab: this tab shows both and links there, so each has one switch. Built on the main thread inside
``build_app``; handlers run on Gradio's workers and are quick (they read and write settings; the
device list imports torch once, when the tab is first opened).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from desktop import settings
from desktop.api import keys
from desktop.models import offline_mode

THEMES = [("System", "system"), ("Light", "light"), ("Dark", "dark")]
AUTO_ONLY = [("Auto (a GPU when there is one)", "auto"), ("CPU", "cpu")]

#: Gradio draws its dark theme while ``body`` has the class ``dark``; "system" follows the computer.
APPLY_THEME_JS = """
(mode) => {
  const dark = mode === "dark" ||
    (mode !== "light" && window.matchMedia("(prefers-color-scheme: dark)").matches);
  document.body.classList.toggle("dark", dark);
  return mode;
}
"""


def device_words(door: Any, saved: str, found: str) -> str:
    """What the device setting means now: what was found, what runs the models, what the next start uses."""
    chosen = door.chosen_device
    now = f"**{chosen.upper()}**" if chosen else "chosen when the first model runs"
    words = f"{found}\n\nModels run on: {now}."
    if chosen and saved not in ("auto", chosen):
        words += f" The next start uses **{saved.upper()}** (a device change needs a restart)."
    return words


def _offline_words() -> str:
    if offline_mode() and not settings.load().offline:
        return "Offline mode is on because `HF_HUB_OFFLINE` is set where Pipedesk was started."
    return ""


def _api_words() -> str:
    state = "**on**" if keys.is_on() else "**off**"
    return f"The Local API (other programs using Pipedesk's models) is {state}: it is switched in Sharing."


#: When models leave memory by themselves (minutes without use; 0: never).
UNLOAD_CHOICES = [
    ("After 5 minutes", 5),
    ("After 15 minutes", 15),
    ("After 30 minutes", 30),
    ("After an hour", 60),
    ("Never", 0),
]


def _minutes(minutes: int) -> str:
    return "an hour" if minutes == 60 else f"{minutes} minutes"


def build(door: Any, context: Any) -> None:
    """Add the Settings tab (the app on this computer only; nothing at all for visitors)."""
    if not getattr(context, "local", True):
        return
    with gr.Tab("Settings", id="settings") as tab:
        gr.Markdown("Saved on this computer as soon as you change them. Each says when it takes effect.")
        theme = gr.Radio(
            THEMES, value="system", label="Theme", info="Applies at once.", elem_id="settings-theme"
        )
        with gr.Group():
            device = gr.Dropdown(
                AUTO_ONLY,
                value="auto",
                label="Device",
                info="What runs the models. A change takes effect the next time Pipedesk starts.",
                elem_id="settings-device",
            )
            device_info = gr.Markdown(elem_id="settings-device-info")
        fast = gr.Checkbox(
            label="Fast CPU mode (int8 weights where this processor runs them faster)",
            info="What the Batch tab's Fast CPU box starts with; applies to the next run.",
            elem_id="settings-fast-cpu",
        )
        unload = gr.Dropdown(
            UNLOAD_CHOICES,
            value=30,
            label="Free memory when idle",
            info="Models leave memory after this long unused (their memory goes back to the system); "
            "each loads again when a task needs it. Applies at once.",
            elem_id="settings-unload",
        )
        offline = gr.Checkbox(
            label="Offline mode: never use the network",
            info="Applies at once: models that are not on this computer are not downloaded.",
            elem_id="settings-offline",
        )
        offline_info = gr.Markdown(elem_id="settings-offline-info")
        folder = gr.Textbox(
            label="Models folder",
            interactive=False,
            info="Changed in Models → Storage, where the models can move with it.",
            elem_id="settings-models-dir",
        )
        api = gr.Markdown(elem_id="settings-api")
        to_sharing = gr.Button("Open Sharing", size="sm", elem_id="settings-open-sharing")
        message = gr.Markdown(elem_id="settings-message")

    private: dict[str, Any] = {"api_visibility": "private", "queue": False}

    def shown() -> tuple[Any, ...]:
        saved = settings.load()
        return (
            saved.theme,
            gr.update(value=saved.fast_cpu),
            gr.update(value=offline_mode(), interactive=not (offline_mode() and not saved.offline)),
            _offline_words(),
            str(door.store.root),
            _api_words(),
            saved.unload_after_min,
        )

    def devices() -> tuple[Any, ...]:
        choices, found = door.devices()
        saved = settings.load().device or "auto"
        if saved not in [value for _label, value in choices]:
            choices.append((f"{saved} (not found on this computer: Auto is used)", saved))
        return gr.update(choices=choices, value=saved), device_words(door, saved, found)

    def set_device(value: str) -> tuple[Any, ...]:
        settings.update(device=value or "auto")
        return devices()[1], "Saved. The device changes the next time Pipedesk starts."

    def set_offline(value: bool) -> tuple[Any, ...]:
        settings.update(offline=bool(value))
        words = (
            "Offline mode is on: Pipedesk uses only the models on this computer and never the network."
            if value
            else "Offline mode is off: models missing from this computer are downloaded when first used."
        )
        return _offline_words(), words

    def set_fast(value: bool) -> str:
        settings.update(fast_cpu=bool(value))
        return f"Fast CPU mode is {'on' if value else 'off'} for the next Batch run."

    def set_unload(value: Any) -> str:
        minutes = settings.update(unload_after_min=int(value or 0)).unload_after_min
        return (
            f"Models now leave memory after {_minutes(minutes)} unused."
            if minutes
            else "Models now stay in memory until Pipedesk quits (or Models → Free memory)."
        )

    values = [theme, fast, offline, offline_info, folder, api, unload]
    tab.select(shown, outputs=values, **private).then(
        devices, outputs=[device, device_info], api_visibility="private"
    )
    theme.input(lambda mode: settings.update(theme=mode) and None, theme, None, js=APPLY_THEME_JS, **private)
    device.input(set_device, device, [device_info, message], api_visibility="private")
    fast.input(set_fast, fast, message, **private)
    unload.input(set_unload, unload, message, **private)
    refresh = getattr(context, "after_models_change", lambda event: event)  # the Model lists' entries
    refresh(offline.input(set_offline, offline, [offline_info, message], **private))
    if getattr(context, "strip", None) is not None:
        to_sharing.click(lambda: gr.Tabs(selected="sharing"), outputs=context.strip, **private)
    root = gr.context.Context.root_block
    if root is not None:  # the saved theme, once the page has loaded
        root.load(lambda: settings.load().theme, outputs=theme, **private).then(
            None, theme, None, js=APPLY_THEME_JS, **private
        )
