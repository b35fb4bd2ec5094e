"""Public deployments: ``pipedesk serve`` for people on other computers (a server, a Space, a container).

The owner's full app (the Models and Sharing tabs: downloads, deletions, folder imports, the
models folder, the LAN password) only ever listens on loopback; :func:`is_loopback` is that rule,
and ``pipedesk serve`` asks it. On any other address (or with ``--public``) Pipedesk serves the
visitors' app instead: ``build_app(door.visitors(), local=False)``, the task tabs on the models
installed here (the GUEST policy: nothing is downloaded for a visitor, no folder path is opened),
served exactly as LAN sharing serves its visitors (:func:`desktop.share.controller.serve_visitors`: the
visitor gate with its sign-in lockout and upload quota, monitoring off, only the app's own error
words, nothing served outside Gradio's cache). Sign-in is optional: ``--auth USER:PASSWORD`` or
``$PIPEDESK_AUTH`` (a Space's secret). The models to serve (``--model``, ``$PIPEDESK_MODELS``) are
downloaded before the server starts; the start-up output says which models are ready and where
the server listens, never the password.

A public server runs for weeks: every ``WINDOW_S`` visitors' upload counts start again and Gradio
deletes their files older than that.

Threads: everything here runs on the main thread (the CLI); the server serves from its own.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from desktop.errors import UserError

log = logging.getLogger(__name__)

AUTH_ENV = "PIPEDESK_AUTH"
MODELS_ENV = "PIPEDESK_MODELS"
#: Hours of a public server's life: visitors' upload quota and files start again after each.
WINDOW_S = 3600
ALL_INTERFACES = ("0.0.0.0", "", "::")

FULL_APP_ON_LOOPBACK_ONLY = (
    "The full Pipedesk app (model management, folders, sharing) listens only on this computer "
    "(--host 127.0.0.1). On {host}, `pipedesk serve --host {host}` serves the visitors' app: the tasks "
    "on the models installed here."
)
AUTH_FORMAT = f"--auth (or {AUTH_ENV}) takes USER:PASSWORD: a name and a password joined by a colon."
AUTH_MESSAGE = "Sign in with the name and password that the person running this Pipedesk gave you."

Say = Callable[[str], None]


def check_root_path(value: str | None) -> str | None:
    """``--root-path``: a path such as ``/pipedesk`` (no trailing slash kept) or a full ``https://``
    address; UserError otherwise."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", value):
        return value.rstrip("/")
    if not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+/?", value):
        raise UserError(
            f"--root-path must be a path such as /pipedesk (letters, digits, . _ ~ -) or a full "
            f"https:// address, not {value!r}."
        )
    return value.rstrip("/")


def check_public_names(values: list[str] | None) -> frozenset[str]:
    """``--public-name`` (repeatable, or names joined by commas): host names or IP addresses, each
    with an optional ``:PORT``, lower case; an IPv6 address in brackets (``[2001:db8::1]:8443``, or
    bare without a port), written as browsers send it in ``Host``; UserError for anything else (a
    URL, a path, a wildcard)."""
    names = [part.strip().lower() for value in values or [] for part in value.split(",") if part.strip()]
    return frozenset(_public_name(name) for name in names)


_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


def _public_name(name: str) -> str:
    """One ``--public-name``, as the ``Host`` header carries it; UserError if it is not one."""
    if name.startswith("[") or name.count(":") > 1:  # IPv6: [address] or [address]:PORT, or bare
        address, bracket, port = name[1:].partition("]") if name.startswith("[") else (name, "]", "")
        port = port.removeprefix(":") if bracket and (port.startswith(":") or not port) else "?"
        try:
            host = f"[{ipaddress.IPv6Address(address).compressed}]"
        except ValueError:
            host = ""
    else:
        host, _, port = name.partition(":")
        host = host if _HOST_NAME.fullmatch(host) else ""
    if not host or (port and not (port.isdigit() and 0 < int(port) < 65536)):
        raise UserError(
            f"--public-name takes the name people open, such as pipedesk.example.org, "
            f"pipedesk.example.org:8443 or [2001:db8::1] (no scheme, path or wildcard), not {name!r}."
        )
    return f"{host}:{port}" if port else host


