"""The iiwa/Kinova driver over ros2_control topics, against a fake joint_trajectory_controller and gripper
(real rclpy and DDS, both in this process, each in a context of its own)."""

import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from fake_controller import FakeController

from grasp_cell.core.grasp import GripperKind
from grasp_cell.core.outcome import Outcome
from grasp_cell.core.transform import Transform, rotation_about_axis
from grasp_cell.drivers import create_arm_driver
from grasp_cell.drivers.base import DriverError, PickRequest
from grasp_cell.drivers.hand_eye import save_T_base_cam
from grasp_cell.drivers.hardware_pick import PickMotion, backed_off, raised
from grasp_cell.drivers.settings import load_settings
from grasp_cell.drivers.trajectory_arm import (
    Kinematics,
    TrajectoryConfig,
    TrajectoryMotion,
    linear_waypoints,
    trapezoid_times,
)

T_BASE_CAM = Transform(rotation_about_axis((1.0, 0.0, 0.0), np.pi), (0.6, 0.0, 0.9))
PLACE_OFFSET = (-0.15, -0.30, 0.10)  # [m] from the rest pose's tcp


@pytest.fixture(scope="module", params=["iiwa", "kinova"])
def kinematics(request):
    kinematics = Kinematics(request.param, GripperKind.SUCTION)
    yield kinematics
    kinematics.close()


@pytest.fixture(scope="module")
def iiwa():
    kinematics = Kinematics("iiwa", GripperKind.SUCTION)
    yield kinematics
    kinematics.close()


def tcp_at_rest(kinematics: Kinematics, offset=(0.0, 0.0, 0.0), turn: float = 0.0) -> Transform:
    """The rest pose's tcp (tool down over the bin) shifted by ``offset`` [m] and turned ``turn`` [rad] about z."""
    T_base_rest = kinematics.forward_kinematics(kinematics.rest_pose)
    return Transform(rotation_about_axis((0.0, 0.0, 1.0), turn) @ T_base_rest.rotation,
                     T_base_rest.translation + offset)


class Cell:
    """A fake controller at the rest pose, and the driver's settings pointing at its topics."""

    def __init__(self, kinematics: Kinematics, tmp_path, **settings):
        self.kinematics = kinematics
        self.fake = FakeController(f"arm_{uuid.uuid4().hex[:8]}", kinematics.joint_names, kinematics.rest_pose)
        hand_eye = tmp_path / "hand_eye.yaml"
        save_T_base_cam(hand_eye, T_BASE_CAM)
        self.T_base_place = tcp_at_rest(kinematics, PLACE_OFFSET)
        self.settings = {
            "gripper": "suction",
            "hand_eye": str(hand_eye),
            "state_timeout": 10.0,  # a ceiling: DDS discovery on a busy host can take one announcement period (3 s)
            "move_timeout": 1.0,
            "pick_motion": {"T_base_place": self.T_base_place.to_dict(), "grip_time": 0.2, "release_time": 0.05},
            **self.fake.topics,
            **settings,
        }

    def arm(self):
        return create_arm_driver(self.kinematics.twin.spec.name, self.settings)

    def trajectory_ends(self) -> list[Transform]:
        """The tcp at the last point of each trajectory the controller received."""
        ends = []
        for msg in self.fake.trajectories:
            by_name = dict(zip(msg.joint_names, msg.points[-1].positions))
            ends.append(self.kinematics.forward_kinematics([by_name[name] for name in self.kinematics.joint_names]))
        return ends


@pytest.fixture
def cell_for(tmp_path):
    cells = []

    def make(kinematics, **settings):
        cells.append(Cell(kinematics, tmp_path, **settings))
        return cells[-1]

    yield make
    for cell in cells:
        cell.fake.close()


def assert_poses_close(actual: Transform, expected: Transform, what: str = ""):
    assert np.linalg.norm(actual.translation - expected.translation) < 0.003, what
    cos_angle = (np.trace(actual.rotation.T @ expected.rotation) - 1.0) / 2.0
    assert np.degrees(np.arccos(np.clip(cos_angle, -1.0, 1.0))) < 2.5, what


def test_full_pick_moves_the_controller_through_approach_grip_lift_and_place(kinematics, cell_for):
    cell = cell_for(kinematics)
    cell.fake.part_present = True
    T_base_grasp = tcp_at_rest(kinematics, (0.05, 0.04, -0.06), turn=0.5)
    arm = cell.arm()
    try:
        assert arm.T_base_cam.translation == pytest.approx(T_BASE_CAM.translation)
        phases = []
        result = arm.pick(PickRequest(T_base_grasp, GripperKind.SUCTION), on_phase=phases.append)
    finally:
        arm.close()
    assert result.outcome is Outcome.SUCCESS, result.message
    assert phases == ["approach", "grip", "lift", "place"]
    T_pre, T_over_place = backed_off(T_base_grasp, 0.10), raised(cell.T_base_place, 0.10)
    expected = [T_pre, T_base_grasp, T_pre, T_over_place, cell.T_base_place, T_over_place]
    ends = cell.trajectory_ends()
    assert len(ends) == len(expected)
    for move, (actual, wanted) in enumerate(zip(ends, expected)):
        assert_poses_close(actual, wanted, f"move {move}")
    assert cell.fake.gripper_commands == [True, False]
    # each move is a straight line in several waypoints, timed to the speed: onto the part at 0.05 m/s
    onto_part = cell.fake.trajectories[1]
    assert len(onto_part.points) >= 10
    last = onto_part.points[-1].time_from_start
    assert last.sec + last.nanosec * 1e-9 == pytest.approx(0.10 / 0.05 + 0.05 / 0.5, rel=0.05)
    # the pick returned once the joints were within goal_tolerance of where the last trajectory ends
    last_end = dict(zip(cell.fake.trajectories[-1].joint_names, cell.fake.trajectories[-1].points[-1].positions))
    q_end = [last_end[name] for name in kinematics.joint_names]
    assert cell.fake.joint_positions() == pytest.approx(q_end, abs=0.01 + 1e-9)


