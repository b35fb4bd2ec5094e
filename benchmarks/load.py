"""Concurrent clients: requests per second, p50 and p95 per configuration and level.

Run by hand (not a test)::

    .venv/bin/python benchmarks/load.py                      # 1, 5, 20 clients, 15 s each
    .venv/bin/python benchmarks/load.py --tiny --seconds 5   # a quick run
    .venv/bin/python benchmarks/load.py --configs pipedesk-single,pipedesk,blocks-batched --owner

Every configuration serves ``/sentiment`` on the same model (the DistilBERT-size random-weight
classifier and real tokenizer of ``batch.py``, or ``--tiny``), each in its own process (see
``serving.py``). For each level (``--clients``, default 1, 5 and 20) and each configuration in
turn (the order alternates from level to level), that many clients, each with its own keep-alive
connection, send requests back to back for ``--seconds``: ``POST /gradio_api/call/sentiment``,
then the event stream until ``complete``. A request is counted when it completes; requests per
second are completed requests over the time from the start to the last completion.

Configurations (``--configs``; each is one small function below, added to :data:`APPS`):

- ``pipedesk-single``: Pipedesk with ``Runtime(batch_requests=False)``: one request at a time;
- ``pipedesk``: Pipedesk as ``pipedesk serve`` runs it: requests that wait together run as one
  batch (``desktop/engine/batcher.py``);
- ``blocks``: a plain ``gr.Blocks`` app calling Pipedesk's task function (one at a time);
- ``blocks-batched``: a plain ``gr.Blocks`` app with Gradio's own batching
  (``batch=True, max_batch_size=16``) over a transformers pipeline of the same model folder.

The first configuration is the baseline: at the highest level the others are compared with it
(target for a batched mode: >= 2x the requests per second and <= 0.5x the p95).

``--owner`` adds the owner's requests: one client, in a process of its own (the owner's browser is not one of
the visitors' devices), that sends a request every
``--owner-interval`` seconds to the app on 127.0.0.1, alone (its idle p95: for ``--seconds`` /
levels just before each run, so idle and loaded runs are spread over the same minutes) and
alongside every level (target: its p95 beside 20 visitors <= 2x its idle p95). The Pipedesk configurations
then also turn LAN sharing on with a known password (in the server process, as the Sharing tab
does), and the load clients are LAN visitors: each comes from an address of its own in
127.0.0.0/8 (127.0.0.10, .11, ...: another device, as far as the server can tell), signs in on
the sharing port (``POST /login``, any name and the password) and sends its requests there. The
other configurations have no sharing: their clients and the owner use the same server.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import multiprocessing
import secrets
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import latency  # noqa: E402
import serving  # noqa: E402
from serving import App, Setup  # noqa: E402

RPS_TARGET, P95_TARGET = 2.0, 0.5  # a batched mode vs one at a time, at the highest level
OWNER_TARGET = 2.0  # the owner's p95 under load <= this x its idle p95
MAX_BATCH = 16


def blocks_batched(setup: Setup) -> Callable[[str], Any]:
    """A plain Blocks app with Gradio's batching over a transformers pipeline of the same model:
    the requests waiting together (at most :data:`MAX_BATCH`) go through it as one padded batch."""
    import gradio as gr
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(setup.folder), device=setup.device)

    def predict(texts: list[str]) -> list[list[dict[str, float]]]:
        batch = list(texts)  # Gradio passes a tuple, which the pipeline would read as one input
        results = pipe(batch, batch_size=len(batch), top_k=None, truncation=True)
        return [[{result["label"]: result["score"] for result in scores} for scores in results]]

    with gr.Blocks(analytics_enabled=False) as blocks:
        text = gr.Textbox(label="Text")
        label = gr.Label(label="Sentiment")
        gr.Button("Run").click(
            predict, text, label, api_name=serving.API, batch=True, max_batch_size=MAX_BATCH
        )
    latency.launch(blocks, setup)
    return lambda text: predict([text])[0][0]


def pipedesk_single(setup: Setup) -> Callable[[str], Any]:
    """Pipedesk with request merging off: every request runs alone (the baseline)."""
    return serving.pipedesk_server(setup, batch_requests=False)


def pipedesk(setup: Setup) -> Callable[[str], Any]:
    """Pipedesk as shipped: concurrent requests for the same model run as one batch."""
    return serving.pipedesk_server(setup)


def pipedesk_with(adjust: Callable[[Setup], None]) -> Callable[[Setup], Callable[[str], Any]]:
    """An A/B variant of Pipedesk (not what ships): ``adjust(setup)`` runs in the server process
    before Pipedesk starts there."""

    def start(setup: Setup) -> Callable[[str], Any]:
        adjust(setup)
        return serving.pipedesk_server(setup)

    return start


def guest_tokens(tokens: int) -> Callable[[Setup], None]:
    """Visitors' batches capped at ``tokens`` padded tokens (``batcher.GUEST_BUDGET_SHARE``; 256 ships)."""

    def adjust(setup: Setup) -> None:
        from desktop.engine import batcher

        budget, _ = serving.sentiment_batch_limits(setup.device)
        batcher.GUEST_BUDGET_SHARE = tokens / budget

    return adjust


