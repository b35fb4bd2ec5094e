"""Concurrent single requests share batches; the owner's go first; each gets its own answer."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
from collections.abc import Iterator

import pytest

from desktop.engine import lane
from desktop.engine.batcher import GUEST, OWNER
from desktop.engine.scheduler import Work
from desktop.engine.start import local_door
from desktop.errors import UserError
from desktop.tasks import TASKS
from tests.support import wait_until as support_wait_until

SST2 = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
TEXTS = [
    "I love this product!",
    "This is terrible, I hate it.",
    "The delivery was late and the box was damaged.",
    "What a great movie, truly amazing.",
    "The film was long, but the ending made it worth it.",
    "Terrible customer service, never again.",
]

wait_until = functools.partial(support_wait_until, timeout=20.0)


def busy(runtime, work: Work = Work.OWNER_REQUEST):
    """Hold the device as ``work`` would (an owner's request: nothing runs beside it)."""
    return runtime.scheduler.device(work, cpu=True)


def waiting(runtime) -> int:
    with runtime.batcher._changed:
        return sum(len(q.waiting) for q in runtime.batcher._queues.values())


def test_requests_that_wait_together_run_as_one_batch_and_get_their_own_answers(runtime):
    spec = TASKS["sentiment"]
    expected = {text: spec.predict(runtime, text, SST2).data for text in TEXTS}
    batches_before = runtime.batcher.batches
    results: dict[str, dict] = {}
    with busy(runtime):  # the device is busy: everyone arriving now waits together
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


def test_as_many_people_as_one_batch_holds_reach_the_engine_together_through_the_app(runtime, client):
    """Through the real server: Gradio lets in as many requests as one CPU batch holds (2 cores: 32
    rows), so 24 people asking at once wait for the same batch; none waits in Gradio's own queue
    for a later one (it let 16 in at most, so 8 of them ran a batch later)."""
    people = 24
    texts = [f"{TEXTS[n % len(TEXTS)]} ({n})" for n in range(people)]
    expected = TASKS["sentiment"].predict(runtime, texts[0], SST2).data
    batches_before = runtime.batcher.batches
    with busy(runtime):  # the device is busy: everyone arriving now waits together
        jobs = [client.submit(text, SST2, api_name="/sentiment") for text in texts]
        wait_until(lambda: waiting(runtime) == people - 1)  # one of them holds the next batch
    answers = [job.result(timeout=60) for job in jobs]
    assert all(answer["label"] in ("POSITIVE", "NEGATIVE") for answer in answers)
    assert answers[0]["label"] == expected["label"]
    assert runtime.batcher.batches - batches_before <= 2  # the first alone, then the rest together


class Crowd:
    """People asking the sentiment model at once, each on a thread; who finished, in order."""

    def __init__(self, runtime) -> None:
        self.runtime, self.guest = runtime, local_door(runtime).visitors()
        self.finished: list[str] = []
        self.answers: dict[str, dict] = {}
        self.threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def ask(self, who: str) -> threading.Thread:
        """``who`` starting with "owner" asks as the person at the computer, else as a visitor."""
        rt = self.runtime if who.startswith("owner") else self.guest

        def run() -> None:
            answer = TASKS["sentiment"].predict(rt, f"{who}: I love this product!", SST2).data
            with self._lock:
                self.answers[who] = answer
                self.finished.append(who)

        thread = threading.Thread(target=run)
        thread.start()
        self.threads.append(thread)
        return thread

    @contextlib.contextmanager
    def busy_device(self, first: str, holder: Work) -> Iterator[None]:
        """Hold the device as ``holder``'s work while ``first``'s batch has started and twelve visitors
        wait behind it (as a long batch would); the device is free again after the ``with``."""
        runtime = self.runtime
        with busy(runtime, holder):
            self.ask(first)
            wait_until(
                lambda: runtime.batcher._queues and any(q.running for q in runtime.batcher._queues.values())
            )
            for number in range(1, 13):
                self.ask(f"guest-{number}")
            wait_until(lambda: waiting(runtime) == 12)
            yield

    def join(self) -> None:
        for thread in self.threads:
            thread.join(30)


def test_the_owners_request_runs_beside_a_visitors_batch_not_after_the_queue(runtime):
    """LAN visitors keep the model busy; the person at the computer does not wait for them."""
    expected = TASKS["sentiment"].predict(runtime, "owner: I love this product!", SST2).data
    crowd = Crowd(runtime)
    with crowd.busy_device(first="guest-0", holder=Work.VISITOR_REQUEST):  # a visitors' batch holds it
        crowd.ask("owner").join(30)
        # Answered while the visitors' batch still holds the device and twelve visitors wait.
        assert crowd.finished == ["owner"]
        assert waiting(runtime) == 12
    crowd.join()
    assert len(crowd.finished) == 14 and crowd.finished[1] == "guest-0"
    assert crowd.answers["owner"]["label"] == expected["label"]
    assert crowd.answers["owner"]["score"] == pytest.approx(expected["score"], abs=1e-4)
    assert OWNER < GUEST


def test_the_owners_requests_go_before_visitors_waiting_longer(runtime):
    """When the owner's batch holds the device, the owner's next request still goes first."""
    TASKS["sentiment"].predict(runtime, "warm up", SST2)
    crowd = Crowd(runtime)
    with crowd.busy_device(first="owner-0", holder=Work.OWNER_REQUEST):
        crowd.ask("owner")
        wait_until(lambda: waiting(runtime) == 13)  # an owner's batch runs: this one waits, first in line
    crowd.join()
    assert crowd.finished[:2] == ["owner-0", "owner"], crowd.finished  # alone: no visitor rides along


def test_a_refusal_in_one_request_does_not_touch_the_others(runtime):
    spec = TASKS["sentiment"]
    with pytest.raises(UserError, match="too short"):
        spec.predict(runtime, "ok", SST2)
    assert spec.predict(runtime, "I love this product!", SST2).data["label"] == "POSITIVE"


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="thread priorities are read here on Linux only"
)
def test_visitors_work_runs_at_a_lower_cpu_priority_than_the_owners(runtime, monkeypatch):
    """Beside a visitors' batch the owner's forward gets most of the CPU: the operating system, not
    a timer, decides, so the test reads the priority each forward pass ran at."""
    spec = TASKS["sentiment"]
    seen: list[int] = []  # the priority of the thread each forward pass ran on, in order
    forward = spec.forward

    def recording(*args, **kwargs):
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return forward(*args, **kwargs)

    monkeypatch.setattr(spec, "forward", recording)
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    owner = spec.predict(runtime, "I love this product!", SST2).data
    guest = spec.predict(local_door(runtime).visitors(), "I love this product!", SST2).data
    assert seen == [mine, min(19, mine + lane.NICE_STEP)]
    # The same answer either way, and the app's own threads keep their priority.
    assert guest["label"] == owner["label"] and guest["score"] == pytest.approx(owner["score"], abs=1e-4)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine


def test_a_visitors_pass_pauses_between_layers_while_the_owners_runs(runtime):
    """On the CPU the owner's pass runs beside a visitors' one; the visitors' stops at its next layer
    until the owner's is done, so the owner's gets the cores (then the visitor's answer comes, the same)."""
    spec = TASKS["sentiment"]
    text = "The film was long, but the ending made it worth it."
    expected = spec.predict(runtime, text, SST2).data
    answers: list[dict] = []
    visitor = threading.Thread(
        target=lambda: answers.append(spec.predict(local_door(runtime).visitors(), text, SST2).data)
    )
    with lane.owner_first():  # as Runtime.infer does around the owner's pass beside visitors' work
        visitor.start()
        wait_until(lambda: lane.paused() == 1)
        assert visitor.is_alive() and answers == []  # held at a layer, not finished
    visitor.join(30)
    assert lane.paused() == 0
    assert answers[0]["label"] == expected["label"]
    assert answers[0]["score"] == pytest.approx(expected["score"], abs=1e-4)
    # The owner's own passes never pause, even with an owner's pass beside them.
    with lane.owner_first():
        assert spec.predict(runtime, text, SST2).data["label"] == expected["label"]
