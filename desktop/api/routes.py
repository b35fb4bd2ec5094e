"""The Local API's Starlette app: its routes, ``/v1/models`` and ``/v1/embeddings``.

Unknown paths and methods are answered in OpenAI's error shape too, naming what there is. Runs on
the server's event loop (built once per server start, on the thread that starts it).
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from desktop.api.audio import Transcriptions
from desktop.api.completions import Completions, model_name
from desktop.api.work import ApiError, Worker, endpoint, error_response, json_response, read_json
from desktop.errors import UserError
from desktop.tasks import TASKS

PATHS = (
    "GET /v1/models",
    "POST /v1/chat/completions",
    "POST /v1/completions",
    "POST /v1/embeddings",
    "POST /v1/audio/transcriptions",
    "POST /mcp",
)
#: The OpenAI endpoints a model of each task answers on (every task with a tab is also an MCP tool).
ENDPOINTS = {
    "chat": ("/v1/chat/completions", "/v1/completions"),
    "generate": ("/v1/completions",),
    "embed": ("/v1/embeddings",),
    "transcribe": ("/v1/audio/transcriptions",),
}


def installed(door: Any) -> list[dict[str, Any]]:
    """The models installed here (for visitors too: they can use nothing else), each with its tasks."""
    from desktop.engine import inventory
    from desktop.models import READY

    rows = [row for row in inventory.entries(door.store) if row.status == READY]
    return [
        {
            "id": row.id,
            "object": "model",
            "created": int(row.last_used or 0),
            "owned_by": "pipedesk",
            "label": row.label,
            "task": row.tasks[0] if row.tasks else "",
            "tasks": list(row.tasks),
            "endpoints": sorted({path for task in row.tasks for path in ENDPOINTS.get(task, ())}),
        }
        for row in rows
    ]


def vector(values: list[float], shape: str) -> Any:
    """An embedding as OpenAI sends it: numbers, or little-endian float32 bytes in base64."""
    if shape == "float":
        return values
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")


class Models:
    """``/v1/models`` and ``/v1/embeddings`` for one server's door."""

    def __init__(self, door: Any, worker: Worker) -> None:
        self.door, self.worker = door, worker

    @endpoint
    async def listed(self, request: Any) -> Any:
        return json_response({"object": "list", "data": await self.worker.run(installed, self.door)})

    @endpoint
    async def one(self, request: Any) -> Any:
        name = request.path_params["name"]
        for row in await self.worker.run(installed, self.door):
            if name in (row["id"], row["label"]):
                return json_response(row)
        raise ApiError(
            404, f"No model called {name!r} is installed here (GET /v1/models lists them).", "model_not_found"
        )

    @endpoint
    async def embeddings(self, request: Any) -> Any:
        body = await read_json(request)
        shape = body.get("encoding_format") or "float"
        if shape not in ("float", "base64"):
            raise UserError(f"encoding_format must be float or base64, not {shape!r}.")
        texts = body.get("input")
        if isinstance(texts, list) and any(not isinstance(text, str) for text in texts):
            raise UserError("input must be a text or a list of texts: Pipedesk does not take token ids.")
        spec = TASKS["embed"]
        result = await self.worker.run(self.door.predict, spec, texts, body.get("model"))
        size = result.data["dimensions"]
        if body.get("dimensions") not in (None, size):
            raise UserError(
                f"{result.model} gives vectors of {size} numbers: dimensions must be {size} or left out."
            )
        data = [
            {"object": "embedding", "index": number, "embedding": vector(values, shape)}
            for number, values in enumerate(result.data["embeddings"])
        ]
        tokens = result.data["tokens"]
        return json_response(
            {
                "object": "list",
                "data": data,
                "model": model_name(spec, body.get("model")),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )


def build(door: Any, worker: Worker, mcp: Any) -> Any:
    """The Starlette app of the API paths for ``door`` (``mcp``: the MCP tools' ASGI app)."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    models, chat = Models(door, worker), Completions(door, worker)
    audio = Transcriptions(door, worker)
    routes = [
        Route("/v1/models", models.listed, methods=["GET"]),
        Route("/v1/models/{name:path}", models.one, methods=["GET"]),
        Route("/v1/chat/completions", chat.chat, methods=["POST"]),
        Route("/v1/completions", chat.text, methods=["POST"]),
        Route("/v1/embeddings", models.embeddings, methods=["POST"]),
        Route("/v1/audio/transcriptions", audio.transcriptions, methods=["POST"]),
        Route("/mcp", mcp),
    ]

    async def not_found(request: Any, exc: Exception) -> Any:
        return error_response(
            ApiError(404, f"Pipedesk has no {request.url.path}: it serves {', '.join(PATHS)}.")
        )

    async def not_allowed(request: Any, exc: Exception) -> Any:
        return error_response(
            ApiError(405, f"{request.url.path} does not take {request.method}: it serves {', '.join(PATHS)}.")
        )

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})
