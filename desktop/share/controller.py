"""Sharing on the local network: a second, password-protected server for other devices.

The app on this computer always listens on 127.0.0.1 with no password. Turning
sharing on starts a *second* Gradio server bound to every interface on its own
port, with a password, monitoring off, an upload limit and no file served from
outside Gradio's cache. Its Blocks come from the ``visitors_app`` function the
app hands to :func:`controller` (``build_app(..., local=False)``: the task tabs
only, no Models or Sharing tab, so visitors cannot manage models, change
settings or switch sharing); this module never imports the UI. It shares this
process's engine, so models load once for everybody. Turning sharing off
closes that listener: connections are refused again, and the local app never
notices.

Threads: :class:`Sharing` methods run on Gradio workers (the Sharing tab) or the
main thread (``pipedesk serve --lan``); one lock serialises them. The visitors'
Blocks are built and launched on a short-lived thread of their own: Gradio
skips part of a component's set-up inside an event handler's context, and a new
thread starts with none. The visitor gate runs on the sharing server's event loop.

Visitors' files (uploads, and the results their app writes) go to a folder of their
own inside Gradio's cache, ``visitors/<process id>``: removed when sharing stops,
and folders left by a process that is gone are removed when the next one starts.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import shutil
import socket
import threading
import weakref
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from desktop import paths, settings
from desktop.errors import UserError
from desktop.server.api_door import ApiAccess
from desktop.share import signin
from desktop.share.gate import VisitorGate
from desktop.share.passwords import MIN_PASSWORD as MIN_PASSWORD  # the Sharing tab's and tests' names
from desktop.share.passwords import WORDS as WORDS
from desktop.share.passwords import check_password, generate_password

log = logging.getLogger(__name__)

#: The port sharing asks for first, so the address on a phone stays the same across restarts.
PREFERRED_PORT = 7861
#: Visitors' requests that may wait in the queue at once (each holds its inputs, up to a few MB,
#: until it runs); more are told the app is busy.
VISITORS_QUEUE = 64

#: Interface names of virtual networks (containers, VMs, VPNs): listed last, rarely what a phone can reach.
_VIRTUAL_PREFIXES = ("docker", "br-", "veth", "virbr", "vmnet", "vboxnet", "tun", "tap", "wg", "zt", "lxc")


def lan_addresses() -> list[str]:
    """Every non-loopback IPv4 address of this machine, the likely home/office network first."""
    import psutil

    stats = psutil.net_if_stats()
    found: list[tuple[tuple[int, int, str], str]] = []
    for name, addresses in psutil.net_if_addrs().items():
        for address in addresses:
            if address.family != socket.AF_INET:
                continue
            ip = ipaddress.IPv4Address(address.address)
            if ip.is_loopback or ip.is_unspecified or ip.is_link_local:
                continue
            up = stats[name].isup if name in stats else True
            virtual = name.lower().startswith(_VIRTUAL_PREFIXES)
            found.append(((int(not up), int(virtual) * 2 + int(not ip.is_private), name), str(ip)))
    return list(dict.fromkeys(ip for _, ip in sorted(found)))


def qr_image(text: str) -> Any:
    """A QR code of ``text`` as a PIL image (black on white, ready to scan from a screen)."""
    import qrcode

    code = qrcode.QRCode(border=2, box_size=8, error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(text)
    code.make(fit=True)
    return code.make_image(fill_color="black", back_color="white").get_image()


#: ``visitors_app(visitor_runtime) -> gr.Blocks``: builds the app LAN visitors see.
VisitorsApp = Callable[[Any], Any]


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the server binds it: a port left in TIME_WAIT by the last session is free to reuse.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


class Sharing:
    """Turns the LAN server on and off for one app (its Door to the engine); see the module docstring."""

    def __init__(
        self,
        door: Any,
        port: int | None = None,
        host: str = "0.0.0.0",
        visitors_app: VisitorsApp | None = None,
    ) -> None:
        self.door = door
        self.host = host
        self.requested_port = port
        self.visitors_app = visitors_app
        #: Whether visitors' programs may use the Local API (the password as key): the owner's switch.
        self.api_enabled: Callable[[], bool] = lambda: settings.load().local_api
        self.gate = VisitorGate()
        self._lock = threading.RLock()
        self._server: Any = None
        self._last_port: int | None = None  # off and on again: the same address for visitors
        remove_leftover_uploads()

    # --- state -----------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int | None:
        return self._server.port if self._server is not None else None

    @property
    def password(self) -> str:
        """The saved LAN password ("" before sharing was first switched on). Only reads."""
        return settings.load().lan_password

    def ensure_password(self) -> str:
        """The LAN password, generated and saved the first time sharing needs one."""
        with self._lock:
            return self.password or settings.update(lan_password=generate_password()).lan_password

    def addresses(self) -> list[str]:
        return lan_addresses()

    def urls(self) -> list[str]:
        """Where visitors go: one URL per address of this machine (empty while off)."""
        if not self.active:
            return []
        return [f"http://{address}:{self.port}/" for address in self.addresses()]

    # --- switching -------------------------------------------------------------------------

    def enable(self) -> None:
        """Start the LAN server (no-op when it is running)."""
        with self._lock:
            if self.active:
                return
            self._start(self.ensure_password())

    def disable(self) -> None:
        """Close the LAN server: from now on, connections from other devices are refused."""
        with self._lock:
            if self._server is None:
                return
            server, self._server = self._server, None
            server.stop()
            shutil.rmtree(visitors_upload_folder(), ignore_errors=True)
            log.info("LAN sharing off: port %s closed, visitors' files removed", server.port)

    def set_password(self, password: str | None = None) -> str:
        """Save ``password`` (a new generated one when None); visitors must sign in again."""
        new = generate_password() if password is None else check_password(password)
        with self._lock:
            settings.update(lan_password=new)
            if self.active:
                port = self.port
                self.disable()
                self._start(new, port)
            log.info("LAN password changed")
            return new

    def _start(self, password: str, port: int | None = None) -> None:
        from desktop import server

        if self.visitors_app is None:
            raise RuntimeError(
                "Sharing was not given the visitors' app (sharing.controller(..., visitors_app=))"
            )
        port = port or self.requested_port
        if port is not None and not _port_is_free(port):
            raise UserError(
                f"Port {port} is already used by another program on this computer: close that "
                "program, or restart Pipedesk to share on another port."
            )
        for wanted in (self._last_port, PREFERRED_PORT):  # the address visitors saved, if free
            if port is None and wanted is not None and _port_is_free(wanted):
                port = wanted
        port = port or server.free_port()

        def check(_username: str, typed: str) -> bool:
            return hmac.compare_digest(typed.encode(), password.encode())

        computer = signin.computer_name()
        message = f"{signin.title(computer)}: type the password shown in Pipedesk's Sharing tab there."

        def launch() -> Any:
            # Built anew each time: its model lists show what is installed now.
            blocks = self.visitors_app(self.door.visitors())  # installed models only, visitors' limits
            blocks.title = signin.title(computer)
            return serve_visitors(
                blocks,
                self.door,
                self.gate,
                host=self.host,
                port=port,
                hosts="lan",
                auth=check,
                auth_message=message,
                computer=computer,
                api=ApiAccess(lambda: (password,), self.api_enabled, attempts=self.gate),
            )

        self.gate.reset()
        self.gate.open = False
        self._server = _on_own_thread(launch)
        self._last_port = port
        self.gate.open = True
        log.info("LAN sharing on: port %s, addresses %s", port, ", ".join(self.addresses()) or "none")


def serve_visitors(
    blocks: Any,
    door: Any,
    gate: VisitorGate,
    *,
    host: str,
    port: int | None,
    hosts: str,
    auth: Callable[[str, str], bool] | None = None,
    auth_message: str | None = None,
    token: str | None = None,
    computer: str | None = None,
    api: ApiAccess | None = None,
    health: Any = None,
    root_path: str | None = None,
    public_names: frozenset[str] = frozenset(),
    replica: str | None = None,
    provider_signin: Any = None,
) -> Any:
    """Serve the visitors' ``blocks`` as every server for other people is served (LAN sharing and
    public deployments, :mod:`desktop.cli.public`): ``gate`` in front (visitor log, sign-in lockout,
    upload quota), Gradio's sign-in when ``auth`` is given (on our page, password only, when
    ``computer`` is named: :mod:`desktop.share.signin`), monitoring off, only the app's own error
    words, an upload limit, nothing served outside Gradio's cache, files in the visitors' folder.
    ``api``: who may use its Local API (None: nobody); ``health``: answered at ``/healthz`` (public
    servers, :mod:`desktop.server.health`); ``root_path``: the path a reverse proxy serves it under
    (``/pipedesk``), so the page's links and calls go through the proxy; ``public_names``,
    ``replica``: see :func:`desktop.server.start`; ``provider_signin``: sign-in through an identity
    provider (middleware, :mod:`desktop.share.oidc`) before the visitor gate. Returns the running
    :class:`desktop.server.Server`; runs on the caller's thread."""
    from starlette.middleware import Middleware

    from desktop import assets, server

    cache = paths.gradio_temp_dir()
    private = [paths.config_dir(), paths.data_dir(), paths.log_dir(), paths.cache_dir() / "models"]
    models_root = getattr(getattr(door, "store", None), "root", None)
    if isinstance(models_root, Path):
        private.append(models_root)
    _keep_files_in(blocks, visitors_upload_folder())
    options = {
        "auth": auth,
        "auth_message": auth_message,
        "enable_monitoring": False,
        # Only the app's own words (gr.Error) reach visitors: Gradio's other errors name this
        # computer's folders (blocked paths, the working directory).
        "show_error": False,
        "max_file_size": server_max_upload(),
        # Gradio serves its own cache anyway; a non-empty list keeps GRADIO_ALLOWED_PATHS from
        # the environment from widening it (a folder here would even be served inline).
        "allowed_paths": [str(assets.path("icon.png"))],
        **({"root_path": root_path} if root_path else {}),
        "blocked_paths": [str(p) for p in private if not _is_inside(cache, p)],
        "app_kwargs": {
            "middleware": ([provider_signin] if provider_signin else [])
            + [Middleware(gate.asgi)]
            + ([Middleware(signin.SignInPage, computer=computer)] if auth and computer else []),
            "lifespan": _uploads_to_visitors_folder,
        },
    }
    closed = ApiAccess(enabled=lambda: False, off="This server has no API.")
    return server.start(
        blocks,
        host=host,
        port=port,
        token=token,
        hosts=hosts,
        queue_size=VISITORS_QUEUE,
        api_access=api or closed,
        health=health,
        public_names=public_names,  # public servers: the Host names answered, the sticky cookie
        replica=replica,
        **options,
    )


