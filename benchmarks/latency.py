"""Warm request latency over REST: a plain Gradio Blocks app, the tutorial's app, Pipedesk.

Run by hand (not a test)::

    .venv/bin/python benchmarks/latency.py            # DistilBERT-size model, 30 rounds
    .venv/bin/python benchmarks/latency.py --tiny     # the tests' tiny SST-2 model: a quick run

Four servers, each in its own process, serve the same model (the random-weight DistilBERT-size
classifier and real tokenizer of ``batch.py``, or ``--tiny``) on ``/sentiment``:

1. **plain Blocks**: a ``gr.Blocks`` with a Textbox, a Label and one click event whose handler
   calls Pipedesk's own task function (``desktop.tasks.sentiment.SPEC.predict``) on a Pipedesk
   ``Runtime``: the same model resolution, lock and pipeline call, none of Pipedesk's web layer;
2. **tutorial app**: the one-box app of the Hugging Face / Gradio tutorials, ``gr.Interface`` over
   a transformers ``pipeline("text-classification")`` loaded from the model folder;
3. **Pipedesk**: ``desktop.ui.app.build_app`` + ``desktop.server.start``, as ``pipedesk serve``
   runs it (logging set up, gate in front, no token, the engine in a process of its own), the
   model given by its Hub id, installed in Pipedesk's store, as the Sentiment tab sends it;
4. **Pipedesk in-process**: the same with the engine in the server's own process (the cost of the
   process boundary is 3 against 4).

A request is what a script does: ``POST /gradio_api/call/sentiment``, then read the event stream
until ``complete`` (plain httpx, one keep-alive connection per server, not gradio_client, whose
own polling costs more than the servers). The Pipedesk server is also asked through its Local API,
as an MCP client asks it: one ``POST /mcp`` calling the ``sentiment`` tool (``Pipedesk MCP``).
Requests are sent one at a time in rounds: each round sends ``--per-round`` requests to every
target in turn (the order rotates), so a busy machine slows all alike. It prints median and p95
per target, the ratio Pipedesk / plain Blocks (target <= 1.1) and the Local API's against
Pipedesk's Gradio API on the same server (target <= 1.2).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import serving  # noqa: E402
from serving import App, Setup  # noqa: E402

TARGET = 1.1  # Pipedesk's median <= this x the plain Blocks app's
API_TARGET = 1.2  # the Local API's median <= this x the Gradio API's, on the same Pipedesk server
ONE_SESSION = "Pipedesk, one session"
MCP = "Pipedesk MCP"


def launch(blocks: Any, setup: Setup) -> None:
    """What a plain Gradio script does: the default queue, on loopback, no SSR."""
    blocks.launch(
        server_name="127.0.0.1",
        server_port=setup.port,
        prevent_thread_lock=True,
        quiet=True,
        ssr_mode=False,
    )


def plain_blocks(setup: Setup) -> Callable[[str], Any]:
    """1. A plain Blocks app around the same task function."""
    import gradio as gr

    predict = serving.pipedesk_predict(serving.pipedesk_runtime(setup.device), setup.model_id)
    with gr.Blocks(analytics_enabled=False) as blocks:
        text = gr.Textbox(label="Text")
        label = gr.Label(label="Sentiment")
        gr.Button("Run").click(predict, inputs=text, outputs=label, api_name=serving.API)
    launch(blocks, setup)
    return predict


def tutorial(setup: Setup) -> Callable[[str], Any]:
    """2. The tutorial's one-box app: gr.Interface over a transformers pipeline."""
    import gradio as gr
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(setup.folder), device=setup.device)

    def predict(text: str) -> dict[str, float]:
        return {result["label"]: result["score"] for result in pipe(text, top_k=None)}

    demo = gr.Interface(predict, gr.Textbox(label="Text"), gr.Label(label="Sentiment"), api_name=serving.API)
    launch(demo, setup)
    return predict


def pipedesk(setup: Setup) -> Callable[[str], Any]:
    """3. Pipedesk as ``pipedesk serve`` runs it (``build_app`` + ``server.start``, the engine in a
    process of its own)."""
    return serving.pipedesk_server(setup, own_process=True)


def pipedesk_in_process(setup: Setup) -> Callable[[str], Any]:
    """4. Pipedesk with the engine in the server's own process (as before the engine process)."""
    return serving.pipedesk_server(setup)


