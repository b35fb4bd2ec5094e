"""The Local API: other programs use Pipedesk's tasks through OpenAI's API shape and MCP tools.

Served by the same server as the app (the window's, ``pipedesk serve``, the LAN one), on the paths
``/v1/...`` and ``/mcp``, behind the same gate (:mod:`desktop.server.api_door`: a bearer key, Host
and Origin checks, body limits). :class:`LocalApi` is what a Blocks carries to be served with it
(``blocks.pipedesk_api``, set by :func:`desktop.ui.app.build_app`); every request runs on that
Blocks' door, so the same engine, scheduler and limits apply as in the tabs: the owner's
door first; visitors' (the GUEST policy) with installed models only, visitors' file limits and
their lane. Its modules:

* :mod:`~desktop.api.routes`: the Starlette app, ``/v1/models`` and ``/v1/embeddings``;
* :mod:`~desktop.api.completions`: ``/v1/chat/completions`` and ``/v1/completions``;
* :mod:`~desktop.api.audio`: ``/v1/audio/transcriptions``;
* :mod:`~desktop.api.tools`: the MCP tools at ``/mcp``;
* :mod:`~desktop.api.files`, :mod:`~desktop.api.work`, :mod:`~desktop.api.keys`: files handed in,
  what the endpoints share, the owner's switch and key.
"""

from __future__ import annotations

from typing import Any

from desktop.server.api_door import ApiAccess

#: Who may use a visitors' API unless its server says otherwise: nobody.
CLOSED = ApiAccess(enabled=lambda: False, off="This server has no API.")


class LocalApi:
    """The API of one door, as :class:`desktop.server.api_door.ApiMount` describes it."""

    def __init__(self, door: Any) -> None:
        from desktop.api import keys

        self.door = door
        self.visitors = door.visitor
        self.access = CLOSED if self.visitors else keys.owner_access()

    def preferred_port(self, host: str) -> int | None:
        from desktop.api import keys

        return None if self.visitors else keys.preferred_port(host)

    def serve(self) -> tuple[Any, Any]:
        from desktop.api.routes import build
        from desktop.api.tools import Tools
        from desktop.api.work import Worker

        worker = Worker(self.visitors)
        mcp, lifespan = Tools(self.door, worker).asgi()
        return build(self.door, worker, mcp), lifespan