def test_nothing_there_is_missed_and_the_arm_backs_off(iiwa, cell_for):
    cell = cell_for(iiwa)
    T_base_grasp = tcp_at_rest(iiwa, (0.0, 0.0, -0.05))
    arm = cell.arm()
    try:
        result = arm.pick(PickRequest(T_base_grasp, GripperKind.SUCTION))
    finally:
        arm.close()
    assert result.outcome is Outcome.MISSED, result.message
    assert cell.fake.gripper_commands == [True, False]
    assert len(cell.fake.trajectories) == 3  # approach in two, back out to the pre-grasp pose
    assert_poses_close(cell.trajectory_ends()[-1], backed_off(T_base_grasp, 0.10))


def test_grasp_far_outside_the_workspace_is_unreachable_and_nothing_moves(iiwa, cell_for):
    cell = cell_for(iiwa)
    arm = cell.arm()
    try:
        result = arm.pick(PickRequest(tcp_at_rest(iiwa, (2.5, 0.0, 0.0)), GripperKind.SUCTION))
    finally:
        arm.close()
    assert result.outcome is Outcome.UNREACHABLE
    assert "no joint solution within the limits" in result.message
    assert cell.fake.trajectories == []


def test_silent_joint_states_fail_at_start_naming_the_topic(iiwa, cell_for):
    cell = cell_for(iiwa, state_timeout=1.0)
    cell.fake.publishing = False
    with pytest.raises(DriverError, match=f"no message on {cell.fake.topics['joint_state_topic']} within 1.0 s"):
        cell.arm()


def test_joint_names_the_controller_does_not_publish_are_named(iiwa, cell_for):
    cell = cell_for(iiwa)
    config = TrajectoryConfig.from_settings({**cell.fake.topics, "joint_names": [f"A{i}" for i in range(1, 8)]},
                                            iiwa.joint_names)
    motion = TrajectoryMotion(iiwa, config)
    try:
        deadline = time.monotonic() + 10.0
        while cell.fake.state_subscriber_count() == 0 and time.monotonic() < deadline:  # discovery
            time.sleep(0.01)
        with pytest.raises(DriverError, match="has no joint.s. A1, A2.*lbr_iiwa_joint_1.*set joint_names"):
            motion.wait_for_joint_states(timeout=1.0)
    finally:
        motion.close()


def test_controller_not_following_is_a_driver_error_naming_the_joints(iiwa, cell_for):
    cell = cell_for(iiwa, move_timeout=0.3)
    cell.fake.following = False
    arm = cell.arm()
    try:
        result = arm.pick(PickRequest(tcp_at_rest(iiwa, (0.05, 0.0, -0.05)), GripperKind.SUCTION))
    finally:
        arm.close()
    assert result.outcome is Outcome.DRIVER_ERROR
    assert "approach: the arm did not arrive" in result.message
    assert "lbr_iiwa_joint_2 off by" in result.message
    assert len(cell.fake.trajectories) == 1
    assert cell.fake.gripper_commands == [False]  # released on the way out


def test_settings_errors_name_the_problem(iiwa):
    with pytest.raises(DriverError, match="unknown setting.*trajectory_topik"):
        TrajectoryConfig.from_settings({"trajectory_topik": "/x"}, iiwa.joint_names)
    with pytest.raises(DriverError, match="joint_names has 2 joints, the arm has 7"):
        TrajectoryConfig.from_settings({"joint_names": ["a", "b"]}, iiwa.joint_names)
    with pytest.raises(DriverError, match="no kinematics for robot 'ur10'"):
        Kinematics("ur10", GripperKind.SUCTION)


def test_straight_line_waypoints_and_trapezoid_timing():
    T_start = Transform.identity()
    T_goal = Transform(rotation_about_axis((0.0, 0.0, 1.0), 0.5), (0.1, 0.0, 0.0))
    waypoints = linear_waypoints(T_start, T_goal, spacing=0.01)
    assert len(waypoints) == 10
    assert waypoints[4].translation == pytest.approx((0.05, 0.0, 0.0))
    assert waypoints[4].rotation == pytest.approx(rotation_about_axis((0.0, 0.0, 1.0), 0.25))
    assert waypoints[-1].rotation == pytest.approx(T_goal.rotation)
    # cruise: 0.4 m at 0.2 m/s after 0.2 s ramps up and down (0.02 m each)
    times = trapezoid_times(np.array([0.02, 0.2, 0.4]), speed=0.2, acceleration=1.0)
    assert times == pytest.approx([0.2, 1.1, 2.2])
    # too short to reach full speed: accelerate half way, brake the rest
    assert trapezoid_times(np.array([0.01, 0.02]), speed=1.0, acceleration=1.0) == pytest.approx(
        [np.sqrt(0.02), 2 * np.sqrt(0.02)])


def test_shipped_settings_load_and_their_place_pose_is_reachable(kinematics):
    name = kinematics.twin.spec.name
    settings = load_settings(Path(__file__).resolve().parent.parent / "config" / "hardware" / f"{name}.yaml")
    assert settings["robot"] == name
    config = TrajectoryConfig.from_settings(settings, kinematics.joint_names)
    assert config.joint_names == kinematics.joint_names  # empty in the file: the URDF's
    T_base_place = PickMotion.from_settings(settings["pick_motion"]).T_base_place
    assert kinematics.solve_ik(T_base_place, kinematics.rest_pose) is not None
