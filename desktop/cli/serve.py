"""``pipedesk serve``: the app headless, for scripts on this computer, servers, Spaces, containers.

On loopback it is the owner's full app (``--lan`` also shares it on the local network); on any
other address, or with ``--public``, the visitors' app (:mod:`desktop.cli.public`). Runs on the main
thread until Ctrl+C or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from desktop.cli.common import add_device, terminal_progress
from desktop.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``serve``."""
    serve = sub.add_parser("serve", help="serve the app headless (servers, Spaces, containers)")
    serve.add_argument(
        "--host",
        default=os.environ.get("PIPEDESK_HOST", "127.0.0.1"),
        help="address to listen on (default 127.0.0.1: the full app; any other address, e.g. 0.0.0.0 "
        "for every interface, serves the visitors' app)",
    )
    serve.add_argument(
        "--port",
        type=int,
        default=int(os.environ["PORT"]) if os.environ.get("PORT", "").isdigit() else None,
        help="port (default: $PORT, else a free port)",
    )
    serve.add_argument(
        "--public",
        action="store_true",
        help="serve the visitors' app (tasks on the installed models only) even on 127.0.0.1, e.g. "
        "behind a reverse proxy; any --host other than 127.0.0.1 always does",
    )
    serve.add_argument(
        "--auth",
        metavar="USER:PASSWORD",
        default=None,
        help="public server: ask visitors to sign in (or set $PIPEDESK_AUTH, which keeps the "
        "password out of the process list)",
    )
    serve.add_argument(
        "--model",
        dest="models",
        metavar="ID",
        action="append",
        default=None,
        help="public server: a model to download at start-up and serve (repeatable; or "
        "$PIPEDESK_MODELS=ID,ID)",
    )
    serve.add_argument(
        "--drain-seconds",
        type=float,
        default=None,
        metavar="S",
        help="public server: on SIGTERM, refuse new requests and wait up to S seconds (default 30) for "
        "the running ones before exiting; GET /healthz says 503 meanwhile (for load balancers)",
    )
    serve.add_argument(
        "--root-path",
        default=os.environ.get("PIPEDESK_ROOT_PATH"),
        metavar="PATH",
        help="public server behind a reverse proxy under a path, e.g. /pipedesk (or $PIPEDESK_ROOT_PATH)",
    )
    serve.add_argument(
        "--public-name",
        dest="public_names",
        metavar="NAME",
        action="append",
        default=None,
        help="public server: a name people open it by, e.g. pipedesk.example.org or [2001:db8::5] (repeatable, or "
        "names joined by commas); then only those names and its own loopback address are answered",
    )
    serve.add_argument(
        "--replica-id",
        default=None,
        metavar="ID",
        help="public server behind a load balancer: this replica's sticky-session cookie value "
        "(pipedesk_replica=ID; default: this computer's name and the port)",
    )
    serve.add_argument(
        "--models-dir",
        default=os.environ.get("PIPEDESK_MODELS_DIR"),
        metavar="DIR",
        help="public server: serve the models installed in DIR, a folder shared by replicas (or "
        "$PIPEDESK_MODELS_DIR); it is only read: models it lacks are refused, never downloaded",
    )
    oidc = serve.add_argument_group("sign-in through an identity provider (public server, OpenID Connect)")
    oidc.add_argument("--oidc-issuer", metavar="URL", help="the provider's issuer address (https://...)")
    oidc.add_argument("--oidc-client-id", metavar="ID", help="this Pipedesk's client id at the provider")
    oidc.add_argument(
        "--oidc-client-secret-file", metavar="FILE", help="a file holding the client secret (kept out of ps)"
    )
    oidc.add_argument(
        "--oidc-allowed-domain", metavar="DOMAIN", help="only e-mail addresses at DOMAIN may use it"
    )
    oidc.add_argument(
        "--oidc-session-minutes", type=float, metavar="M", help="a sign-in lasts M minutes (default 480)"
    )
    serve.add_argument(
        "--lan",
        action="store_true",
        help="also share on the local network, password-protected (address and password are printed)",
    )
    serve.add_argument(
        "--token",
        action="store_true",
        help="answer only requests that carry a token (printed, or $PIPEDESK_TOKEN) in an X-Pipedesk-Token header",
    )
    add_device(serve)
    serve.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    """Headless: serve the UI and the HTTP API until interrupted.

    On loopback the owner's full app; on any other address, or with ``--public``, the visitors'
    app (:mod:`desktop.cli.public`), with optional sign-in and the models to serve downloaded first.
    """
    from desktop.cli import public
    from desktop.server import replica

    if args.public or not public.is_loopback(args.host):
        for flag, given in (("--lan", args.lan), ("--token", args.token)):
            if given:
                raise UserError(
                    f"{flag} is for the app on this computer (--host 127.0.0.1): a public server "
                    "serves the visitors' app, and --auth USER:PASSWORD asks for a sign-in."
                )
        if args.drain_seconds is not None and not 0 <= args.drain_seconds <= 3600:
            raise UserError("--drain-seconds must be between 0 and 3600.")
        root_path = public.check_root_path(args.root_path)
        names = public.check_public_names(args.public_names)
        models_dir = public.check_models_dir(args.models_dir)
        oidc = _oidc_settings(args)
        replica_id = replica.check_id(args.replica_id) if args.replica_id is not None else None
        models = public.named_models(args.models)
        return public.serve(
            args.host,
            args.port,
            args.device,
            models,
            args.auth,
            terminal_progress(),
            args.drain_seconds,
            root_path,
            public_names=names,
            replica_id=replica_id,
            models_dir=models_dir,
            oidc=oidc,
        )
    for flag, given in (
        ("--model", args.models),
        ("--auth", args.auth),
        ("--drain-seconds", args.drain_seconds),
        ("--root-path", args.root_path),
        ("--public-name", args.public_names),
        ("--replica-id", args.replica_id),
        ("--models-dir", args.models_dir),
        ("--oidc-issuer", args.oidc_issuer),
    ):
        if given:
            raise UserError(
                f"{flag} is for a public server (--public, or a --host other than 127.0.0.1); on this "
                "computer the app downloads a model the first time a task uses it."
            )
    return _serve(args.host, args.port, args.device, open_browser=False, lan=args.lan, token=args.token)


