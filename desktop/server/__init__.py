"""Start and stop the Gradio server.

``start`` returns at once (``prevent_thread_lock``): uvicorn serves from its own
background thread while the caller's thread goes on (the window, or a wait
loop for ``pipedesk serve``). Every server gets :mod:`desktop.server.gate` in front of it
(Host and Origin checks; the window's per-launch token when one is given).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import secrets
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from desktop.server import api_door, gate, sessions

if TYPE_CHECKING:  # Gradio is imported where the server starts: the package's rules need not wait for it
    import gradio as gr

log = logging.getLogger(__name__)

LOCAL_HOST = "127.0.0.1"
#: The attribute of a Blocks that holds its launch() look (theme, css, js, favicon...).
LOOK = "launch_look"
#: The attribute of a Blocks that holds its API (:class:`desktop.server.api_door.ApiMount`).
API = "pipedesk_api"
MAX_UPLOAD = "50mb"
LOOPBACK_BINDS = ("127.0.0.1", "localhost", "::1")
#: A request body may exceed the upload limit by this much (multipart headers, form fields).
BODY_OVERHEAD = 1024 * 1024


def _parse_size(size: str | int) -> int:
    """``"50mb"`` as bytes, as Gradio reads its ``max_file_size``."""
    from gradio.utils import _parse_file_size

    return int(_parse_file_size(size) or 0)


def new_token() -> str:
    """A per-launch secret for the window's server (:mod:`desktop.server.gate`)."""
    return secrets.token_urlsafe(32)


def free_port(host: str = LOCAL_HOST) -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running Gradio app."""

    blocks: gr.Blocks
    host: str
    port: int
    token: str | None = None

    @property
    def url(self) -> str:
        host = LOCAL_HOST if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}/"

    @property
    def open_url(self) -> str:
        """What the window opens: the URL with the token, which the gate turns into a cookie."""
        if self.token is None:
            return self.url
        return f"{self.url}?{gate.TOKEN_PARAM}={quote(self.token)}"

    def stop(self) -> None:
        """Close the listener (the port is free when this returns) and stop serving."""
        self.blocks.close(verbose=False)


def refuse_remote_files(blocks: gr.Blocks) -> None:
    """Gradio downloads a file input given as an http(s) URL (a FileData ``path`` or ``url`` in an API
    call): every block of ``blocks`` refuses that instead, as the gate refuses ``/file=<url>``."""
    import gradio as gr
    from gradio_client.utils import is_http_url_like

    def local_only(move: Any) -> Any:
        if inspect.iscoroutinefunction(move):

            async def checked_async(path: Any) -> Any:
                if isinstance(path, str) and is_http_url_like(path):
                    raise gr.Error(gate.NO_FETCH)
                return await move(path)

            return checked_async

        def checked(path: Any) -> Any:
            if isinstance(path, str) and is_http_url_like(path):
                raise gr.Error(gate.NO_FETCH)
            return move(path)

        return checked

    for block in blocks.blocks.values():
        for name in ("async_move_resource_to_block_cache", "move_resource_to_block_cache"):
            move = getattr(block, name, None)
            if move is not None and not getattr(move, "pipedesk_local_only", False):
                checked = local_only(move)
                checked.pipedesk_local_only = True  # type: ignore[attr-defined]
                setattr(block, name, checked)


def short_input_errors(blocks: gr.Blocks) -> None:
    """Gradio answers a request with too few inputs with an error that quotes every input it got,
    printed whole to the console and sent back (a request of 4 MB: 4 MB of traceback): ``blocks``
    says how many it got instead."""
    if getattr(blocks.validate_inputs, "pipedesk_short", False):
        return
    validate = blocks.validate_inputs

    def checked(block_fn: Any, inputs: list[Any]) -> None:
        try:
            validate(block_fn, inputs)
        except ValueError:
            raise ValueError(
                f"This request gave {len(inputs)} input values; {block_fn.name or 'the event'} takes "
                f"{len(block_fn.inputs)}."
            ) from None

    checked.pipedesk_short = True  # type: ignore[attr-defined]
    blocks.validate_inputs = checked  # type: ignore[method-assign]


def _both(first: Any, second: Any) -> Any:
    """One lifespan that runs ``first`` (if any), then ``second``, and ends them in reverse."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        async with contextlib.AsyncExitStack() as stack:
            if first is not None:
                await stack.enter_async_context(first(app))
            await stack.enter_async_context(second(app))
            yield

    return lifespan


