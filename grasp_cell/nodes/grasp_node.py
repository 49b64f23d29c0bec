"""Grasp inference node: serves ``plan_grasps`` with the model named by the ``model`` parameter.

msg -> core -> msg: decode the request, run the model, return ranked grasps and publish RViz markers.
Bad input is answered with STATUS_BAD_INPUT and a message; the node keeps serving.
"""

from __future__ import annotations

import time

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from visualization_msgs.msg import MarkerArray

from grasp_cell.core.depth import DepthError
from grasp_cell.models import Observation, create_model
from grasp_cell.nodes import convert
from grasp_cell.srv import PlanGrasps


class GraspNode(Node):
    def __init__(self):
        super().__init__("grasp_node")
        model_name = self.declare_parameter("model", "baseline").value
        gripper = self.declare_parameter("gripper", "").value
        self.max_grasps = self.declare_parameter("max_grasps", 10).value
        self.marker_count = self.declare_parameter("marker_count", 5).value
        options = {"gripper": gripper} if gripper else {}
        # learning mode: follow a trainer's weights versions and explore as the model's schedule says
        snapshots = self.declare_parameter("snapshots", "").value
        selection = self.declare_parameter("selection", "").value
        if snapshots:
            options["snapshots"] = snapshots
        if selection:
            options["selection"] = selection
        self.model = create_model(model_name, **options)
        self.markers = self.create_publisher(MarkerArray, "grasp_markers", 1)
        self.create_service(PlanGrasps, "plan_grasps", self.plan_callback)
        self.get_logger().info(f"serving model '{model_name}' ({self.model.gripper.value} gripper)")

    def plan_callback(self, request: PlanGrasps.Request, response: PlanGrasps.Response) -> PlanGrasps.Response:
        tic = time.perf_counter()
        try:
            intrinsics = convert.from_camera_info_msg(request.camera_info)
            observation = Observation(
                depth=convert.from_depth_msg(request.depth),
                intrinsics=intrinsics,
                color=convert.from_color_msg(request.color),
                roi=convert.from_roi_msg(request.workspace),
            )
        except DepthError as error:
            response.status = PlanGrasps.Response.STATUS_BAD_INPUT
            response.message = str(error)
            self.get_logger().warning(f"bad planning input: {error}")
            return response
        try:
            grasps = self.model.plan(observation, max_grasps=request.max_grasps or self.max_grasps)
        except Exception as error:  # a model bug must not take the node down
            response.status = PlanGrasps.Response.STATUS_ERROR
            response.message = f"{type(error).__name__}: {error}"
            self.get_logger().error(f"model failed: {response.message}")
            return response
        header = request.depth.header
        response.grasps = [convert.to_grasp_msg(grasp, header) for grasp in grasps]
        response.planning_time = time.perf_counter() - tic
        if grasps:
            response.status = PlanGrasps.Response.STATUS_OK
            response.message = f"{len(grasps)} grasps, best quality {grasps[0].quality:.2f}"
        else:
            response.status = PlanGrasps.Response.STATUS_NO_GRASP
            response.message = "no grasp above the model's threshold"
        self.markers.publish(convert.to_marker_array(grasps[: self.marker_count], header))
        return response


def main(args=None):
    try:
        with rclpy.init(args=args):
            rclpy.spin(GraspNode())
    except (KeyboardInterrupt, ExternalShutdownException):
        pass


if __name__ == "__main__":
    main()
