"""What every Local API endpoint shares: JSON in and out, errors in OpenAI's shape with the app's own
sentences, the engine's blocking calls on worker threads within a limit, and server-sent events.

The engine (``Door.predict``/``stream``, :mod:`desktop.engine.client`) blocks; endpoints run on the server's event loop, so
each call goes to a worker thread, at most :data:`CONCURRENT` at once per server (as many as the
tabs hand the engine at once), the rest waiting; on a server for other people, a request that
finds :data:`VISITORS_WAITING` others waiting is told the app is busy (as Gradio's queue does).
A stream runs the engine's generator on a thread of its own and hands each result to the event
loop; when the client goes away, generation stops at its next token. Runs on the event loop
(and the threads it starts).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from desktop.errors import ModelError, UserError
from desktop.server.api_door import error_body
from desktop.server.bodies import BodyRefused

log = logging.getLogger(__name__)

#: Engine calls one server's API runs at once (the tabs' own limit: one CPU batch on 2 cores).
CONCURRENT = 32
#: Visitors' API requests that may wait for a thread before the next is told the app is busy.
VISITORS_WAITING = 64
BUSY = "Pipedesk is busy with other requests right now: try again in a moment."
NOT_JSON = "The request body is not JSON: send a JSON object (Content-Type: application/json)."
FAILED = "Something went wrong on the computer running Pipedesk; the details are in its log file."
_END = object()


class ApiError(Exception):
    """A refusal with its HTTP status (and OpenAI error code), in words."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def json_response(data: Any, status: int = 200) -> Any:
    """``data`` as a JSON response."""
    from starlette.responses import Response

    return Response(json.dumps(data, ensure_ascii=False), status, media_type="application/json")


def error_response(exc: BaseException) -> Any:
    """The OpenAI-shaped answer to ``exc``: the app's sentence for a refusal; for anything else, a
    sentence that names nothing on this computer (the details go to the log)."""
    from starlette.responses import Response

    if isinstance(exc, ApiError):
        status, message, code = exc.status, str(exc), exc.code
    elif isinstance(exc, BodyRefused):  # the gate cut the body off (size, quota): its words, 413
        status, message, code = 413, str(exc), None
    elif isinstance(exc, UserError):  # the request's fault (400), or the answer's (a status of its own)
        status, message = getattr(exc, "http_status", 400), str(exc)
        code = "model_error" if isinstance(exc, ModelError) else None
    else:
        log.error("Local API request failed", exc_info=exc)
        status, message, code = 500, FAILED, None
    return Response(error_body(status, message, code), status, media_type="application/json")


async def read_json(request: Any) -> dict[str, Any]:
    """The request's JSON object (its size was checked by the gate), or ApiError."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise ApiError(400, NOT_JSON) from None
    if not isinstance(body, dict):
        raise ApiError(400, NOT_JSON)
    return body


def endpoint(handler: Callable[..., Any]) -> Callable[..., Any]:
    """An endpoint whose refusals and failures are answered in OpenAI's error shape."""

    @functools.wraps(handler)
    async def wrapped(*args: Any) -> Any:  # (request) or, for a method, (self, request)
        try:
            return await handler(*args)
        except Exception as exc:
            return error_response(exc)

    return wrapped


class Worker:
    """Runs the engine's blocking calls for one server's API (see the module docstring)."""

    def __init__(self, visitors: bool) -> None:
        import anyio

        self.visitors = visitors
        self.limiter = anyio.CapacityLimiter(CONCURRENT)

    def _room(self) -> None:
        if self.visitors and self.limiter.statistics().tasks_waiting >= VISITORS_WAITING:
            raise ApiError(503, BUSY)

    async def run(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``call(*args, **kwargs)`` on a worker thread; its result or its exception."""
        import anyio

        self._room()
        return await anyio.to_thread.run_sync(functools.partial(call, *args, **kwargs), limiter=self.limiter)

    async def stream(self, results: Callable[[Callable[[], bool]], Iterator[Any]]) -> AsyncIterator[Any]:
        """What ``results(stopped)`` yields, as it comes; ``stopped()`` turns true once nobody reads
        (the client went away), and the engine then stops at its next token."""
        self._room()
        # A stream is read by more than one task (the endpoint, then the response): the token is
        # held on behalf of the stream itself.
        borrower = object()
        await self.limiter.acquire_on_behalf_of(borrower)
        try:
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue[Any] = asyncio.Queue()
            gone = threading.Event()

            def hand(item: Any) -> None:
                try:
                    loop.call_soon_threadsafe(queue.put_nowait, item)
                except RuntimeError:  # the loop is closed: nobody reads any more
                    gone.set()

            def work() -> None:
                iterator = None
                try:
                    iterator = results(gone.is_set)
                    for item in iterator:
                        if gone.is_set():
                            break
                        hand(item)
                except BaseException as exc:  # handed to the reader, raised there
                    hand(exc)
                finally:
                    getattr(iterator, "close", lambda: None)()  # the engine's own clean-up, now
                    hand(_END)

            threading.Thread(target=work, name="api-stream", daemon=True).start()
            try:
                while (item := await queue.get()) is not _END:
                    if isinstance(item, BaseException):
                        raise item
                    yield item
            finally:
                gone.set()
        finally:
            self.limiter.release_on_behalf_of(borrower)


def event(data: Any) -> bytes:
    """One server-sent event as the ``openai`` client reads it (``data: {...}``)."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n".encode()


def error_event(exc: BaseException) -> bytes:
    """A failure in the middle of a stream, as the ``openai`` client raises it (``{"error": ...}``)."""
    return b"data: " + error_response(exc).body + b"\n\n"