def start(
    blocks: gr.Blocks,
    host: str = LOCAL_HOST,
    port: int | None = None,
    token: str | None = None,
    hosts: gate.Hosts | None = None,
    queue_size: int | None = None,
    api_access: api_door.ApiAccess | None = None,
    health: Any = None,
    public_names: frozenset[str] = frozenset(),
    replica: str | None = None,
    **options: Any,
) -> Server:
    """Serve ``blocks`` on ``host:port`` (a free port when None) and return once it answers.

    ``token``: every request must carry it (the window's server). ``hosts``: which Host names
    the gate answers ("loopback", "lan" or "any"; by default loopback names on a loopback
    address, any name elsewhere, e.g. behind a hosting platform's proxy). ``options`` go to
    ``launch()``; middleware in ``options["app_kwargs"]`` runs inside the gate. ``queue_size``: the
    most requests that may wait in Gradio's queue (each holds its inputs in memory until it runs;
    None: no limit, for the owner's own window). The look (theme,
    CSS, scripts) comes with the Blocks: whoever builds them sets ``blocks.launch_look``, so this
    module never needs the UI; so does its API (``blocks.pipedesk_api``), served on the API paths
    for whom ``api_access`` lets in (by default, whom the API itself says: the Local API switch).
    ``health``: a :class:`desktop.server.health.Health` answered at ``/healthz`` (outermost: before
    the gate), for public servers behind a load balancer. ``public_names``: the only Host names a
    public server answers besides its own loopback address (``hosts`` becomes "named");
    ``replica``: this replica's id, sent as the sticky-session cookie (:mod:`desktop.server.replica`).
    """
    from starlette.middleware import Middleware

    mount: api_door.ApiMount | None = getattr(blocks, API, None)
    if mount is not None and api_access is None and port is None:
        port = mount.preferred_port(host)  # the Local API's address, kept across launches when free
    port = port or free_port(LOCAL_HOST if host in ("0.0.0.0", "") else host)
    if hosts is None:
        hosts = "loopback" if host in LOOPBACK_BINDS else "any"
    if public_names:
        hosts = "named"
    names = gate.this_computer_names() if hosts == "lan" else frozenset(public_names)
    max_body = _parse_size(options.get("max_file_size", MAX_UPLOAD)) + BODY_OVERHEAD
    access = (api_access or mount.access) if mount is not None else None
    guard = Middleware(
        gate.Gate,
        options=gate.GateOptions(
            port=port, hosts=hosts, token=token, names=names, max_body=max_body, api=access
        ),
    )
    app_kwargs = dict(options.pop("app_kwargs", None) or {})
    app_kwargs["middleware"] = [guard, *app_kwargs.get("middleware", [])]
    if replica is not None:
        from desktop.server.replica import ReplicaCookie

        app_kwargs["middleware"].insert(0, Middleware(ReplicaCookie, replica=replica))
    if health is not None:
        from desktop.server.health import HealthRoute

        app_kwargs["middleware"].insert(0, Middleware(HealthRoute, health=health))
    if mount is not None:  # innermost: the visitors' gate (quotas, whose files) sees API requests too
        api_app, api_lifespan = mount.serve()
        app_kwargs["middleware"].append(Middleware(api_door.ApiRoutes, api=api_app))
        app_kwargs["lifespan"] = _both(app_kwargs.get("lifespan"), api_lifespan)
    sessions.install()  # a REST call no longer builds ~200 block configs it never reads
    blocks.queue(default_concurrency_limit=4, max_size=queue_size)
    kwargs: dict[str, Any] = {
        "server_name": host,
        "server_port": port,
        "prevent_thread_lock": True,
        "inbrowser": False,
        "quiet": True,
        "show_error": True,
        "max_file_size": MAX_UPLOAD,
        "enable_monitoring": False,
        "ssr_mode": False,
        "pwa": False,
        "mcp_server": False,
        **getattr(blocks, LOOK, {}),
    }
    kwargs.update(options)
    kwargs["app_kwargs"] = app_kwargs
    refuse_remote_files(blocks)
    short_input_errors(blocks)
    blocks.launch(**kwargs)
    log.info("Serving on %s:%s%s", host, port, " (window token required)" if token else "")
    return Server(blocks=blocks, host=host, port=port, token=token)
