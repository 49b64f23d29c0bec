"""Core math and types: transforms, camera model, depth handling, grasps."""

import math

import numpy as np
import pytest

from grasp_cell.core import CameraIntrinsics, DepthError, Grasp, GripperKind, Outcome, Transform, rank
from grasp_cell.core.depth import depth_from_bytes, depth_to_metres, fill_missing, validate_depth
from grasp_cell.core.transform import matrix_to_quat_xyzw, quat_xyzw_to_matrix, rotation_about_axis


def random_transform(rng):
    quat = rng.normal(size=4)
    return Transform.from_pos_quat(rng.normal(size=3), quat / np.linalg.norm(quat))


def test_transform_compose_inverse_and_apply():
    rng = np.random.default_rng(0)
    T_a_b, T_b_c = random_transform(rng), random_transform(rng)
    points_c = rng.normal(size=(5, 3))
    T_a_c = T_a_b * T_b_c
    np.testing.assert_allclose(T_a_c.apply(points_c), T_a_b.apply(T_b_c.apply(points_c)), atol=1e-12)
    np.testing.assert_allclose((T_a_c * T_a_c.inverse()).as_matrix(), np.eye(4), atol=1e-12)
    np.testing.assert_allclose(Transform.from_matrix(T_a_c.as_matrix()).as_matrix(), T_a_c.as_matrix())


def test_quaternion_round_trip_is_xyzw():
    rotation = rotation_about_axis([0, 0, 1], math.pi / 2)
    np.testing.assert_allclose(matrix_to_quat_xyzw(rotation), [0, 0, math.sqrt(0.5), math.sqrt(0.5)], atol=1e-12)
    rng = np.random.default_rng(1)
    for _ in range(20):
        quat = rng.normal(size=4)
        quat /= np.linalg.norm(quat)
        back = matrix_to_quat_xyzw(quat_xyzw_to_matrix(quat))
        assert min(np.linalg.norm(back - quat), np.linalg.norm(back + quat)) < 1e-9


def test_transform_rejects_non_rotation():
    with pytest.raises(ValueError):
        Transform(np.diag([1.0, 2.0, 1.0]), [0, 0, 0])


def test_look_at_gives_optical_frame_looking_at_target():
    T_world_cam = Transform.look_at(eye=[0.1, 0.2, 1.0], target=[0.1, 0.2, 0.0])
    np.testing.assert_allclose(T_world_cam.rotation[:, 2], [0, 0, -1], atol=1e-12)  # z forward, down
    target_cam = T_world_cam.inverse().apply([0.1, 0.2, 0.0])
    np.testing.assert_allclose(target_cam, [0, 0, 1.0], atol=1e-12)


def test_default_intrinsics_match_seed_003_eq_1():
    intrinsics = CameraIntrinsics.default()
    assert (intrinsics.width, intrinsics.height) == (640, 480)
    assert intrinsics.fx == pytest.approx(240 / math.tan(math.radians(30)))
    assert (intrinsics.cx, intrinsics.cy) == (319.5, 239.5)
    assert intrinsics.vertical_fov_deg == pytest.approx(60.0)


def test_project_deproject_round_trip():
    intrinsics = CameraIntrinsics.default()
    u, v, z = np.array([0.0, 319.5, 639.0]), np.array([0.0, 239.5, 479.0]), np.array([0.5, 0.7, 1.2])
    points = intrinsics.deproject(u, v, z)
    np.testing.assert_allclose(intrinsics.project(points), np.stack([u, v], -1), atol=1e-9)
    np.testing.assert_allclose(points[1], [0, 0, 0.7])


def test_point_map_and_size_check():
    intrinsics = CameraIntrinsics.default().scaled(64, 48)
    depth = np.full((48, 64), 0.8, np.float32)
    depth[0, 0] = np.nan
    cloud = intrinsics.point_map(depth)
    assert cloud.shape == (48, 64, 3) and np.isnan(cloud[0, 0]).all()
    np.testing.assert_allclose(cloud[..., 2][1:, 1:], 0.8)
    with pytest.raises(ValueError, match="intrinsics"):
        intrinsics.point_map(np.zeros((10, 10), np.float32))


def test_depth_encodings():
    millimetres = np.array([[0, 800], [1200, 65535]], np.uint16)
    metres = depth_to_metres(millimetres, "16UC1")
    assert np.isnan(metres[0, 0]) and metres[0, 1] == pytest.approx(0.8) and metres.dtype == np.float32
    floats = np.array([[np.nan, 0.0], [-1.0, 0.5]], np.float32)
    cleaned = depth_to_metres(floats, "32FC1")
    assert np.isnan(cleaned[:, 0]).all() and np.isnan(cleaned[0, 1]) and cleaned[1, 1] == 0.5
    with pytest.raises(DepthError, match="unsupported depth encoding 'rgb8'"):
        depth_to_metres(floats, "rgb8")


def test_depth_from_bytes_honours_row_padding_and_size():
    depth = np.arange(6, dtype="<f4").reshape(2, 3) + 1
    padded = np.zeros((2, 16), np.uint8)
    padded[:, :12] = depth.view(np.uint8).reshape(2, 12)
    decoded = depth_from_bytes(padded.tobytes(), 2, 3, "32FC1", step=16)
    np.testing.assert_array_equal(decoded, depth)
    with pytest.raises(DepthError, match="too short"):
        depth_from_bytes(b"\x00" * 10, 2, 3, "32FC1", step=12)
    with pytest.raises(DepthError, match="empty"):
        depth_from_bytes(b"", 0, 0, "32FC1", step=0)


def test_validate_depth_rejects_blind_images():
    with pytest.raises(DepthError, match="valid pixels"):
        validate_depth(np.full((4, 4), np.nan, np.float32))
    validate_depth(np.ones((4, 4), np.float32))


def test_fill_missing_leaves_no_nan():
    depth = np.ones((5, 6), np.float32)
    depth[:, 0] = np.nan
    depth[2, 3] = np.nan
    filled = fill_missing(depth)
    assert np.isfinite(filled).all() and (filled == 1).all()


def test_grasp_from_approach_and_validation():
    grasp = Grasp.from_approach([0, 0, 0.7], approach=[0, 0, 2], gripper="parallel", quality=0.8,
                                closing=[0, 1, 0], width=0.04)
    np.testing.assert_allclose(grasp.approach, [0, 0, 1])
    np.testing.assert_allclose(grasp.closing, [0, 1, 0])
    assert grasp.gripper is GripperKind.PARALLEL
    with pytest.raises(ValueError, match="quality"):
        Grasp.from_approach([0, 0, 1], [0, 0, 1], "suction", 1.5)
    with pytest.raises(ValueError, match="unknown gripper kind"):
        Grasp.from_approach([0, 0, 1], [0, 0, 1], "magnet", 0.5)
    ranked = rank([grasp.with_quality(0.2), grasp, grasp.with_quality(0.5)])
    assert [g.quality for g in ranked] == [0.8, 0.5, 0.2]


def test_outcomes_are_the_design_causes():
    assert {o.value for o in Outcome} == {
        "success", "no_grasp", "collision", "missed", "dropped", "unreachable", "driver_error"
    }