APPS = (
    App("plain Blocks", plain_blocks, about="gr.Blocks + the same task function"),
    App("tutorial app", tutorial, about="gr.Interface over a pipeline"),
    App("Pipedesk", pipedesk, sends_model=True, about="build_app + server.start, engine process"),
    App(
        "Pipedesk in-process",
        pipedesk_in_process,
        sends_model=True,
        about="the engine in the server's process",
    ),
)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--serve" in argv:
        return serving.serve_main(APPS, argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny SST-2 model (a quick run)")
    parser.add_argument("--rounds", type=int, default=30, help="rounds (default 30)")
    parser.add_argument("--per-round", type=int, default=5, help="requests per server per round (default 5)")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured requests per server first")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    args = parser.parse_args(argv)

    folder, model_id = serving.prepare(args.tiny)
    serving.describe(args.tiny)
    print(f"Starting {len(APPS)} servers (one process each)...", flush=True)
    servers = serving.spawn(Path(__file__).resolve(), APPS, folder, model_id, args.device)
    ours = next(server for server in servers if server.app.name == "Pipedesk")
    targets = [Target(server.app.name, server) for server in servers]
    targets.append(Target(ONE_SESSION, ours, session_hash=uuid.uuid4().hex))
    targets.append(Target(MCP, ours, mcp=True))
    try:
        labels = {}
        for target in targets:
            for i in range(args.warmup):
                labels[target.name] = serving.top_label(
                    target.call(serving.TEXTS[i % len(serving.TEXTS)], model_id)
                )
            target.seconds.clear()  # warm-up requests are not measured
        direct: dict[str, list[float]] = {server.app.name: [] for server in servers}
        for number in range(args.rounds):
            turn = targets[number % len(targets) :] + targets[: number % len(targets)]
            for target in turn:
                for i in range(args.per_round):
                    target.call(serving.TEXTS[(number * args.per_round + i) % len(serving.TEXTS)], model_id)
            if number % 10 == 0 or number + 1 == args.rounds:  # the functions alone, in turn too
                for server in servers:
                    direct[server.app.name] += server.direct()
            if (number + 1) % 10 == 0 or number + 1 == args.rounds:
                medians = ", ".join(
                    f"{t.name} {1000 * serving.percentile(t.seconds, 50):.1f}" for t in targets
                )
                print(f"  round {number + 1}/{args.rounds}: medians (ms) {medians}", flush=True)
        report(targets, direct, labels)
    finally:
        for target in targets:
            target.client.close()
        for server in servers:
            server.stop()
    print(f"Load average after: {serving.load_average()}")
    return 0


class Target:
    """Where requests go: a server, and whether they all join one Gradio session."""

    def __init__(
        self, name: str, server: serving.Spawned, session_hash: str | None = None, mcp: bool = False
    ) -> None:
        import httpx

        self.name, self.server, self.session_hash, self.mcp = name, server, session_hash, mcp
        self.client = httpx.Client(timeout=60)  # one keep-alive connection per target
        self.seconds: list[float] = []

    def call(self, text: str, model_id: str) -> Any:
        started = time.perf_counter()
        data = self.server.payload(text, model_id)
        if self.mcp:
            output = serving.mcp_call(self.client, self.server.url, data, len(self.seconds) + 1)
        else:
            output = serving.call(self.client, self.server.url, data, self.session_hash)
        self.seconds.append(time.perf_counter() - started)
        return output


def report(targets: list[Target], direct: dict[str, list[float]], labels: dict[str, str]) -> None:
    ms = lambda values, p: 1000 * serving.percentile(values, p)  # noqa: E731
    print("\n| Server | requests | median (ms) | p95 (ms) | its function called directly, median (ms) |")
    print("|---|---:|---:|---:|---:|")
    for target in targets:
        times = target.seconds
        about = target.server.app.about if target.session_hash is None else "every request in one session"
        about = "POST /mcp, the sentiment tool" if target.mcp else about
        calls = direct.get(target.name)
        print(
            f"| {target.name} ({about}) | {len(times)} | {ms(times, 50):.1f} | {ms(times, 95):.1f} | "
            f"{f'{ms(calls, 50):.1f}' if calls else 'same server'} |"
        )
    if len(set(labels.values())) > 1:
        print(f"\nWARNING: the servers disagree on the last warm-up text's label: {labels}")
    seconds = {target.name: target.seconds for target in targets}
    plain, ours = seconds["plain Blocks"], seconds["Pipedesk"]
    ratio = ms(ours, 50) / ms(plain, 50)
    verdict = "met" if ratio <= TARGET else f"MISSED by {ratio / TARGET - 1:.0%}"
    print(f"\nPipedesk / plain Blocks, median: {ratio:.2f}x (target <= {TARGET}x: {verdict})")
    print(f"Pipedesk / plain Blocks, p95: {ms(ours, 95) / ms(plain, 95):.2f}x")
    print(f"Pipedesk / tutorial app, median: {ms(ours, 50) / ms(seconds['tutorial app'], 50):.2f}x")
    print(f"{ONE_SESSION} / plain Blocks, median: {ms(seconds[ONE_SESSION], 50) / ms(plain, 50):.2f}x")
    api = ms(seconds[MCP], 50) / ms(ours, 50)
    verdict = "met" if api <= API_TARGET else f"MISSED by {api / API_TARGET - 1:.0%}"
    print(f"Local API (MCP) / Pipedesk's Gradio API, median: {api:.2f}x (target <= {API_TARGET}x: {verdict})")
    print(f"Local API (MCP) / Pipedesk's Gradio API, p95: {ms(seconds[MCP], 95) / ms(ours, 95):.2f}x")


if __name__ == "__main__":
    raise SystemExit(main())
