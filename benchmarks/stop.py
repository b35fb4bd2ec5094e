"""Stop, measured: how soon the answer is back and how soon the CPU is free again.

Run by hand (not a test)::

    .venv/bin/python benchmarks/stop.py                    # all three, 3 rounds
    .venv/bin/python benchmarks/stop.py --only transcribe --rounds 5

Issue #18 asks that Stop on Chat/Generate/Transcribe/Batch frees the CPU within one second. Each
case runs through the runtime, on the CPU, in this process (the engine process runs the same code;
the pipe adds only the message, measured in tests/test_engine_process.py), on models with random
weights shaped like real ones (no real weights can be downloaded here):

- **Generate / Chat**: a GPT-2-shaped writer (6 layers, 384 wide) streaming 1,000 sampled tokens;
  Stop pressed 2 s in.
- **Batch**: a file run of 16 long reviews through a BERT-base-shaped classifier (8 layers, 768 wide),
  one batch of 8 rows; Stop pressed once the batch is past its second layer.
- **Transcribe**: Whisper base's shape (benchmarks/transcribe.py's model, whose end token never
  wins: every window decodes to Whisper's length limit, the worst case) on 4 minutes of speech-band
  noise (8 windows: one batch); Stop pressed 1 s after the batch's decoding started.

For each: **answer** (seconds from Stop to the call returning with "Stopped" or the text so far) and
**CPU free** (seconds from Stop until this process uses under 10% of one core over 0.5 s: its
threads, CTranslate2's and torch's included, have stopped computing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("PIPEDESK_HOME", str(ROOT / "tests" / ".artifacts" / "bench-stop" / "home"))

#: CPU below this share of one core over :data:`QUIET_S` seconds counts as free.
QUIET_SHARE, QUIET_S, POLL_S = 0.10, 0.5, 0.05


def cpu_free_after(pressed: float, limit: float = 60.0) -> float:
    """Seconds from ``pressed`` until this process's CPU use stays under QUIET_SHARE for QUIET_S."""
    samples: list[tuple[float, float]] = []
    while time.monotonic() - pressed < limit:
        samples.append((time.monotonic(), time.process_time()))
        earlier = [s for s in samples if samples[-1][0] - s[0] >= QUIET_S]
        if earlier:
            (t0, c0), (t1, c1) = earlier[-1], samples[-1]
            if (c1 - c0) / (t1 - t0) < QUIET_SHARE:
                return max(0.0, t0 - pressed)
        time.sleep(POLL_S)
    return float("inf")


def timed_stop(work: Callable[[Callable[[], bool]], Any], ready: Callable[[], bool]) -> tuple[float, float]:
    """Run ``work(stop)`` on a thread, press Stop once ``ready()``; (answer s, CPU free s)."""
    stop = threading.Event()
    done = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            work(stop.is_set)
        except Exception as exc:  # Stopped is the expected end of some cases
            if type(exc).__name__ != "Stopped":
                failure.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    while not ready():
        if done.is_set():
            raise RuntimeError(f"ended before Stop was pressed: {failure}")
        time.sleep(0.01)
    pressed = time.monotonic()
    stop.set()
    done.wait(120)
    answer = time.monotonic() - pressed
    if failure:
        raise failure[0]
    return answer, cpu_free_after(pressed)


def case_generate(runtime: Any, folder: Path) -> tuple[float, float]:
    from desktop.tasks import TASKS

    started: list[float] = []

    def work(stop: Callable[[], bool]) -> None:
        for _part in TASKS["generate"].stream(
            runtime, "Once upon a time", str(folder), 1000, 1.0, 1.0, 7, stop=stop
        ):
            started.append(time.monotonic())

    return timed_stop(work, lambda: bool(started) and time.monotonic() - started[0] > 2.0)


