"""A hardware cell's nodes over DDS, each started exactly as the launch graph describes ``sim:=false ...``:
camera_node replaying a recorded bag, or playing a RealSense recording through the real pyrealsense2
pipeline, into grasp_node; and motion_node driving a (fake) ros2_control iiwa through a pick."""

import contextlib
import subprocess
import uuid

import numpy as np
import pytest
import yaml
from fake_controller import FakeController
from rclpy.action import ActionClient
from ros_process import stop_node
from std_msgs.msg import Header
from test_realsense_driver import BOX_TOP
from test_realsense_driver import record as record_realsense

from grasp_cell.action import Pick
from grasp_cell.core.grasp import Grasp, GripperKind
from grasp_cell.core.transform import Transform, rotation_about_axis
from grasp_cell.drivers.bag_camera import write_capture_bag
from grasp_cell.drivers.base import Capture
from grasp_cell.drivers.hand_eye import save_T_base_cam
from grasp_cell.drivers.trajectory_arm import Kinematics
from grasp_cell.eval.synthetic import random_scene
from grasp_cell.graph import node_graph, package_share
from grasp_cell.launcher import node_command, write_overrides
from grasp_cell.nodes import convert
from grasp_cell.srv import Capture as CaptureSrv
from grasp_cell.srv import PlanGrasps


@pytest.fixture
def recorded_bin(tmp_path):
    """An mcap bag of three captures of synthetic bins, as the Ensenso driver's topics record them."""
    rng = np.random.default_rng(3)
    scenes = [random_scene(rng, part_count=8) for _ in range(3)]
    captures = [Capture(scene.depth, scene.intrinsics, stamp=1.7e9 + 0.5 * i) for i, scene in enumerate(scenes)]
    return write_capture_bag(tmp_path / "ensenso_bag", captures, frame_id="ensenso_optical_frame"), scenes


def start_graph_node(name: str, overrides: dict, folder):
    """The node ``name`` of the launch graph for ``overrides``, started as the pip launcher starts it."""
    spec = next(spec for spec in node_graph(overrides) if spec.name == name)
    command = node_command(spec, write_overrides(spec, folder))
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@contextlib.contextmanager
def camera_and_planner(ros_client, overrides: dict, folder):
    """camera_node and grasp_node of the launch graph for ``overrides``; yields the camera process, a
    ``capture()`` call and a ``plan(shot)`` call on what it captured."""
    camera = start_graph_node("camera_node", overrides, folder)
    planner = start_graph_node("grasp_node", overrides, folder)
    try:
        capture_client = ros_client.node.create_client(CaptureSrv, "capture")
        plan_client = ros_client.node.create_client(PlanGrasps, "plan_grasps")
        assert capture_client.wait_for_service(timeout_sec=30), stop_node(camera)
        assert plan_client.wait_for_service(timeout_sec=30), stop_node(planner)

        def capture():
            return ros_client.wait_for(capture_client.call_async(CaptureSrv.Request()), 10)

        def plan(shot):
            request = PlanGrasps.Request(depth=shot.depth, color=shot.color, camera_info=shot.camera_info,
                                         workspace=shot.workspace)
            return ros_client.wait_for(plan_client.call_async(request), 20)

        yield camera, capture, plan
    finally:
        stop_node(camera)
        stop_node(planner)


def test_a_replayed_bag_flows_through_camera_node_into_planned_grasps(ros_client, recorded_bin, tmp_path):
    bag, scenes = recorded_bin
    overrides = {"sim": "false", "camera": "bag", "bag": str(bag), "model": "baseline"}
    with camera_and_planner(ros_client, overrides, tmp_path) as (camera, capture, plan):
        for scene in scenes:
            shot = capture()
            assert shot is not None and shot.success, shot
            assert shot.depth.header.frame_id == "ensenso_optical_frame"
            np.testing.assert_array_equal(convert.from_depth_msg(shot.depth), scene.depth)
            planned = plan(shot)
            assert planned is not None and planned.status == PlanGrasps.Response.STATUS_OK, planned
            assert planned.grasps and planned.grasps[0].header.frame_id == "ensenso_optical_frame"
        # the recording is over: a clear fault, and the node keeps serving
        over = capture()
        assert not over.success and "exhausted" in over.message
        assert camera.poll() is None