def setting(module: str, name: str, value: Any) -> Callable[[Setup], None]:
    """``module.name = value`` (a constant of Pipedesk's, e.g. the lane's ``NICE_STEP``)."""

    def adjust(_setup: Setup) -> None:
        setattr(importlib.import_module(module), name, value)

    return adjust


def switch_interval(seconds: float) -> Callable[[Setup], None]:
    """The interpreter's thread switch interval (Python's default is 5 ms)."""
    return lambda _setup: sys.setswitchinterval(seconds)


def queue_poll(seconds: float) -> Callable[[Setup], None]:
    """Gradio's queue waits ``seconds`` between looks while it has nothing to start
    (``Queue.sleep_when_free``: 1 ms, 50 ms on Windows)."""

    def adjust(_setup: Setup) -> None:
        from gradio import queueing

        init = queueing.Queue.__init__

        def patched(self: Any, *args: Any, **kwargs: Any) -> None:
            init(self, *args, **kwargs)
            self.sleep_when_free = seconds

        queueing.Queue.__init__ = patched  # type: ignore[method-assign]

    return adjust


APPS = (
    App("pipedesk-single", pipedesk_single, True, "Runtime(batch_requests=False)", shares=True),
    App("pipedesk", pipedesk, True, "requests batched, the engine in the server's process", shares=True),
    App(
        "pipedesk-process",
        lambda setup: serving.pipedesk_server(setup, own_process=True),
        True,
        "as pipedesk serve runs it: requests batched, the engine in a process of its own",
        shares=True,
    ),
    *(
        App(
            f"pipedesk-guest{tokens}",
            pipedesk_with(guest_tokens(tokens)),
            True,
            f"A/B: visitors' batches <= {tokens} tokens",
            shares=True,
        )
        for tokens in (64, 128, 512, 1024)
    ),
    App(
        "pipedesk-nice0",
        pipedesk_with(setting("desktop.engine.lane", "NICE_STEP", 0)),
        True,
        "A/B: the visitors' lane at normal priority",
        shares=True,
    ),
    App(
        "pipedesk-concurrency16",
        pipedesk_with(setting("desktop.ui.task_tab", "CONCURRENT_REQUESTS", 16)),
        True,
        "A/B: 16 task requests in at once (32 ship)",
        shares=True,
    ),
    App(
        "pipedesk-switch0.1ms",
        pipedesk_with(switch_interval(1e-4)),
        True,
        "A/B: a 0.1 ms interpreter switch interval",
        shares=True,
    ),
    App(
        "pipedesk-poll20ms",
        pipedesk_with(queue_poll(0.02)),
        True,
        "A/B: Gradio's queue polls every 20 ms",
        shares=True,
    ),
    App("blocks", latency.plain_blocks, about="plain gr.Blocks, one at a time"),
    App("blocks-batched", blocks_batched, about=f"plain gr.Blocks, batch=True, max_batch_size={MAX_BATCH}"),
)


@dataclass
class Run:
    """What one configuration did at one level."""

    config: str
    clients: int
    seconds: list[float] = field(default_factory=list)  # each completed request's latency
    errors: int = 0
    elapsed: float = 0.0
    owner: list[float] = field(default_factory=list)  # the owner's latencies during this run
    rss_mb: float = float("nan")  # the server's resident memory after the run
    visitors: bool = False  # the clients were LAN visitors on the sharing port
    batches: list[tuple[float, int, bool, bool]] = field(
        default_factory=list
    )  # (s, requests, owner's, beside)
    engine: dict[str, list[float]] = field(default_factory=dict)  # s in Pipedesk's engine, owner/visitors
    first_error: str = ""

    @property
    def rps(self) -> float:
        return len(self.seconds) / self.elapsed if self.elapsed else 0.0


