"""KUKA iiwa and Kinova arms through ros2_control topics: joint trajectories to a joint_trajectory_controller,
joint state from /joint_states, the gripper through two std_msgs/Bool topics.

IK is our own, on the same URDF as the simulated twin (grasp_cell.sim.robots): a ``RobotTwin`` in a PyBullet
DIRECT client of its own, never stepped, with the world frame at the arm's base. A linear move is a few
Cartesian waypoints, each solved seeded from the one before, sent as one ``JointTrajectory``. The ROS side is a
node in an rclpy context of its own, spun in a daemon thread, so the driver runs inside motion_node's process
without touching its node. The pick itself is ``grasp_cell.drivers.hardware_pick.run_pick``.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pybullet
import rclpy
from rclpy.context import Context
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from scipy.spatial.transform import Rotation, Slerp
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from grasp_cell.core.grasp import GripperKind
from grasp_cell.core.transform import Transform
from grasp_cell.drivers.base import DriverError
from grasp_cell.drivers.hardware_pick import ArmMotion, HardwareArm, Unreachable, arm_settings
from grasp_cell.sim.robots import ARMS, RobotTwin, assemble_urdf

WAYPOINT_TURN = math.radians(5.0)  # [rad] most rotation between neighbouring Cartesian waypoints
# settings TrajectoryArm.from_settings reads; host (the launch's robot_ip) is the UR's: ros2_control owns the connection
PASSED_THROUGH = {"driver", "robot", "gripper", "hand_eye", "pick_motion", "host"}


@dataclass(frozen=True)
class TrajectoryConfig:
    """Topics, tolerances and timing of ``TrajectoryMotion`` (the top-level keys of config/hardware/<arm>.yaml)."""

    joint_names: tuple[str, ...]  # the controller's names of the arm joints, in the URDF's order (base to flange)
    trajectory_topic: str = "/joint_trajectory_controller/joint_trajectory"
    joint_state_topic: str = "/joint_states"
    gripper_command_topic: str = "/gripper/command"  # std_msgs/Bool: true = grip
    gripper_state_topic: str = "/gripper/holding"  # std_msgs/Bool: true = a part is held
    goal_tolerance: float = 0.01  # [rad] every joint, to count as arrived
    move_timeout: float = 2.0  # [s] allowed beyond a trajectory's own duration for the arm to arrive
    state_timeout: float = 10.0  # [s] for the first /joint_states and for the controller to subscribe (discovery)
    joint_state_max_age: float = 0.5  # [s] a move starts only from joint states newer than this
    gripper_state_max_age: float = 0.5  # [s] an older gripper state counts as not holding
    waypoint_spacing: float = 0.01  # [m] between Cartesian waypoints
    max_joint_step: float = 0.3  # [rad] between waypoints; more means the IK changed branch mid-line
    max_joint_speed: float = 1.0  # [rad/s] a trajectory is slowed down until no joint is faster
    min_duration: float = 0.5  # [s] of any trajectory

    @classmethod
    def from_settings(cls, settings: dict, default_joint_names: tuple[str, ...]) -> "TrajectoryConfig":
        fields = {field.name for field in dataclasses.fields(cls)}
        unknown = set(settings) - fields - PASSED_THROUGH
        if unknown:
            raise DriverError(f"trajectory arm: unknown setting(s) {', '.join(sorted(unknown))}; "
                              f"known: {', '.join(sorted(fields | PASSED_THROUGH - {'host'}))}")
        values = {key: settings[key] for key in fields if settings.get(key) not in (None, "")}
        names = tuple(values.pop("joint_names", None) or default_joint_names)
        if len(names) != len(default_joint_names):
            raise DriverError(f"trajectory arm: joint_names has {len(names)} joints, the arm has "
                              f"{len(default_joint_names)} ({', '.join(default_joint_names)})")
        strings = {"trajectory_topic", "joint_state_topic", "gripper_command_topic", "gripper_state_topic"}
        return cls(names, **{key: str(value) if key in strings else float(value) for key, value in values.items()})


class Kinematics:
    """IK (within the joint limits) and FK of one arm with its gripper, on the simulated twin's URDF.

    The PyBullet world is the arm's base frame and is never stepped: only joint states are set.
    """

    def __init__(self, robot: str, gripper: GripperKind):
        if robot not in ARMS:
            raise DriverError(f"trajectory arm: no kinematics for robot '{robot}'; known: {', '.join(ARMS)}")
        self._folder = tempfile.TemporaryDirectory(prefix="grasp_cell_kinematics_")
        self.client = pybullet.connect(pybullet.DIRECT)
        try:
            urdf = assemble_urdf(ARMS[robot], gripper, Path(self._folder.name))
            self.twin = RobotTwin(self.client, ARMS[robot], gripper, urdf, Transform.identity())
        except Exception:
            self.close()
            raise
        self.joint_names = tuple(
            pybullet.getJointInfo(self.twin.body, index, physicsClientId=self.client)[1].decode()
            for index in self.twin.arm_joints
        )

    @property
    def rest_pose(self) -> np.ndarray:
        return self.twin.rest_pose

    def solve_ik(self, T_base_tcp: Transform, seed) -> np.ndarray | None:
        return self.twin.solve_ik(T_base_tcp, seed=seed)

    def forward_kinematics(self, q) -> Transform:
        return self.twin.forward_kinematics(q)

    def close(self) -> None:
        if pybullet.isConnected(self.client):
            pybullet.disconnect(self.client)
        self._folder.cleanup()


def linear_waypoints(T_start: Transform, T_goal: Transform, spacing: float) -> list[Transform]:
    """Poses along the straight line from ``T_start`` (left out) to ``T_goal``: positions evenly spaced at most
    ``spacing`` apart, rotations slerped at most ``WAYPOINT_TURN`` apart."""
    rotations = Rotation.from_matrix(np.stack([T_start.rotation, T_goal.rotation]))
    angle = float((rotations[0].inv() * rotations[1]).magnitude())
    distance = float(np.linalg.norm(T_goal.translation - T_start.translation))
    count = max(1, math.ceil(distance / spacing), math.ceil(angle / WAYPOINT_TURN))
    fractions = np.arange(1, count + 1) / count
    slerped = Slerp([0.0, 1.0], rotations)(fractions).as_matrix()
    return [
        Transform(rotation, T_start.translation + f * (T_goal.translation - T_start.translation))
        for f, rotation in zip(fractions, slerped)
    ]


def trapezoid_times(arc_lengths: np.ndarray, speed: float, acceleration: float) -> np.ndarray:
    """When a rest-to-rest move with a trapezoidal speed profile passes each arc length [m] -> [s]."""
    total = float(arc_lengths[-1])
    if total <= 0.0:
        return np.zeros(len(arc_lengths))
    speed = min(speed, math.sqrt(total * acceleration))  # short moves never reach full speed
    ramp_time, ramp_length = speed / acceleration, speed**2 / (2 * acceleration)
    duration = total / speed + ramp_time
    s = np.asarray(arc_lengths, dtype=float)
    return np.where(
        s < ramp_length,
        np.sqrt(2 * np.clip(s, 0.0, None) / acceleration),
        np.where(
            s <= total - ramp_length,
            ramp_time + (s - ramp_length) / speed,
            duration - np.sqrt(2 * np.clip(total - s, 0.0, None) / acceleration),
        ),
    )


class TrajectoryMotion(ArmMotion):
    """Linear tcp moves and the gripper over ros2_control topics, from a node in an rclpy context of its own."""

    def __init__(self, kinematics: Kinematics, config: TrajectoryConfig, node_name: str = "trajectory_arm"):
        self.kinematics = kinematics
        self.config = config
        self._state = threading.Condition()  # guards the latest joint and gripper state, notified on each
        self._positions: dict[str, float] = {}
        self._positions_at: float | None = None  # monotonic receipt time [s]
        self._seen_joints: tuple[str, ...] = ()
        self._holding: bool | None = None
        self._holding_at: float | None = None
        self.context = Context()
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = self.executor = self._spinner = None
        try:
            self.node = rclpy.create_node(node_name, context=self.context)
            self._trajectory_publisher = self.node.create_publisher(JointTrajectory, config.trajectory_topic, 10)
            self._gripper_publisher = self.node.create_publisher(Bool, config.gripper_command_topic, 10)
            # best effort takes both reliable and best-effort publishers
            self.node.create_subscription(JointState, config.joint_state_topic, self._joint_state_callback,
                                          qos_profile_sensor_data)
            self.node.create_subscription(Bool, config.gripper_state_topic, self._gripper_state_callback,
                                          qos_profile_sensor_data)
            self.executor = SingleThreadedExecutor(context=self.context)
            self.executor.add_node(self.node)
            self._spinner = threading.Thread(target=self.executor.spin, name=node_name, daemon=True)
            self._spinner.start()
        except Exception:
            self.close()
            raise

    # --- state -----------------------------------------------------------------------------------------
    def _joint_state_callback(self, msg: JointState) -> None:
        with self._state:
            self._seen_joints = tuple(msg.name)
            self._positions.update(zip(msg.name, msg.position))
            if all(name in self._positions for name in self.config.joint_names):
                self._positions_at = time.monotonic()
            self._state.notify_all()

    def _gripper_state_callback(self, msg: Bool) -> None:
        with self._state:
            self._holding, self._holding_at = bool(msg.data), time.monotonic()
            self._state.notify_all()

    def wait_for_joint_states(self, timeout: float | None = None) -> np.ndarray:
        """The arm's joint positions once /joint_states has reported all of them; DriverError if it stays silent."""
        timeout = self.config.state_timeout if timeout is None else timeout
        with self._state:
            if not self._state.wait_for(lambda: self._positions_at is not None, timeout):
                topic = self.config.joint_state_topic
                if not self._seen_joints:
                    raise DriverError(f"no message on {topic} within {timeout:.1f} s: is the joint_state_broadcaster "
                                      "running (ros2 control list_controllers)?")
                missing = [name for name in self.config.joint_names if name not in self._positions]
                raise DriverError(f"{topic} has no joint(s) {', '.join(missing)} "
                                  f"(it has {', '.join(self._seen_joints)}): set joint_names in the arm's YAML")
            return self._arm_positions()

    def wait_for_gripper_state(self, timeout: float | None = None) -> None:
        """Return once the gripper has reported; DriverError if it stays silent (holding() needs fresh states)."""
        timeout = self.config.state_timeout if timeout is None else timeout
        with self._state:
            if not self._state.wait_for(lambda: self._holding is not None, timeout):
                raise DriverError(f"no message on {self.config.gripper_state_topic} within {timeout:.1f} s: is the "
                                  "gripper's I/O node running?")

    def joint_positions(self) -> np.ndarray:
        """The latest joint positions; DriverError when /joint_states has been silent for ``joint_state_max_age``."""
        with self._state:
            age = math.inf if self._positions_at is None else time.monotonic() - self._positions_at
            if age > self.config.joint_state_max_age:
                raise DriverError(f"no message on {self.config.joint_state_topic} for {age:.1f} s: is the "
                                  "joint_state_broadcaster running?")
            return self._arm_positions()

    def _arm_positions(self) -> np.ndarray:
        return np.array([self._positions[name] for name in self.config.joint_names])

    # --- motion ----------------------------------------------------------------------------------------
    def move_linear(self, T_base_tcp: Transform, speed: float, acceleration: float) -> None:
        q_start = self.joint_positions()
        T_base_start = self.kinematics.forward_kinematics(q_start)
        waypoints = linear_waypoints(T_base_start, T_base_tcp, self.config.waypoint_spacing)
        q_path = self._solve_path(q_start, waypoints)
        positions = np.array([T.translation for T in (T_base_start, *waypoints)])
        times = trapezoid_times(np.linalg.norm(np.diff(positions, axis=0), axis=1).cumsum(), speed, acceleration)
        times = self._slowed_down(np.array([q_start, *q_path]), times)
        self._publish_trajectory(q_path, times)
        self._wait_until_at(q_path[-1], float(times[-1]) + self.config.move_timeout)

    def _solve_path(self, q_start: np.ndarray, waypoints: list[Transform]) -> list[np.ndarray]:
        """Joint positions for each waypoint, each seeded from the one before; Unreachable where there are none."""
        q_path, seed, goal = [], q_start, _xyz(waypoints[-1])
        for index, T_base_waypoint in enumerate(waypoints, 1):
            q = self.kinematics.solve_ik(T_base_waypoint, seed)
            where = f"the tcp at {_xyz(T_base_waypoint)} (waypoint {index} of {len(waypoints)} to {goal})"
            if q is None:
                raise Unreachable(f"no joint solution within the limits for {where}")
            step = float(np.max(np.abs(q - seed)))
            if step > self.config.max_joint_step:
                raise Unreachable(f"the joints would jump {step:.2f} rad at {where}: no continuous straight path")
            q_path.append(q)
            seed = q
        return q_path

    def _slowed_down(self, q_all: np.ndarray, times: np.ndarray) -> np.ndarray:
        """``times`` of ``q_all[1:]`` stretched until no joint is faster than ``max_joint_speed`` and the whole
        trajectory lasts ``min_duration``."""
        if times[-1] <= 0.0:  # a turn on the spot: spread it evenly
            times = np.arange(1, len(times) + 1) / len(times)
        joint_speed = np.max(np.max(np.abs(np.diff(q_all, axis=0)), axis=1) / np.maximum(np.diff([0.0, *times]), 1e-9))
        return times * max(joint_speed / self.config.max_joint_speed, self.config.min_duration / times[-1], 1.0)

    def _publish_trajectory(self, q_path: list[np.ndarray], times: np.ndarray) -> None:
        self._wait_for_subscriber(self._trajectory_publisher, self.config.trajectory_topic,
                                  "is the joint_trajectory_controller active (ros2 control list_controllers)?")
        msg = JointTrajectory()  # header stamp zero: start now
        msg.joint_names = list(self.config.joint_names)
        for q, t in zip(q_path, times):
            msg.points.append(JointTrajectoryPoint(positions=[float(v) for v in q],
                                                   time_from_start=Duration(seconds=float(t)).to_msg()))
        self._trajectory_publisher.publish(msg)

    def _wait_until_at(self, q_goal: np.ndarray, timeout: float) -> None:
        """Return when every joint is within ``goal_tolerance`` of ``q_goal``; DriverError naming the others."""
        with self._state:
            def arrived() -> bool:
                return bool(np.all(np.abs(self._arm_positions() - q_goal) <= self.config.goal_tolerance))

            if self._state.wait_for(arrived, timeout):
                return
            errors = np.abs(self._arm_positions() - q_goal)
            age = time.monotonic() - self._positions_at
        late = ", ".join(f"{name} off by {error:.3f} rad" for name, error in zip(self.config.joint_names, errors)
                         if error > self.config.goal_tolerance)
        raise DriverError(f"the arm did not arrive within {timeout:.1f} s: {late} (last {self.config.joint_state_topic}"
                          f" {age:.1f} s ago; is the controller following {self.config.trajectory_topic}?)")

    # --- gripper ---------------------------------------------------------------------------------------
    def set_gripper(self, gripping: bool) -> None:
        self._wait_for_subscriber(self._gripper_publisher, self.config.gripper_command_topic,
                                  "is the gripper's I/O node running?")
        self._gripper_publisher.publish(Bool(data=bool(gripping)))

    def holding(self) -> bool:
        with self._state:
            holding, at = self._holding, self._holding_at
        topic = self.config.gripper_state_topic
        if holding is None:
            self.node.get_logger().warning(f"no message on {topic} yet: counting as not holding")
            return False
        age = time.monotonic() - at
        if age > self.config.gripper_state_max_age:
            self.node.get_logger().warning(f"the last message on {topic} is {age:.1f} s old: counting as not holding")
            return False
        return holding

    def _wait_for_subscriber(self, publisher, topic: str, hint: str) -> None:
        """Wait until someone subscribes, so the first message is not published into the void."""
        deadline = time.monotonic() + self.config.state_timeout
        while publisher.get_subscription_count() == 0:
            if time.monotonic() > deadline:
                raise DriverError(f"nobody subscribes to {topic} after {self.config.state_timeout:.1f} s: {hint}")
            time.sleep(0.01)

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(timeout_sec=1.0)
        if self._spinner is not None:
            self._spinner.join(timeout=1.0)
        if self.node is not None:
            self.node.destroy_node()
        self.context.try_shutdown()
        self.node = self.executor = self._spinner = None


def _xyz(T: Transform) -> str:
    return "(" + ", ".join(f"{v:.3f}" for v in T.translation) + ") m"


class TrajectoryArm(HardwareArm):
    """A KUKA iiwa or Kinova arm behind a ros2_control joint_trajectory_controller."""

    @classmethod
    def from_settings(cls, settings: dict) -> "TrajectoryArm":
        """Kinematics of ``robot`` (default: the driver's name) with ``gripper``; returns once the joints and the
        gripper have reported, or raises a DriverError saying which topic is silent."""
        robot = str(settings.get("robot") or settings.get("driver", ""))
        gripper, T_base_cam, pick_motion = arm_settings(settings, robot)
        kinematics, motion = Kinematics(robot, gripper), None
        try:
            config = TrajectoryConfig.from_settings(settings, kinematics.joint_names)
            motion = TrajectoryMotion(kinematics, config, node_name=f"{robot}_trajectory_arm")
            motion.wait_for_joint_states()
            motion.wait_for_gripper_state()
        except Exception:
            if motion is not None:
                motion.close()
            kinematics.close()
            raise
        return cls(motion, pick_motion, T_base_cam, gripper)

    def close(self) -> None:
        self.motion.close()
        self.motion.kinematics.close()
