"""Cold start, side by side: the tutorial's one-box app against ``pipedesk serve`` (and the window).

Run by hand (not a test)::

    .venv/bin/python benchmarks/startup.py            # DistilBERT-size model, 3 rounds
    .venv/bin/python benchmarks/startup.py --tiny     # the tests' tiny SST-2 model
    .venv/bin/python benchmarks/startup.py --window   # also the window under Xvfb (needs xvfb, xdotool)

Each round starts, in turn (the order rotates), fresh processes of:

1. **the seed app**: the tutorial's script, ``pipeline("text-classification", <folder>)`` then a
   ``gr.Interface`` on it, ``launch()``;
2. **Pipedesk**: ``python -m desktop serve`` with the same model installed in its store, asked for
   by Hub id as the Sentiment tab does;
3. with ``--window``: ``python -m desktop`` under Xvfb: the time until its window is on screen.

For 1 and 2 it times, from the moment the process is started: **page** (``GET /`` answers 200:
a person can type and pick a model) and **first answer** (the first ``/sentiment`` request,
sent as soon as the page answers, comes back correct). Targets (issue #12): first answer <=
1.0x the seed app's, page <= 0.5x the seed app's page, window on screen <= 1 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import serving  # noqa: E402

SEED_APP = """
import sys
from transformers import pipeline
import gradio as gr

pipe = pipeline("text-classification", model=sys.argv[1])


def predict(text):
    return {r["label"]: r["score"] for r in pipe(text, top_k=None)}


gr.Interface(predict, gr.Textbox(label="Text"), gr.Label(), api_name="sentiment").launch(
    server_name="127.0.0.1", server_port=int(sys.argv[2]), ssr_mode=False, quiet=True
)
"""


def wait_page(url: str, process: subprocess.Popen, started: float, limit: float = 300) -> float:
    with httpx.Client(timeout=5) as client:
        while time.monotonic() - started < limit:
            if process.poll() is not None:
                raise RuntimeError(f"{url}: the process exited ({process.returncode})")
            try:
                if client.get(url).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
    raise RuntimeError(f"{url}: no page after {limit:.0f} s")


def first_answer(url: str, data: list, started: float) -> float:
    with httpx.Client(timeout=300) as client:
        output = serving.call(client, url, data)
    assert serving.top_label(output), output
    return time.monotonic() - started


def run_seed(folder: Path, script: Path) -> tuple[float, float]:
    port = serving.free_port()
    url = f"http://127.0.0.1:{port}/"
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, str(script), str(folder), str(port)], env=os.environ.copy())
    try:
        page = wait_page(url, process, started)
        return page, first_answer(url, [serving.TEXTS[0]], started)
    finally:
        process.terminate()
        process.wait(30)


def run_pipedesk(model_id: str) -> tuple[float, float]:
    port = serving.free_port()
    url = f"http://127.0.0.1:{port}/"
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "desktop", "serve", "--port", str(port)],
        cwd=serving.ROOT,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
    )
    try:
        page = wait_page(url, process, started)
        return page, first_answer(url, [serving.TEXTS[0], model_id], started)
    finally:
        process.terminate()
        process.wait(30)


def run_window(display: str) -> float:
    started = time.monotonic()
    env = {**os.environ, "DISPLAY": display}
    env.pop("WAYLAND_DISPLAY", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "desktop"], cwd=serving.ROOT, env=env, stdout=subprocess.DEVNULL
    )
    try:
        while time.monotonic() - started < 60:
            found = subprocess.run(
                ["xdotool", "search", "--onlyvisible", "--name", "^Pipedesk$"],
                env=env,
                capture_output=True,
                text=True,
            )
            if found.stdout.strip():
                return time.monotonic() - started
            time.sleep(0.02)
        raise RuntimeError("no window after 60 s")
    finally:
        process.terminate()
        process.wait(30)


def start_xvfb() -> tuple[subprocess.Popen, str]:
    read, write = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x900x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as pipe:
        return xvfb, f":{pipe.readline().strip()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny SST-2 model")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", action="store_true", help="also time the window under Xvfb")
    args = parser.parse_args(argv)
    folder, model_id = serving.prepare(args.tiny)
    serving.describe(args.tiny)
    script = Path(tempfile.mkdtemp(prefix="pipedesk-seed-")) / "seed_app.py"
    script.write_text(textwrap.dedent(SEED_APP), encoding="utf-8")
    xvfb, display = start_xvfb() if args.window else (None, "")
    runs: dict[str, list[tuple[float, ...]]] = {"seed app": [], "Pipedesk": [], "window": []}
    try:
        for number in range(args.rounds):
            order = ["seed app", "Pipedesk", "window"][: 3 if args.window else 2]
            order = order[number % len(order) :] + order[: number % len(order)]
            for name in order:
                if name == "seed app":
                    runs[name].append(run_seed(folder, script))
                elif name == "Pipedesk":
                    runs[name].append(run_pipedesk(model_id))
                else:
                    runs[name].append((run_window(display),))
                print(
                    f"  round {number + 1}: {name} {', '.join(f'{v:.2f} s' for v in runs[name][-1])}",
                    flush=True,
                )
    finally:
        if xvfb is not None:
            xvfb.terminate()
    seed_page = statistics.median(r[0] for r in runs["seed app"])
    seed_answer = statistics.median(r[1] for r in runs["seed app"])
    page = statistics.median(r[0] for r in runs["Pipedesk"])
    answer = statistics.median(r[1] for r in runs["Pipedesk"])
    print(f"\nMedians of {args.rounds} rounds (load average {serving.load_average()}):")
    print("| | page (s) | first answer (s) |\n|---|---:|---:|")
    print(f"| seed app | {seed_page:.2f} | {seed_answer:.2f} |")
    print(f"| Pipedesk | {page:.2f} | {answer:.2f} |")
    print(f"\nPage: Pipedesk / seed app = {page / seed_page:.2f}x (target <= 0.5)")
    print(f"First answer: Pipedesk / seed app = {answer / seed_answer:.2f}x (target <= 1.0)")
    if runs["window"]:
        window = statistics.median(r[0] for r in runs["window"])
        print(f"Window on screen: {window:.2f} s after the process started (target <= 1 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
