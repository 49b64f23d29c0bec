"""Camera node: triggers the driver on the ``capture`` service and publishes what it captured.

Depth (32FC1 metres) and colour (rgb8) go out on ``depth/image`` and ``color/image`` with a
``camera_info`` beside them, stamped with the capture time, for RViz and for recording.
A camera fault answers ``success=False`` with the reason; the node keeps running.
"""

from __future__ import annotations

from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from grasp_cell.drivers import create_camera_driver
from grasp_cell.drivers.base import CameraDriver, DriverError
from grasp_cell.nodes import convert
from grasp_cell.nodes.driver_parameters import driver_from_parameters, spin_driver_node
from grasp_cell.srv import Capture


class CameraNode(Node):
    def __init__(self, driver: CameraDriver | None = None, **node_options):
        """Use ``driver`` when given (the sim cell passes one sharing its world), else the ``driver`` parameter."""
        super().__init__("camera_node", **node_options)
        self.driver = driver if driver is not None else driver_from_parameters(self, create_camera_driver)
        self.frame_id = self.declare_parameter("frame_id", "").value or self.driver.frame_id
        self.depth_pub = self.create_publisher(Image, "depth/image", 1)
        self.color_pub = self.create_publisher(Image, "color/image", 1)
        self.info_pub = self.create_publisher(CameraInfo, "camera_info", 1)
        self.create_service(Capture, "capture", self.capture_callback)

    def capture_callback(self, request: Capture.Request, response: Capture.Response) -> Capture.Response:
        try:
            capture = self.driver.capture()
        except DriverError as error:
            response.success = False
            response.message = f"camera fault: {error}"
            self.get_logger().error(response.message)
            return response
        header = Header(stamp=convert.to_time_msg(capture.stamp), frame_id=self.frame_id)
        response.success = True
        response.depth = convert.to_depth_msg(capture.depth, header)
        if capture.color is not None:
            response.color = convert.to_color_msg(capture.color, header)
        response.camera_info = convert.to_camera_info_msg(capture.intrinsics, header)
        response.workspace = convert.to_roi_msg(capture.roi)
        response.parts_in_bin = capture.parts_in_bin
        self.depth_pub.publish(response.depth)
        if capture.color is not None:
            self.color_pub.publish(response.color)
        self.info_pub.publish(response.camera_info)
        return response


def main(args=None):
    spin_driver_node(CameraNode, None, args)


if __name__ == "__main__":
    main()