def check_models_dir(value: str | None) -> Path | None:
    """``--models-dir``: an existing folder (a shared disk), absolute; UserError otherwise."""
    if value is None or not value.strip():
        return None
    folder = Path(value.strip()).expanduser().absolute()
    if not folder.is_dir():
        raise UserError(f"--models-dir {value!r} is not a folder: give the shared models folder's path.")
    return folder


def _say(text: str) -> None:
    print(text, flush=True)


def is_loopback(host: str) -> bool:
    """True when serving on ``host`` is reachable from this computer only (the owner's app may)."""
    from desktop.server import LOOPBACK_BINDS

    name = host.strip().lower()
    return name in LOOPBACK_BINDS or name.strip("[]") == "::1"


def check_owner_host(host: str) -> None:
    """Refuse to serve the owner's full app anywhere but loopback (one sentence saying what to do)."""
    if not is_loopback(host):
        raise UserError(FULL_APP_ON_LOOPBACK_ONLY.format(host=host or "0.0.0.0"))


def parse_auth(text: str) -> tuple[str, str]:
    """``(user, password)`` from ``USER:PASSWORD``; UserError (never quoting it) when unusable."""
    from desktop.share.controller import check_password

    user, colon, password = text.partition(":")
    if not colon or not user.strip():
        raise UserError(AUTH_FORMAT)
    try:
        return user.strip(), check_password(password)
    except UserError as exc:
        raise UserError(f"--auth: {exc}") from None


def sign_in_check(user: str, password: str) -> Callable[[str, str], bool]:
    """Gradio's ``auth`` callable for one name and password (compared in constant time)."""

    def check(name: str, typed: str) -> bool:
        right_name = hmac.compare_digest(name.encode(), user.encode())
        return hmac.compare_digest(typed.encode(), password.encode()) and right_name

    return check


def named_models(given: list[str] | None) -> list[str]:
    """The models to serve: ``--model`` (repeatable) if given, else ``$PIPEDESK_MODELS`` (commas)."""
    names = given if given else os.environ.get(MODELS_ENV, "").split(",")
    return list(dict.fromkeys(name.strip() for name in names if name.strip()))


def prepare_models(store: Any, names: list[str], progress: Any = None, say: Say = _say) -> None:
    """Download the models in ``names`` into ``store`` (those not there yet), saying what happens.

    A name must be a task model's label, a Hub id or an imported model's name; anything else, or
    a model no task can use, stops the start-up with a UserError.
    """
    from desktop.engine import inventory
    from desktop.fmt import human_size
    from desktop.models import catalog

    for name in names:
        ref = inventory.ref_for(name, store.root)
        if ref is None:
            if name in catalog.imported(store.root):
                say(f"{name} (imported) is ready")
                continue
            raise UserError(
                f"--model {name!r} is not a model Pipedesk can download: give a Hub id (owner/name), "
                "a task model's label, or the name of a model imported with `pipedesk models import`."
            )
        if store.local_path(ref) is None:
            say(f"Downloading {ref.display} …")
        inventory.install(store, ref, None, progress)
        added = catalog.custom(store.root).get(ref.repo)
        if added is not None and not added.get("task"):
            raise UserError(f"{ref.display} fits none of Pipedesk's tasks: visitors could not use it.")
        say(f"{ref.display} is ready ({human_size(store.size_on_disk(ref))})")


