"""Seed 004 in the cell: the three-finger hand on an arm twin, its cell config, and the planner's geometry."""

import math

import numpy as np
import pybullet
import pytest
import torch

from grasp_cell.core.camera import CameraIntrinsics
from grasp_cell.core.grasp import GripperKind
from grasp_cell.core.outcome import Outcome
from grasp_cell.core.transform import Transform, rotation_about_axis
from grasp_cell.graph import package_share, sim_config_path
from grasp_cell.models.base import Observation
from grasp_cell.models.hand_grasp import CLEARANCE, MAX_TILT, HandQualityModel, HeightMap
from grasp_cell.models.hand_quality_net import HandQualityNet
from grasp_cell.sim.config import CellConfig
from grasp_cell.sim.floating_hand import FloatingHand
from grasp_cell.sim.hand import HandGeometry
from grasp_cell.sim.parts import PartSpec
from grasp_cell.sim.pick import execute_pick, plan_pick
from grasp_cell.sim.world import SimWorld

DOWN = np.diag([1.0, -1.0, -1.0])  # the tcp's z (the approach) along the world's -z


@pytest.fixture(scope="module")
def hand_cell_config() -> CellConfig:
    return CellConfig.from_yaml(sim_config_path("", "three_finger", package_share()))


def test_the_hand_cell_config_is_the_default_cell_with_the_hand_its_bin_and_objects(hand_cell_config):
    default = CellConfig.from_yaml(package_share() / "config" / "sim_cell.yaml")
    assert hand_cell_config.robot.gripper is GripperKind.THREE_FINGER
    assert hand_cell_config.parts.object_set == "hand" and hand_cell_config.bin.inner_size == (0.50, 0.40)
    assert hand_cell_config.camera == default.camera and hand_cell_config.parts.drop_height == default.parts.drop_height
    # the open fingers reach 63 mm past the tcp: the pre-grasp stands further back, over the walls (100 mm)
    assert hand_cell_config.motion.pregrasp_distance >= default.bin.wall_height + 0.04
    assert sim_config_path("", "suction", package_share()).endswith("sim_cell.yaml")


def test_arm_twin_with_the_hand_lifts_a_box_from_the_floor_and_misses_beside_it(hand_cell_config):
    with SimWorld(hand_cell_config, np.random.default_rng(0)) as world:
        robot = world.load_robot()
        assert len(robot.hand_joints) == 3 and len(robot.finger_groups()) == 3
        box = PartSpec("box", (0.05, 0.04, 0.05), 0.1)
        part = world.add_part(box, Transform(translation=(0.0, 0.0, world.bin_floor_z + 0.025)))
        # fingertips (63 mm past the tcp, straight) 5 mm over the floor: they close under the box's sides
        tcp_height = world.bin_floor_z + float(HandGeometry().open_points()[:, 2].max()) + 0.005
        beside = execute_pick(world, Transform(DOWN, (0.15, 0.1, tcp_height)))
        assert beside.outcome is Outcome.MISSED, beside.message
        result = execute_pick(world, Transform(DOWN, (0.0, 0.0, tcp_height)))
        assert result.outcome is Outcome.SUCCESS, result.message
        assert part not in world.parts and world.parts_in_bin() == 0


def test_poses_from_above_keep_the_open_hand_over_the_floor_and_would_close_on_the_object():
    rng = np.random.default_rng(1)
    outline = HandGeometry().open_points()
    with FloatingHand() as hand:
        hand.set_object(PartSpec("box", (0.09, 0.05, 0.05), 0.1))
        _, T_img_obj = hand.top_down_heights(np.eye(3), 64, 0.00375)
        poses = hand.sample_from_above(rng, T_img_obj, slides=6)
        colliding = hand.sample_from_above(rng, T_img_obj, slides=10, colliding=True)
        assert poses and colliding
        for pose in poses:
            T_img_tcp = T_img_obj * pose
            assert T_img_tcp.apply(outline)[:, 2].min() >= 0.0  # over the floor (the object's lowest point)
            assert -T_img_tcp.rotation[2, 2] >= math.cos(math.radians(30.0)) - 1e-9  # from above
            assert hand.qualified(pose, sweep=True)
        assert all(hand.distance(pose, 0.0) < 0.0 for pose in colliding)


