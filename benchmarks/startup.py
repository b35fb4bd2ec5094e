"""Cold start, side by side: the tutorial's one-box app against ``pipedesk serve`` (and the window).

Run by hand (not a test)::

    .venv/bin/python benchmarks/startup.py            # DistilBERT-size model, 3 rounds
    .venv/bin/python benchmarks/startup.py --tiny     # the tests' tiny SST-2 model
    .venv/bin/python benchmarks/startup.py --window   # also the window under Xvfb (needs xvfb, xdotool)
    .venv/bin/python benchmarks/startup.py --window-only --window-baseline DIR  # this window vs DIR's

Each round starts, in turn (the order rotates), fresh processes of:

1. **the seed app**: the tutorial's script, ``pipeline("text-classification", <folder>)`` then a
   ``gr.Interface`` on it, ``launch()``;
2. **Pipedesk**: ``python -m desktop serve`` with the same model installed in its store, asked for
   by Hub id as the Sentiment tab does;
3. with ``--window``: ``python -m desktop`` under Xvfb (1280x900), its screen grabbed every 50 ms:
   the time until its window is on screen, and until the window shows the app's page, painted
   (the first frame that is the app as it stays: its splash lifted; what a person waits for after
   a double-click), and how many frames in between were neither the splash nor the app (an
   empty or black window, Gradio's "Loading…": 0 expected); ``--window-baseline DIR`` times
   the window of another checkout (an older commit, ``git archive`` into DIR) the same way, in
   the same rotation.

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

#: The window shows the app once its screen has not changed for this long.
SETTLED_S = 3.0

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


def run_window(display: str, source: Path = serving.ROOT) -> tuple[float, float, int]:
    """``python -m desktop`` (from the checkout ``source``) under Xvfb, watched frame by frame
    (``tests.support.screen``): seconds from the process start until its window is on screen, and
    until the window shows the app's page painted; and how many different frames in between were
    neither the splash nor the app. The app is there once the screen has stayed the same for
    :data:`SETTLED_S` (the splash's spinner turns until then)."""
    from tests.support.screen import Recorder, kind_of
    from tests.support.window_driver import TITLE, find_window, window_geometry

    env = {**os.environ, "DISPLAY": display}
    env.pop("WAYLAND_DISPLAY", None)
    recorder = Recorder(display, interval=0.05)
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "desktop"], cwd=source, env=env, stdout=subprocess.DEVNULL
    )
    try:
        wid = find_window(display, TITLE, timeout=60)
        if not wid:
            raise RuntimeError("no window after 60 s")
        on_screen = time.monotonic() - started
        while time.monotonic() - (recorder.started + recorder.frames[-1].at) < SETTLED_S:
            if time.monotonic() - started > 300 or process.poll() is not None:
                raise RuntimeError("the window never settled on the app")
            time.sleep(0.1)
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
    parser.add_argument("--window-only", action="store_true", help="time only the window (and the baseline)")
    parser.add_argument(
        "--window-baseline", type=Path, metavar="DIR", help="also time the window of the checkout in DIR"
    )
    args = parser.parse_args(argv)
    args.window = args.window or args.window_only or args.window_baseline is not None
    folder, model_id = serving.prepare(args.tiny)
    serving.describe(args.tiny)
    script = Path(tempfile.mkdtemp(prefix="pipedesk-seed-")) / "seed_app.py"
    script.write_text(textwrap.dedent(SEED_APP), encoding="utf-8")
    xvfb, display = start_xvfb() if args.window else (None, "")
    names = [] if args.window_only else ["seed app", "Pipedesk"]
    names += ["window"] if args.window else []
    names += ["baseline window"] if args.window_baseline else []
    runs: dict[str, list[tuple[float, ...]]] = {name: [] for name in names}
    try:
        for number in range(args.rounds):
            order = names[number % len(names) :] + names[: number % len(names)]
            for name in order:
                if name == "seed app":
                    runs[name].append(run_seed(folder, script))
                elif name == "Pipedesk":
                    runs[name].append(run_pipedesk(model_id))
                else:
                    source = args.window_baseline if name == "baseline window" else serving.ROOT
                    runs[name].append(run_window(display, source))
                got = runs[name][-1]
                said = (
                    f"on screen {got[0]:.2f} s, app painted {got[1]:.2f} s, {got[2]} other frames"
                    if name.endswith("window")
                    else f"page {got[0]:.2f} s, first answer {got[1]:.2f} s"
                )
                print(f"  round {number + 1}: {name}: {said}", flush=True)
    finally:
        if xvfb is not None:
            xvfb.terminate()
    print(f"\nMedians of {args.rounds} rounds (load average {serving.load_average()}):")
    if not args.window_only:
        seed_page = statistics.median(r[0] for r in runs["seed app"])
        seed_answer = statistics.median(r[1] for r in runs["seed app"])
        page = statistics.median(r[0] for r in runs["Pipedesk"])
        answer = statistics.median(r[1] for r in runs["Pipedesk"])
        print("| | page (s) | first answer (s) |\n|---|---:|---:|")
        print(f"| seed app | {seed_page:.2f} | {seed_answer:.2f} |")
        print(f"| Pipedesk | {page:.2f} | {answer:.2f} |")
        print(f"\nPage: Pipedesk / seed app = {page / seed_page:.2f}x (target <= 0.5)")
        print(f"First answer: Pipedesk / seed app = {answer / seed_answer:.2f}x (target <= 1.0)")
    for name in ("window", "baseline window"):
        if runs.get(name):
            window = statistics.median(r[0] for r in runs[name])
            painted = statistics.median(r[1] for r in runs[name])
            odd = sum(int(r[2]) for r in runs[name])
            print(f"{name}: on screen {window:.2f} s after the process started (target <= 1 s)")
            print(f"{name}: the app painted in the window {painted:.2f} s after the process started")
            print(f"{name}: frames neither the splash nor the app, all rounds: {odd} (target 0)")
    if runs.get("baseline window"):
        ratio = statistics.median(r[1] for r in runs["window"]) / statistics.median(
            r[1] for r in runs["baseline window"]
        )
        print(f"App painted: this checkout / baseline = {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