def test_a_realsense_recording_flows_through_camera_node_into_planned_grasps(ros_client, tmp_path):
    settings = yaml.safe_load((package_share() / "config" / "hardware" / "realsense.yaml").read_text())
    settings.update(playback=str(record_realsense(tmp_path / "bin.db3")), roi=[40, 30, 600, 450])
    (tmp_path / "realsense.yaml").write_text(yaml.safe_dump(settings))
    overrides = {"sim": "false", "camera": "realsense", "camera_config": str(tmp_path / "realsense.yaml")}
    with camera_and_planner(ros_client, overrides, tmp_path) as (_, capture, plan):
        shot = capture()
        assert shot is not None and shot.success, shot
        assert shot.depth.header.frame_id == "camera_color_optical_frame" and shot.color.encoding == "rgb8"
        planned = plan(shot)
        assert planned is not None and planned.status == PlanGrasps.Response.STATUS_OK, planned
        assert planned.grasps[0].pose.position.z == pytest.approx(BOX_TOP, abs=0.01)  # on the recorded box


def test_motion_node_drives_a_ros2_control_arm_through_a_pick_goal(ros_client, tmp_path):
    kinematics = Kinematics("iiwa", GripperKind.SUCTION)
    fake = FakeController(f"arm_{uuid.uuid4().hex[:8]}", kinematics.joint_names, kinematics.rest_pose)
    T_base_cam = Transform(rotation_about_axis((1.0, 0.0, 0.0), np.pi), (0.6, 0.0, 0.9))
    save_T_base_cam(tmp_path / "hand_eye.yaml", T_base_cam)
    settings = yaml.safe_load((package_share() / "config" / "hardware" / "iiwa.yaml").read_text())
    settings.update(fake.topics, hand_eye=str(tmp_path / "hand_eye.yaml"))
    (tmp_path / "iiwa.yaml").write_text(yaml.safe_dump(settings))
    overrides = {"sim": "false", "robot": "iiwa", "robot_config": str(tmp_path / "iiwa.yaml")}
    motion = start_graph_node("motion_node", overrides, tmp_path)
    try:
        # a grasp seen by the camera 6 cm under the rest pose's tool, approached straight down
        T_base_rest = kinematics.forward_kinematics(kinematics.rest_pose)
        T_base_grasp = Transform(T_base_rest.rotation, T_base_rest.translation + (0.03, 0.02, -0.06))
        grasp = Grasp(T_base_cam.inverse() * T_base_grasp, "suction", 0.9)
        fake.part_present = True
        client = ActionClient(ros_client.node, Pick, "pick")
        assert client.wait_for_server(timeout_sec=30), stop_node(motion)
        goal = Pick.Goal(grasp=convert.to_grasp_msg(grasp, Header(frame_id="camera_optical_frame")))
        handle = ros_client.wait_for(client.send_goal_async(goal), 10)
        assert handle is not None and handle.accepted
        response = ros_client.wait_for(handle.get_result_async(), 60)
        assert response is not None and response.result.outcome == "success", response and response.result.message
        assert list(response.result.phase_names) == ["approach", "grip", "lift", "place"]
        assert len(fake.trajectories) == 6 and fake.gripper_commands == [True, False]
        grasp_end = dict(zip(fake.trajectories[1].joint_names, fake.trajectories[1].points[-1].positions))
        reached = kinematics.forward_kinematics([grasp_end[name] for name in kinematics.joint_names])
        assert np.linalg.norm(reached.translation - T_base_grasp.translation) < 0.003
    finally:
        stop_node(motion)
        fake.close()
        kinematics.close()