BOX = (-0.05, 0.0, 0.06, 0.04, 0.03)  # camera x, y of its middle, its x, y sizes and height [m]


def _scene(boxes=(BOX,)) -> tuple[Observation, float]:
    """A flat floor 0.6 m below a straight-down camera with ``boxes`` on it (by default one, 60 x 40 x 30 mm,
    left of the middle)."""
    intrinsics = CameraIntrinsics.default()  # 640 x 480
    floor = 0.6
    v, u = np.mgrid[0:480, 0:640]
    x, y = (u - intrinsics.cx) * floor / intrinsics.fx, (v - intrinsics.cy) * floor / intrinsics.fy
    depth = np.full((480, 640), floor, np.float32)
    for box_x, box_y, size_x, size_y, height in boxes:
        depth[(np.abs(x - box_x) < size_x / 2) & (np.abs(y - box_y) < size_y / 2)] = floor - height
    return Observation(depth, intrinsics, roi=(60, 40, 580, 440)), floor


def test_part_images_are_in_the_frame_the_net_was_trained_in():
    """Image pixel (row, col) at height h lies at ((col - c) cell, (row - c) cell, h) in the image's frame:
    carried into the camera frame it must land on the box, at the depth the camera saw."""
    observation, floor = _scene()
    scene = HeightMap.from_observation(observation, 0.00375)
    parts = scene.parts()
    assert len(parts) == 1
    image, T_cam_img = scene.part_image(parts[0], 64)
    rows, cols = np.nonzero(image > 0.01)
    assert abs(len(rows) * 0.00375**2 - 0.06 * 0.04) < 0.3 * 0.06 * 0.04
    middle = 0.5 * (64 - 1)
    points = np.stack([(cols - middle) * 0.00375, (rows - middle) * 0.00375, image[rows, cols]], axis=1)
    in_camera = T_cam_img.apply(points)
    assert np.all(np.abs(in_camera[:, 0] + 0.05) < 0.03 + 0.004) and np.all(np.abs(in_camera[:, 1]) < 0.02 + 0.004)
    assert np.allclose(in_camera[:, 2], floor - 0.03, atol=0.002)
    assert np.linalg.det(T_cam_img.rotation) > 0.99  # a rotation, not a mirror


def test_planner_offers_grasps_from_above_that_keep_the_open_hand_clear():
    torch.manual_seed(0)
    observation, floor = _scene()
    model = HandQualityModel(HandQualityNet(channels=8).eval(), pixels=64)
    grasps = model.plan(observation, max_grasps=5)
    assert grasps and all(g.gripper is GripperKind.THREE_FINGER for g in grasps)
    assert [g.quality for g in grasps] == sorted((g.quality for g in grasps), reverse=True)
    outline = HandGeometry().open_points()
    for grasp in grasps:
        approach = grasp.approach  # camera frame: straight down is +z
        assert approach[2] >= math.cos(MAX_TILT) - 1e-3
        points = grasp.T_cam_grasp.apply(outline)
        assert points[:, 2].max() <= floor - CLEARANCE / 2  # every point of the open hand above the floor
        over_box = (np.abs(points[:, 0] + 0.05) < 0.03) & (np.abs(points[:, 1]) < 0.02)
        assert np.all(points[over_box, 2] <= floor - 0.03 - CLEARANCE / 2)  # and above the box
        assert abs(grasp.position[0] + 0.05) < 0.06 and abs(grasp.position[1]) < 0.06  # over the box
    empty = Observation(np.full_like(observation.depth, floor), observation.intrinsics, roi=observation.roi)
    assert model.plan(empty) == []


