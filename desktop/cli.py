"""The command line: ``pipedesk [app|serve|run|doctor|...]``.

Parses arguments and dispatches; the work lives in the modules it calls.
Heavy imports (torch, gradio) happen inside the commands that need them so
``pipedesk --help`` and ``doctor`` stay quick. User errors exit with code 2
and one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from desktop import __version__
from desktop.errors import UserError

log = logging.getLogger(__name__)


def _ensure_streams() -> None:
    """Windowed builds start with no stdout/stderr: give them somewhere harmless to write."""
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115


def terminal_progress() -> Callable[[int, int, str], None]:
    """A ``progress(done, total, desc)`` that draws a tqdm bar on stderr."""
    from tqdm import tqdm

    current: dict[str, Any] = {}

    def report(done: int, total: int, desc: str) -> None:
        bar = current.get("bar")
        if not total:
            if bar is not None:
                current.pop("bar").close()
            print(desc, file=sys.stderr)
            return
        # One bar per transfer; tqdm shows speed and time left, so the text keeps only what is moving.
        label = desc.split(" · ")[0]
        if bar is None or bar.total != total or done < bar.n:
            if bar is not None:
                bar.close()
            bar = current["bar"] = tqdm(total=total, desc=label, unit="B", unit_scale=True, file=sys.stderr)
        bar.set_description_str(label, refresh=False)
        bar.update(done - bar.n)
        if done >= total:
            current.pop("bar").close()

    return report


# --- commands ---------------------------------------------------------------------------


def cmd_app(args: argparse.Namespace) -> int:
    """The desktop app: a native window when there is a display, a local server otherwise."""
    try:
        from desktop import window
    except ImportError:
        window = None  # type: ignore[assignment]
    if window is not None and hasattr(window, "run_app"):
        return window.run_app(args)
    return _serve(args.host, args.port, args.device, open_browser=True)


def cmd_serve(args: argparse.Namespace) -> int:
    """Headless: serve the UI and the HTTP API until interrupted.

    On loopback the owner's full app; on any other address, or with ``--public``, the visitors'
    app (:mod:`desktop.public`), with optional sign-in and the models to serve downloaded first.
    """
    from desktop import public

    if args.public or not public.is_loopback(args.host):
        for flag, given in (("--lan", args.lan), ("--token", args.token)):
            if given:
                raise UserError(
                    f"{flag} is for the app on this computer (--host 127.0.0.1): a public server "
                    "serves the visitors' app, and --auth USER:PASSWORD asks for a sign-in."
                )
        models = public.named_models(args.models)
        return public.serve(args.host, args.port, args.device, models, args.auth, terminal_progress())
    for flag, given in (("--model", args.models), ("--auth", args.auth)):
        if given:
            raise UserError(
                f"{flag} is for a public server (--public, or a --host other than 127.0.0.1); on this "
                "computer the app downloads a model the first time a task uses it."
            )
    return _serve(args.host, args.port, args.device, open_browser=False, lan=args.lan, token=args.token)


def _serve(
    host: str,
    port: int | None,
    device: str | None,
    open_browser: bool,
    lan: bool = False,
    token: bool = False,
) -> int:
    from desktop import logs, public

    public.check_owner_host(host)  # the full app listens on loopback only
    logs.setup(console=True)
    from desktop import server
    from desktop.engine.runtime import Runtime
    from desktop.ui.app import build_app

    runtime = Runtime(device=device)
    running = None
    try:  # Ctrl+C during start-up stops as cleanly as Ctrl+C later
        secret = (os.environ.get("PIPEDESK_TOKEN") or server.new_token()) if token else None
        running = server.start(build_app(runtime), host=host, port=port, token=secret)
        print(f"Pipedesk is running at {running.url}  (device: {runtime.device}; Ctrl+C to stop)", flush=True)
        if secret:
            print(f"Every request needs the token: header X-Pipedesk-Token: {secret}", flush=True)
            print(f"  in a browser: {running.open_url}", flush=True)
        if lan:
            from desktop import sharing

            print(sharing.start_lan(runtime), flush=True)
        if open_browser:
            import webbrowser

            webbrowser.open(running.open_url)
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("Stopping…", file=sys.stderr)
    finally:
        if lan:
            from desktop import sharing

            sharing.controller(runtime).disable()
        if running is not None:
            running.stop()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """One prediction: the result on stdout (plain text, or JSON with --json)."""
    from desktop import logs
    from desktop.engine.runtime import Runtime
    from desktop.tasks import get

    logs.setup()
    spec = get(args.task)
    value = sys.stdin.read() if args.input == "-" else args.input
    inputs = spec.cli_inputs(value)
    options = [option.check(getattr(args, option.name), option.flag) for option in spec.options]
    runtime = Runtime(device=args.device)
    call = [*(inputs.get(name) for name in spec.inputs), args.model, *options]
    result = runtime.predict(spec, *call, progress=terminal_progress())
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        payload = {"task": spec.id, "model": result.model, "result": result.data, "notes": result.notes}
        print(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        print(result.text)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Versions, device, folders and offline state: what support asks for first."""
    from desktop import doctor

    report = doctor.report(device=args.device)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(doctor.format_report(report))
    return 0