def _oidc_settings(args: argparse.Namespace) -> Any:
    """``--oidc-*``: :class:`desktop.share.oidc.OidcSettings`, or None; never with a password."""
    from desktop.share import oidc

    settings = oidc.settings_from(
        args.oidc_issuer,
        args.oidc_client_id,
        args.oidc_client_secret_file,
        args.oidc_allowed_domain,
        args.oidc_session_minutes,
    )
    if settings is not None and (args.auth or os.environ.get("PIPEDESK_AUTH")):
        raise UserError("--auth (or PIPEDESK_AUTH) and --oidc-issuer are two ways to sign in: choose one.")
    return settings


def _serve(
    host: str,
    port: int | None,
    device: str | None,
    open_browser: bool,
    lan: bool = False,
    token: bool = False,
) -> int:
    from desktop import logs
    from desktop.cli import public

    public.check_owner_host(host)  # the full app listens on loopback only
    logs.setup(console=True)
    from desktop.engine.start import open_door

    # First: the engine process imports torch (and loads the last model) while this one imports Gradio.
    door = open_door(device, own_process=True, preload=True)
    from desktop import server
    from desktop.server.api_door import ApiAccess
    from desktop.ui.app import build_app

    running = None
    try:  # Ctrl+C during start-up stops as cleanly as Ctrl+C later
        secret = (os.environ.get("PIPEDESK_TOKEN") or server.new_token()) if token else None
        # The Local API is on: with --token, programs send the token as their key; without, none.
        api = ApiAccess(accepted=lambda: (secret,) if secret else ())
        running = server.start(build_app(door), host=host, port=port, token=secret, api_access=api)
        print(f"Pipedesk is running at {running.url}  (Ctrl+C to stop)", flush=True)
        door.warm_up_in_background()  # torch and transformers load while the page is already usable
        if secret:
            print(f"Every request needs the token: header X-Pipedesk-Token: {secret}", flush=True)
            print(f"  in a browser: {running.open_url}", flush=True)
        print(f"Local API: {running.url}v1 (OpenAI's shape) and {running.url}mcp (MCP tools)", flush=True)
        if lan:
            from desktop.share import controller as sharing

            sharing.controller(door).api_enabled = lambda: True  # the API is on here: on the LAN too
            print(sharing.start_lan(door), flush=True)
        if open_browser:
            import webbrowser

            webbrowser.open(running.open_url)
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("Stopping…", file=sys.stderr)
    finally:
        if lan:
            from desktop.share import controller as sharing

            sharing.stop_sharing(door)
        if running is not None:
            running.stop()
    return 0