def visitors_upload_folder() -> Path:
    """Where this process keeps LAN visitors' files: inside Gradio's cache, which Gradio serves
    and accepts task inputs from, in a folder of their own."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()) / "visitors" / str(os.getpid())


def remove_leftover_uploads() -> None:
    """Remove visitors' folders left by Pipedesk processes that are no longer running."""
    import psutil

    parent = visitors_upload_folder().parent
    for folder in parent.iterdir() if parent.is_dir() else ():
        if not (folder.name.isdigit() and psutil.pid_exists(int(folder.name))):
            shutil.rmtree(folder, ignore_errors=True)
            log.info("Removed LAN visitors' files left by process %s", folder.name)


def _keep_files_in(blocks: Any, folder: Path) -> None:
    """Point every block of the visitors' ``blocks`` at ``folder`` for the files they write."""
    for block in (blocks, *blocks.blocks.values()):
        block.GRADIO_CACHE = str(folder)


@asynccontextmanager
async def _uploads_to_visitors_folder(app: Any) -> Any:
    """Lifespan of the sharing server's app: uploads go to the visitors' folder (before any request)."""
    folder = visitors_upload_folder()
    folder.mkdir(parents=True, exist_ok=True)
    app.uploaded_file_dir = str(folder)
    yield


def _on_own_thread(work: Callable[[], Any]) -> Any:
    """Run ``work`` on a new thread, wait for it and return its result (or raise its error).

    A new thread starts with empty context variables: none of the Gradio event or render context
    of the caller (a Sharing-tab handler), so Blocks are built and launched there as at start-up.
    """
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    thread = threading.Thread(target=run, name="sharing-start", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def server_max_upload() -> str:
    from desktop import server

    return server.MAX_UPLOAD


def _is_inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


#: One controller per app (its Door), held only as long as the Door lives (no ids as keys).
_controllers: weakref.WeakKeyDictionary[Any, Sharing] = weakref.WeakKeyDictionary()
_controllers_lock = threading.Lock()


def stop_sharing(door: Any) -> None:
    """Stop LAN sharing for ``door`` if it was ever set up. Quitting calls it: nothing is created
    just to be stopped (a Ctrl+C while the app still imports Gradio must not import it again)."""
    with _controllers_lock:
        found = _controllers.get(door)
    if found is not None:
        found.disable()


def controller(door: Any, visitors_app: VisitorsApp | None = None) -> Sharing:
    """The one Sharing for ``door`` (the Sharing tab and ``serve --lan`` use the same).

    ``visitors_app`` (given where the app is assembled) builds the visitors' Blocks.
    """
    with _controllers_lock:
        found = _controllers.get(door)
        if found is None:
            found = _controllers[door] = Sharing(door)
        if visitors_app is not None:
            found.visitors_app = visitors_app
        return found


def start_lan(door: Any) -> str:
    """Switch sharing on for ``door`` and say where to connect (``pipedesk serve --lan``)."""
    share = controller(door)
    share.enable()
    urls = share.urls()
    lines = ["Shared on your network (visitors sign in with this password):"]
    lines += [f"  {url}" for url in urls] or [f"  (no network address right now; port {share.port})"]
    lines.append(f"  password: {share.password}")
    return "\n".join(lines)
