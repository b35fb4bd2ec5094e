"""The Local API section of the Sharing tab (this computer only): the switch, the address, the key.

Off by default, like LM Studio's server switch. While on, programs on this computer (and, while LAN
sharing is on, on other devices, with the sharing password) use the tasks through OpenAI's API
shape at ``/v1`` and MCP tools at ``/mcp`` (:mod:`desktop.api`). The section shows the base URL (the
address this page was opened at), the key with a copy button, a "New key" button, and snippets
for the ``openai`` client and an MCP client's configuration. Built on the main thread inside the
Sharing tab; its handlers run on Gradio's workers (quick: they only read and write settings).
"""

from __future__ import annotations

import json
from typing import Any

import gradio as gr

from desktop.api import keys
from desktop.server.gate import split_host
from desktop.tasks.chat import QWEN_05B

OFF_TEXT = "**Not on.** Other programs cannot use Pipedesk; its own window works as always."
ON_TEXT = (
    "**On.** Programs on this computer that send the key can use the tasks here: OpenAI's API shape at "
    "the address below, every task as an MCP tool at `/mcp`. While LAN sharing is on, programs on other "
    "devices can too, with the sharing password as their key."
)


def base_url(request: gr.Request | None) -> tuple[str, int | None]:
    """The address this page was opened at (what programs on this computer use) and its port."""
    host = (getattr(request, "headers", None) or {}).get("host", "") or "127.0.0.1"
    _name, port = split_host(host)
    return f"http://127.0.0.1:{port}" if port else "http://127.0.0.1", port


def openai_snippet(url: str, key: str) -> str:
    """Python with the official ``openai`` client, ready to paste."""
    return (
        "from openai import OpenAI\n\n"
        f'client = OpenAI(base_url="{url}/v1", api_key="{key}")\n'
        "answer = client.chat.completions.create(\n"
        f'    model="{QWEN_05B.repo}",\n'
        '    messages=[{"role": "user", "content": "Hello!"}],\n'
        ")\n"
        "print(answer.choices[0].message.content)\n"
    )


def mcp_snippet(url: str, key: str) -> str:
    """An MCP client's server entry (Claude Code, Cursor and others read this shape)."""
    entry = {"type": "http", "url": f"{url}/mcp", "headers": {"Authorization": f"Bearer {key}"}}
    return json.dumps({"mcpServers": {"pipedesk": entry}}, indent=2)


def _shown(on: bool, url: str, key: str) -> tuple[Any, ...]:
    """Every output, as the settings stand (order matches ``outputs`` in :func:`build`)."""
    return (
        gr.update(value=on),
        ON_TEXT if on else OFF_TEXT,
        gr.update(value=f"{url}/v1", visible=on),
        gr.update(value=key, visible=on),
        gr.update(visible=on),
        gr.update(value=openai_snippet(url, key), visible=on),
        gr.update(value=mcp_snippet(url, key), visible=on),
    )


def build() -> None:
    """Add the section (inside the Sharing tab of the app on this computer)."""
    gr.Markdown("### Other programs: the Local API")
    gr.Markdown(
        "Editors, note apps, agents and scripts written for the `openai` client can use Pipedesk's "
        "models, offline, through an OpenAI-compatible API and MCP tools. Off by default; every "
        "program needs the key.",
        elem_classes="task-description",
    )
    toggle = gr.Checkbox(
        label="Let other programs use Pipedesk (Local API)", value=False, elem_id="api-toggle"
    )
    state = gr.Markdown(OFF_TEXT, elem_id="api-state")
    url = gr.Textbox(label="Base URL", interactive=False, buttons=["copy"], visible=False, elem_id="api-url")
    key = gr.Textbox(label="API key", interactive=False, buttons=["copy"], visible=False, elem_id="api-key")
    with gr.Row(visible=False) as key_row:
        renew = gr.Button("New key", size="sm", elem_id="api-new-key")
    python = gr.Code(label="Python (openai)", language="python", interactive=False, visible=False)
    mcp = gr.Code(label="MCP client configuration", language="json", interactive=False, visible=False)
    outputs = [toggle, state, url, key, key_row, python, mcp]

    def current(request: gr.Request) -> tuple[Any, ...]:
        address, _port = base_url(request)
        return _shown(keys.is_on(), address, keys.current_key())

    def switch(on: bool, request: gr.Request) -> tuple[Any, ...]:
        address, port = base_url(request)
        if on:
            keys.turn_on(port)
        else:
            keys.turn_off()
        return current(request)

    def new_key(request: gr.Request) -> tuple[Any, ...]:
        keys.renew()
        return current(request)

    private = {"api_visibility": "private", "queue": False}
    toggle.input(switch, inputs=toggle, outputs=outputs, **private)
    renew.click(new_key, outputs=outputs, **private)
    root = gr.context.Context.root_block
    if root is not None:
        root.load(current, outputs=outputs, **private)
