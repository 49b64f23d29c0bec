"""Hand-eye calibration (grasp_cell.calibrate) on synthetic cells with a known T_base_cam."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from grasp_cell.calibrate import (
    HAND_EYE_METHODS,
    BoardSpec,
    CalibrationError,
    HandEyeSample,
    detect_board,
    main,
    render_board_image,
    rotation_angle_deg,
    rotation_spread_problem,
    solve_hand_eye,
)
from grasp_cell.core.camera import CameraIntrinsics
from grasp_cell.core.transform import Transform, rotation_about_axis
from grasp_cell.drivers.hand_eye import load_T_base_cam

BOARD_YAML = Path(__file__).resolve().parents[1] / "config" / "calibration_board.yaml"
BOARD = BoardSpec.from_yaml(BOARD_YAML)
CAMERA = CameraIntrinsics(1280, 720, 910.0, 910.0, 639.5, 359.5)  # a RealSense D435 colour camera, roughly
BIN_CENTRE = np.array([0.5, 0.0, 0.35])  # [m] where the tool shows the board, in the base
T_BASE_CAM = Transform.look_at(eye=(0.62, 0.08, 1.0), target=(0.5, 0.0, 0.3))  # fixed above the bin
# board on a plate at the tool, printed side up (board z along the downward tool z), off the tool axis
T_TCP_BOARD = Transform(rotation_about_axis((0, 0, 1), 0.15), [0.03, -0.01, -0.02]) * Transform(
    np.eye(3), [-0.14, -0.10, 0.0])
TOOL_DOWN = rotation_about_axis((1, 0, 0), np.pi)


def random_rotation(rng, limits) -> np.ndarray:
    rotvec = rng.uniform(-np.asarray(limits), limits)
    return rotation_about_axis(rotvec, np.linalg.norm(rotvec))


def robot_poses(rng, count: int) -> list[Transform]:
    """Tool poses around the bin: shifted up to 10/7/5 cm, tilted up to ~20 deg, turned up to ~45 deg."""
    return [Transform(TOOL_DOWN @ random_rotation(rng, [0.35, 0.35, 0.8]),
                      BIN_CENTRE + rng.uniform([-0.1, -0.07, -0.05], [0.1, 0.07, 0.05])) for _ in range(count)]


def seen_board(T_base_tcp: Transform) -> Transform:
    """T_cam_board the camera sees with the tool at T_base_tcp."""
    return T_BASE_CAM.inverse() * T_base_tcp * T_TCP_BOARD


def errors(T_a: Transform, T_b: Transform) -> tuple[float, float]:
    """(translation [mm], rotation [deg]) between two transforms."""
    return 1000.0 * float(np.linalg.norm(T_a.translation - T_b.translation)), rotation_angle_deg(T_a.rotation,
                                                                                                  T_b.rotation)


def write_samples(folder: Path, poses: list[Transform], blank: int = 0) -> None:
    """A samples folder: one rendered image per pose, plus ``blank`` images without the board."""
    folder.mkdir()
    entries = []
    for index, T_base_tcp in enumerate(poses):
        cv2.imwrite(str(folder / f"{index:03d}.png"), render_board_image(BOARD, CAMERA, seen_board(T_base_tcp)))
        entries.append({"image": f"{index:03d}.png", "T_base_tcp": T_base_tcp.to_dict()})
    for index in range(blank):
        cv2.imwrite(str(folder / f"blank{index}.png"), np.full((CAMERA.height, CAMERA.width), 200, np.uint8))
        entries.append({"image": f"blank{index}.png", "T_base_tcp": poses[0].to_dict()})
    (folder / "poses.yaml").write_text(yaml.safe_dump(entries))
    (folder / "camera_info.yaml").write_text(yaml.safe_dump(CAMERA.to_dict()))


@pytest.mark.parametrize("method", list(HAND_EYE_METHODS))
def test_solver_recovers_exact_T_base_cam(method):
    poses = robot_poses(np.random.default_rng(1), 10)
    samples = [HandEyeSample(f"{i}", T, seen_board(T)) for i, T in enumerate(poses)]
    result = solve_hand_eye(samples, method)
    mm, deg = errors(result.T_base_cam, T_BASE_CAM)
    assert mm < 1.0 and deg < 0.1, (method, mm, deg)
    mm, deg = errors(result.T_tcp_board, T_TCP_BOARD)
    assert mm < 1.0 and deg < 0.1
    assert result.max_mm < 1.0 and result.max_deg < 0.1 and len(result.residuals) == 10


def test_eye_to_hand_needs_the_inverse_robot_poses():
    # the identity the solver relies on: T_tcp_base in "gripper2base" gives T_base_cam; T_base_tcp does not
    poses = robot_poses(np.random.default_rng(2), 10)
    boards = [seen_board(T) for T in poses]
    args = ([T.rotation for T in boards], [T.translation.reshape(3, 1) for T in boards])
    rotation, translation = cv2.calibrateHandEye([T.inverse().rotation for T in poses],
                                                 [T.inverse().translation.reshape(3, 1) for T in poses], *args)
    assert errors(Transform(rotation, translation.ravel()), T_BASE_CAM)[0] < 1.0
    rotation, translation = cv2.calibrateHandEye([T.rotation for T in poses],
                                                 [T.translation.reshape(3, 1) for T in poses], *args)
    assert np.linalg.norm(translation.ravel() - T_BASE_CAM.translation) > 0.1


def test_solver_with_detection_noise():
    rng = np.random.default_rng(3)
    samples = []
    for index, T_base_tcp in enumerate(robot_poses(rng, 10)):
        # detection noise: 0.5 mm (sigma per axis), up to 0.2 deg per axis
        noise = Transform(random_rotation(rng, np.full(3, np.radians(0.2))), rng.normal(0.0, 0.0005, 3))
        samples.append(HandEyeSample(f"{index}", T_base_tcp, seen_board(T_base_tcp) * noise))
    result = solve_hand_eye(samples)
    mm, deg = errors(result.T_base_cam, T_BASE_CAM)
    assert mm < 5.0 and deg < 0.5, (mm, deg)
    assert 0.2 < result.mean_mm < 5.0  # the noise shows up in the residuals


def test_detection_on_rendered_images():
    for axis, angle, distance in [((1, 0, 0), 0.0, 0.6), ((1, 0.3, 0), 0.5, 0.55), ((0, 1, 0.2), -0.45, 0.75)]:
        T_cam_board = Transform(rotation_about_axis(axis, angle), [0.02, -0.01, distance]) * Transform(
            np.eye(3), [-0.14, -0.10, 0.0])
        image = render_board_image(BOARD, CAMERA, T_cam_board)
        for view in (image, cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)):
            detection = detect_board(view, BOARD, CAMERA)
            assert detection.T_cam_board is not None, detection.reason
            assert detection.corner_count == BOARD.corner_count
            mm, deg = errors(detection.T_cam_board, T_cam_board)
            assert mm < 2.0 and deg < 0.5, (axis, angle, mm, deg)


def test_detection_failures_say_why():
    blank = np.full((CAMERA.height, CAMERA.width), 255, np.uint8)
    detection = detect_board(blank, BOARD, CAMERA)
    assert detection.T_cam_board is None and "0 ChArUco corners" in detection.reason
    detection = detect_board(blank[:480, :640], BOARD, CAMERA)
    assert detection.T_cam_board is None and "640x480" in detection.reason
    with pytest.raises(CalibrationError, match="marker_length"):
        BoardSpec(7, 5, 0.04, 0.05)


def test_command_writes_a_hand_eye_file(tmp_path, capsys):
    write_samples(tmp_path / "samples", robot_poses(np.random.default_rng(4), 10), blank=1)
    out = tmp_path / "config" / "hand_eye.yaml"
    argv = ["--samples", str(tmp_path / "samples"), "--board", str(BOARD_YAML), "--out", str(out), "--method", "tsai"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "blank0.png: skipped, only 0 ChArUco corners" in printed and "residual mean" in printed
    mm, deg = errors(load_T_base_cam(out), T_BASE_CAM)
    assert mm < 3.0 and deg < 0.3, (mm, deg)
    notes = yaml.safe_load(out.read_text())
    assert notes["method"] == "tsai" and notes["samples_used"] == 10
    assert notes["residual_mean_mm"] < 2.0 and "grasp_cell.calibrate --samples" in notes["solved_by"]


def test_command_refuses_too_few_samples(tmp_path, capsys):
    write_samples(tmp_path / "samples", robot_poses(np.random.default_rng(5), 2), blank=2)
    out = tmp_path / "hand_eye.yaml"
    assert main(["--samples", str(tmp_path / "samples"), "--board", str(BOARD_YAML), "--out", str(out)]) == 1
    assert "only 2 usable samples (need at least 3" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(CalibrationError, match="at least 3"):
        solve_hand_eye([HandEyeSample("a", T_BASE_CAM, T_TCP_BOARD)] * 2)


def test_command_refuses_absurd_residuals(tmp_path, capsys):
    poses = robot_poses(np.random.default_rng(6), 6)
    write_samples(tmp_path / "samples", poses)
    # the robot's poses written in millimetres: no T_base_cam fits them
    entries = yaml.safe_load((tmp_path / "samples" / "poses.yaml").read_text())
    for entry in entries:
        entry["T_base_tcp"]["translation"] = [1000.0 * x for x in entry["T_base_tcp"]["translation"]]
    (tmp_path / "samples" / "poses.yaml").write_text(yaml.safe_dump(entries))
    out = tmp_path / "hand_eye.yaml"
    assert main(["--samples", str(tmp_path / "samples"), "--board", str(BOARD_YAML), "--out", str(out)]) == 1
    assert "over the limit" in capsys.readouterr().err
    assert not out.exists()


def test_rotation_spread_is_checked():
    # pure translations (and turns about one axis) leave the hand-eye solution undetermined
    shifted = [Transform(TOOL_DOWN, BIN_CENTRE + [0.05 * i, 0.0, 0.0]) for i in range(4)]
    assert "rotates less than" in rotation_spread_problem([HandEyeSample("", T, T) for T in shifted])
    turned = [Transform(TOOL_DOWN @ rotation_about_axis((0, 0, 1), 0.3 * i), BIN_CENTRE) for i in range(4)]
    assert "about one axis" in rotation_spread_problem([HandEyeSample("", T, T) for T in turned])
    varied = robot_poses(np.random.default_rng(7), 4)
    assert rotation_spread_problem([HandEyeSample("", T, T) for T in varied]) == ""
