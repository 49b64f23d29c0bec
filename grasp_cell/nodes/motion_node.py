"""Motion node: serves the ``pick`` action on an arm driver.

The goal's grasp is in the camera optical frame; the node maps it into the arm's base frame with the
driver's hand-eye calibration (T_base_cam) and reports the physically classified outcome.
"""

from __future__ import annotations

from rclpy.action import ActionServer, CancelResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from grasp_cell.action import Pick
from grasp_cell.core.outcome import Outcome
from grasp_cell.core.pick import PickResult
from grasp_cell.drivers import create_arm_driver
from grasp_cell.drivers.base import ArmDriver, PickRequest
from grasp_cell.nodes import convert
from grasp_cell.nodes.driver_parameters import driver_from_parameters, spin_driver_node


class MotionNode(Node):
    def __init__(self, driver: ArmDriver | None = None, **node_options):
        """Use ``driver`` when given (the sim cell passes one sharing its world), else the ``driver`` parameter."""
        super().__init__("motion_node", **node_options)
        self.driver = driver if driver is not None else driver_from_parameters(self, create_arm_driver)
        self._server = ActionServer(
            self,
            Pick,
            "pick",
            execute_callback=self.execute_callback,
            cancel_callback=self.cancel_callback,
            callback_group=ReentrantCallbackGroup(),
        )

    def cancel_callback(self, goal_handle) -> CancelResponse:
        # a pick runs to its end so a held part is never let go mid-air
        return CancelResponse.REJECT

    def execute_callback(self, goal_handle) -> Pick.Result:
        result = self._pick(goal_handle)
        goal_handle.succeed()
        self.get_logger().debug(f"pick: {result.outcome.value} {result.message}")
        return Pick.Result(
            outcome=result.outcome.value,
            message=result.message,
            phase_names=list(result.phase_durations),
            phase_durations=[float(v) for v in result.phase_durations.values()],
            parts_removed=result.parts_removed,
        )

    def _pick(self, goal_handle) -> PickResult:
        goal = goal_handle.request
        try:
            grasp = convert.from_grasp_msg(goal.grasp)
            T_base_place = convert.from_pose_msg(goal.place.pose) if goal.place.header.frame_id else None
        except ValueError as error:
            return PickResult(Outcome.DRIVER_ERROR, message=f"bad pick goal: {error}")
        if grasp.gripper is not self.driver.gripper:
            return PickResult(
                Outcome.DRIVER_ERROR,
                message=f"grasp is for a {grasp.gripper.value} gripper, the arm has {self.driver.gripper.value}",
            )
        request = PickRequest(
            T_base_grasp=self.driver.T_base_cam * grasp.T_cam_grasp,
            gripper=grasp.gripper,
            width=grasp.width,
            T_base_place=T_base_place,
        )

        def on_phase(phase: str) -> None:
            goal_handle.publish_feedback(Pick.Feedback(phase=phase))

        try:
            return self.driver.pick(request, on_phase=on_phase)
        except Exception as error:  # a driver bug is an arm fault for the cell, not a dead node
            return PickResult(Outcome.DRIVER_ERROR, message=f"{type(error).__name__}: {error}")


def main(args=None):
    spin_driver_node(MotionNode, MultiThreadedExecutor, args)


if __name__ == "__main__":
    main()