def visitor_address(number: int) -> str:
    """The source address of LAN visitor ``number``: one of its own in 127.0.0.0/8 (not 127.0.0.1,
    which is this computer's own)."""
    return f"127.0.{number // 240}.{10 + number % 240}"


async def connect(server: serving.Spawned, number: int, password: str) -> tuple[Any, str]:
    """A keep-alive client and the URL it sends to: the app on loopback, or, when ``password`` and the
    server shares, LAN visitor ``number`` signed in on the sharing port."""
    import httpx

    address = visitor_address(number)
    url = server.visitor_url(address) if password else None
    if url is None:
        return httpx.AsyncClient(timeout=600), server.url
    http = httpx.AsyncClient(timeout=600, transport=httpx.AsyncHTTPTransport(local_address=address))
    answer = await http.post(f"{url}login", data={"username": f"visitor-{number}", "password": password})
    if answer.status_code != 200:
        await http.aclose()
        raise RuntimeError(
            f"LAN visitor {address} could not sign in: {answer.status_code} {answer.text[:200]}"
        )
    return http, url


async def client(
    http: Any,
    url: str,
    server: serving.Spawned,
    model_id: str,
    deadline: float,
    run: Run,
    offset: int,
    sessions: bool = False,
) -> float:
    """Send requests to ``url`` back to back until ``deadline``; returns when the last one completed.
    ``sessions``: all this client's requests join one Gradio session (else each starts one)."""
    last = time.perf_counter()
    session = uuid.uuid4().hex if sessions else None
    try:
        sent = 0
        while time.perf_counter() < deadline:
            text = serving.TEXTS[(offset + sent) % len(serving.TEXTS)]
            started = time.perf_counter()
            try:
                await serving.call_async(http, url, server.payload(text, model_id), session)
            except Exception as exc:  # a refusal or a broken stream counts as an error, the load goes on
                run.errors += 1
                run.first_error = run.first_error or f"{type(exc).__name__}: {exc}"[:300]
            else:
                last = time.perf_counter()
                run.seconds.append(last - started)
            sent += 1
    finally:
        await http.aclose()
    return last


async def level(
    server: serving.Spawned,
    model_id: str,
    clients: int,
    seconds: float,
    owner_interval: float,
    sessions: bool = False,
    password: str = "",
) -> Run:
    """``clients`` clients (LAN visitors when ``password`` and the server shares) and the owner (on
    loopback, when ``owner_interval``) for ``seconds``. Visitors sign in before the clock starts."""
    run = Run(server.app.name, clients)
    connections = [await connect(server, i, password) for i in range(clients)]
    run.visitors = any(url != server.url for _, url in connections)
    server.stats()  # the engine's log starts afresh
    started = time.perf_counter()
    deadline = started + seconds
    tasks = [
        client(http, url, server, model_id, deadline, run, i, sessions=sessions)
        for i, (http, url) in enumerate(connections)
    ]
    owner = None
    if owner_interval:  # the owner's browser is a process of its own, not one of the visitors' devices
        payloads = [server.payload(text, model_id) for text in serving.TEXTS]
        owner = OWNER_PROCESS.submit(owner_latencies, server.url, payloads, seconds, owner_interval, sessions)
    ends = await asyncio.gather(*tasks) if tasks else [time.perf_counter()]
    if owner is not None:
        latencies, errors = owner.result()
        run.owner += latencies
        run.errors += len(errors)
        run.first_error = run.first_error or (errors[0] if errors else "")
    run.elapsed = max(ends[:clients] or ends) - started
    run.rss_mb = resident_mb(server.info["pid"])
    logged = server.stats()
    run.batches, run.engine = logged.get("batches", []), logged.get("engine", {})
    return run


#: The owner's client (see :func:`level`); fork: started once, before any server is busy.
OWNER_PROCESS = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))


def owner_latencies(
    url: str, payloads: list[list[Any]], seconds: float, interval: float, sessions: bool
) -> tuple[list[float], list[str]]:
    """The owner: on loopback, one request every ``interval`` s for ``seconds``, in its own process
    (with the visitors' clients in the same event loop, their work would delay the owner's client
    and count as the server's). Returns the latencies and the errors."""
    import httpx

    async def ask() -> tuple[list[float], list[str]]:
        latencies, errors = [], []
        session = uuid.uuid4().hex if sessions else None
        deadline = time.perf_counter() + seconds
        async with httpx.AsyncClient(timeout=600) as http:
            sent = 0
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    await serving.call_async(http, url, payloads[sent % len(payloads)], session)
                except Exception as exc:
                    errors.append(f"owner: {type(exc).__name__}: {exc}"[:300])
                else:
                    latencies.append(time.perf_counter() - started)
                sent += 1
                await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))
        return latencies, errors

    return asyncio.run(ask())