def test_the_walls_inner_faces_are_neither_floor_nor_parts():
    """The camera sees the walls' inner faces just beyond the floor's edges of its image; their cells on the
    height map's edge are walls: parts are the boxes alone, a box against a wall included and kept apart."""
    observation, floor = _scene((BOX, (0.0, -0.2 + 0.02, 0.05, 0.04, 0.03)))  # the second against a wall
    intrinsics, (u_min, v_min, u_max, v_max) = observation.intrinsics, observation.roi
    v, u = np.mgrid[0:480, 0:640].astype(np.float64)
    rim = floor - 0.1
    faces = []  # per wall, the depth at which each pixel's ray meets its inner face (the rim beyond it)
    sides = [(u, edge, intrinsics.cx, intrinsics.fx) for edge in (u_min, u_max)]
    sides += [(v, edge, intrinsics.cy, intrinsics.fy) for edge in (v_min, v_max)]
    for pixel, edge, centre, focal in sides:
        wall = (edge - centre) * floor / focal  # the wall's x (or y): the floor's edge
        with np.errstate(divide="ignore", invalid="ignore"):
            depth = wall * focal / (pixel - centre)
        beyond = (pixel - edge) * (edge - centre) > 0
        faces.append(np.where(beyond, np.clip(depth, rim, floor), np.inf))
    walls = np.min(faces, axis=0)
    depth = np.where(np.isfinite(walls), walls, observation.depth).astype(np.float32)
    scene = HeightMap.from_observation(Observation(depth, intrinsics, roi=observation.roi), 0.00375)
    parts = scene.parts()
    assert len(parts) == 2
    for mask, height in zip(parts, (0.03, 0.03)):
        assert abs(scene.heights[mask].max() - height) < 0.003 and mask.sum() * 0.00375**2 < 0.0035


def test_planner_keeps_the_closing_fingers_off_the_neighbouring_part():
    """Two boxes 10 mm apart: fingers closing on one must pass over the other (the net sees one part alone)."""
    torch.manual_seed(0)
    neighbour = (0.01, 0.0, 0.04, 0.06, 0.04)
    observation, floor = _scene((BOX, neighbour))
    model = HandQualityModel(HandQualityNet(channels=8).eval(), pixels=64)
    grasps = model.plan(observation, max_grasps=10)
    assert grasps
    closing = HandGeometry().closing_points()
    for grasp in grasps:
        target, other = (BOX, neighbour) if grasp.position[0] < -0.01 else (neighbour, BOX)
        points = grasp.T_cam_grasp.apply(closing)
        over = (np.abs(points[:, 0] - other[0]) < other[2] / 2) & (np.abs(points[:, 1] - other[1]) < other[3] / 2)
        assert np.all(points[over, 2] <= floor - other[4] - CLEARANCE / 2)


def test_the_hand_on_the_arm_holds_its_fingers_open(hand_cell_config):
    """Held open for a second at the arm's home posture, no phalanx drifts (with the default cell's 10 solver
    iterations, the UR5's heavy links let finger b's 50 g distal phalanx drift 0.4 rad closed)."""
    with SimWorld(hand_cell_config, np.random.default_rng(0)) as world:
        robot = world.load_robot()
        robot.park()
        world.step(round(1.0 / world.time_step))
        joints = [joint for finger in robot.hand_joints for joint in finger]
        angles = [state[0] for state in pybullet.getJointStates(robot.body, joints, physicsClientId=world.client)]
        assert np.allclose(angles, HandGeometry().open * 3, atol=0.02)


def test_a_transit_that_would_swing_the_hand_through_a_wall_is_unreachable(hand_cell_config):
    """Turned half a revolution from the other grasps here, the UR5's joint-space line from home to the
    pre-grasp swings the hand down through the bin's wall: the pick is refused before anything moves."""
    with SimWorld(hand_cell_config, np.random.default_rng(0)) as world:
        robot = world.load_robot()
        T_world_place = world.T_world_place()
        position = (-0.1, 0.0, world.bin_floor_z + 0.07)
        turned = Transform(rotation_about_axis([0, 0, 1], math.pi) @ DOWN, position)
        refused = plan_pick(robot, turned, T_world_place, hand_cell_config, (world.bin_id,))
        assert isinstance(refused, str) and "transit" in refused
        unchecked = plan_pick(robot, turned, T_world_place, hand_cell_config)  # the same without the bin
        assert not isinstance(unchecked, str)
        assert not robot.path_clear(robot.home_q, unchecked.q_pregrasp, (world.bin_id,))
        assert np.allclose(robot.joint_positions(), robot.home_q)  # the check leaves the arm where it was
        straight = plan_pick(robot, Transform(DOWN, position), T_world_place, hand_cell_config, (world.bin_id,))
        assert not isinstance(straight, str)
        result = execute_pick(world, turned)
        assert result.outcome is Outcome.UNREACHABLE, result.message
