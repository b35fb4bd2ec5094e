"""Concurrent clients on loopback: requests per second, p50 and p95 per configuration and level.

Run by hand (not a test)::

    .venv/bin/python benchmarks/load.py                      # 1, 5, 20 clients, 15 s each
    .venv/bin/python benchmarks/load.py --tiny --seconds 5   # a quick run
    .venv/bin/python benchmarks/load.py --configs pipedesk,blocks,blocks-batched --owner

Every configuration serves ``/sentiment`` on the same model (the DistilBERT-size random-weight
classifier and real tokenizer of ``batch.py``, or ``--tiny``), each in its own process (see
``serving.py``). For each level (``--clients``, default 1, 5 and 20) and each configuration in
turn (the order alternates from level to level), that many clients, each with its own keep-alive
connection, send requests back to back for ``--seconds``: ``POST /gradio_api/call/sentiment``,
then the event stream until ``complete``. A request is counted when it completes; requests per
second are completed requests over the time from the start to the last completion.

Configurations (``--configs``; each is one small function below, added to :data:`APPS`):

- ``pipedesk``: Pipedesk as ``pipedesk serve`` runs it (one request at a time on the model);
- ``blocks``: a plain ``gr.Blocks`` app calling Pipedesk's task function (one at a time);
- ``blocks-batched``: a plain ``gr.Blocks`` app with Gradio's own batching
  (``batch=True, max_batch_size=16``) over a transformers pipeline of the same model folder:
  requests that wait together go through the pipeline as one padded batch.

The first configuration is the baseline: at the highest level the others are compared with it
(target for a batched mode: >= 2x the requests per second and <= 0.5x the p95).

``--owner`` adds the owner's requests: one client that sends a request every
``--owner-interval`` seconds, alone first (its idle p95), then alongside every level (target:
its p95 while 20 clients load <= 2x its idle p95). TODO: for now the clients load the same
loopback server the owner uses; to measure what the issue asks (20 *LAN visitors*), the
``pipedesk`` configuration must also turn sharing on, and the clients must sign in on the LAN
port (Gradio's ``POST /login`` with the sharing password) and send their requests there. That
needs a way to start sharing with a known password from a script (``desktop/share/controller.py`` is
being rewritten now); then give :class:`serving.App` a ``visitor_url`` and use it in ``level``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Callable
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


APPS = (
    App("pipedesk", latency.pipedesk, sends_model=True, about="as pipedesk serve runs it"),
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

    @property
    def rps(self) -> float:
        return len(self.seconds) / self.elapsed if self.elapsed else 0.0


async def client(
    server: serving.Spawned,
    model_id: str,
    deadline: float,
    run: Run,
    offset: int,
    interval: float = 0.0,
    sessions: bool = False,
) -> float:
    """Send requests back to back (or one every ``interval`` s) until ``deadline``; returns when
    the last one completed. ``interval`` > 0 is the owner: its latencies go to ``run.owner``.
    ``sessions``: all this client's requests join one Gradio session (else each starts one)."""
    import httpx

    last = time.perf_counter()
    session = uuid.uuid4().hex if sessions else None
    async with httpx.AsyncClient(timeout=600) as http:
        sent = 0
        while time.perf_counter() < deadline:
            text = serving.TEXTS[(offset + sent) % len(serving.TEXTS)]
            started = time.perf_counter()
            try:
                await serving.call_async(http, server.url, server.payload(text, model_id), session)
            except Exception:  # a refusal or a broken stream counts as an error, the load goes on
                run.errors += 1
            else:
                last = time.perf_counter()
                (run.owner if interval else run.seconds).append(last - started)
            sent += 1
            if interval:
                await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))
    return last


async def level(
    server: serving.Spawned,
    model_id: str,
    clients: int,
    seconds: float,
    owner_interval: float,
    sessions: bool = False,
) -> Run:
    """``clients`` clients (and the owner, when ``owner_interval``) for ``seconds``."""
    run = Run(server.app.name, clients)
    started = time.perf_counter()
    deadline = started + seconds
    tasks = [client(server, model_id, deadline, run, i, sessions=sessions) for i in range(clients)]
    if owner_interval:
        tasks.append(client(server, model_id, deadline, run, 0, owner_interval, sessions))
    ends = await asyncio.gather(*tasks)
    run.elapsed = max(ends[:clients] or ends) - started
    run.rss_mb = resident_mb(server.info["pid"])
    return run


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
        default="pipedesk,blocks-batched",
        help=f"comma-separated, the first is the baseline; from: {', '.join(app.name for app in APPS)}",
    )
    parser.add_argument("--repeats", type=int, default=1, help="sweep every level this many times")
    parser.add_argument("--owner", action="store_true", help="also measure the owner's requests (see above)")
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
    print(f"Starting {len(apps)} servers (one process each)...", flush=True)
    servers = serving.spawn(Path(__file__).resolve(), apps, folder, model_id, args.device)
    owner_interval = args.owner_interval if args.owner else 0.0
    runs: list[Run] = []
    try:
        for server in servers:  # warm-up, then the owner alone (its idle latency)
            asyncio.run(level(server, model_id, 2, 2.0, 0.0))
            if args.owner:
                runs.append(
                    asyncio.run(level(server, model_id, 0, args.seconds, owner_interval, args.sessions))
                )
        turn = 0
        for _ in range(args.repeats):
            for clients in levels:
                order = servers if turn % 2 == 0 else servers[::-1]
                turn += 1
                for server in order:
                    run = asyncio.run(
                        level(server, model_id, clients, args.seconds, owner_interval, args.sessions)
                    )
                    runs.append(run)
                    print(
                        f"  {server.app.name}, {clients} clients: {run.rps:.1f} requests/s, "
                        f"p95 {1000 * serving.percentile(run.seconds, 95):.0f} ms; "
                        f"load average {serving.load_average()}",
                        flush=True,
                    )
    finally:
        for server in servers:
            server.stop()
    report(servers, runs, levels, args.owner)
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
            pool.rss_mb = run.rss_mb
    return pool


def report(servers: list[serving.Spawned], runs: list[Run], levels: list[int], owner: bool) -> None:
    ms = lambda values, p: 1000 * serving.percentile(values, p)  # noqa: E731
    print(
        "\n| Configuration | clients | requests | requests/s | p50 (ms) | p95 (ms) | errors | server memory after (MB) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for server in servers:
        for clients in levels:
            run = merged(runs, server.app.name, clients)
            print(
                f"| {server.app.name} ({server.app.about}) | {clients} | {len(run.seconds)} | {run.rps:.1f} | "
                f"{ms(run.seconds, 50):.0f} | {ms(run.seconds, 95):.0f} | {run.errors} | {run.rss_mb:,.0f} |"
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
    if owner:
        print(
            "\n| Configuration | the owner's requests alongside | owner p50 (ms) | owner p95 (ms) | p95 / idle p95 |"
        )
        print("|---|---:|---:|---:|---:|")
        for server in servers:
            idle = merged(runs, server.app.name, 0).owner
            for clients in [0, *levels]:
                mine = merged(runs, server.app.name, clients).owner
                ratio = ms(mine, 95) / ms(idle, 95)
                print(
                    f"| {server.app.name} | {clients} clients | {ms(mine, 50):.0f} | {ms(mine, 95):.0f} | "
                    f"{ratio:.2f}x{' (target <= 2x)' if clients == top else ''} |"
                )


if __name__ == "__main__":
    raise SystemExit(main())
