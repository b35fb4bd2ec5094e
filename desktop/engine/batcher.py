"""Requests that wait together run together: one padded batch through a task's ``forward``.

Single requests (a tab, an API call, a visitor) for the same model, task and options queue here.
When nothing of theirs is on the device, the first waiting request (the owner's before any
visitor's, then the oldest) runs a batch made of itself and whoever else of its kind is waiting
(the owner's requests, or visitors'), within the task's own batch limits; everyone in it gets
their own outputs back. Requests that arrive while a batch runs wait for the next one, so under
load batches fill up by themselves and an idle app answers at once (no timer on the fast path).
A visitor's batch is kept small, and the owner's requests do not wait for one: the owner's batch
may start while a visitors' batch runs, and the scheduler (:mod:`desktop.engine.scheduler`)
runs it beside that one on the CPU, or next on a GPU.

Threads: any (Gradio's workers). One condition variable guards the queues; the batch itself runs
outside it, on the device when the scheduler says so.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from desktop.engine.scheduler import Work
from desktop.tasks.spec import Piece, Stop, TaskSpec

OWNER, GUEST = Work.OWNER_REQUEST, Work.VISITOR_REQUEST
#: A batch that holds a visitor's request carries at most this share of the task's token budget.
GUEST_BUDGET_SHARE = 0.25


@dataclass(eq=False)
class _Request:
    pieces: list[Piece]
    priority: Work
    order: int
    stop: Stop
    outputs: list[Any] | None = None
    error: BaseException | None = None
    done: bool = False

    @property
    def tokens(self) -> int:
        return sum(p.length for p in self.pieces)


@dataclass(eq=False)
class _Queue:
    waiting: list[_Request] = field(default_factory=list)
    running: list[bool] = field(default_factory=list)  # one per batch on the device: visitors' only?

    def may_start(self, request: _Request) -> bool:
        """Whether ``request`` (the best waiting) may start a batch now: when nothing runs, or, for
        the owner's, beside a batch of visitors' requests only."""
        if not self.running:
            return True
        return request.priority == OWNER and self.running == [True]


class Batcher:
    """Merges concurrent requests for one (model, task, options) into batches; see the module doc."""

    def __init__(self, run: Callable[..., Any], merge: bool = True) -> None:
        self._run = run  # ``Runtime.infer(loaded, call, work)``: the device, via the scheduler
        self.merge = merge  # False: one request per batch (benchmarks compare the two)
        self._changed = threading.Condition()
        self._queues: dict[tuple[Any, ...], _Queue] = {}
        self._order = itertools.count()
        self.batches = 0  # batches run (tests and benchmarks read it)
        self.merged = 0  # requests that shared a batch with another

    def forward(
        self,
        loaded: Any,
        spec: TaskSpec,
        pieces: list[Piece],
        options: dict[str, Any],
        stop: Stop = None,
        priority: Work = OWNER,
    ) -> list[Any]:
        """``spec.forward`` for ``pieces``, batched with whatever else waits for the same thing."""
        key = (loaded, spec.id, _options_key(options))
        request = _Request(pieces, priority, next(self._order), stop)
        with self._changed:
            queue = self._queues.setdefault(key, _Queue())
            queue.waiting.append(request)
            while True:
                if request.done:
                    return _result(request)
                if (
                    request in queue.waiting
                    and queue.may_start(request)
                    and min(queue.waiting, key=_rank) is request
                ):
                    # The owner's batch carries the owner's requests only: no visitor makes it longer.
                    owners_only = request.priority == OWNER
                    batch = self._take(queue, loaded, spec, options, owners_only=owners_only)
                    guests_only = not owners_only  # a visitor leads only when no owner's request waits
                    queue.running.append(guests_only)
                    break
                self._changed.wait()
        try:
            self._execute(loaded, spec, options, batch, GUEST if guests_only else OWNER)
        finally:
            with self._changed:
                queue.running.remove(guests_only)
                if not queue.waiting and not queue.running and self._queues.get(key) is queue:
                    del self._queues[key]
                self._changed.notify_all()
        return _result(request)

    def _take(
        self, queue: _Queue, loaded: Any, spec: TaskSpec, options: dict[str, Any], owners_only: bool = False
    ) -> list[_Request]:
        """The waiting requests, best first, that fit one batch (the first one always does). Visitors'
        requests share at most :data:`GUEST_BUDGET_SHARE` of the token budget; with ``owners_only``
        (the owner's request leads), none come along."""
        budget, most = spec.batch_limits(loaded.device, loaded)
        guest_budget = max(1, int(budget * GUEST_BUDGET_SHARE))
        extra = spec.extra_cost(options)
        chosen: list[_Request] = []
        pieces, widest = 0, 0
        for request in sorted(queue.waiting, key=_rank):
            if chosen and not self.merge:
                break
            if owners_only and request.priority == GUEST:
                break  # sorted: the owner's come first
            count = len(request.pieces)
            wider = max(widest, *(p.length + extra for p in request.pieces))
            limit = guest_budget if request.priority == GUEST else budget
            if chosen and (pieces + count > most or (pieces + count) * wider > limit):
                continue
            chosen.append(request)
            pieces, widest = pieces + count, wider
        for request in chosen:
            queue.waiting.remove(request)
        return chosen

    def _execute(
        self,
        loaded: Any,
        spec: TaskSpec,
        options: dict[str, Any],
        batch: list[_Request],
        work: Work = OWNER,
    ) -> None:
        pieces = [piece for request in batch for piece in request.pieces]
        stops = [request.stop for request in batch]
        # A merged batch stops early only when every request in it asked to stop.
        stop: Stop = None if any(s is None for s in stops) else (lambda: all(s() for s in stops))  # type: ignore[misc]
        try:
            outputs = self._run(loaded, lambda: spec.forward(loaded, pieces, options, stop), work)
        except BaseException as exc:  # each request re-raises it on its own thread
            outputs, error = None, exc
        else:
            error = None
        start = 0
        with self._changed:
            self.batches += 1
            if len(batch) > 1:
                self.merged += len(batch)
            for request in batch:
                if error is None:
                    request.outputs = outputs[start : start + len(request.pieces)]
                    start += len(request.pieces)
                request.error, request.done = error, True


def _rank(request: _Request) -> tuple[int, int]:
    return (request.priority, request.order)


def _result(request: _Request) -> list[Any]:
    if request.error is not None:
        raise request.error
    assert request.outputs is not None
    return request.outputs


def _options_key(options: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((name, repr(value)) for name, value in options.items()))