def resident_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS"))
    except (OSError, StopIteration):
        return float("nan")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--serve" in argv:
        return serving.serve_main(APPS, argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny SST-2 model (a quick run)")
    parser.add_argument("--seconds", type=float, default=15, help="per level and configuration (default 15)")
    parser.add_argument("--clients", default="1,5,20", help="concurrency levels (default 1,5,20)")
    parser.add_argument(
        "--configs",
        default="pipedesk-single,pipedesk,blocks-batched",
        help=f"comma-separated, the first is the baseline; from: {', '.join(app.name for app in APPS)}",
    )
    parser.add_argument("--repeats", type=int, default=1, help="sweep every level this many times")
    parser.add_argument(
        "--owner",
        action="store_true",
        help="also the owner's requests on loopback, with the clients as LAN visitors (see above)",
    )
    parser.add_argument("--owner-interval", type=float, default=0.25, help="seconds between owner requests")
    parser.add_argument(
        "--sessions",
        action="store_true",
        help="each client keeps one Gradio session, as a browser tab or gradio_client does (default: "
        "none, as a plain script: Gradio then starts a session for every request)",
    )
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.configs.split(",") if name.strip()]
    unknown = set(names) - {app.name for app in APPS}
    if unknown:
        parser.error(f"unknown configuration(s): {', '.join(sorted(unknown))}")
    levels = [int(n) for n in args.clients.split(",")]

    folder, model_id = serving.prepare(args.tiny)
    serving.describe(args.tiny)
    apps = [next(app for app in APPS if app.name == name) for name in names]
    password = secrets.token_urlsafe(12) if args.owner else ""  # LAN sharing's, for this run only
    print(f"Starting {len(apps)} servers (one process each)...", flush=True)
    servers = serving.spawn(Path(__file__).resolve(), apps, folder, model_id, args.device, password)
    owner_interval = args.owner_interval if args.owner else 0.0
    OWNER_PROCESS.submit(int).result()  # forked now, while this process runs no event loop
    runs: list[Run] = []
    try:
        for server in servers:  # warm-up (visitors' app too)
            asyncio.run(level(server, model_id, 2, 2.0, 0.0, password=password))
        idle = args.seconds / len(levels)  # the owner alone before each run: side by side in time
        turn = 0
        for _ in range(args.repeats):
            for clients in levels:
                order = servers if turn % 2 == 0 else servers[::-1]
                turn += 1
                for server in order:
                    if args.owner:
                        runs.append(
                            asyncio.run(level(server, model_id, 0, idle, owner_interval, args.sessions))
                        )
                    run = asyncio.run(
                        level(
                            server, model_id, clients, args.seconds, owner_interval, args.sessions, password
                        )
                    )
                    runs.append(run)
                    owner = (
                        f", owner p95 {1000 * serving.percentile(run.owner, 95):.0f} ms" if run.owner else ""
                    )
                    print(
                        f"  {server.app.name}, {clients} {'LAN visitors' if run.visitors else 'clients'}: "
                        f"{run.rps:.1f} requests/s, p95 {1000 * serving.percentile(run.seconds, 95):.0f} ms"
                        f"{owner}; load average {serving.load_average()}",
                        flush=True,
                    )
                    if run.errors:
                        print(f"    {run.errors} errors, the first: {run.first_error}", flush=True)
    finally:
        for server in servers:
            server.stop()
    report(servers, runs, levels, args.owner)
    print(f"Load average after: {serving.load_average()}")
    return 0


def merged(runs: list[Run], config: str, clients: int) -> Run:
    """Every run of ``config`` at ``clients`` pooled (``--repeats``)."""
    pool = Run(config, clients)
    for run in runs:
        if run.config == config and run.clients == clients:
            pool.seconds += run.seconds
            pool.owner += run.owner
            pool.errors += run.errors
            pool.elapsed += run.elapsed
            pool.batches += run.batches
            for who, seconds in run.engine.items():
                pool.engine.setdefault(who, []).extend(seconds)
            pool.visitors = run.visitors
            pool.rss_mb = run.rss_mb
    return pool


