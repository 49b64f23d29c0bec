"""The hardware pick sequence (grasp_cell.drivers.hardware_pick.run_pick) over a scripted arm: the moves it
makes and the outcome it reports for each way a pick can end."""

import numpy as np
import pytest

from grasp_cell.core.grasp import GripperKind
from grasp_cell.core.outcome import Outcome
from grasp_cell.core.pick import PHASES
from grasp_cell.core.transform import Transform, rotation_about_axis
from grasp_cell.drivers.base import DriverError, PickRequest
from grasp_cell.drivers.hardware_pick import (
    ArmMotion,
    EmergencyStop,
    PickMotion,
    ProtectiveStop,
    Unreachable,
    run_pick,
)

MOVE_TIME = 1.0  # [s] every fake move takes this long on the fake clock
MOTION = PickMotion(
    T_base_place=Transform(rotation_about_axis((1.0, 0.0, 0.0), np.pi), (0.1, -0.45, 0.15)),
    approach_distance=0.1, approach_speed=0.05, transfer_speed=0.25, acceleration=0.5, grip_time=0.3,
    release_time=0.2,
)
# tilted grasp: its approach (z) is not the base's -z, so "back along the approach" is not simply "up"
T_BASE_GRASP = Transform(rotation_about_axis((1.0, 1.0, 0.0), 2.8), (0.45, 0.05, 0.08))


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class ScriptedArm(ArmMotion):
    """Records every call; ``holding`` answers from a script, and faults are raised where scripted."""

    def __init__(self, clock: Clock, holding=(), move_faults=None, grip_fault=None, release_fault=None):
        self.clock = clock
        self.calls: list[tuple] = []
        self.holding_answers = list(holding)
        self.move_faults = move_faults or {}  # index of the move -> the exception it raises
        self.grip_fault, self.release_fault = grip_fault, release_fault

    def move_linear(self, T_base_tcp, speed, acceleration):
        index = len(self.moves)
        self.calls.append(("move", T_base_tcp, speed, acceleration))
        self.clock.now += MOVE_TIME
        if index in self.move_faults:
            raise self.move_faults[index]

    def set_gripper(self, gripping):
        self.calls.append(("gripper", gripping))
        fault = self.grip_fault if gripping else self.release_fault
        if fault is not None:
            raise fault

    def holding(self):
        self.calls.append(("holding",))
        return self.holding_answers.pop(0)

    @property
    def moves(self) -> list[tuple]:
        return [call for call in self.calls if call[0] == "move"]

    def kinds(self) -> list[str]:
        return [call[0] if call[0] != "gripper" else f"gripper {'on' if call[1] else 'off'}" for call in self.calls]


def pick(arm: ScriptedArm, clock: Clock, request: PickRequest | None = None, phases: list | None = None):
    request = request or PickRequest(T_BASE_GRASP, GripperKind.SUCTION)
    on_phase = phases.append if phases is not None else None
    return run_pick(arm, request, MOTION, on_phase, clock=clock, sleep=clock.sleep)


def assert_pose(T: Transform, expected: Transform):
    np.testing.assert_allclose(T.translation, expected.translation, atol=1e-12)
    np.testing.assert_allclose(T.rotation, expected.rotation, atol=1e-12)


def pre_grasp() -> Transform:
    """0.1 m back along the grasp's own z, same orientation."""
    return Transform(T_BASE_GRASP.rotation, T_BASE_GRASP.translation - 0.1 * T_BASE_GRASP.rotation[:, 2])


def over(T: Transform) -> Transform:
    return Transform(T.rotation, T.translation + (0.0, 0.0, 0.1))


def test_success_moves_approach_grip_lift_place_in_order():
    clock = Clock()
    arm, phases = ScriptedArm(clock, holding=[True, True, True]), []
    result = pick(arm, clock, phases=phases)

    assert result.outcome is Outcome.SUCCESS and result.parts_removed == 1 and result.message == ""
    assert phases == list(PHASES)
    assert arm.kinds() == ["move", "move", "gripper on", "holding", "move", "holding", "move", "holding", "move",
                           "gripper off", "move"]
    place = MOTION.T_base_place
    expected = [(pre_grasp(), 0.25), (T_BASE_GRASP, 0.05), (pre_grasp(), 0.05), (over(place), 0.25), (place, 0.05),
                (over(place), 0.25)]
    for (_, T, speed, acceleration), (T_expected, speed_expected) in zip(arm.moves, expected, strict=True):
        assert_pose(T, T_expected)
        assert (speed, acceleration) == (speed_expected, 0.5)
    # the fake clock: each move 1 s, plus the grip and release waits
    assert result.phase_durations == pytest.approx({"approach": 2.0, "grip": 0.3, "lift": 1.0, "place": 3.2})


def test_place_pose_of_the_request_wins_over_the_configured_one():
    clock = Clock()
    arm = ScriptedArm(clock, holding=[True, True, True])
    T_base_bin2 = Transform(MOTION.T_base_place.rotation, (-0.3, 0.4, 0.2))
    result = pick(arm, clock, PickRequest(T_BASE_GRASP, GripperKind.SUCTION, T_base_place=T_base_bin2))
    assert result.outcome is Outcome.SUCCESS
    assert_pose(arm.moves[3][1], over(T_base_bin2))
    assert_pose(arm.moves[4][1], T_base_bin2)