def case_batch(runtime: Any, folder: Path) -> tuple[float, float]:
    from desktop.engine.filerun import BatchRun

    words = [
        "the",
        "delivery",
        "was",
        "late",
        "but",
        "the",
        "product",
        "is",
        "lovely",
        "and",
        "works",
        "well",
    ]
    texts = [" ".join(words[(n + i) % len(words)] for i in range(400)) for n in range(16)]
    entered: list[float] = []
    box: dict[str, Any] = {}

    def work(stop: Callable[[], bool]) -> None:
        cancel = threading.Event()
        watcher = threading.Thread(target=lambda: (wait_for(stop), cancel.set()), daemon=True)
        watcher.start()
        run = BatchRun(
            runtime, "sentiment", texts, str(folder), batch_size=8, token_budget=8 * 512, cancel=cancel
        )
        box["hooks"] = [
            layer.register_forward_pre_hook(lambda *_: entered.append(time.monotonic()))
            for layer in run.loaded.model.bert.encoder.layer
        ]
        for event in run:
            if event.state == "cancelled":
                break
        for hook in box["hooks"]:
            hook.remove()

    return timed_stop(work, lambda: len(entered) >= 2)


def case_transcribe(runtime: Any, folder: Path, wav: Path) -> tuple[float, float]:
    from desktop.tasks import TASKS

    spec = TASKS["transcribe"]
    loaded = runtime.load(spec, str(folder))
    decoding: list[float] = []
    generate = loaded.model.generate

    def noting(encoded: Any, prompts: Any, stop: Any = None) -> Any:
        decoding.append(time.monotonic())
        return generate(encoded, prompts, stop)

    loaded.model.generate = noting
    try:
        return timed_stop(
            lambda stop: spec.predict(runtime, str(wav), str(folder), "en", False, False, stop=stop),
            lambda: bool(decoding) and time.monotonic() - decoding[0] > 1.0,
        )
    finally:
        loaded.model.generate = generate


def wait_for(condition: Callable[[], bool]) -> None:
    while not condition():
        time.sleep(0.005)


def build_models(work: Path) -> dict[str, Path]:
    import transcribe as bench_transcribe

    from tests.support.slow_models import slow_reader, slow_writer
    from tests.support.tiny_models import cached_models

    tiny = cached_models()
    folders = {"writer": work / "writer", "reader": work / "reader", "whisper": work / "whisper-base"}
    if not folders["writer"].is_dir():
        slow_writer(tiny["openai-community/gpt2"], folders["writer"])
    if not folders["reader"].is_dir():
        slow_reader(tiny["distilbert/distilbert-base-uncased-finetuned-sst-2-english"], folders["reader"])
    bench_transcribe.build_model("base", folders["whisper"])
    return folders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=("generate", "batch", "transcribe"), action="append")
    args = parser.parse_args(argv)
    cases = args.only or ["generate", "batch", "transcribe"]

    import transcribe as bench_transcribe

    from desktop.engine.runtime import Runtime
    from desktop.models import ModelStore

    work = ROOT / "tests" / ".artifacts" / "bench-stop"
    work.mkdir(parents=True, exist_ok=True)
    folders = build_models(work)
    wav = bench_transcribe.recording(work, 4.0)
    runtime = Runtime(device="cpu", store=ModelStore(Path(tempfile.mkdtemp()) / "models"))
    results: dict[str, list[tuple[float, float]]] = {case: [] for case in cases}
    for number in range(args.rounds):
        for case in cases:
            if case == "generate":
                measured = case_generate(runtime, folders["writer"])
            elif case == "batch":
                measured = case_batch(runtime, folders["reader"])
            else:
                measured = case_transcribe(runtime, folders["whisper"], wav)
            results[case].append(measured)
            print(
                f"round {number + 1} {case}: answer {measured[0]:.2f} s, CPU free {measured[1]:.2f} s",
                flush=True,
            )
    print(f"\n{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; median of {args.rounds} rounds")
    print("| Stop on | answer back (s) | CPU free (s) | target |")
    print("|---|---:|---:|---|")
    for case, values in results.items():
        answer = statistics.median(v[0] for v in values)
        free = statistics.median(v[1] for v in values)
        print(f"| {case} | {answer:.2f} | {free:.2f} | <= 1 s: {'met' if free <= 1.0 else 'missed'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
