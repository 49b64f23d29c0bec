"""Pick until empty: capture, plan, pick, log; the same loop behind the ROS supervisor and offline runs.

The loop only sees a ``Cell`` (three calls), so it runs the same over ROS services/actions and over
in-process drivers, and it is tested without ROS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Protocol

from grasp_cell.core.grasp import Grasp
from grasp_cell.core.outcome import Outcome
from grasp_cell.core.pick import PickResult
from grasp_cell.drivers.base import Capture, DriverError
from grasp_cell.eval.attempt_log import AttemptLog, AttemptRecord, grasp_to_dict

MAX_GRASPS_TRIED = 3  # of a plan's ranked grasps, while the better ones are unreachable


class PlanningError(RuntimeError):
    """The planner rejected the input or failed; the message says why."""


class Cell(Protocol):
    def capture(self) -> Capture:
        """Trigger the camera; raise DriverError on a camera fault."""

    def plan(self, capture: Capture) -> list[Grasp]:
        """Ranked grasps, best first; raise PlanningError when planning is impossible."""

    def pick(self, grasp: Grasp) -> PickResult:
        """Execute a grasp; faults come back as DRIVER_ERROR results."""


@dataclass(frozen=True)
class StopRules:
    max_attempts: int = 0  # 0 = no limit
    max_consecutive_failures: int = 5  # the seed-003 protocol


class PickUntilEmpty:
    """Runs attempts until the bin is empty, too many failures in a row, an attempt limit, or ``stop()``."""

    def __init__(
        self,
        cell: Cell,
        log: AttemptLog,
        rules: StopRules = StopRules(),
        model_name: str = "",
        on_attempt: Callable[[AttemptRecord], None] | None = None,
    ):
        self.cell = cell
        self.log = log
        self.rules = rules
        self.model_name = model_name
        self.on_attempt = on_attempt
        self.records: list[AttemptRecord] = []
        self._current: AttemptRecord | None = None  # the attempt under way
        self._stop_requested = False

    def stop(self) -> None:
        self._stop_requested = True

    def run(self) -> str:
        """Run to the end; returns the stop reason. Every attempt is on disk before the next starts."""
        consecutive_failures = 0
        while True:
            if self._stop_requested:
                return "stopped"
            if self.rules.max_attempts and len(self.records) >= self.rules.max_attempts:
                return f"attempt limit ({self.rules.max_attempts})"
            try:
                record = self._attempt(len(self.records) + 1)
            except KeyboardInterrupt:
                # the attempt under way is logged too: its outcome is unknown, the arm was stopped
                self._log(self._interrupted())
                return "interrupted"
            if record is None:
                return "bin empty"
            self._log(record)
            consecutive_failures = 0 if record.outcome is Outcome.SUCCESS else consecutive_failures + 1
            if record.parts_after == 0:
                return "bin empty"
            if consecutive_failures >= self.rules.max_consecutive_failures:
                return f"{consecutive_failures} consecutive failures"

    def _log(self, record: AttemptRecord) -> None:
        self.records.append(record)
        self.log.append(record)
        if self.on_attempt:
            self.on_attempt(record)

    def _interrupted(self) -> AttemptRecord:
        record = self._current
        record.outcome = Outcome.DRIVER_ERROR
        phase = next(reversed(record.phase_durations), "capture") if record.phase_durations else "capture"
        record.message = f"interrupted by the operator (after {phase}); outcome unknown"
        record.duration = time.time() - record.started_at
        return record

    def _attempt(self, number: int) -> AttemptRecord | None:
        """One attempt; None when the capture shows an empty bin (nothing attempted)."""
        started = time.time()
        record = AttemptRecord(attempt=number, outcome=Outcome.DRIVER_ERROR, model=self.model_name, started_at=started)
        self._current = record

        def finish(outcome: Outcome, message: str) -> AttemptRecord:
            record.outcome = outcome
            record.message = message
            record.duration = time.time() - started
            return record

        tic = time.perf_counter()
        try:
            capture = self.cell.capture()
        except DriverError as error:
            record.phase_durations["capture"] = time.perf_counter() - tic
            return finish(Outcome.DRIVER_ERROR, f"capture failed: {error}")
        record.phase_durations["capture"] = time.perf_counter() - tic
        record.parts_before = capture.parts_in_bin
        if capture.parts_in_bin == 0:
            return None

        tic = time.perf_counter()
        try:
            grasps = self.cell.plan(capture)
        except PlanningError as error:
            record.phase_durations["plan"] = time.perf_counter() - tic
            record.parts_after = record.parts_before
            return finish(Outcome.DRIVER_ERROR, f"planning failed: {error}")
        record.phase_durations["plan"] = time.perf_counter() - tic
        if not grasps:
            record.parts_after = record.parts_before
            return finish(Outcome.NO_GRASP, "the model found no grasp above its threshold")

        # an unreachable grasp moved nothing (no IK solution or clear path): the next one is tried instead of
        # planning the unchanged scene again, which would offer the same grasp; not when the first was chosen
        # by an exploring selection (learning mode), whose records must say how their grasp was chosen
        tries = grasps[:MAX_GRASPS_TRIED] if not grasps[0].selection else grasps[:1]
        for tried, grasp in enumerate(tries):
            record.grasp = grasp_to_dict(grasp)
            result = self.cell.pick(grasp)
            for phase, seconds in result.phase_durations.items():
                record.phase_durations[phase] = record.phase_durations.get(phase, 0.0) + seconds
            if result.outcome is not Outcome.UNREACHABLE:
                break
        record.parts_removed = result.parts_removed
        if record.parts_before >= 0:
            record.parts_after = max(record.parts_before - result.parts_removed, 0)
        skipped = f"{tried} better-ranked grasp{'s' if tried > 1 else ''} unreachable; " if tried else ""
        return finish(result.outcome, skipped + result.message)