def ready_report(store: Any) -> list[str]:
    """Lines saying, task by task, which models visitors can use (installed ones only)."""
    from desktop.engine import inventory
    from desktop.models import READY
    from desktop.tasks import TASKS

    rows = [row for row in inventory.entries(store) if row.status == READY]
    lines = []
    for spec in TASKS.values():
        ready = [row.label for row in rows if spec.id in row.tasks]
        lines.append(f"  {spec.id}: {', '.join(ready) if ready else 'none'}")
    if not rows:
        defaults = ",".join(
            dict.fromkeys(spec.default_for(kind).repo for spec in TASKS.values() for kind in spec.kinds())
        )
        return [
            "No model is installed: visitors can run no task until you name models to serve, "
            f"e.g. {MODELS_ENV}={defaults} (the tasks' defaults) or --model ID."
        ]
    return ["Models visitors can use:", *lines]


def listen_report(host: str, port: int) -> list[str]:
    """Where the server listens, as the addresses people can open (never 127.0.0.1 for 0.0.0.0)."""
    from desktop.share.controller import lan_addresses

    if host in ALL_INTERFACES:
        urls = [f"http://{address}:{port}/" for address in lan_addresses()]
        lines = [f"Listening on all interfaces, port {port}:", *(f"  {url}" for url in urls)]
        if not urls:
            lines.append("  (this computer has no network address right now)")
    else:
        name = f"[{host.strip('[]')}]" if ":" in host else host
        lines = [f"Listening on {host}, port {port}:", f"  http://{name}:{port}/"]
    # On a Hugging Face Space, the addresses people open (a custom domain makes it a list).
    for name in filter(None, (n.strip() for n in os.environ.get("SPACE_HOST", "").split(","))):
        lines.append(f"  Space: https://{name}/")
    return lines


def _oidc_middleware(oidc: Any, root_path: str | None) -> Any:
    if oidc is None:
        return None
    from starlette.middleware import Middleware

    from desktop.share.oidc import OidcSignIn

    return Middleware(OidcSignIn, settings=oidc, root_path=root_path)


