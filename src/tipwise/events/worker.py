"""A background thread that relays the outbox, feeds consumers and runs periodic jobs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tipwise.events.bus import EventBus
from tipwise.kernel.logging import get_logger

log = get_logger(__name__)


def paced_pause(took: float, *, duty: float, floor: float, ceiling: float) -> float:
    """How long to wait after a round that took `took` seconds, so rounds take `duty` of the time.

    Never shorter than `floor` (the usual coalescing wait) nor longer than `ceiling` (how late
    an event may be picked up).
    """
    return max(floor, min(ceiling, took * (1 - duty) / duty))


class Worker:
    """Runs `bus.relay()`, `bus.dispatch()` and each periodic job, whenever woken or every `interval`."""

    def __init__(
        self,
        *,
        bus: EventBus,
        interval: float = 1.0,
        job_interval: float = 1.0,
        coalesce: float = 0.05,
        relay: bool = True,
        dispatch: bool = True,
        duty: float | None = None,
        max_pause: float = 0.25,
    ) -> None:
        # A scaled deployment splits the work: a relay process only relays, a learner only dispatches.
        self._bus = bus
        self._relay = relay
        self._dispatch = dispatch
        self._interval = interval
        # After a wake-up, wait this long so one round carries many events: under load, a round
        # per decision would take the database's single write lock several times per request.
        self._coalesce = coalesce
        # Periodic jobs need not run on every wake-up; under load that would be once per decision.
        self._job_interval = job_interval
        # With `duty`, the thread runs one pass per round and, while rounds keep finding work, pauses
        # so that rounds take at most this share of its time (never longer than `max_pause`): in one
        # process its rounds compete with the requests for the GIL and SQLite's write lock, and a
        # round per few decisions pays the fixed cost of a round (its transactions) per few events.
        # Without, rounds drain the log back to back (a scaled relay or learner has its own process).
        if duty is not None and not 0 < duty <= 1:
            raise ValueError("duty must be in (0, 1]")
        self._duty = duty
        self._max_pause = max_pause
        self._jobs_due = 0.0
        self._jobs: list[Callable[[], int | None]] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add_job(self, job: Callable[[], int | None]) -> None:
        """Run `job` once the log is drained; a job returning a count > 0 published events, so drain again."""
        self._jobs.append(job)

    def wake(self) -> None:
        """Ask for a round now, e.g. right after a commit that wrote to the outbox."""
        self._wake.set()

    def run_round(self, *, jobs: bool = True) -> int:
        """Relay and dispatch once, run the jobs when due or idle; return events moved, applied or published.

        What commits meanwhile is left for the next round; a round that found work returns > 0,
        and the background thread then runs another one after its pause.
        """
        with self._lock:
            moved = self._bus.relay() if self._relay else 0
            done = self._bus.dispatch() if self._dispatch else 0
            if moved or done:
                if time.monotonic() >= self._jobs_due:
                    self._run_jobs()
                return moved + done
            return self._run_jobs() if jobs else 0

    def run_once(self, *, jobs: bool = True) -> int:
        """Relay, dispatch until the log is drained, run the jobs; return events applied.

        Under sustained load the log may never drain: the jobs then still run every
        `job_interval` (a learner must snapshot and expire rewards while events keep coming), and
        a stop request ends the round after the batch in flight.
        """
        with self._lock:
            applied = 0
            while True:
                moved = self._bus.relay() if self._relay else 0
                done = self._bus.dispatch() if self._dispatch else 0
                applied += done
                if self._stop.is_set():
                    return applied
                if moved or done:
                    if time.monotonic() >= self._jobs_due:
                        self._run_jobs()
                    continue
                if not jobs or not self._run_jobs():
                    return applied

    def _run_jobs(self) -> int:
        """Run every job; return how many events they published."""
        self._jobs_due = time.monotonic() + self._job_interval
        return sum(job() or 0 for job in self._jobs)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="tipwise-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the current round and stop; pending events stay on the log for next time."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        failures = 0
        coalesce = self._coalesce
        while not self._stop.is_set():
            # A zero interval suits a bus whose dispatch waits for events itself (NATS).
            pause = self._interval if not failures else max(self._interval, 0.1) * 2 ** min(failures, 3)
            if self._wake.wait(pause) and coalesce:
                self._stop.wait(coalesce)
            self._wake.clear()
            started = time.monotonic()
            try:
                if self._duty is None:
                    self.run_once(jobs=time.monotonic() >= self._jobs_due)
                elif self.run_round(jobs=time.monotonic() >= self._jobs_due):
                    self._wake.set()  # what committed during the round goes in the next one
                failures = 0
            except Exception:
                # The failed batch rolled back; it is retried with backoff.
                failures += 1
                log.exception("worker_round_failed", failures=failures)
            if self._duty is not None:
                took = time.monotonic() - started
                coalesce = paced_pause(took, duty=self._duty, floor=self._coalesce, ceiling=self._max_pause)