def report(servers: list[serving.Spawned], runs: list[Run], levels: list[int], owner: bool) -> None:
    ms = lambda values, p: 1000 * serving.percentile(values, p)  # noqa: E731
    print(
        "\n| Configuration | clients | requests | requests/s | p50 (ms) | p95 (ms) | errors "
        "| requests per batch | server memory after (MB) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for server in servers:
        for clients in levels:
            run = merged(runs, server.app.name, clients)
            who = f"{clients} LAN visitors" if run.visitors else str(clients)
            done = len(run.seconds) + len(run.owner)
            per_batch = f"{done / len(run.batches):.1f}" if run.batches else "-"
            print(
                f"| {server.app.name} ({server.app.about}) | {who} | {len(run.seconds)} | {run.rps:.1f} | "
                f"{ms(run.seconds, 50):.0f} | {ms(run.seconds, 95):.0f} | {run.errors} | {per_batch} "
                f"| {run.rss_mb:,.0f} |"
            )
    top = max(levels)
    base = merged(runs, servers[0].app.name, top)
    print()
    for server in servers[1:]:
        other = merged(runs, server.app.name, top)
        rps = other.rps / base.rps if base.rps else float("nan")
        p95 = ms(other.seconds, 95) / ms(base.seconds, 95)
        verdict = "met" if rps >= RPS_TARGET and p95 <= P95_TARGET else "not met"
        print(
            f"{server.app.name} / {servers[0].app.name} at {top} clients: requests/s {rps:.2f}x "
            f"(target >= {RPS_TARGET}x), p95 {p95:.2f}x (target <= {P95_TARGET}x): {verdict}"
        )
    engine_table(servers, runs, levels, owner)
    if owner:
        print(
            "\n| Configuration | the owner's requests (loopback) alongside | owner requests | owner p50 (ms) "
            "| owner p95 (ms) | p95 / idle p95 |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        for server in servers:
            idle = merged(runs, server.app.name, 0).owner
            for clients in [0, *levels]:
                run = merged(runs, server.app.name, clients)
                mine = run.owner
                ratio = ms(mine, 95) / ms(idle, 95)
                who = (
                    "nothing" if not clients else f"{clients} {'LAN visitors' if run.visitors else 'clients'}"
                )
                verdict = ""
                if clients == top:
                    verdict = (
                        f" ({'met' if ratio <= OWNER_TARGET else 'not met'}: target <= {OWNER_TARGET:g}x)"
                    )
                print(
                    f"| {server.app.name} | {who} | {len(mine)} | {ms(mine, 50):.0f} | {ms(mine, 95):.0f} | "
                    f"{ratio:.2f}x{verdict} |"
                )


def engine_table(servers: list[serving.Spawned], runs: list[Run], levels: list[int], owner: bool) -> None:
    """Inside Pipedesk's engine (timed in the server process): its batches, and each request's time
    from entering the batcher to getting its outputs (waiting for the device, then its batch)."""
    ms = lambda values, p: 1000 * serving.percentile(values, p)  # noqa: E731
    rows = []
    for server in servers:
        for clients in [0, *levels] if owner else levels:
            run = merged(runs, server.app.name, clients)
            if not run.batches:
                continue
            seconds = [b[0] for b in run.batches]
            sizes = [b[1] for b in run.batches]
            ours = [b for b in run.batches if b[2]]
            beside = [b for b in ours if len(b) > 3 and b[3]]  # run beside a visitors' batch
            mine, theirs = run.engine.get("owner", []), run.engine.get("visitors", [])
            rows.append(
                f"| {server.app.name} | {clients} | {len(sizes)} | {sum(sizes) / len(sizes):.1f} | "
                f"{ms(seconds, 50):.0f} / {ms(seconds, 95):.0f} | "
                + (
                    f"{ms([b[0] for b in ours], 50):.0f} / {ms([b[0] for b in ours], 95):.0f}"
                    if ours
                    else "-"
                )
                + " | "
                + (
                    f"{len(beside)}: {ms([b[0] for b in beside], 50):.0f} / {ms([b[0] for b in beside], 95):.0f}"
                    if beside
                    else "-"
                )
                + f" | {ms(mine, 50):.0f} / {ms(mine, 95):.0f} | "
                + (f"{ms(theirs, 50):.0f} / {ms(theirs, 95):.0f} |" if theirs else "- |")
            )
    if rows:
        print(
            "\n| Pipedesk's engine | clients | batches | requests per batch | batch (ms) p50 / p95 "
            "| the owner's batches (ms) p50 / p95 | of those beside a visitors' batch: n, ms p50 / p95 | owner in the engine (ms) p50 / p95 "
            "| visitors in the engine (ms) p50 / p95 |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        print("\n".join(rows))


if __name__ == "__main__":
    raise SystemExit(main())
