"""The motion node's Pick action over DDS with a recording arm driver: hand-eye applied, phases fed back,
arm faults reported as driver_error while the node keeps serving."""

import threading
import time

import numpy as np
import pytest
from rclpy.action import ActionClient
from rclpy.executors import MultiThreadedExecutor
from std_msgs.msg import Header

from grasp_cell.action import Pick
from grasp_cell.core import Grasp, GripperKind, Outcome, Transform
from grasp_cell.core.pick import PHASES, PickResult
from grasp_cell.core.transform import rotation_about_axis
from grasp_cell.drivers.base import ArmDriver
from grasp_cell.nodes import convert
from grasp_cell.nodes.motion_node import MotionNode

T_BASE_CAM = Transform(rotation_about_axis([1, 0, 0], np.pi), [0.4, 0.0, 0.8])


class RecordingArm(ArmDriver):
    """Runs the phases and succeeds, or raises like a driver whose controller dropped the connection."""

    gripper = GripperKind.SUCTION

    def __init__(self):
        self.requests = []
        self.fail_next = False

    @property
    def T_base_cam(self):
        return T_BASE_CAM

    def pick(self, request, on_phase=None):
        self.requests.append(request)
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("RTDE connection lost")
        for phase in PHASES:
            on_phase(phase)
        return PickResult(Outcome.SUCCESS, {phase: 0.01 for phase in PHASES}, "", 1)


@pytest.fixture
def motion(ros_client):
    arm = RecordingArm()
    node = MotionNode(arm, context=ros_client.node.context)
    executor = MultiThreadedExecutor(context=ros_client.node.context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield arm
    executor.shutdown()
    thread.join(timeout=5)
    node.destroy_node()


def send(ros_client, client, grasp):
    feedback = []
    goal = Pick.Goal(grasp=convert.to_grasp_msg(grasp, Header(frame_id="camera_optical_frame")))
    handle = ros_client.wait_for(client.send_goal_async(goal, feedback_callback=lambda f: feedback.append(f)), 10)
    assert handle is not None and handle.accepted
    response = ros_client.wait_for(handle.get_result_async(), 10)
    assert response is not None
    deadline = time.monotonic() + 5.0  # feedback already queued before the result is still handled
    while len(feedback) < len(PHASES) and time.monotonic() < deadline:
        ros_client.executor.spin_once(timeout_sec=0.05)
    return response.result, [f.feedback.phase for f in feedback]


def test_pick_action_applies_hand_eye_and_reports_phases(ros_client, motion):
    client = ActionClient(ros_client.node, Pick, "pick")
    assert client.wait_for_server(timeout_sec=10)
    grasp = Grasp.from_approach([0.01, -0.02, 0.7], [0, 0, 1], "suction", 0.9, model="test")
    result, phases = send(ros_client, client, grasp)
    assert result.outcome == "success" and result.parts_removed == 1
    assert list(result.phase_names) == list(PHASES)  # the result is the record of every phase
    # rclpy's ActionClient drops feedback it handles after the result (it deletes the goal's feedback
    # callback), so under load the tail can be missing: what arrives must come in order
    assert phases and phases == [phase for phase in PHASES if phase in phases]
    expected = T_BASE_CAM * grasp.T_cam_grasp
    np.testing.assert_allclose(motion.requests[0].T_base_grasp.as_matrix(), expected.as_matrix(), atol=1e-6)
    np.testing.assert_allclose(motion.requests[0].T_base_grasp.translation, [0.41, 0.02, 0.1], atol=1e-6)


def test_arm_fault_and_wrong_gripper_are_driver_errors_and_the_node_keeps_serving(ros_client, motion):
    client = ActionClient(ros_client.node, Pick, "pick")
    assert client.wait_for_server(timeout_sec=10)
    suction = Grasp.from_approach([0, 0, 0.7], [0, 0, 1], "suction", 0.9)
    motion.fail_next = True
    result, _ = send(ros_client, client, suction)
    assert result.outcome == "driver_error" and "RTDE connection lost" in result.message
    jaw = Grasp.from_approach([0, 0, 0.7], [0, 0, 1], "parallel", 0.9, width=0.03)
    result, _ = send(ros_client, client, jaw)
    assert result.outcome == "driver_error" and "parallel" in result.message
    result, _ = send(ros_client, client, suction)
    assert result.outcome == "success"