def serve(
    host: str,
    port: int | None,
    device: str | None = None,
    models: list[str] | None = None,
    auth: str | None = None,
    progress: Any = None,
    drain_seconds: float | None = None,
    root_path: str | None = None,
    public_names: frozenset[str] = frozenset(),
    replica_id: str | None = None,
    models_dir: Path | None = None,
    oidc: Any = None,
) -> int:
    """Serve the visitors' app on ``host:port`` until Ctrl+C or SIGTERM (``pipedesk serve`` off loopback).

    ``models``: names to download first (see :func:`named_models`); ``auth``: ``USER:PASSWORD`` or
    None (then ``$PIPEDESK_AUTH``; neither: no sign-in). ``/healthz`` tells a load balancer whether
    it can answer; SIGTERM drains: new work is refused, running requests finish (at most
    ``drain_seconds``), then it exits (:mod:`desktop.server.health`). ``root_path``: the path a reverse
    proxy serves it under (:func:`check_root_path`). ``public_names``: the only Host names answered
    besides its own loopback address (:func:`check_public_names`; none: any name, as behind a
    platform's proxy); ``replica_id``: its sticky-session cookie (:mod:`desktop.server.replica`; by
    default this computer's name and the port); ``models_dir``: a models folder shared by replicas,
    served read-only (models it lacks are refused, never downloaded into it); ``oidc``: sign-in
    through an identity provider (:class:`desktop.share.oidc.OidcSettings`) in place of ``auth``.
    Returns the exit code.
    """
    from desktop import logs

    logs.setup(console=True)
    auth = auth or os.environ.get(AUTH_ENV) or None
    credentials = parse_auth(auth) if auth else None  # refused before anything is downloaded
    if oidc is not None:
        from desktop.share import oidc as provider

        provider.check_provider(oidc)  # a wrong issuer stops the start-up, in words

    from desktop.engine.start import open_door
    from desktop.models.store import ModelStore

    store = ModelStore(models_dir, read_only=True) if models_dir is not None else None
    # First: the engine process imports torch while this one imports Gradio and builds the app.
    door = open_door(device, own_process=True, store=store)
    from desktop import server
    from desktop.server import health as healthz
    from desktop.server import replica
    from desktop.server.api_door import ApiAccess
    from desktop.share import controller as sharing
    from desktop.share.gate import VisitorGate
    from desktop.ui.app import build_app

    prepare_models(door.store, models or [], progress)
    for line in ready_report(door.store):
        _say(line)
    sharing.remove_leftover_uploads()
    gate = VisitorGate()
    blocks = build_app(door.visitors(), local=False)  # no Models or Sharing tab, installed models only
    blocks.delete_cache = (WINDOW_S, WINDOW_S)
    port = port or server.free_port()
    replica_id = replica_id or replica.default_id(port)
    running = None
    health = healthz.Health(
        busy=healthz.queue_busy(blocks),
        details=lambda: {"models": len(door.store.installed()), "device": door.chosen_device or "starting"},
        engine=lambda: door.status.engine,
    )
    stopping = threading.Event()
    # Containers, Spaces and balancers' replicas stop with SIGTERM: drain first.
    previous = signal.signal(signal.SIGTERM, lambda _signum, _frame: stopping.set())
    try:
        running = sharing.serve_visitors(
            blocks,
            door,
            gate,
            host=host,
            port=port,
            hosts="any",  # behind a platform's proxy the Host is the platform's name
            auth=sign_in_check(*credentials) if credentials else None,
            auth_message=AUTH_MESSAGE if credentials else None,
            # Programs send the sign-in's password as their API key (counted as sign-ins are).
            api=ApiAccess(accepted=lambda: (credentials[1],) if credentials else (), attempts=gate),
            health=health,
            root_path=root_path,
            public_names=public_names,
            replica=replica_id,
            provider_signin=_oidc_middleware(oidc, root_path),
        )
        gate.open = True
        health.ready()
        _say("Pipedesk serves the visitors' app: the tasks on the models above, no model management.")
        for line in listen_report(host, port):
            _say(line)
        if public_names:
            _say(f"Answers only at {', '.join(sorted(public_names))} (and its own address on this computer).")
        if models_dir is not None:
            _say(f"Models from {models_dir}, read-only: nothing is downloaded into it or changed.")
        _say(f"Replica id {replica_id}: its sticky-session cookie is {replica.COOKIE}={replica_id}.")
        if oidc is not None:
            domain = f"; only addresses at {oidc.allowed_domain}" if oidc.allowed_domain else ""
            _say(f"Sign-in through {oidc.issuer} (OpenID Connect){domain}; sign out at /oidc/signout.")
        elif credentials:
            _say(f"Sign-in required: name {credentials[0]!r} and the password given with --auth/{AUTH_ENV}.")
        else:
            _say(f"No sign-in: anyone who reaches the port can use it (--auth USER:PASSWORD or {AUTH_ENV}).")
        key = "; programs send the --auth password as their key" if credentials else ""
        _say(f"Local API: /v1 (OpenAI's shape) and /mcp (MCP tools) on the same addresses{key}.")
        _say(f"(device: {door.device}; Ctrl+C to stop)")
        signin = "OpenID Connect" if oidc is not None else "password" if credentials else "off"
        log.info("Public server on %s:%s, sign-in %s", host, port, signin)
        next_window = time.monotonic() + WINDOW_S
        while not stopping.wait(0.5):
            if time.monotonic() >= next_window:
                gate.reset()  # upload quotas (and sign-in counts) start again; old files are gone
                next_window += WINDOW_S
        health.drain()
        limit = healthz.DRAIN_SECONDS if drain_seconds is None else drain_seconds
        _say(f"Stopping: no new requests; waiting for the running ones (at most {limit:g} s)…")
        finished = health.wait_drained(limit)
        _say(
            "Every running request finished."
            if finished
            else f"Stopped after {limit:g} s with requests running."
        )
    except KeyboardInterrupt:
        print("Stopping…", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if running is not None:
            running.stop()
        shutil.rmtree(sharing.visitors_upload_folder(), ignore_errors=True)
    return 0
