"""What the request benchmarks share: the model, the servers (one process each), the REST call.

Used by ``latency.py`` and ``load.py``; run by hand, never by the test suite.

A benchmark defines its configurations as :class:`App` objects: a small function that starts one
server (on ``setup.port``) and returns the task function it serves, so the server process can warm
the model up and time that function called directly. :func:`spawn` runs each configuration in its
own process (``python <script> --serve NAME ...``, handled by :func:`serve_main`), so servers never
share a GIL with each other or with the client; every server process gets the same environment,
the same model folder, and Pipedesk's store with that model installed under the Hub id the
Sentiment tab names (``install``), so Pipedesk resolves it as it would after a download.

Threads: the benchmark's main thread (and, in ``load.py``, one asyncio loop); server processes
serve from Gradio's threads and block their main thread on stdin until the benchmark ends.
"""

from __future__ import annotations

import argparse
import atexit
import json
import math
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

#: Every server process gets these (on top of the caller's environment).
SERVER_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "PYTHONUNBUFFERED": "1",
}
API = "sentiment"
#: Realistic one-to-three-sentence reviews, sent in this order (cycled) to every server alike.
TEXTS = (
    "I love this product! It works exactly as described and arrived two days early.",
    "The delivery was late and the box was damaged, so I am sending it back.",
    "The film was long, but the ending made it worth it.",
    "Customer service never answered my emails. Very disappointing experience overall.",
    "Solid build quality, decent battery life, although the screen could be brighter.",
    "Absolutely terrible. It broke after one week and the refund took a month.",
    "A pleasant surprise: the soup was hot, the bread fresh and the staff friendly.",
    "Not bad for the price. I would buy it again if it were on sale.",
)
READY = "READY "
#: How many direct calls one ``direct`` command times.
DIRECT_CALLS = 2 * len(TEXTS)


@dataclass
class Setup:
    """What a configuration needs to start its server (built by the server process)."""

    port: int
    device: str
    folder: Path  # the model as a save_pretrained folder (what a tutorial app loads)
    model_id: str  # the same model's Hub id, installed in Pipedesk's store (what the UI sends)
    lan_port: int | None = None  # set: turn LAN sharing on, on this port (``App.shares`` only)
    lan_password: str = ""  # the password LAN visitors sign in with
    info: dict[str, Any] = field(default_factory=dict)  # what the server reports back (READY line)
    stats: Callable[[], dict[str, Any]] | None = None  # counters answered to ``stats`` (batches...)


@dataclass(frozen=True)
class App:
    """One server configuration: ``start(setup)`` serves ``/sentiment`` on ``setup.port`` and
    returns the function it serves (called as ``direct(text)``); ``sends_model``: the API takes
    (text, model) rather than (text); ``shares``: given ``setup.lan_port``, it also turns LAN sharing
    on there and puts ``visitor_port`` into ``setup.info``."""

    name: str
    start: Callable[[Setup], Callable[[str], Any]]
    sends_model: bool = False
    about: str = ""
    shares: bool = False


