"""The Sharing tab (this computer only: LAN sharing, then the Local API) and the "Shared on your
network" banner.

Built on the main thread inside ``build_app``; its handlers run on Gradio's
workers and call :mod:`desktop.share.controller`. The LAN visitors' app
(``context.local`` False) gets no tab at all, only a banner saying whose
Pipedesk it is, so there is nothing there to switch sharing or read the password.
"""

from __future__ import annotations

import html
import logging
import socket
import time
from typing import Any

import gradio as gr

from desktop.errors import UserError
from desktop.share import controller as sharing
from desktop.ui import api_panel

log = logging.getLogger(__name__)

REFRESH_S = 5

OFF_TEXT = "**Off.** Pipedesk listens only on this computer (127.0.0.1): other devices cannot connect."
ON_TEXT = (
    "**On.** Other devices on your network can open one of these addresses and sign in with "
    "the password below. They can run the tasks with the models installed here; "
    "they cannot download or manage models, change settings or switch sharing."
)
NO_ADDRESS = "**On**, but this computer has no network address right now: connect it to a network."


def banner_html(share: sharing.Sharing) -> str:
    """The banner shown above the tabs while shared."""
    port = share.port or ""
    return (
        f"<strong>Shared on your network</strong> (port {port}): devices that know the password "
        "can use this Pipedesk. Switch it off in the Sharing tab."
    )


def visitors_html(share: sharing.Sharing) -> str:
    """The visitors list as HTML. Everything in it that a visitor sent (the browser's name) or
    could shape is escaped: shown as text, never as a link, an image or markup."""
    if not share.active:
        return ""
    visitors = share.gate.visitors()
    if not visitors:
        return "<p>No visitors yet.</p>"
    rows = []
    for v in visitors:
        state = "signed in" if v.signed_in else "not signed in"
        if v.failures:
            state += f", {v.failures} wrong password{'s' if v.failures > 1 else ''}"
        seen = time.strftime("%H:%M:%S", time.localtime(v.last_seen))
        cells = (v.address, state, seen, v.agent[:60] or "unknown")
        rows.append("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells) + "</tr>")
    head = "".join(f"<th>{name}</th>" for name in ("Address", "State", "Last seen", "Browser"))
    return (
        "<p><strong>Visitors this session</strong></p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _snapshot(share: sharing.Sharing, problem: str = "") -> tuple[Any, ...]:
    """Every output, as the controller stands now (order matches ``outputs`` in ``build``);
    ``problem`` (what just went wrong, in words) is shown above the state."""
    urls = share.urls()
    state = (ON_TEXT if urls else NO_ADDRESS) if share.active else OFF_TEXT
    if problem:
        state = f"⚠️ {html.escape(problem)}\n\n{state}"
    first = urls[0] if urls else None
    return (
        gr.update(value=banner_html(share), visible=share.active),
        gr.update(value=share.active),
        state,
        gr.update(value="\n".join(urls), visible=share.active),
        gr.update(choices=urls, value=first, visible=share.active and bool(urls)),
        gr.update(value=sharing.qr_image(first) if first else None, visible=bool(first)),
        share.password,
        visitors_html(share),
        gr.Timer(active=share.active),
    )


def switch_problem(on: bool, exc: BaseException) -> str:
    """What the Sharing tab says when switching failed: the error's own words for a UserError."""
    if isinstance(exc, UserError):
        return str(exc)
    words = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    action = "start" if on else "stop"
    return (
        f"Sharing could not {action}: {words}. Try again, or restart Pipedesk; details are in the log file."
    )


def build(door: Any, context: Any) -> None:
    """Add the Sharing tab (local app) or the visitors' banner (LAN app)."""
    if not context.local:
        if context.header is not None:
            with context.header:
                gr.HTML(
                    f"<strong>Shared on your network</strong> by {html.escape(socket.gethostname())}. "
                    "Models and settings are managed on that computer.",
                    elem_id="lan-banner",
                )
        return

    share = sharing.controller(door)
    banner = None
    if context.header is not None:
        with context.header:
            banner = gr.HTML(banner_html(share), visible=share.active, elem_id="lan-banner")

    with gr.Tab("Sharing", id="sharing"):
        if banner is None:
            banner = gr.HTML(banner_html(share), visible=share.active, elem_id="lan-banner")
        gr.Markdown(
            "Let phones, tablets and other computers on your local network use Pipedesk. "
            "Off by default; while on, visitors need the password."
        )
        toggle = gr.Checkbox(label="Share on my local network", value=share.active, elem_id="lan-toggle")
        state = gr.Markdown(OFF_TEXT, elem_id="lan-state")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                addresses = gr.Textbox(
                    label="Addresses to open on the other device",
                    lines=2,
                    interactive=False,
                    buttons=["copy"],
                    elem_id="lan-addresses",
                )
                password = gr.Textbox(
                    label="Password (give it to your visitors)",
                    interactive=False,
                    buttons=["copy"],
                    elem_id="lan-password",
                )
                with gr.Row():
                    regenerate = gr.Button("New password", size="sm")
                with gr.Accordion("Choose your own password", open=False):
                    own = gr.Textbox(
                        label="New password", placeholder=f"at least {sharing.MIN_PASSWORD} characters"
                    )
                    use_own = gr.Button("Use this password", size="sm")
                gr.Markdown("Changing the password signs every visitor out.", elem_classes="task-description")
            with gr.Column(scale=2):
                qr_for = gr.Dropdown(label="QR code for", choices=[], interactive=True)
                qr = gr.Image(
                    label="Scan with a phone", type="pil", interactive=False, height=260, elem_id="lan-qr"
                )
        visitors = gr.HTML(elem_id="lan-visitors")
        timer = gr.Timer(REFRESH_S, active=False)
        api_panel.build()  # other programs: the Local API, in the same tab (who else may use Pipedesk)

    outputs = [banner, toggle, state, addresses, qr_for, qr, password, visitors, timer]

    def switch(on: bool) -> tuple[Any, ...]:
        try:
            share.enable() if on else share.disable()
        except Exception as exc:
            log.exception("Switching LAN sharing %s failed", "on" if on else "off")
            # The box then shows the real state again, and the words stay next to it.
            return _snapshot(share, switch_problem(on, exc))
        return _snapshot(share)

    def change_password(typed: str | None = None) -> tuple[Any, ...]:
        """Every output, then the "New password" box: emptied once the password is used; a refusal's
        words stay above the state (no pop-up) and what was typed stays to be corrected."""
        try:
            share.set_password(typed)
        except UserError as exc:
            return (*_snapshot(share, str(exc)), gr.update())
        return (*_snapshot(share), "")

    private = {"api_visibility": "private", "queue": False}
    # Queued (unlike the quick handlers below): starting a server takes a few seconds, and the
    # page shows a queued handler's progress and errors.
    toggle.input(
        switch, inputs=toggle, outputs=outputs, api_visibility="private", concurrency_id="sharing-switch"
    )
    regenerate.click(lambda: change_password(None), outputs=[*outputs, own], **private)
    use_own.click(change_password, inputs=own, outputs=[*outputs, own], **private)
    own.submit(change_password, inputs=own, outputs=[*outputs, own], **private)
    qr_for.input(lambda url: sharing.qr_image(url) if url else None, inputs=qr_for, outputs=qr, **private)
    timer.tick(
        lambda: (gr.update(visible=share.active), visitors_html(share)),
        outputs=[banner, visitors],
        **private,
    )
    root = gr.context.Context.root_block
    if root is not None:
        root.load(lambda: _snapshot(share), outputs=outputs, **private)
