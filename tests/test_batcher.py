"""Concurrent single requests share batches; the owner's go first; each gets its own answer."""

from __future__ import annotations

import threading
import time

import pytest

from desktop.engine.batcher import GUEST, OWNER
from desktop.errors import UserError
from desktop.tasks import TASKS

SST2 = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
TEXTS = [
    "I love this product!",
    "This is terrible, I hate it.",
    "The delivery was late and the box was damaged.",
    "What a great movie, truly amazing.",
    "The film was long, but the ending made it worth it.",
    "Terrible customer service, never again.",
]


def wait_until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def waiting(runtime) -> int:
    with runtime.batcher._changed:
        return sum(len(q.waiting) for q in runtime.batcher._queues.values())


def test_requests_that_wait_together_run_as_one_batch_and_get_their_own_answers(runtime):
    spec = TASKS["sentiment"]
    expected = {text: spec.predict(runtime, text, SST2).data for text in TEXTS}
    batches_before = runtime.batcher.batches
    results: dict[str, dict] = {}
    with runtime._device_lock:  # the device is busy: everyone arriving now waits together
        threads = [
            threading.Thread(target=lambda t=t: results.__setitem__(t, spec.predict(runtime, t, SST2).data))
            for t in TEXTS
        ]
        for thread in threads:
            thread.start()
        wait_until(lambda: waiting(runtime) == len(TEXTS) - 1)  # one of them holds the next batch
    for thread in threads:
        thread.join(30)
    assert set(results) == set(TEXTS)
    for text in TEXTS:
        assert results[text]["label"] == expected[text]["label"], text
        assert results[text]["score"] == pytest.approx(expected[text]["score"], abs=1e-4), text
    assert runtime.batcher.batches - batches_before <= 2  # the first alone, then the rest together


def test_the_owners_request_runs_beside_a_visitors_batch_not_after_the_queue(runtime):
    """LAN visitors keep the model busy; the person at the computer does not wait for them."""
    spec = TASKS["sentiment"]
    guest = runtime.guest()
    expected = spec.predict(runtime, "owner: I love this product!", SST2).data
    finished: list[str] = []
    answers: dict[str, dict] = {}
    lock = threading.Lock()

    def ask(who: str, rt) -> None:
        answers[who] = spec.predict(rt, f"{who}: I love this product!", SST2).data
        with lock:
            finished.append(who)

    with runtime._device_lock:  # a visitors' batch holds the device, as a long one would
        first = threading.Thread(target=ask, args=("guest-0", guest))
        first.start()
        wait_until(lambda: runtime.batcher._queues and any(q.busy for q in runtime.batcher._queues.values()))
        guests = [threading.Thread(target=ask, args=(f"guest-{i}", guest)) for i in range(1, 13)]
        for thread in guests:
            thread.start()
        wait_until(lambda: waiting(runtime) == 12)
        owner = threading.Thread(target=ask, args=("owner", runtime))
        owner.start()
        owner.join(30)
        # Answered while the visitors' batch still holds the device and twelve visitors wait.
        assert finished == ["owner"]
        assert waiting(runtime) == 12
    for thread in [first, *guests]:
        thread.join(30)
    assert len(finished) == 14 and finished[1] == "guest-0"
    assert answers["owner"]["label"] == expected["label"]
    assert answers["owner"]["score"] == pytest.approx(expected["score"], abs=1e-4)
    assert OWNER < GUEST


def test_the_owners_requests_go_before_visitors_waiting_longer(runtime):
    """When the owner's batch holds the device, the owner's next request still goes first."""
    spec = TASKS["sentiment"]
    guest = runtime.guest()
    spec.predict(runtime, "warm up", SST2)
    finished: list[str] = []
    lock = threading.Lock()

    def ask(who: str, rt) -> None:
        spec.predict(rt, f"{who}: I love this product!", SST2)
        with lock:
            finished.append(who)

    with runtime._device_lock:
        first = threading.Thread(target=ask, args=("owner-0", runtime))
        first.start()
        wait_until(lambda: runtime.batcher._queues and any(q.busy for q in runtime.batcher._queues.values()))
        guests = [threading.Thread(target=ask, args=(f"guest-{i}", guest)) for i in range(1, 13)]
        for thread in guests:
            thread.start()
        wait_until(lambda: waiting(runtime) == 12)
        owner = threading.Thread(target=ask, args=("owner", runtime))
        owner.start()
        wait_until(lambda: waiting(runtime) == 13)  # an owner's batch runs: this one waits, first in line
    for thread in [first, *guests, owner]:
        thread.join(30)
    assert finished[:2] == ["owner-0", "owner"], finished  # alone: no visitor rides along


def test_a_refusal_in_one_request_does_not_touch_the_others(runtime):
    spec = TASKS["sentiment"]
    with pytest.raises(UserError, match="too short"):
        spec.predict(runtime, "ok", SST2)
    assert spec.predict(runtime, "I love this product!", SST2).data["label"] == "POSITIVE"
