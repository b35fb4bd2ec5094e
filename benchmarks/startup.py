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
3. with ``--window``: ``python -m desktop`` under Xvfb (1280x900), its screen grabbed every 50 ms:
   the time until its window is on screen, and until the window shows the app's page, painted
   (the first frame that is the app as it stays: its splash lifted; what a person waits for after
   a double-click), and how many frames in between were neither the splash nor the app (an
   empty or black window, Gradio's "Loading…": 0 expected).

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


def run_window(display: str) -> tuple[float, float, int]:
    """``python -m desktop`` under Xvfb, watched frame by frame (``tests.support.screen``): seconds from
    the process start until its window is on screen, and until the window shows the app's page
    painted; and how many different frames in between were neither the splash nor the app."""
    from tests.support.screen import Recorder, kind_of
    from tests.support.window_driver import TITLE, find_window, window_geometry

    log = Path(os.environ["PIPEDESK_HOME"]) / "logs" / "pipedesk.log"
    shown_before = log.read_text(encoding="utf-8").count("The app is on screen") if log.exists() else 0
    env = {**os.environ, "DISPLAY": display}
    env.pop("WAYLAND_DISPLAY", None)
    recorder = Recorder(display, interval=0.05)
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "desktop"], cwd=serving.ROOT, env=env, stdout=subprocess.DEVNULL
    )
    try:
        wid = find_window(display, TITLE, timeout=60)
        if not wid:
            raise RuntimeError("no window after 60 s")
        on_screen = time.monotonic() - started
        while log.read_text(encoding="utf-8").count("The app is on screen") == shown_before:
            if time.monotonic() - started > 300 or process.poll() is not None:
                raise RuntimeError("the window never showed the app")
            time.sleep(0.1)
        time.sleep(1.5)  # the app as it stays: every app frame is compared with it
        frames = recorder.stop()
        x, y, width, height = window_geometry(display, wid)
    finally:
        recorder.stop()
        process.terminate()
        process.wait(30)
    box = (x, y, x + width, y + height)
    final = frames[-1].image.crop(box)
    kinds = [(frame.at, kind_of(frame.image.crop(box), final)) for frame in frames]
    while kinds and kinds[0][1] == "black":  # before the window was mapped
        kinds.pop(0)
    painted = next(at for at, kind in kinds if kind == "app") - (started - recorder.started)
    odd = sum(1 for _, kind in kinds if kind not in ("splash", "app"))
    return on_screen, painted, odd


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
                    runs[name].append(run_window(display))
                got = runs[name][-1]
                said = (
                    f"on screen {got[0]:.2f} s, app painted {got[1]:.2f} s, {got[2]} other frames"
                    if name == "window"
                    else f"page {got[0]:.2f} s, first answer {got[1]:.2f} s"
                )
                print(f"  round {number + 1}: {name}: {said}", flush=True)
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
        painted = statistics.median(r[1] for r in runs["window"])
        odd = sum(int(r[2]) for r in runs["window"])
        print(f"Window on screen: {window:.2f} s after the process started (target <= 1 s)")
        print(f"The app painted in the window: {painted:.2f} s after the process started")
        print(f"Frames neither the splash nor the app, all rounds: {odd} (target 0)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
