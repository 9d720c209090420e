"""A progress line per asset while a run goes on, read from the Dagster instance's event log.

`make demo` runs the main job in process; a ``RunProgress`` thread beside it polls the run's events and
prints one line per materialized asset (how many of how many, elapsed time, how long its step took) and one per
failed step. The same lines can be read after the fact with ``poll()``.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

import dagster as dg

_WATCHED = {
    dg.DagsterEventType.STEP_START,
    dg.DagsterEventType.STEP_FAILURE,
    dg.DagsterEventType.ASSET_MATERIALIZATION,
}


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:02d}:{secs:02d}"


class RunProgress:
    """Progress of one run: ``poll()`` returns the new lines; ``start()``/``stop()`` print them from a thread."""

    def __init__(self, instance: dg.DagsterInstance, run_id: str, total_assets: int,
                 out: TextIO = sys.stdout, interval: float = 1.0):
        if total_assets < 1:
            raise ValueError(f"total_assets must be >= 1, got {total_assets}")
        self.instance, self.run_id, self.total = instance, run_id, total_assets
        self.out, self.interval = out, interval
        self.done = 0
        self.failed: list[str] = []
        self._cursor: str | None = None
        self._first: float | None = None
        self._step_started: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._waits_checked = 0.0
        self._last_wait: str | None = None

    def poll(self) -> list[str]:
        """Read the events written since the last poll and turn them into progress lines."""
        if not self.instance.has_run(self.run_id):
            return []
        lines = []
        while True:
            conn = self.instance.get_records_for_run(self.run_id, cursor=self._cursor, of_type=_WATCHED, limit=500)
            self._cursor = conn.cursor
            for record in conn.records:
                line = self._line(record.event_log_entry)
                if line:
                    lines.append(line)
            if not conn.has_more:
                return lines

    def _line(self, entry) -> str | None:
        event = entry.dagster_event
        if event is None:
            return None
        if self._first is None:
            self._first = entry.timestamp
        elapsed = _clock(entry.timestamp - self._first)
        step = event.step_key or "?"
        if event.event_type == dg.DagsterEventType.STEP_START:
            self._step_started[step] = entry.timestamp
            return None
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            self.failed.append(step)
            return f"[{self.done:>3}/{self.total}] {elapsed}  FAILED  {step}"
        self.done += 1
        key = event.event_specific_data.materialization.asset_key.to_user_string()
        took = entry.timestamp - self._step_started.get(step, entry.timestamp)
        return f"[{self.done:>3}/{self.total}] {elapsed}  {key}  (step {step}: {took:.1f} s)"

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._emit()

    def _emit(self) -> None:
        for line in self.poll():
            print(line, file=self.out, flush=True)
        now = time.monotonic()
        if now - self._waits_checked >= 10 * self.interval:  # a step queued on a pool another run holds
            self._waits_checked = now
            from pipelines.recovery import pool_waits

            for line in pool_waits(self.instance, self.run_id):
                if line != self._last_wait:
                    print(line, file=self.out, flush=True)
                    self._last_wait = line

    def start(self) -> RunProgress:
        self._thread = threading.Thread(target=self._loop, name="reprolab-progress", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and print what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._emit()


def failed_checks(evaluations: list) -> dict[str, list[str]]:
    """The asset checks of a run that did not pass, as "asset: check" by severity ("ERROR", "WARN").

    Our data checks are not blocking, so a run whose data failed its checks still reports success: a caller
    (``make demo``, the tests' backbone) must look here. A findings check warns when its finding is not
    reproduced, which is a result, not a defect; an ERROR check that fails means a table broke its rules.
    """
    failed: dict[str, list[str]] = {"ERROR": [], "WARN": []}
    for evaluation in evaluations:
        if not evaluation.passed:
            failed[evaluation.severity.value].append(f"{evaluation.asset_key.to_user_string()}: "
                                                     f"{evaluation.check_name}")
    return failed
