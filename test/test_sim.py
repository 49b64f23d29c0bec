"""The simulated cell: reproducible bins, a consistent camera, IK inside limits, picks classified from physics."""

import math
from pathlib import Path

import numpy as np
import pytest

from grasp_cell.core.camera import CameraIntrinsics
from grasp_cell.core.grasp import GripperKind
from grasp_cell.core.outcome import Outcome
from grasp_cell.core.pick import PHASES
from grasp_cell.core.transform import Transform, frame_from_z_axis, rotation_about_axis
from grasp_cell.drivers.base import CameraDriver, PickRequest
from grasp_cell.drivers.sim_arm import SimArm
from grasp_cell.drivers.sim_camera import SimCamera
from grasp_cell.sim.config import CellConfig, ConfigError
from grasp_cell.sim.oracle import top_grasps
from grasp_cell.sim.parts import PartSpec
from grasp_cell.sim.robots import ARMS
from grasp_cell.sim.world import SimWorld

CONFIG_YAML = Path(__file__).resolve().parents[1] / "config" / "sim_cell.yaml"
DOWN = np.diag([1.0, -1.0, -1.0])  # tool z along world -z
SMALL_CAMERA = CameraIntrinsics.from_vertical_fov(320, 240, 60.0)


def part_poses(world):
    return np.array([np.concatenate([world.part_position(b), world.part_pose(b).quat_xyzw]) for b in world.parts])


@pytest.fixture(scope="module")
def suction_cell():
    world = SimWorld(CellConfig(seed=7))
    arm = SimArm(world, "ur5", GripperKind.SUCTION)
    yield world, arm
    world.close()


# --- config ----------------------------------------------------------------------------------------------
def test_default_yaml_parses_to_the_defaults():
    assert CellConfig.from_yaml(CONFIG_YAML) == CellConfig()
    assert CellConfig.from_dict(CellConfig().to_dict()) == CellConfig()


def test_config_rejects_unknown_and_mistyped_keys():
    with pytest.raises(ConfigError, match="camera.widht"):
        CellConfig.from_dict({"camera": {"widht": 640}})
    with pytest.raises(ConfigError, match="parts.count"):
        CellConfig.from_dict({"parts": {"count": "many"}})
    with pytest.raises(ConfigError, match="robot.name"):
        CellConfig.from_dict({"robot": {"name": "puma"}})
    config = CellConfig.from_dict(
        {"seed": 3, "camera": {"width": 320, "height": 240}, "robot": {"gripper": "parallel"}}
    )
    assert config.camera.intrinsics == SMALL_CAMERA
    assert config.robot.gripper is GripperKind.PARALLEL
    parameters = {"seed": 3, "camera.width": 320, "camera.height": 240, "robot.gripper": "parallel"}
    assert CellConfig.from_parameters(parameters) == config


# --- bin -------------------------------------------------------------------------------------------------
def test_same_seed_same_bin_other_seed_other_bin():
    poses = []
    for seed in (5, 5, 6):
        with SimWorld(CellConfig(seed=seed)) as world:
            world.reset(12)
            assert world.parts_in_bin() == 12
            poses.append(part_poses(world))
    np.testing.assert_array_equal(poses[0], poses[1])
    assert poses[0].shape != poses[2].shape or not np.allclose(poses[0], poses[2])


def test_thirty_parts_settle_inside_the_bin_with_plausible_masses():
    with SimWorld(CellConfig(seed=2)) as world:
        world.reset(30)
        assert world.parts_in_bin() == 30
        assert world.max_part_speed() < 0.02
        masses = [part.spec.mass for part in world.parts.values()]
        assert 0.005 < min(masses) and max(masses) < 0.4  # [kg]
        cylinders = [p.spec for p in world.parts.values() if p.spec.shape == "cylinder"]
        assert cylinders and all(0.0185 <= s.size[0] <= 0.031 and 0.0255 <= s.size[1] <= 0.032 for s in cylinders)


