"""Attempt outcomes: the supervisor logs exactly one per attempt (DESIGN.md, failure causes)."""

from __future__ import annotations

import enum


class Outcome(str, enum.Enum):
    SUCCESS = "success"  # part lifted, carried and released at the place target
    NO_GRASP = "no_grasp"  # the model found nothing above its threshold
    COLLISION = "collision"  # gripper or arm hit the bin or other parts on approach
    MISSED = "missed"  # closed or sucked on nothing
    DROPPED = "dropped"  # held at first, lost during lift or transfer
    UNREACHABLE = "unreachable"  # no IK solution inside joint limits, or outside the workspace
    DRIVER_ERROR = "driver_error"  # camera or arm fault, timeout

    @property
    def is_success(self) -> bool:
        return self is Outcome.SUCCESS
