"""MCP tools: every task with a tab of its own is a tool, served over streamable HTTP at ``/mcp``.

Built on the ``mcp`` SDK's low-level server directly (Gradio's built-in MCP server targets the 1.x
SDK and does not start with 2.x), from the task registry: a tool's name is the task's id, its
title and description the tab's, its parameters the task's own (inputs, ``model``, options) with
their types, ranges and choices as JSON Schema. Values are checked by the task itself, so a tool
refuses what the tab refuses, in the same words (an error result, as MCP tools report them).
Photos and recordings are given as base64 (:mod:`desktop.api.files`; the owner's programs may
also name a file on this computer). Owner controls (models, settings, sharing) are never tools:
only tasks are. Stateless (each POST stands alone, JSON answers), so a server for other people
keeps no session per caller. Runs on the server's event loop; tasks on worker threads.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from desktop import __version__
from desktop.api.files import Handed
from desktop.api.work import FAILED, Worker
from desktop.errors import UserError
from desktop.tasks import TASKS
from desktop.tasks.spec import Option, Result, TaskSpec

log = logging.getLogger(__name__)

#: Inputs that are files, given as base64 text.
MEDIA = {
    "audio": "recording (WAV, MP3, M4A, FLAC, OGG, WebM)",
    "image": "photo (PNG, JPEG, WebP, GIF, BMP, TIFF)",
}
TYPES = {int: "integer", float: "number", bool: "boolean", str: "string"}
INPUTS: dict[str, dict[str, Any]] = {
    "text": {"type": "string", "description": "The text."},
    "prompt": {"type": "string", "description": "The text to continue."},
    "message": {"type": "string", "description": "Your message to the assistant."},
    "history": {
        "type": "array",
        "description": "The conversation so far (optional): the 'history' of the last answer.",
        "items": {
            "type": "object",
            "properties": {"role": {"enum": ["user", "assistant"]}, "content": {"type": "string"}},
            "required": ["role", "content"],
        },
    },
    "input_type": {
        "type": "string",
        "enum": ["Text", "Image"],
        "default": "Text",
        "description": "What to read.",
    },
}


def tool_specs() -> list[TaskSpec]:
    """The tasks that are tools: those with a tab of their own (not file-only tasks)."""
    return [spec for spec in TASKS.values() if spec.ui != "files"]


def option_schema(option: Option) -> dict[str, Any]:
    """An option as JSON Schema: its type, default, range or choices, and what it does."""
    schema: dict[str, Any] = {"type": TYPES.get(option.type, "string"), "description": option.help}
    default = option.default
    schema["default"] = list(default) if isinstance(default, tuple) else default
    if option.choices:
        schema["enum"] = [value for _label, value in option.choices]
    if option.minimum is not None:
        schema["minimum"] = option.minimum
    if option.maximum is not None:
        schema["maximum"] = option.maximum
    return schema


def input_schema(spec: TaskSpec, visitors: bool) -> dict[str, Any]:
    """The tool's parameters: the task's inputs, ``model``, then its options (the API's order)."""
    properties: dict[str, Any] = {}
    for name in spec.inputs:
        if name in MEDIA:
            where = "" if visitors else ", or the path of a file on this computer"
            properties[name] = {
                "type": "string",
                "description": f"The {MEDIA[name]}: its bytes as base64{where}.",
            }
        else:
            properties[name] = INPUTS.get(name, {"type": "string"})
    models = ", ".join(ref.repo for ref in spec.models if "/" in ref.repo)
    properties["model"] = {
        "type": "string",
        "description": f"The model (optional): a Hub id or a label; by default {spec.default_model.repo}. "
        f"Also: {models}." + (" Only models installed on the computer you use." if visitors else ""),
    }
    for option in spec.options:
        properties[option.name] = option_schema(option)
    required = [spec.inputs[0]] if len(spec.inputs) == 1 or spec.inputs[0] == "message" else []
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def result_text(result: Result) -> str:
    """What the tool says: the result as the command line prints it, its notes after it."""
    return "\n".join([result.text, *(f"Note: {note}" for note in result.notes)])


class Tools:
    """The MCP server of one server's door (the owner's, or visitors' with their limits)."""

    def __init__(self, door: Any, worker: Worker) -> None:
        from mcp.server.lowlevel import Server

        self.door, self.worker = door, worker
        self.specs = {spec.id: spec for spec in tool_specs()}
        self.server = Server(
            "pipedesk",
            version=__version__,
            title="Pipedesk",
            instructions="Hugging Face models running on this computer, offline: one tool per task.",
            on_list_tools=self._list,
            on_call_tool=self._call,
        )

    def asgi(self) -> tuple[Any, Any]:
        """The ASGI app for ``/mcp`` and the lifespan it needs (a fresh session manager each time)."""
        from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
        from mcp.server.transport_security import TransportSecuritySettings

        manager = StreamableHTTPSessionManager(
            app=self.server,
            json_response=True,
            stateless=True,
            # The gate in front of the server checks Host and Origin (desktop.server.gate).
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        return StreamableHTTPASGIApp(manager), lambda _app: manager.run()

    async def _list(self, ctx: Any, params: Any) -> Any:
        from mcp_types import ListToolsResult, Tool, ToolAnnotations

        visitors = self.worker.visitors
        tools = [
            Tool(
                name=spec.id,
                title=spec.title,
                description=spec.description,
                input_schema=input_schema(spec, visitors),
                annotations=ToolAnnotations(
                    read_only_hint=True, destructive_hint=False, open_world_hint=False
                ),
            )
            for spec in self.specs.values()
        ]
        return ListToolsResult(tools=tools)

    async def _call(self, ctx: Any, params: Any) -> Any:
        from mcp_types import CallToolResult, TextContent

        handed = Handed(self.worker.visitors)
        try:
            spec = self.specs.get(params.name)
            if spec is None:
                raise UserError(f"There is no tool {params.name!r}: the tools are {', '.join(self.specs)}.")
            given = dict(params.arguments or {})
            unknown = sorted(set(given) - set(spec.parameters))
            if unknown:
                raise UserError(f"{spec.id} takes no {unknown[0]!r}: it takes {', '.join(spec.parameters)}.")
            for name in MEDIA.keys() & given.keys():
                given[name] = handed.decoded(given[name], name)
            args = [given.get(name) for name in spec.parameters]
            result = await self.worker.run(self.door.predict, spec, *args)
        except Exception as exc:  # a refusal in the app's words; anything else named by nothing here
            words = str(exc) if isinstance(exc, UserError) else FAILED
            if not isinstance(exc, UserError):
                log.error("MCP tool %s failed", params.name, exc_info=exc)
            return CallToolResult(content=[TextContent(text=words)], is_error=True)
        finally:
            handed.remove()
        data = json.loads(json.dumps(result.data, ensure_ascii=False, default=str))
        return CallToolResult(content=[TextContent(text=result_text(result))], structured_content=data)
