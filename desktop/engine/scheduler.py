"""The one scheduler in front of the device: who runs next, and who may run beside.

Four kinds of work ask for the device, in this order (:class:`Work`): the owner's request, a
visitor's request, the owner's file run, a visitor's file run. The device runs one job at a time
(a batch of requests, :mod:`desktop.engine.batcher`, or a batch of a file's rows,
:mod:`desktop.engine.filerun`); when it frees, the best waiting job goes next (then the oldest). File
runs take the device a batch at a time, so a request waits at most for the batch in flight.

On the CPU the owner's request does not even wait for that: while anyone else's work holds the
device (a visitor's request, any file run), the owner's pass runs at once beside it, and the other
pass pauses at its next layer until the owner's is done (:func:`desktop.engine.lane.owner_first`;
the holder's thread is marked pausable while it holds the device). On a GPU the owner's goes next.
Visitors' work runs on the visitors' lane (a thread of lower CPU priority, see
:mod:`desktop.engine.lane`); the owner's file run on its own thread, at normal priority.

Threads: any. One condition variable guards the waiting list; the work itself runs outside it.
"""

from __future__ import annotations

import contextlib
import enum
import heapq
import itertools
import threading
from collections.abc import Iterator

from desktop.engine import lane
from desktop.engine.who import Who


class Work(enum.IntEnum):
    """What asks for the device; a lower value goes first."""

    OWNER_REQUEST = 0
    VISITOR_REQUEST = 1
    OWNER_FILE = 2
    VISITOR_FILE = 3

    @classmethod
    def of(cls, who: Who, file: bool = False) -> Work:
        visitor = who is Who.VISITOR
        if file:
            return cls.VISITOR_FILE if visitor else cls.OWNER_FILE
        return cls.VISITOR_REQUEST if visitor else cls.OWNER_REQUEST

    @property
    def visitors(self) -> bool:
        """Whether visitors asked for it (it runs on the visitors' lane)."""
        return self in (Work.VISITOR_REQUEST, Work.VISITOR_FILE)


class Scheduler:
    """Hands the device to one job at a time, best first; see the module doc."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._waiting: list[tuple[int, int]] = []  # a heap of (work, order)
        self._order = itertools.count()
        self._holder: Work | None = None
        self._holder_cpu = False
        self._thread: int | None = None  # the holder's thread (a forward may ask again: re-entrant)
        self._depth = 0
        self._beside = 0
        self.granted: list[Work] = []  # the order jobs got the device in (tests read the last few)
        self.overtook = 0  # owner's passes run beside someone else's (tests and benchmarks)

    @property
    def holder(self) -> Work | None:
        """The work on the device now, or None."""
        with self._changed:
            return self._holder

    @contextlib.contextmanager
    def device(self, work: Work, cpu: bool) -> Iterator[None]:
        """Around one job on the device (``cpu``: the model runs on the CPU); blocks until its turn."""
        me = threading.get_ident()
        with self._changed:
            if self._thread == me:  # the holder asking again (nested): it has the device already
                self._depth += 1
                nested = True
            else:
                nested = False
                beside = self._wait_turn(work, cpu)
        if nested:
            try:
                yield
            finally:
                with self._changed:
                    self._depth -= 1
            return
        if beside:
            try:
                with lane.owner_first():
                    yield
            finally:
                with self._changed:
                    self._beside -= 1
                    self._changed.notify_all()
            return
        try:
            with lane.pausable(work is not Work.OWNER_REQUEST):
                yield
        finally:
            with self._changed:
                self._holder, self._thread, self._depth = None, None, 0
                self._changed.notify_all()

    def _wait_turn(self, work: Work, cpu: bool) -> bool:
        """Wait (holding the condition) until ``work`` may run; True: beside the holder."""
        ticket = (int(work), next(self._order))
        heapq.heappush(self._waiting, ticket)
        while True:
            if self._holder is None and self._waiting[0] == ticket:
                heapq.heappop(self._waiting)
                self._holder, self._holder_cpu = work, cpu
                self._thread, self._depth = threading.get_ident(), 0
                self.granted = [*self.granted[-99:], work]
                return False
            if self._may_overtake(work, cpu):
                self._waiting.remove(ticket)
                heapq.heapify(self._waiting)
                self._beside += 1
                self.overtook += 1
                return True
            self._changed.wait()

    def _may_overtake(self, work: Work, cpu: bool) -> bool:
        return (
            work is Work.OWNER_REQUEST
            and cpu
            and self._holder_cpu
            and self._holder is not None
            and self._holder is not Work.OWNER_REQUEST
            and self._beside == 0
        )
