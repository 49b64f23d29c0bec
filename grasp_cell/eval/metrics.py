"""Metrics computed from raw attempt records (names as in DESIGN.md: SR, PC, PPH, failures by cause)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from grasp_cell.core.outcome import Outcome
from grasp_cell.core.pick import PHASES
from grasp_cell.eval.attempt_log import AttemptRecord


@dataclass(frozen=True)
class RunSummary:
    attempts: int
    successes: int
    parts_at_start: int  # -1 if unknown
    parts_removed: int
    success_rate: float  # SR: successful attempts / attempts
    percent_cleared: float  # PC: parts removed / parts at start; NaN if parts are not counted
    failures_by_cause: dict[str, int] = field(default_factory=dict)
    picks_per_hour: float = 0.0  # PPH: successes per hour of cell time (first attempt's start to last one's end)
    attempts_per_hour: float = 0.0
    cell_time: float = 0.0  # [s]
    phase_medians: dict[str, float] = field(default_factory=dict)  # [s]
    stop_reason: str = ""

    def to_dict(self) -> dict:
        data = asdict(self)
        if np.isnan(self.percent_cleared):
            data["percent_cleared"] = None
        return data

    def format(self) -> str:
        causes = ", ".join(f"{cause} {count}" for cause, count in self.failures_by_cause.items()) or "none"
        pc = "n/a" if np.isnan(self.percent_cleared) else f"{100 * self.percent_cleared:.1f} %"
        phases = "  ".join(f"{name} {1000 * value:.0f} ms" for name, value in self.phase_medians.items())
        return "\n".join(
            [
                f"attempts {self.attempts}, successes {self.successes}, stop: {self.stop_reason or 'n/a'}",
                f"SR  {100 * self.success_rate:.1f} %",
                f"PC  {pc} ({self.parts_removed} of {self.parts_at_start} parts)",
                f"failures by cause: {causes}",
                f"PPH {self.picks_per_hour:.0f} picks/h ({self.attempts_per_hour:.0f} attempts/h over "
                f"{self.cell_time:.1f} s of cell time)",
                f"median phase times: {phases}",
            ]
        )


def grasp_rate_first(records: list[AttemptRecord], parts: int) -> tuple[int, int]:
    """(successes, attempts) up to the attempt that took the bin's ``parts``-th part out: seed 002's grasp rate
    "n out of m" (n parts grasped without replacement from a bin of m), which leaves out what is hardest at
    the end of a bin, such as parts in its corners. A bin that never got that far counts all its attempts."""
    removed = successes = attempts = 0
    for record in records:
        if removed >= parts:
            break
        attempts += 1
        successes += record.outcome is Outcome.SUCCESS
        removed += max(record.parts_removed, 0)
    return successes, attempts


def summarize(records: list[AttemptRecord], stop_reason: str = "") -> RunSummary:
    attempts = len(records)
    successes = sum(record.outcome is Outcome.SUCCESS for record in records)
    parts_at_start = records[0].parts_before if records else -1
    removed = sum(record.parts_removed for record in records)
    cell_time = (records[-1].started_at + records[-1].duration - records[0].started_at) if records else 0.0
    failures = Counter(record.outcome.value for record in records if record.outcome is not Outcome.SUCCESS)
    # the order of an attempt: capture, plan, then the pick's phases; anything else after
    order = ("capture", "plan", *PHASES)
    seen = {name for record in records for name in record.phase_durations}
    phase_names = [name for name in order if name in seen] + sorted(seen.difference(order))
    phase_medians = {
        name: float(np.median([r.phase_durations[name] for r in records if name in r.phase_durations]))
        for name in phase_names
    }
    per_hour = 3600.0 / cell_time if cell_time > 0 else 0.0
    return RunSummary(
        attempts=attempts,
        successes=successes,
        parts_at_start=parts_at_start,
        parts_removed=removed,
        success_rate=successes / attempts if attempts else 0.0,
        percent_cleared=removed / parts_at_start if parts_at_start > 0 else float("nan"),
        failures_by_cause=dict(sorted(failures.items())),
        picks_per_hour=successes * per_hour,
        attempts_per_hour=attempts * per_hour,
        cell_time=cell_time,
        phase_medians=phase_medians,
        stop_reason=stop_reason,
    )
