"""One scheduler decides who uses the device: the owner's request, a visitor's request, the owner's
file run, a visitor's file run, in that order; on the CPU the owner's request runs beside anyone
else's work. Real tiny models and real file runs through the engine's front door."""

from __future__ import annotations

import threading
import time

import pytest

from desktop.engine.scheduler import Scheduler, Work
from desktop.engine.start import local_door
from desktop.tasks import TASKS
from tests.support import wait_until

SST2 = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
REVIEWS = [f"Review {n}: the delivery was late but the product is lovely." for n in range(6)]


def test_the_device_goes_to_the_owners_request_then_visitors_then_the_owners_file_then_visitors_files():
    scheduler = Scheduler()
    order: list[Work] = []
    arrivals = [Work.VISITOR_FILE, Work.OWNER_FILE, Work.VISITOR_REQUEST, Work.OWNER_REQUEST]

    def ask(work: Work) -> None:
        with scheduler.device(work, cpu=False):  # a GPU: nobody runs beside anyone
            order.append(work)

    with scheduler.device(Work.OWNER_FILE, cpu=False):  # a file's batch holds the device
        threads = []
        for work in arrivals:  # the least urgent first: arrival order must not decide
            threads.append(threading.Thread(target=ask, args=(work,)))
            threads[-1].start()
            wait_until(lambda n=len(threads): len(scheduler._waiting) == n)
    for thread in threads:
        thread.join(10)
    assert order == [Work.OWNER_REQUEST, Work.VISITOR_REQUEST, Work.OWNER_FILE, Work.VISITOR_FILE]


def test_on_the_cpu_only_the_owners_request_runs_beside_someone_elses_work():
    scheduler = Scheduler()
    ran: list[Work] = []

    def ask(work: Work) -> threading.Thread:  # on a thread of its own, as Gradio's workers ask
        thread = threading.Thread(target=lambda: _run(scheduler, work, ran))
        thread.start()
        return thread

    with scheduler.device(Work.VISITOR_FILE, cpu=True):  # a visitor's file batch holds the device
        ask(Work.OWNER_REQUEST).join(10)
        assert ran == [Work.OWNER_REQUEST]  # answered while the batch is in flight
        visitor = ask(Work.VISITOR_REQUEST)
        time.sleep(0.2)
        assert ran == [Work.OWNER_REQUEST]  # a visitor's request waits for the batch in flight
    visitor.join(10)
    assert ran == [Work.OWNER_REQUEST, Work.VISITOR_REQUEST] and scheduler.overtook == 1


def _run(scheduler: Scheduler, work: Work, ran: list[Work]) -> None:
    with scheduler.device(work, cpu=True):
        ran.append(work)


class Held:
    """A task's forward that, in the run named, waits (holding the device) until released: a long
    batch, made long on purpose so the test does not depend on how fast this CPU is."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, spec, work: Work, runtime) -> None:
        self.started, self.release = threading.Event(), threading.Event()
        forward, scheduler = spec.forward, runtime.scheduler

        def held(*args, **kwargs):
            if scheduler.holder is work and not self.started.is_set():
                self.started.set()
                assert self.release.wait(30)
            return forward(*args, **kwargs)

        monkeypatch.setattr(spec, "forward", held)


@pytest.mark.parametrize("what", ["a visitor's file run", "a visitor's request"])
def test_the_owner_is_answered_beside_a_visitors_file_run_as_beside_a_visitors_request(
    runtime, monkeypatch, what
):
    spec = TASKS["sentiment"]
    owner, visitors = local_door(runtime), local_door(runtime).visitors()
    expected = owner.predict(spec, "I love this product!", SST2).data  # the model is installed and loaded
    work = Work.VISITOR_FILE if what == "a visitor's file run" else Work.VISITOR_REQUEST
    held = Held(monkeypatch, spec, work, runtime)
    theirs: list = []

    def visitor() -> None:
        if work is Work.VISITOR_FILE:
            theirs.extend(event for event in visitors.run_file("sentiment", REVIEWS, SST2, batch_size=2))
        else:
            theirs.append(visitors.predict(spec, REVIEWS[0], SST2))

    thread = threading.Thread(target=visitor)
    thread.start()
    assert held.started.wait(30)  # the visitor's batch holds the device
    answer = owner.predict(spec, "I love this product!", SST2).data  # would wait for the batch before
    assert runtime.scheduler.holder is work and thread.is_alive()  # still in flight: answered beside it
    held.release.set()
    thread.join(30)
    assert answer["label"] == expected["label"]
    assert answer["score"] == pytest.approx(expected["score"], abs=1e-4)
    if work is Work.VISITOR_FILE:  # the visitor's run is whole, in order, with the owner's model's answers
        rows = dict(row for event in theirs for row in event.results)
        assert sorted(rows) == list(range(len(REVIEWS)))
        assert all(rows[n]["label"] in ("POSITIVE", "NEGATIVE") for n in rows)
    else:
        assert theirs[0].data["label"] in ("POSITIVE", "NEGATIVE")


def test_a_visitors_request_goes_before_the_next_batch_of_the_owners_file_run(runtime, monkeypatch):
    spec = TASKS["sentiment"]
    owner, visitors = local_door(runtime), local_door(runtime).visitors()
    owner.predict(spec, "I love this product!", SST2)
    held = Held(monkeypatch, spec, Work.OWNER_FILE, runtime)
    run = threading.Thread(target=lambda: list(owner.run_file("sentiment", REVIEWS, SST2, batch_size=2)))
    run.start()
    assert held.started.wait(30)  # the first of three batches holds the device
    answers: list = []
    visitor = threading.Thread(target=lambda: answers.append(visitors.predict(spec, REVIEWS[0], SST2)))
    visitor.start()
    wait_until(lambda: len(runtime.scheduler._waiting) == 1)  # the visitor waits for that batch
    held.release.set()
    run.join(30)
    visitor.join(30)
    granted = runtime.scheduler.granted[-4:]
    assert granted == [Work.OWNER_FILE, Work.VISITOR_REQUEST, Work.OWNER_FILE, Work.OWNER_FILE], granted
    assert answers[0].data["label"] in ("POSITIVE", "NEGATIVE")