# --- camera ----------------------------------------------------------------------------------------------
def test_rendered_depth_deprojects_onto_the_true_surfaces():
    with SimWorld(CellConfig(seed=4)) as world:
        world.reset(0)
        box = PartSpec("box", (0.03, 0.02, 0.025), 0.1)
        T_world_box = Transform(rotation_about_axis([0, 0, 1], 0.5), [0.05, -0.03, world.bin_floor_z + 0.0125])
        body = world.add_part(box, T_world_box)
        camera = SimCamera(world)
        rendering = camera.render()
        intrinsics = camera.intrinsics
        assert rendering.depth.dtype == np.float32 and rendering.depth.shape == (480, 640)
        assert rendering.color.dtype == np.uint8 and rendering.color.shape == (480, 640, 3)
        points = camera.T_world_cam.apply(intrinsics.point_map(rendering.depth).reshape(-1, 3)).reshape(480, 640, 3)

        # the bin floor (away from the walls) and the table around the bin are planes at known heights
        inner = np.array(world.config.bin.inner_size) / 2 - 0.005
        floor = (rendering.segmentation == world.bin_id) & np.all(np.abs(points[..., :2]) < inner, axis=-1)
        assert floor.sum() > 20000
        np.testing.assert_allclose(points[floor][:, 2], world.bin_floor_z, atol=2e-4)
        table = rendering.segmentation == world.table_id
        assert table.sum() > 50000
        np.testing.assert_allclose(points[table][:, 2], 0.0, atol=2e-4)

        on_box = rendering.segmentation == body
        assert on_box.sum() > 200
        T_box_world = world.part_pose(body).inverse()
        local = T_box_world.apply(points[on_box])
        # a point on a box's surface has max_i(|x_i| - h_i) = 0
        outside = np.max(np.abs(local) - np.array(box.size) / 2, axis=1)
        assert np.median(np.abs(outside)) < 5e-4 and np.percentile(np.abs(outside), 95) < 2e-3

        # and the other way round: the box's top centre projects onto the box
        top = world.part_pose(body).apply([0.0, 0.0, box.size[2] / 2])
        u, v = intrinsics.project(camera.T_world_cam.inverse().apply(top))
        assert rendering.segmentation[int(round(v)), int(round(u))] == body
        assert abs(rendering.depth[int(round(v)), int(round(u))] - (camera.T_world_cam.translation[2] - top[2])) < 1e-3


def test_capture_is_a_camera_driver_with_ground_truth_and_optional_noise():
    config = CellConfig.from_dict({"seed": 1, "camera": {"noise": {"gaussian_std": 0.001, "missing": True}}})
    with SimWorld(config) as world:
        world.reset(8)
        camera = SimCamera(world, intrinsics=SMALL_CAMERA)
        assert isinstance(camera, CameraDriver)
        capture = camera.capture()
        assert capture.parts_in_bin == 8 and capture.depth.shape == (240, 320)
        assert capture.intrinsics == SMALL_CAMERA and capture.color.shape == (240, 320, 3)
        clean = camera.render().depth
        valid = np.isfinite(capture.depth)
        assert 0.0005 < np.nanstd(capture.depth[valid] - clean[valid]) < 0.002
        assert np.isnan(capture.depth).any()  # some reflective part pixels went missing
        background = ~np.isin(camera.render().segmentation, list(world.parts))
        assert valid[background].all()  # only part pixels go missing


def test_arm_parks_out_of_the_camera_view():
    for name in ARMS:
        with SimWorld(CellConfig(seed=0)) as world:
            arm = SimArm(world, name, GripperKind.PARALLEL)
            segmentation = SimCamera(world, intrinsics=SMALL_CAMERA).render().segmentation
            assert not (segmentation == arm.robot.body).any(), name


# --- arms ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(ARMS))
def test_ik_reaches_the_bin_inside_joint_limits(name):
    with SimWorld(CellConfig(seed=0)) as world:
        robot = world.load_robot(name, GripperKind.SUCTION)
        tilted = rotation_about_axis([1, 0, 0], math.radians(20)) @ DOWN
        (inner_x, inner_y) = world.config.bin.inner_size
        targets = [
            Transform(DOWN, [0.0, 0.0, world.bin_floor_z + 0.02]),
            Transform(DOWN, [inner_x / 2 - 0.03, inner_y / 2 - 0.03, world.bin_floor_z + 0.02]),
            Transform(DOWN, [-inner_x / 2 + 0.03, -inner_y / 2 + 0.03, world.bin_floor_z + 0.02]),
            Transform(tilted, [-0.05, 0.05, world.bin_floor_z + 0.05]),
            Transform(DOWN, [0.0, 0.0, world.bin_top_z + 0.15]),
        ]
        for T_world_tcp in targets:
            q = robot.solve_ik(T_world_tcp)
            assert q is not None, f"{name} cannot reach {T_world_tcp.translation}"
            assert robot.limits.contains(q)
            reached = robot.forward_kinematics(q)
            assert np.linalg.norm(reached.translation - T_world_tcp.translation) < 0.002
            assert np.allclose(reached.rotation, T_world_tcp.rotation, atol=0.035)
        assert robot.solve_ik(Transform(DOWN, [1.5, 0.0, 0.1])) is None


# --- picks -----------------------------------------------------------------------------------------------
def test_suction_pick_of_an_exposed_part_removes_exactly_one(suction_cell):
    world, arm = suction_cell
    world.reset(12)
    grasp = top_grasps(world, GripperKind.SUCTION)[0]
    phases = []
    request = PickRequest(arm.T_world_base.inverse() * grasp.T_world_grasp, GripperKind.SUCTION)
    result = arm.pick(request, on_phase=phases.append)
    assert result.outcome is Outcome.SUCCESS, result.message
    assert result.parts_removed == 1
    assert world.parts_in_bin() == 11 and grasp.part_id not in world.parts
    assert tuple(phases) == PHASES and set(result.phase_durations) == set(PHASES)
    assert all(duration > 0 for duration in result.phase_durations.values())
    assert arm.robot.is_parked()


