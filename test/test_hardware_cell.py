"""A hardware cell's camera side over DDS: a recorded bag replayed by camera_node, started exactly as the
launch graph describes ``sim:=false camera:=bag bag:=...``, feeds grasp_node, which plans grasps on it."""

import subprocess

import numpy as np
import pytest
from ros_process import stop_node

from grasp_cell.drivers.bag_camera import write_capture_bag
from grasp_cell.drivers.base import Capture
from grasp_cell.eval.synthetic import random_scene
from grasp_cell.graph import node_graph
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


def test_a_replayed_bag_flows_through_camera_node_into_planned_grasps(ros_client, recorded_bin, tmp_path):
    bag, scenes = recorded_bin
    overrides = {"sim": "false", "camera": "bag", "bag": str(bag), "model": "baseline"}
    camera = start_graph_node("camera_node", overrides, tmp_path)
    planner = start_graph_node("grasp_node", overrides, tmp_path)
    try:
        capture_client = ros_client.node.create_client(CaptureSrv, "capture")
        plan_client = ros_client.node.create_client(PlanGrasps, "plan_grasps")
        assert capture_client.wait_for_service(timeout_sec=30), stop_node(camera)
        assert plan_client.wait_for_service(timeout_sec=30), stop_node(planner)
        for scene in scenes:
            shot = ros_client.wait_for(capture_client.call_async(CaptureSrv.Request()), 10)
            assert shot is not None and shot.success, shot
            assert shot.depth.header.frame_id == "ensenso_optical_frame"
            np.testing.assert_array_equal(convert.from_depth_msg(shot.depth), scene.depth)
            request = PlanGrasps.Request(depth=shot.depth, camera_info=shot.camera_info, workspace=shot.workspace)
            plan = ros_client.wait_for(plan_client.call_async(request), 20)
            assert plan is not None and plan.status == PlanGrasps.Response.STATUS_OK, plan
            assert plan.grasps and plan.grasps[0].header.frame_id == "ensenso_optical_frame"
        # the recording is over: a clear fault, and the node keeps serving
        over = ros_client.wait_for(capture_client.call_async(CaptureSrv.Request()), 10)
        assert not over.success and "exhausted" in over.message
        assert camera.poll() is None
    finally:
        stop_node(camera)
        stop_node(planner)
