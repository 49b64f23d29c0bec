"""A real arm's pick, sequenced over the few things every hardware arm driver offers (``ArmMotion``).

    approach  linear to ``approach_distance`` back along the grasp's approach (its z), then onto the grasp
    grip      gripper on, wait ``grip_time``, sense whether something is held
    lift      straight back out along the approach, sense again
    place     over the place pose, down onto it, release, back up

Outcomes as DESIGN.md's failure causes: a protective stop while moving onto the part is a COLLISION;
nothing sensed after gripping is MISSED; held at the grip but not after lift or transfer is DROPPED; a pose
the arm cannot reach is UNREACHABLE; any other fault is a DRIVER_ERROR. After a failure the gripper is
released and the arm backed off where it still can be, and the result says what happened.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass
from typing import Callable

from grasp_cell.core.grasp import GripperKind
from grasp_cell.core.outcome import Outcome
from grasp_cell.core.pick import PickResult
from grasp_cell.core.transform import Transform
from grasp_cell.drivers.base import ArmDriver, DriverError, PickRequest
from grasp_cell.drivers.hand_eye import load_T_base_cam
from grasp_cell.drivers.settings import package_path


class ProtectiveStop(DriverError):
    """The arm stopped itself (force limit, contact, safety plane); moving onto a part this means a collision."""


class EmergencyStop(DriverError):
    """An emergency stop is pressed: nothing moves until a person releases it."""


class Unreachable(DriverError):
    """No joint solution within the limits for a pose, or the controller refused the target."""


class ArmMotion(abc.ABC):
    """What the pick needs of a real arm: linear moves of the tcp in the base frame and the gripper's I/O.
    Every call returns when done or raises a ``DriverError`` (one of the kinds above where it knows)."""

    @abc.abstractmethod
    def move_linear(self, T_base_tcp: Transform, speed: float, acceleration: float) -> None:
        """Move the tcp in a straight line to ``T_base_tcp`` [m/s, m/s²]; return when it is there."""

    @abc.abstractmethod
    def set_gripper(self, gripping: bool) -> None:
        """Suction on / fingers closed (True), or released (False)."""

    @abc.abstractmethod
    def holding(self) -> bool:
        """Whether the gripper senses a part (vacuum reached, fingers stopped before fully closed)."""

    def close(self) -> None:
        """Release the arm's connections."""


@dataclass(frozen=True)
class PickMotion:
    """Distances, speeds and waits of the hardware pick (``pick_motion`` in an arm driver's YAML)."""

    T_base_place: Transform
    approach_distance: float = 0.10  # [m] back along the grasp's approach
    approach_speed: float = 0.05  # [m/s] the last approach_distance, onto the part
    transfer_speed: float = 0.25  # [m/s] everything else
    acceleration: float = 0.5  # [m/s²]
    grip_time: float = 0.3  # [s] gripper on to sensing
    release_time: float = 0.3  # [s]

    @classmethod
    def from_settings(cls, settings: dict) -> "PickMotion":
        settings = dict(settings)
        if "T_base_place" not in settings:
            raise DriverError("pick_motion: T_base_place (translation, rotation_xyzw) is missing")
        T_base_place = Transform.from_dict(settings.pop("T_base_place"))
        unknown = set(settings) - set(cls.__dataclass_fields__)
        if unknown:
            raise DriverError(f"pick_motion: unknown setting(s) {', '.join(sorted(unknown))}")
        return cls(T_base_place, **{key: float(value) for key, value in settings.items()})


class HardwareArm(ArmDriver):
    """An ``ArmDriver`` whose pick is ``run_pick`` over an ``ArmMotion``: what every hardware arm shares."""

    gripper_note = ""  # said when a grasp for another gripper is refused

    def __init__(self, motion: ArmMotion, pick_motion: PickMotion, T_base_cam: Transform,
                 gripper: GripperKind = GripperKind.SUCTION):
        self.motion = motion
        self.pick_motion = pick_motion
        self._T_base_cam = T_base_cam
        self.gripper = gripper

    @property
    def T_base_cam(self) -> Transform:
        return self._T_base_cam

    def pick(self, request: PickRequest, on_phase: Callable[[str], None] | None = None) -> PickResult:
        refused = self.other_gripper(request, self.gripper_note)
        return refused if refused is not None else run_pick(self.motion, request, self.pick_motion, on_phase)

    def close(self) -> None:
        self.motion.close()


