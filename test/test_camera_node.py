"""The camera node's capture service over DDS: a camera fault is answered, not fatal."""

import threading

import numpy as np
from rclpy.executors import MultiThreadedExecutor

from grasp_cell.core import CameraIntrinsics
from grasp_cell.drivers.base import CameraDriver, Capture, DriverError
from grasp_cell.nodes import convert
from grasp_cell.nodes.camera_node import CameraNode
from grasp_cell.srv import Capture as CaptureSrv

INTRINSICS = CameraIntrinsics.default().scaled(64, 48)


class FlakyCamera(CameraDriver):
    """Every other trigger times out, like a structured-light camera dropping off the network."""

    def __init__(self):
        self.triggers = 0

    def capture(self):
        self.triggers += 1
        if self.triggers % 2 == 0:
            raise DriverError("no frame within 2.0 s")
        depth = np.full((48, 64), 0.6, np.float32)
        depth[0, 0] = np.nan
        color = np.zeros((48, 64, 3), np.uint8)
        return Capture(depth, INTRINSICS, color, stamp=1.5, parts_in_bin=-1, roi=(4, 4, 60, 44))


def test_capture_service_reports_faults_and_keeps_serving(ros_client):
    node = CameraNode(FlakyCamera(), context=ros_client.node.context)
    executor = MultiThreadedExecutor(context=ros_client.node.context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        client = ros_client.node.create_client(CaptureSrv, "capture")
        assert client.wait_for_service(timeout_sec=10)
        first = ros_client.wait_for(client.call_async(CaptureSrv.Request()), 10)
        assert first.success and first.depth.encoding == "32FC1"
        depth = convert.from_depth_msg(first.depth)
        assert np.isnan(depth[0, 0]) and depth[1, 1] == np.float32(0.6)
        assert convert.from_camera_info_msg(first.camera_info) == INTRINSICS
        assert convert.from_roi_msg(first.workspace) == (4, 4, 60, 44)
        assert first.depth.header.frame_id == "camera_optical_frame" and first.depth.header.stamp.sec == 1
        second = ros_client.wait_for(client.call_async(CaptureSrv.Request()), 10)
        assert not second.success and "no frame within 2.0 s" in second.message
        third = ros_client.wait_for(client.call_async(CaptureSrv.Request()), 10)
        assert third.success
    finally:
        executor.shutdown()
        thread.join(timeout=5)
        node.destroy_node()
