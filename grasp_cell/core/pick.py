"""What one pick attempt asks for and what it reports back."""

from __future__ import annotations

from dataclasses import dataclass, field

from grasp_cell.core.outcome import Outcome

PHASES = ("approach", "grip", "lift", "place")


@dataclass(frozen=True)
class PickResult:
    """The physical outcome of one pick, classified from what happened, with wall time per phase [s]."""

    outcome: Outcome
    phase_durations: dict[str, float] = field(default_factory=dict)
    message: str = ""
    parts_removed: int = 0  # parts that left the bin in this attempt (a double pick counts 2)