def arm_settings(settings: dict, driver: str) -> tuple[GripperKind, Transform, PickMotion]:
    """What every hardware arm's YAML gives: its gripper (default suction), the hand-eye calibration (file
    ``hand_eye``, default config/hand_eye.yaml) and the pick's ``pick_motion``."""
    try:
        gripper = GripperKind.parse(settings.get("gripper") or GripperKind.SUCTION)
    except ValueError as error:
        raise DriverError(f"{driver}: {error}") from None
    T_base_cam = load_T_base_cam(package_path(settings.get("hand_eye") or "config/hand_eye.yaml"))
    return gripper, T_base_cam, PickMotion.from_settings(settings.get("pick_motion") or {})


def backed_off(T_base_tcp: Transform, distance: float) -> Transform:
    """``T_base_tcp`` moved ``distance`` back along its own z (the approach)."""
    return T_base_tcp * Transform(translation=(0.0, 0.0, -distance))


def raised(T_base_tcp: Transform, height: float) -> Transform:
    """``T_base_tcp`` moved ``height`` up along the base's z."""
    return Transform(T_base_tcp.rotation, T_base_tcp.translation + (0.0, 0.0, height))


def run_pick(arm: ArmMotion, request: PickRequest, motion: PickMotion,
             on_phase: Callable[[str], None] | None = None, clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> PickResult:
    """One pick on a real arm; never raises for a fault, the result's outcome and message say what happened."""
    durations: dict[str, float] = {}
    phase, started = "", clock()
    T_pre = backed_off(request.T_base_grasp, motion.approach_distance)
    T_place = request.T_base_place or motion.T_base_place
    T_over_place = raised(T_place, motion.approach_distance)

    def begin(name: str) -> None:
        nonlocal phase, started
        if phase:
            durations[phase] = clock() - started
        phase, started = name, clock()
        if on_phase is not None:
            on_phase(name)

    def result(outcome: Outcome, message: str = "", removed: int = 0) -> PickResult:
        durations[phase] = clock() - started
        return PickResult(outcome, dict(durations), message, removed)

    def recover(retreat_to: Transform | None) -> str:
        """Let go and back off; a note on what could not be done."""
        notes = []
        # out of the bin slowly: the gripper is among the parts
        for step, action in (("release", lambda: arm.set_gripper(False)),
                             ("retreat", lambda: retreat_to and arm.move_linear(retreat_to, motion.approach_speed,
                                                                                motion.acceleration))):
            try:
                action()
            except DriverError as error:
                notes.append(f"{step} failed too: {error}")
        return "; ".join(notes)

    def failed(outcome: Outcome, message: str, retreat_to: Transform | None) -> PickResult:
        note = recover(retreat_to)
        return result(outcome, f"{message}; {note}" if note else message)

    speed, fast, accel = motion.approach_speed, motion.transfer_speed, motion.acceleration
    try:
        begin("approach")
        try:
            arm.move_linear(T_pre, fast, accel)
        except Unreachable as error:
            return failed(Outcome.UNREACHABLE, f"pre-grasp pose: {error}", None)
        try:
            arm.move_linear(request.T_base_grasp, speed, accel)
        except Unreachable as error:
            return failed(Outcome.UNREACHABLE, f"grasp pose: {error}", T_pre)
        except ProtectiveStop as error:
            return failed(Outcome.COLLISION, f"stopped moving onto the part: {error}", None)
        begin("grip")
        arm.set_gripper(True)
        sleep(motion.grip_time)
        if not arm.holding():
            return failed(Outcome.MISSED, "the gripper senses no part", T_pre)
        begin("lift")
        arm.move_linear(T_pre, speed, accel)
        if not arm.holding():
            return failed(Outcome.DROPPED, "lost the part while lifting", None)
        begin("place")
        arm.move_linear(T_over_place, fast, accel)
        if not arm.holding():
            return failed(Outcome.DROPPED, "lost the part on the way to the place pose", None)
        arm.move_linear(T_place, speed, accel)
        arm.set_gripper(False)
        sleep(motion.release_time)
        arm.move_linear(T_over_place, fast, accel)
        return result(Outcome.SUCCESS, removed=1)
    except EmergencyStop as error:
        return result(Outcome.DRIVER_ERROR, f"emergency stop in {phase}: {error}")
    except DriverError as error:
        return failed(Outcome.DRIVER_ERROR, f"{phase}: {error}", None)