def test_nothing_sensed_after_gripping_is_missed_and_backs_off():
    clock = Clock()
    arm, phases = ScriptedArm(clock, holding=[False]), []
    result = pick(arm, clock, phases=phases)

    assert result.outcome is Outcome.MISSED and result.parts_removed == 0
    assert "senses no part" in result.message
    assert phases == ["approach", "grip"]
    assert arm.kinds() == ["move", "move", "gripper on", "holding", "gripper off", "move"]
    assert_pose(arm.moves[-1][1], pre_grasp())  # straight back out of the bin
    assert set(result.phase_durations) == {"approach", "grip"}


def test_lost_while_lifting_is_dropped():
    clock = Clock()
    arm, phases = ScriptedArm(clock, holding=[True, False]), []
    result = pick(arm, clock, phases=phases)

    assert result.outcome is Outcome.DROPPED and result.parts_removed == 0
    assert "lifting" in result.message
    assert phases == ["approach", "grip", "lift"]
    assert arm.kinds() == ["move", "move", "gripper on", "holding", "move", "holding", "gripper off"]


def test_lost_on_the_way_to_the_place_pose_is_dropped():
    clock = Clock()
    arm, phases = ScriptedArm(clock, holding=[True, True, False]), []
    result = pick(arm, clock, phases=phases)

    assert result.outcome is Outcome.DROPPED
    assert "way to the place pose" in result.message
    assert phases == list(PHASES)
    assert arm.kinds()[-3:] == ["move", "holding", "gripper off"]
    assert_pose(arm.moves[-1][1], over(MOTION.T_base_place))  # never went down onto the place pose


def test_protective_stop_moving_onto_the_part_is_a_collision():
    clock = Clock()
    arm = ScriptedArm(clock, move_faults={1: ProtectiveStop("force limit")})
    result = pick(arm, clock)

    assert result.outcome is Outcome.COLLISION
    assert "moving onto the part" in result.message and "force limit" in result.message
    # the gripper is released and the stopped arm is not moved again
    assert arm.kinds() == ["move", "move", "gripper off"]
    assert set(result.phase_durations) == {"approach"}


def test_protective_stop_on_the_way_to_the_pre_grasp_pose_is_a_driver_error_not_a_collision():
    clock = Clock()
    arm = ScriptedArm(clock, move_faults={0: ProtectiveStop("safety plane")})
    result = pick(arm, clock)
    assert result.outcome is Outcome.DRIVER_ERROR
    assert result.message.startswith("approach: ") and "safety plane" in result.message


def test_unreachable_pre_grasp_pose():
    clock = Clock()
    arm = ScriptedArm(clock, move_faults={0: Unreachable("no joint solution")})
    result = pick(arm, clock)

    assert result.outcome is Outcome.UNREACHABLE
    assert "pre-grasp pose" in result.message and "no joint solution" in result.message
    assert arm.kinds() == ["move", "gripper off"]  # nothing to back off from


def test_unreachable_grasp_pose_backs_off_to_the_pre_grasp_pose():
    clock = Clock()
    arm = ScriptedArm(clock, move_faults={1: Unreachable("outside the workspace")})
    result = pick(arm, clock)

    assert result.outcome is Outcome.UNREACHABLE
    assert result.message.startswith("grasp pose: ")
    assert arm.kinds() == ["move", "move", "gripper off", "move"]
    assert_pose(arm.moves[-1][1], pre_grasp())


def test_emergency_stop_is_a_driver_error_and_nothing_else_is_commanded():
    clock = Clock()
    arm = ScriptedArm(clock, holding=[True], move_faults={2: EmergencyStop("robot emergency stop")})
    result = pick(arm, clock)

    assert result.outcome is Outcome.DRIVER_ERROR and result.parts_removed == 0
    assert result.message == "emergency stop in lift: robot emergency stop"
    assert arm.kinds() == ["move", "move", "gripper on", "holding", "move"]  # no release, no retreat
    assert set(result.phase_durations) == {"approach", "grip", "lift"}


def test_other_driver_error_is_reported_with_the_phase_and_the_gripper_released():
    clock = Clock()
    arm = ScriptedArm(clock, grip_fault=DriverError("vacuum output did not switch"))
    result = pick(arm, clock)

    assert result.outcome is Outcome.DRIVER_ERROR
    assert result.message == "grip: vacuum output did not switch"
    assert arm.kinds() == ["move", "move", "gripper on", "gripper off"]


def test_a_failing_recovery_is_added_to_the_message():
    clock = Clock()
    arm = ScriptedArm(clock, holding=[True, True], move_faults={3: DriverError("RTDE connection lost")},
                      release_fault=DriverError("RTDE connection lost"))
    result = pick(arm, clock)

    assert result.outcome is Outcome.DRIVER_ERROR
    assert result.message == "place: RTDE connection lost; release failed too: RTDE connection lost"


def test_pick_motion_settings():
    motion = PickMotion.from_settings({"T_base_place": MOTION.T_base_place.to_dict(), "approach_distance": "0.05"})
    assert motion.approach_distance == 0.05 and motion.transfer_speed == 0.25
    with pytest.raises(DriverError, match="T_base_place"):
        PickMotion.from_settings({})
    with pytest.raises(DriverError, match="unknown setting.*lift_height"):
        PickMotion.from_settings({"T_base_place": MOTION.T_base_place.to_dict(), "lift_height": 0.2})
