"""The grasp node over DDS: bad input gets a clear error and the node keeps serving."""

import numpy as np
import pytest
from ros_process import start_node, stop_node
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from grasp_cell.core import CameraIntrinsics
from grasp_cell.nodes import convert
from grasp_cell.srv import PlanGrasps

INTRINSICS = CameraIntrinsics.default()


def box_on_floor_depth():
    """A flat bin floor 0.75 m away and a 60 mm square block 40 mm tall in the middle."""
    depth = np.full((INTRINSICS.height, INTRINSICS.width), 0.75, np.float32)
    half = int(0.03 * INTRINSICS.fx / 0.71)
    depth[240 - half : 240 + half, 320 - half : 320 + half] = 0.71
    return depth


def request(depth, intrinsics=INTRINSICS, encoding=None):
    header = Header(frame_id="camera_optical_frame")
    msg = PlanGrasps.Request(depth=convert.to_depth_msg(depth, header))
    if encoding:
        msg.depth.encoding = encoding
    if intrinsics is not None:
        msg.camera_info = convert.to_camera_info_msg(intrinsics, header)
    return msg


def call(ros, client, msg, timeout=20.0):
    response = ros.wait_for(client.call_async(msg), timeout)
    assert response is not None, "grasp node did not answer"
    return response


@pytest.fixture
def grasp_node():
    process = start_node("grasp_cell.nodes.grasp_node", "-p", "model:=baseline")
    yield process
    stop_node(process)


def test_bad_input_is_rejected_and_the_node_keeps_serving(ros_client, grasp_node):
    client = ros_client.node.create_client(PlanGrasps, "plan_grasps")
    assert client.wait_for_service(timeout_sec=30.0), stop_node(grasp_node)
    good = box_on_floor_depth()

    cases = {
        "all missing": request(np.full_like(good, np.nan)),
        "wrong encoding": request(good, encoding="rgb8"),
        "mismatched CameraInfo": request(good, intrinsics=INTRINSICS.scaled(320, 240)),
        "missing CameraInfo": request(good, intrinsics=None),
        "empty depth": request(np.zeros((0, 0), np.float32)),
    }
    expected = {
        "all missing": "valid pixels",
        "wrong encoding": "unsupported depth encoding",
        "mismatched CameraInfo": "CameraInfo says 320x240",
        "missing CameraInfo": "CameraInfo is missing",
        "empty depth": "empty",
    }
    for name, msg in cases.items():
        response = call(ros_client, client, msg)
        assert response.status == PlanGrasps.Response.STATUS_BAD_INPUT, name
        assert expected[name] in response.message, (name, response.message)
        assert grasp_node.poll() is None, f"grasp node died on {name}"

    response = call(ros_client, client, request(good))
    assert response.status == PlanGrasps.Response.STATUS_OK, response.message
    best = response.grasps[0]
    assert best.gripper == "suction" and best.model == "baseline"
    assert abs(best.pose.position.z - 0.71) < 0.01  # on the block's top face
    assert list(r.quality for r in response.grasps) == sorted((r.quality for r in response.grasps), reverse=True)

    millimetres = request(good)
    millimetres.depth = Image(
        header=millimetres.depth.header, height=good.shape[0], width=good.shape[1], encoding="16UC1",
        step=2 * good.shape[1], data=np.round(good * 1000).astype("<u2").tobytes(),
    )
    response = call(ros_client, client, millimetres)
    assert response.status == PlanGrasps.Response.STATUS_OK, response.message
    assert abs(response.grasps[0].pose.position.z - 0.71) < 0.01