@dataclass
class Spawned:
    """A server process started by :func:`spawn`."""

    app: App
    url: str
    process: subprocess.Popen
    info: dict[str, Any] = field(default_factory=dict)

    def payload(self, text: str, model_id: str) -> list[Any]:
        return [text, model_id] if self.app.sends_model else [text]

    def visitor_url(self, address: str) -> str | None:
        """The LAN sharing server's URL at ``address`` (an address of this machine), if it shares."""
        port = self.info.get("visitor_port")
        return f"http://{address}:{port}/" if port else None

    def stats(self) -> dict[str, Any]:
        """The server's counters (e.g. Pipedesk's batches run so far); {} if it keeps none."""
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def direct(self) -> list[float]:
        """Seconds each of :data:`DIRECT_CALLS` direct calls of the served function took (in the
        server process, no HTTP)."""
        self.process.stdin.write("direct\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()  # the server process exits when its stdin closes
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()


# --- the model --------------------------------------------------------------------------


def build_model(tiny: bool, workdir: Path) -> Path:
    """The model folder: the DistilBERT-size random classifier of ``batch.py`` with the real
    bert-base-uncased tokenizer, or (``tiny``) the tests' tiny SST-2 model (2 layers, 32 wide)."""
    if not tiny:
        from batch import build_model as distilbert_size

        return distilbert_size(workdir / "distilbert-size")
    from tests.support.tiny_models import SST2, cached_models

    return cached_models()[SST2]


# --- Pipedesk's own API, used only here (kept in step with desktop/ at each benchmark run) -----


def sentiment_model_id() -> str:
    """The Hub id the Sentiment tab names by default (what the page and API clients send)."""
    from desktop.tasks import sentiment

    return sentiment.SPEC.default_model.repo


def pipedesk_runtime(device: str, batch_requests: bool = True) -> Any:
    """A Pipedesk runtime as ``pipedesk serve`` makes one (its store: ``$PIPEDESK_HOME``'s);
    ``batch_requests=False``: every request runs alone (one request per batch)."""
    from desktop.engine.runtime import Runtime

    return Runtime(device=device, batch_requests=batch_requests)


def sentiment_batch_limits(device: str) -> tuple[int, int]:
    """(token budget, most pieces) of one Sentiment batch on ``device`` for a model with a pad token."""
    from types import SimpleNamespace

    from desktop.tasks import sentiment

    model = SimpleNamespace(can_pad=lambda: True)
    return sentiment.SPEC.batch_limits("cpu" if device == "cpu" else "cuda", model)


def share_on_lan(runtime: Any, port: int, password: str) -> int:
    """Turn Pipedesk's LAN sharing on for ``runtime`` (whose app is built), on ``port`` with
    ``password``, as the Sharing tab does; returns the port visitors use."""
    from desktop.share import controller

    share = controller.controller(runtime)
    share.requested_port = port  # benchmark servers share $PIPEDESK_HOME: no fight over port 7861
    share.set_password(password)
    share.enable()
    return int(share.port)


class EngineLog:
    """Where requests spend their time inside Pipedesk's engine: wraps ``runtime.batcher`` (its
    ``forward``, which a request enters to wait for and run its batch, and ``_execute``, one batch on
    the device). Counts since the last :meth:`take`; appended from Gradio's worker threads."""

    def __init__(self, batcher: Any, scheduler: Any = None) -> None:
        self.batches: list[tuple[float, int, bool, bool]] = []  # (s, requests, the owner's, beside visitors')
        self.engine: dict[str, list[float]] = {"owner": [], "visitors": []}  # seconds in forward
        forward, execute = batcher.forward, batcher._execute

        def timed_forward(*args: Any, **kwargs: Any) -> Any:
            priority = args[5] if len(args) > 5 else kwargs.get("priority", 0)
            started = time.perf_counter()
            try:
                return forward(*args, **kwargs)
            finally:
                self.engine["visitors" if priority else "owner"].append(time.perf_counter() - started)

        def timed_execute(
            loaded: Any, spec: Any, options: Any, batch: list[Any], *rest: Any, **kw: Any
        ) -> Any:
            started = time.perf_counter()
            # Beside someone else's work: anyone's but an owner's request holds the device now.
            beside = scheduler is not None and scheduler.holder not in (None, 0)
            try:
                return execute(loaded, spec, options, batch, *rest, **kw)
            finally:
                owner = any(request.priority == 0 for request in batch)
                beside = owner and beside
                self.batches.append((time.perf_counter() - started, len(batch), owner, beside))

        batcher.forward, batcher._execute = timed_forward, timed_execute

    def take(self) -> dict[str, Any]:
        """What was logged since the last call (and start afresh)."""
        batches, engine = self.batches, self.engine
        self.batches, self.engine = [], {"owner": [], "visitors": []}
        return {"batches": batches, "engine": engine}


def pipedesk_server(
    setup: Setup, batch_requests: bool = True, own_process: bool = False
) -> Callable[[str], Any]:
    """Pipedesk as ``pipedesk serve`` runs it (``desktop.cli.serve._serve`` without the wait loop:
    logging set up, ``build_app`` + ``server.start``, the gate in front, no token, the Local API on
    with no key); with ``setup.lan_port`` also LAN sharing, as ``pipedesk serve --lan`` with a known
    password."""
    from desktop import logs, server
    from desktop.engine.start import local_door
    from desktop.server.api_door import ApiAccess
    from desktop.ui.app import build_app

    logs.setup(console=True)
    if own_process:  # as `pipedesk serve` and the window run it: the engine in a child process
        from desktop.engine.start import open_door

        door = open_door(setup.device, own_process=True)
        door.device  # noqa: B018  (the engine has warmed up: the device is chosen)
    else:
        runtime = pipedesk_runtime(setup.device, batch_requests)
        door = local_door(runtime)
        setup.stats = EngineLog(runtime.batcher, runtime.scheduler).take
    server.start(build_app(door), port=setup.port, api_access=ApiAccess())
    if setup.lan_port:
        setup.info["visitor_port"] = share_on_lan(door, setup.lan_port, setup.lan_password)
    return pipedesk_predict(door, setup.model_id)


def pipedesk_predict(runtime: Any, model_id: str) -> Callable[[str], Any]:
    """Pipedesk's Sentiment task function on ``runtime``: ``text -> what the tab's Label shows``."""
    from desktop.tasks import sentiment

    return lambda text: sentiment.SPEC.predict(runtime, text, model_id).outputs[0]


def install(folder: Path, model_id: str) -> Path:
    """Put ``folder`` into Pipedesk's store (under ``$PIPEDESK_HOME``) as the installed download of
    ``model_id`` at the revision the app pins: the same snapshot + manifest layout a download
    leaves, so the app finds it 'ready' and loads it with no network call."""
    from dataclasses import asdict

    from desktop.models.state import READY, Manifest, safe_name
    from desktop.models.store import ModelStore
    from desktop.tasks import known_models

    ref = known_models()[model_id]
    store = ModelStore()
    commit = "0" * 40
    snapshot = store.storage(ref) / "snapshots" / commit
    shutil.rmtree(snapshot, ignore_errors=True)
    shutil.copytree(folder, snapshot, ignore=shutil.ignore_patterns(".*"))
    (store.storage(ref) / "refs").mkdir(parents=True, exist_ok=True)
    (store.storage(ref) / "refs" / ref.revision).write_text(commit)
    files = {p.relative_to(snapshot).as_posix(): p.stat().st_size for p in snapshot.rglob("*") if p.is_file()}
    manifest = Manifest(
        repo=ref.repo,
        revision=ref.revision,
        commit=commit,
        snapshot=snapshot.relative_to(store.root).as_posix(),
        files=files,
        sha256={},
        downloaded_at=time.time(),
    )
    store.manifests.mkdir(parents=True, exist_ok=True)
    (store.manifests / f"{safe_name(ref)}.json").write_text(json.dumps(asdict(manifest)))
    if store.status(ref) != READY:
        sys.exit(f"Installing the model into {store.root} failed: status {store.status(ref)!r}")
    return snapshot


def prepare(tiny: bool) -> tuple[Path, str]:
    """A fresh ``$PIPEDESK_HOME`` with the benchmark model installed; returns (folder, Hub id).

    Call before anything imports ``desktop`` (its paths follow ``$PIPEDESK_HOME``)."""
    work = Path(tempfile.mkdtemp(prefix="pipedesk-bench-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # the model copies weigh 0.5 GB
    os.environ["PIPEDESK_HOME"] = str(work / "home")
    os.environ.update(SERVER_ENV)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    folder = build_model(tiny, work)
    model_id = sentiment_model_id()
    install(folder, model_id)
    return folder, model_id


# --- server processes -------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(
    script: Path,
    apps: Sequence[App],
    folder: Path,
    model_id: str,
    device: str,
    lan_password: str = "",
) -> list[Spawned]:
    """Start one process per app (all at once) and return once every one answered.

    ``lan_password``: the apps that can (``App.shares``) also share on the LAN with it."""
    started = []
    for app in apps:
        port = free_port()
        command = [sys.executable, str(script), "--serve", app.name, "--port", str(port)]
        command += ["--folder", str(folder), "--model-id", model_id, "--device", device]
        if lan_password and app.shares:
            command += ["--lan-port", str(free_port()), "--lan-password", lan_password]
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=os.environ.copy()
        )
        started.append(Spawned(app=app, url=f"http://127.0.0.1:{port}/", process=process))
    for server in started:
        for line in server.process.stdout:
            if line.startswith(READY):
                server.info = json.loads(line[len(READY) :])
                break
        else:
            for other in started:
                other.stop()
            sys.exit(f"The {server.app.name} server exited before it was ready (see its output above)")
    return started


def serve_main(apps: Sequence[App], argv: Sequence[str]) -> int:
    """The server process: start ``--serve NAME``, warm it up, say READY, then answer commands.

    Commands arrive on stdin, one a line; the answer is one line on stdout (everything else the
    process prints goes to stderr): ``direct`` times the served function called directly
    (:data:`DIRECT_CALLS` calls, no HTTP) and answers their durations in seconds; ``stats``
    answers the configuration's counters (``Setup.stats``); the end of stdin (the benchmark
    closed it or exited) ends the process."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", required=True, choices=[app.name for app in apps])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--model-id", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lan-port", type=int, default=None)
    parser.add_argument("--lan-password", default="")
    args = parser.parse_args(argv)
    answers, sys.stdout = sys.stdout, sys.stderr
    app = next(app for app in apps if app.name == args.serve)
    setup = Setup(
        port=args.port,
        device=args.device,
        folder=args.folder,
        model_id=args.model_id,
        lan_port=args.lan_port,
        lan_password=args.lan_password,
    )
    direct = app.start(setup)
    for text in TEXTS:
        direct(text)
    import torch

    info = {**setup.info, "pid": os.getpid(), "torch_threads": torch.get_num_threads()}
    print(READY + json.dumps(info), file=answers, flush=True)
    for command in sys.stdin:
        if command.strip() == "stats":
            print(json.dumps(setup.stats() if setup.stats else {}), file=answers, flush=True)
        elif command.strip() == "direct":
            seconds = []
            for i in range(DIRECT_CALLS):
                started = time.perf_counter()
                direct(TEXTS[i % len(TEXTS)])
                seconds.append(time.perf_counter() - started)
            print(json.dumps(seconds), file=answers, flush=True)
    os._exit(0)  # skip Gradio's and torch's slow teardown


# --- the REST call ----------------------------------------------------------------------


def parse_events(lines: Any) -> Any:
    """The data of the ``complete`` event in an event stream's lines; raises on ``error``."""
    event = None
    for line in lines:
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event in ("complete", "error"):
            data = json.loads(line.split(":", 1)[1])
            if event == "error":
                raise RuntimeError(f"the server answered an error: {data}")
            return data
    raise RuntimeError("the event stream ended without a result")


def body(data: list[Any], session_hash: str | None) -> dict[str, Any]:
    """The JSON body of a call: the inputs, and the session to join if any."""
    return {"data": data, "session_hash": session_hash} if session_hash else {"data": data}


def call(client: Any, url: str, data: list[Any], session_hash: str | None = None) -> Any:
    """``POST /gradio_api/call/sentiment`` then read its event stream (httpx, keep-alive).

    Without ``session_hash`` (what a plain script sends) Gradio starts a new session for every
    request; with one, every request joins that session (as the page, or gradio_client, does)."""
    answer = client.post(f"{url}gradio_api/call/{API}", json=body(data, session_hash))
    answer.raise_for_status()
    event_id = answer.json()["event_id"]
    with client.stream("GET", f"{url}gradio_api/call/{API}/{event_id}") as stream:
        return parse_events(stream.iter_lines())


async def call_async(client: Any, url: str, data: list[Any], session_hash: str | None = None) -> Any:
    """:func:`call` for an ``httpx.AsyncClient``."""
    answer = await client.post(f"{url}gradio_api/call/{API}", json=body(data, session_hash))
    answer.raise_for_status()
    event_id = answer.json()["event_id"]
    async with client.stream("GET", f"{url}gradio_api/call/{API}/{event_id}") as stream:
        return parse_events([line async for line in stream.aiter_lines()])


def mcp_call(client: Any, url: str, data: list[Any], number: int = 1) -> Any:
    """The same request through the Local API: one ``POST /mcp`` (JSON-RPC ``tools/call`` of the
    task's MCP tool, as an MCP client sends it; a JSON answer), httpx with keep-alive."""
    arguments = dict(zip(("text", "model"), data, strict=False))
    message = {
        "jsonrpc": "2.0",
        "id": number,
        "method": "tools/call",
        "params": {"name": API, "arguments": arguments},
    }
    headers = {"Accept": "application/json, text/event-stream"}
    answer = client.post(f"{url}mcp", json=message, headers=headers)
    answer.raise_for_status()
    result = answer.json()["result"]
    if result.get("isError"):
        raise RuntimeError(f"the tool answered an error: {result['content']}")
    return result["structuredContent"]


def top_label(output: Any) -> str:
    """The best label in a gr.Label value (``{"label": ..., "confidences": [...]}``)."""
    value = output[0] if isinstance(output, list) else output
    return str(value.get("label"))


# --- numbers and the machine ------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def describe(tiny: bool) -> None:
    """Print the machine, the versions and the model."""
    import gradio
    import httpx
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"Machine: {cpu}, {os.cpu_count()} cores; load average {load_average()} (1, 5, 15 min)")
    print(
        f"Versions: Python {platform.python_version()}, gradio {gradio.__version__}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}, httpx {httpx.__version__}"
    )
    model = (
        "the tests' tiny SST-2 model (2 layers, 32 wide)"
        if tiny
        else "DistilBERT-size random classifier (6 layers, 768 wide), real bert-base-uncased tokenizer"
    )
    print(f"Model: {model}")