def test_suction_pick_into_thin_air_is_missed(suction_cell):
    world, arm = suction_cell
    world.reset(0)
    request = PickRequest(arm.T_world_base.inverse() * Transform(DOWN, [0.0, 0.0, 0.06]), GripperKind.SUCTION)
    result = arm.pick(request)
    assert result.outcome is Outcome.MISSED and result.parts_removed == 0
    assert set(result.phase_durations) == {"approach", "grip"}


def test_pick_below_the_bin_floor_collides_and_out_of_reach_is_unreachable(suction_cell):
    world, arm = suction_cell
    world.reset(0)
    below = arm.pick(PickRequest(arm.T_world_base.inverse() * Transform(DOWN, [0.0, 0.0, -0.03]), GripperKind.SUCTION))
    assert below.outcome is Outcome.COLLISION, below.message
    assert "bin" in below.message
    far = arm.pick(PickRequest(arm.T_world_base.inverse() * Transform(DOWN, [1.6, 0.4, 0.1]), GripperKind.SUCTION))
    assert far.outcome is Outcome.UNREACHABLE and far.parts_removed == 0
    assert arm.robot.is_parked()


def test_wrong_gripper_is_a_driver_error(suction_cell):
    world, arm = suction_cell
    result = arm.pick(PickRequest(Transform(DOWN, [0.5, 0.0, 0.1]), GripperKind.PARALLEL, width=0.03))
    assert result.outcome is Outcome.DRIVER_ERROR


def test_heavy_part_held_off_centre_peels_off(suction_cell):
    world, arm = suction_cell
    world.reset(0)
    bar = PartSpec("box", (0.09, 0.02, 0.02), 0.28)  # 280 g bar, sucked 35 mm from its centre
    body = world.add_part(bar, Transform(np.eye(3), [0.0, 0.0, world.bin_floor_z + 0.01]))
    T_world_grasp = Transform(DOWN, world.part_position(body) + [0.035, 0.0, 0.01])
    result = arm.pick(PickRequest(arm.T_world_base.inverse() * T_world_grasp, GripperKind.SUCTION))
    assert result.outcome is Outcome.DROPPED, result.message
    assert result.parts_removed == 0


@pytest.mark.parametrize("name", ["ur5", "kinova"])
def test_parallel_jaw_pick_of_an_isolated_cylinder(name):
    with SimWorld(CellConfig(seed=0)) as world:
        arm = SimArm(world, name, GripperKind.PARALLEL)
        cylinder = PartSpec("cylinder", (0.025, 0.03), 0.115)
        lying = Transform(rotation_about_axis([1, 0, 0], math.pi / 2), [0.03, 0.02, world.bin_floor_z + 0.0125])
        body = world.add_part(cylinder, lying)
        grasp = top_grasps(world, GripperKind.PARALLEL)[0]
        assert grasp.part_id == body
        request = PickRequest(arm.T_world_base.inverse() * grasp.T_world_grasp, GripperKind.PARALLEL, grasp.width)
        result = arm.pick(request)
        assert result.outcome is Outcome.SUCCESS, result.message
        assert result.parts_removed == 1 and world.parts_in_bin() == 0


def test_parallel_jaw_closing_on_nothing_is_missed():
    with SimWorld(CellConfig(seed=0)) as world:
        arm = SimArm(world, "iiwa", GripperKind.PARALLEL)
        T_world_grasp = Transform(frame_from_z_axis([0, 0, -1]), [0.0, 0.0, 0.05])
        result = arm.pick(PickRequest(arm.T_world_base.inverse() * T_world_grasp, GripperKind.PARALLEL, 0.03))
        assert result.outcome is Outcome.MISSED, result.message


def test_weak_jaw_cannot_hold_a_heavy_cylinder():
    # 115 g needs 2 x 0.5 (pad x part friction) x F > m (g + a): F = 1 N per finger is too little
    config = CellConfig.from_dict({"gripper": {"jaw_force": 1.0}})
    with SimWorld(config) as world:
        arm = SimArm(world, "ur5", GripperKind.PARALLEL)
        cylinder = PartSpec("cylinder", (0.025, 0.03), 0.115)
        lying = Transform(rotation_about_axis([1, 0, 0], math.pi / 2), [0.03, 0.02, world.bin_floor_z + 0.0125])
        world.add_part(cylinder, lying)
        grasp = top_grasps(world, GripperKind.PARALLEL)[0]
        request = PickRequest(arm.T_world_base.inverse() * grasp.T_world_grasp, GripperKind.PARALLEL, grasp.width)
        result = arm.pick(request)
        assert result.outcome is Outcome.DROPPED, result.message
        assert result.parts_removed == 0 and world.parts_in_bin() == 1
