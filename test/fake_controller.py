"""A fake ros2_control arm for driver tests: a joint_trajectory_controller that moves /joint_states to each
trajectory's last point over its duration, and a gripper I/O node, in an rclpy context of their own.

Flags the test sets while it runs: ``part_present`` (a grip finds a part), ``publishing`` (False: /joint_states
is silent) and ``following`` (False: trajectories are received but the joints stay where they are).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool
from trajectory_msgs.msg import JointTrajectory

OTHER_JOINT = "conveyor_joint"  # on /joint_states too, as another device on the same controller manager would be


class FakeController:
    def __init__(self, namespace: str, joint_names, q_start, time_scale: float = 10.0, rate: float = 100.0):
        """Topics under ``/<namespace>``; trajectories run ``time_scale`` times faster than asked."""
        self.topics = {
            "trajectory_topic": f"/{namespace}/joint_trajectory_controller/joint_trajectory",
            "joint_state_topic": f"/{namespace}/joint_states",
            "gripper_command_topic": f"/{namespace}/gripper/command",
            "gripper_state_topic": f"/{namespace}/gripper/holding",
        }
        self.joint_names = list(joint_names)
        self.time_scale = time_scale
        self.part_present = False
        self.publishing = True
        self.following = True
        self.trajectories: list[JointTrajectory] = []
        self.gripper_commands: list[bool] = []
        self._lock = threading.Lock()
        self._q = np.array(q_start, dtype=float)
        self._motion: tuple[np.ndarray, np.ndarray, float, float] | None = None  # from, to, start [s], duration [s]
        self._gripping = False

        self.context = Context()
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node("fake_controller", context=self.context)
        self.node.create_subscription(JointTrajectory, self.topics["trajectory_topic"], self._trajectory_callback, 10)
        self.node.create_subscription(Bool, self.topics["gripper_command_topic"], self._gripper_callback, 10)
        self._state_publisher = self.node.create_publisher(JointState, self.topics["joint_state_topic"], 10)
        self._gripper_publisher = self.node.create_publisher(Bool, self.topics["gripper_state_topic"], 10)
        self.node.create_timer(1.0 / rate, self._publish)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spinner = threading.Thread(target=self.executor.spin, daemon=True)
        self._spinner.start()

    def _trajectory_callback(self, msg: JointTrajectory) -> None:
        with self._lock:
            self.trajectories.append(msg)
            if not self.following or not msg.points:
                return
            last = msg.points[-1]
            goal = dict(zip(msg.joint_names, last.positions))
            q_goal = np.array([goal[name] for name in self.joint_names])
            duration = (last.time_from_start.sec + last.time_from_start.nanosec * 1e-9) / self.time_scale
            self._motion = (self._q.copy(), q_goal, time.monotonic(), duration)

    def _gripper_callback(self, msg: Bool) -> None:
        with self._lock:
            self.gripper_commands.append(bool(msg.data))
            self._gripping = bool(msg.data)

    def _publish(self) -> None:
        with self._lock:
            if self._motion is not None:
                q_from, q_to, start, duration = self._motion
                fraction = min(1.0, (time.monotonic() - start) / duration) if duration > 0 else 1.0
                self._q = q_from + fraction * (q_to - q_from)
            # reversed, with another joint among them: the driver must map by name
            names, positions = [OTHER_JOINT, *reversed(self.joint_names)], [0.0, *reversed(self._q.tolist())]
            holding = self._gripping and self.part_present
        if self.publishing:
            self._state_publisher.publish(JointState(name=names, position=positions))
        self._gripper_publisher.publish(Bool(data=holding))

    def state_subscriber_count(self) -> int:
        """Subscribers matched to /joint_states: nonzero once discovery has paired them."""
        return self._state_publisher.get_subscription_count()

    def joint_positions(self) -> np.ndarray:
        with self._lock:
            return self._q.copy()

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self._spinner.join(timeout=1.0)
        self.node.destroy_node()
        self.context.try_shutdown()