# --- parser -----------------------------------------------------------------------------


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default=None,
        help="auto (default: CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:N or mps",
    )


def add_task_options(parser: argparse.ArgumentParser, spec: Any) -> None:
    """One ``--option-name`` per task option (``run`` and ``batch``), defaulting as in the UI."""
    for option in spec.options:
        parser.add_argument(
            f"--{option.name.replace('_', '-')}",
            dest=option.name,
            type=option.type,
            default=option.default,
            help=f"{option.help} (default {option.default})",
        )


def build_parser() -> argparse.ArgumentParser:
    from desktop.tasks import TASKS

    parser = argparse.ArgumentParser(
        prog="pipedesk",
        description="Pipedesk: Hugging Face models on your own computer, offline.",
    )
    parser.add_argument("--version", action="version", version=f"pipedesk {__version__}")
    from desktop import smoke

    parser.add_argument(
        "--smoke-test",
        dest="func",
        action="store_const",
        const=smoke.command,
        help="check this installation: serve with no window, run every task once offline, exit 0 if all answered",
    )
    parser.set_defaults(func=cmd_app, host="127.0.0.1", port=None, device=None)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    app = sub.add_parser("app", help="open the desktop app (the default)")
    _add_device(app)
    app.set_defaults(func=cmd_app, host="127.0.0.1", port=None)

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
        "--lan",
        action="store_true",
        help="also share on the local network, password-protected (address and password are printed)",
    )
    serve.add_argument(
        "--token",
        action="store_true",
        help="answer only requests that carry a token (printed, or $PIPEDESK_TOKEN) in an X-Pipedesk-Token header",
    )
    _add_device(serve)
    serve.set_defaults(func=cmd_serve)

    run = sub.add_parser("run", help="run one task once and print the result")
    run_sub = run.add_subparsers(title="tasks", metavar="TASK", required=True)
    for spec in TASKS.values():
        task = run_sub.add_parser(spec.id, help=spec.title, description=spec.description)
        task.add_argument(
            "input", metavar="INPUT", help="the text (or an image path for classify); - reads stdin"
        )
        task.add_argument("--model", default=None, help="a model label, Hub id, imported name or folder")
        add_task_options(task, spec)
        task.add_argument("--json", action="store_true", help="print the result as JSON")
        _add_device(task)
        task.set_defaults(func=cmd_run, task=spec.id)

    doctor = sub.add_parser("doctor", help="print versions, device, folders and offline state")
    doctor.add_argument("--json", action="store_true")
    _add_device(doctor)
    doctor.set_defaults(func=cmd_doctor)

    # Commands that live with their feature: each module's ``register(subparsers)`` adds its parsers.
    from desktop import batch_cli, models_cli

    for module in (models_cli, batch_cli):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    _ensure_streams()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"pipedesk: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
