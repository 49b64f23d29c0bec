"""Hand-eye calibration of the cell's fixed camera (eye-to-hand) with a ChArUco board held by the tool.

    python -m grasp_cell.calibrate --samples calib/ --board config/calibration_board.yaml \\
        --out config/hand_eye.yaml [--method park]

The samples folder holds ``camera_info.yaml`` (width, height, fx, fy, cx, cy [px]; optional distortion ``d``,
OpenCV order k1 k2 p1 p2 [k3 ...]), the images, and ``poses.yaml``, one entry per image with the tool pose the
robot reported when it was taken:

    - image: 000.png
      T_base_tcp: {translation: [x, y, z], rotation_xyzw: [x, y, z, w]}   # [m]

The board is fixed in the tool and the camera in the base, so T_tcp_board = T_tcp_base * T_base_cam * T_cam_board
is the same in every sample. That is cv2.calibrateHandEye's eye-in-hand problem (T_base_target = T_base_gripper *
T_gripper_cam * T_cam_target constant) with base and tool swapped: given T_tcp_base as "gripper2base" it returns
T_base_cam as "cam2gripper".
"""

from __future__ import annotations

import argparse
import functools
import math
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from grasp_cell.core.camera import CameraIntrinsics
from grasp_cell.core.transform import Transform
from grasp_cell.drivers.hand_eye import save_T_base_cam

HAND_EYE_METHODS = {
    "tsai": cv2.CALIB_HAND_EYE_TSAI,
    "park": cv2.CALIB_HAND_EYE_PARK,
    "horaud": cv2.CALIB_HAND_EYE_HORAUD,
    "andreff": cv2.CALIB_HAND_EYE_ANDREFF,
    "daniilidis": cv2.CALIB_HAND_EYE_DANIILIDIS,
}
DEFAULT_BOARD = Path(__file__).resolve().parents[1] / "config" / "calibration_board.yaml"  # in a source checkout
MIN_SAMPLES = 3  # calibrateHandEye needs two motions with different rotation axes
MIN_ROTATION_DEG = 5.0  # tool rotations smaller than this do not pin down the hand-eye rotation


class CalibrationError(ValueError):
    """Calibration input or result that cannot be used; the message says what to change."""


@dataclass(frozen=True)
class BoardSpec:
    """A ChArUco board: ``squares_x`` x ``squares_y`` squares, an ArUco marker in each white one.

    Board frame (OpenCV's): origin at the outer corner of the top-left square, x to the right along the top row,
    y down the left column, z into the board, so a camera facing the printed side has its z roughly along it.
    """

    squares_x: int
    squares_y: int
    square_length: float  # [m]
    marker_length: float  # [m]
    dictionary: str = "DICT_5X5_100"
    legacy_pattern: bool = False  # OpenCV < 4.6 layout for an even squares_y

    def __post_init__(self):
        if self.squares_x < 2 or self.squares_y < 2:
            raise CalibrationError(f"board: needs at least 2 x 2 squares, got {self.squares_x} x {self.squares_y}")
        if not 0 < self.marker_length < self.square_length:
            raise CalibrationError(f"board: marker_length {self.marker_length} m must be positive and smaller than "
                                   f"square_length {self.square_length} m")
        if not self.dictionary.startswith("DICT_") or not hasattr(cv2.aruco, self.dictionary):
            raise CalibrationError(f"board: unknown ArUco dictionary {self.dictionary!r} (e.g. DICT_5X5_100, "
                                   "DICT_6X6_250, DICT_4X4_50)")
        marker_count = self.squares_x * self.squares_y // 2
        if len(self.aruco_dictionary.bytesList) < marker_count:
            raise CalibrationError(f"board: {self.dictionary} has fewer than the {marker_count} markers a "
                                   f"{self.squares_x} x {self.squares_y} board needs; pick a larger dictionary")

    @classmethod
    def from_dict(cls, data: dict) -> "BoardSpec":
        try:
            return cls(int(data["squares_x"]), int(data["squares_y"]), float(data["square_length"]),
                       float(data["marker_length"]), str(data.get("dictionary", "DICT_5X5_100")),
                       bool(data.get("legacy_pattern", False)))
        except CalibrationError:
            raise
        except (KeyError, TypeError, ValueError) as error:
            raise CalibrationError(f"board: expected squares_x, squares_y, square_length, marker_length "
                                   f"({error!r})") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> "BoardSpec":
        return cls.from_dict(_read_yaml(path, dict))

    @property
    def aruco_dictionary(self) -> cv2.aruco.Dictionary:
        return cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))

    @functools.cached_property
    def board(self) -> cv2.aruco.CharucoBoard:
        board = cv2.aruco.CharucoBoard((self.squares_x, self.squares_y), self.square_length, self.marker_length,
                                       self.aruco_dictionary)
        board.setLegacyPattern(self.legacy_pattern)
        return board

    @property
    def corner_count(self) -> int:
        """Inner chessboard corners, the points a detection solves the pose from."""
        return (self.squares_x - 1) * (self.squares_y - 1)


@dataclass(frozen=True)
class BoardDetection:
    T_cam_board: Transform | None  # None: not usable, ``reason`` says why
    corner_count: int  # ChArUco corners found
    reason: str = ""


@dataclass(frozen=True)
class HandEyeSample:
    name: str  # image file name, for messages
    T_base_tcp: Transform  # as the robot reported it
    T_cam_board: Transform  # as the camera saw it


@dataclass(frozen=True)
class SampleResidual:
    """How far the solution's board (T_base_tcp * T_tcp_board) lies from the seen one (T_base_cam * T_cam_board)."""

    name: str
    translation_mm: float  # board origin distance, in the base frame
    rotation_deg: float


@dataclass(frozen=True)
class HandEyeResult:
    T_base_cam: Transform
    T_tcp_board: Transform  # solved alongside: where the board sits on the tool
    method: str
    residuals: tuple[SampleResidual, ...]

    @property
    def mean_mm(self) -> float:
        return float(np.mean([r.translation_mm for r in self.residuals]))

    @property
    def max_mm(self) -> float:
        return float(np.max([r.translation_mm for r in self.residuals]))

    @property
    def mean_deg(self) -> float:
        return float(np.mean([r.rotation_deg for r in self.residuals]))

    @property
    def max_deg(self) -> float:
        return float(np.max([r.rotation_deg for r in self.residuals]))


def detect_board(image: np.ndarray, board: BoardSpec, intrinsics: CameraIntrinsics, distortion=None,
                 min_corners: int = 6) -> BoardDetection:
    """T_cam_board from a grey (H, W) or RGB (H, W, 3) image, by PnP on the ChArUco corners found."""
    if image.shape[:2] != (intrinsics.height, intrinsics.width):
        return BoardDetection(None, 0, f"image is {image.shape[1]}x{image.shape[0]}, camera_info says "
                                       f"{intrinsics.width}x{intrinsics.height}")
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    corners, ids, marker_corners, _ = cv2.aruco.CharucoDetector(board.board).detectBoard(grey)
    count = 0 if ids is None else len(ids)
    if count < max(min_corners, 4):
        return BoardDetection(None, count, f"only {count} ChArUco corners found (need {max(min_corners, 4)}): "
                                           "is the whole board in view, sharp and evenly lit?")
    if board.board.checkCharucoCornersCollinear(ids):
        return BoardDetection(None, count, f"the {count} corners found lie on one line; show more of the board")
    corners = refine_corners(grey, corners.reshape(-1, 2), np.concatenate(marker_corners).reshape(-1, 2))
    object_points, image_points = board.board.matchImagePoints(corners.reshape(-1, 1, 2), ids)
    distortion = np.zeros(5) if distortion is None else np.asarray(distortion, dtype=float)
    # iterative (homography start, then Levenberg-Marquardt): IPPE was off by ~2 deg on a board squarely facing
    # the camera, even with exact corners (OpenCV 4.11)
    ok, rvec, tvec = cv2.solvePnP(object_points, image_points, intrinsics.k, distortion,
                                  flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return BoardDetection(None, count, "solvePnP found no pose for the corners")
    return BoardDetection(Transform(cv2.Rodrigues(rvec)[0], tvec.ravel()), count)


def refine_corners(grey: np.ndarray, corners: np.ndarray, marker_corners: np.ndarray) -> np.ndarray:
    """Chessboard corners (N, 2) refined to subpixel with a window that stops short of the nearest marker corner.

    CharucoDetector's own refinement left corners ~0.5 px off on sharp rendered images (OpenCV 4.11).
    """
    refined = corners.astype(np.float32).copy()
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 0.001)
    for index, corner in enumerate(refined):
        # the nearest marker corner sits diagonally from the chessboard corner: keep it outside the square window
        clearance = np.min(np.linalg.norm(marker_corners - corner, axis=1)) / math.sqrt(2.0)
        half_window = int(np.clip(clearance - 1.5, 2, 10))
        refined[index] = cv2.cornerSubPix(grey, corner.reshape(1, 1, 2).copy(), (half_window, half_window), (-1, -1),
                                          criteria).reshape(2)
    return refined


def render_board_image(board: BoardSpec, intrinsics: CameraIntrinsics, T_cam_board: Transform,
                       background: int = 255, supersample: int = 2) -> np.ndarray:
    """A synthetic grey (H, W) uint8 camera image of the board at T_cam_board (no distortion, no noise).

    The board's printed image is mapped into the camera by the plane's homography, rendered ``supersample``
    times larger and averaged down, which gives anti-aliased edges like a real lens.
    """
    outline = np.array([[0, 0, 0], [board.squares_x, 0, 0], [0, board.squares_y, 0],
                        [board.squares_x, board.squares_y, 0]]) * board.square_length
    depth = T_cam_board.apply(outline)[:, 2]
    if depth.min() <= 0.01:
        raise ValueError(f"board is not in front of the camera (corner depths {np.round(depth, 3)} m)")
    camera = intrinsics.scaled(intrinsics.width * supersample, intrinsics.height * supersample)
    # print the board at about the finest scale it is seen at, so the warp never skips printed pixels
    pixels_per_square = int(np.clip(math.ceil(camera.fx * board.square_length / depth.min()), 8, 400))
    printed = board.board.generateImage((board.squares_x * pixels_per_square, board.squares_y * pixels_per_square),
                                        marginSize=0, borderBits=1)
    # printed pixel (i, j) covers board point ((i, j) + 0.5) * metres_per_pixel
    metres_per_pixel = board.square_length / pixels_per_square
    board_from_printed = np.array([[metres_per_pixel, 0, 0.5 * metres_per_pixel],
                                   [0, metres_per_pixel, 0.5 * metres_per_pixel], [0, 0, 1]])
    rotation, translation = T_cam_board.rotation, T_cam_board.translation
    homography = camera.k @ np.column_stack([rotation[:, 0], rotation[:, 1], translation]) @ board_from_printed
    fine = cv2.warpPerspective(printed, homography, (camera.width, camera.height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=int(background))
    return cv2.resize(fine, (intrinsics.width, intrinsics.height), interpolation=cv2.INTER_AREA)


def rotation_angle_deg(rotation_a: np.ndarray, rotation_b: np.ndarray) -> float:
    """Angle [deg] of the rotation that takes ``rotation_a`` to ``rotation_b``."""
    cosine = (np.trace(rotation_a.T @ rotation_b) - 1.0) / 2.0
    return math.degrees(math.acos(float(np.clip(cosine, -1.0, 1.0))))


def nearest_rotation(matrix: np.ndarray) -> np.ndarray:
    """The rotation matrix nearest (Frobenius) to a 3x3 ``matrix``."""
    u, _, vt = np.linalg.svd(matrix)
    return u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt


def mean_transform(transforms: list[Transform]) -> Transform:
    """Mean translation and the rotation nearest to the mean rotation matrix."""
    return Transform(nearest_rotation(np.mean([t.rotation for t in transforms], axis=0)),
                     np.mean([t.translation for t in transforms], axis=0))


def rotation_spread_problem(samples: list[HandEyeSample]) -> str:
    """Why the tool poses cannot pin down T_base_cam ("" when they can).

    With every tool rotation about one axis, T_base_cam can slide along that axis without changing any residual.
    """
    rotation_0 = samples[0].T_base_tcp.rotation
    axes = []
    for sample in samples[1:]:
        rotvec = cv2.Rodrigues(rotation_0.T @ sample.T_base_tcp.rotation)[0].ravel()
        if np.linalg.norm(rotvec) >= math.radians(MIN_ROTATION_DEG):
            axes.append(rotvec / np.linalg.norm(rotvec))
    if not axes:
        return f"the tool rotates less than {MIN_ROTATION_DEG:g} deg between samples; tilt and turn it between images"
    spread = max(np.linalg.norm(np.cross(a, b)) for a in axes for b in axes)
    if spread < math.sin(math.radians(15.0)):
        return "every tool rotation is about one axis; tilt the tool about different axes between images"
    return ""


def solve_hand_eye(samples: list[HandEyeSample], method: str = "park") -> HandEyeResult:
    """T_base_cam (and T_tcp_board) from eye-to-hand samples, with each sample's residual."""
    if method not in HAND_EYE_METHODS:
        raise CalibrationError(f"unknown hand-eye method {method!r}; choose one of {', '.join(HAND_EYE_METHODS)}")
    if len(samples) < MIN_SAMPLES:
        raise CalibrationError(f"{len(samples)} usable samples; hand-eye calibration needs at least {MIN_SAMPLES} "
                               "(10-20 recommended)")
    # eye-to-hand: T_tcp_base goes where calibrateHandEye expects T_base_gripper (see the module docstring)
    T_tcp_base = [sample.T_base_tcp.inverse() for sample in samples]
    rotation, translation = cv2.calibrateHandEye(
        [T.rotation for T in T_tcp_base], [T.translation.reshape(3, 1) for T in T_tcp_base],
        [s.T_cam_board.rotation for s in samples], [s.T_cam_board.translation.reshape(3, 1) for s in samples],
        method=HAND_EYE_METHODS[method])
    if not np.all(np.isfinite(rotation)) or not np.all(np.isfinite(translation)):
        raise CalibrationError(f"calibrateHandEye ({method}) found no solution; vary the tool poses more")
    # calibrateHandEye's rotation is orthonormal only to its numerical precision
    T_base_cam = Transform(nearest_rotation(rotation), translation.ravel())
    T_tcp_board = mean_transform([T * T_base_cam * s.T_cam_board for T, s in zip(T_tcp_base, samples)])

    residuals = []
    for sample in samples:
        T_base_board_solved = sample.T_base_tcp * T_tcp_board
        T_base_board_seen = T_base_cam * sample.T_cam_board
        residuals.append(SampleResidual(
            sample.name,
            1000.0 * float(np.linalg.norm(T_base_board_solved.translation - T_base_board_seen.translation)),
            rotation_angle_deg(T_base_board_solved.rotation, T_base_board_seen.rotation)))
    return HandEyeResult(T_base_cam, T_tcp_board, method, tuple(residuals))


def _read_yaml(path: Path | str, kind: type):
    path = Path(path)
    if not path.exists():
        raise CalibrationError(f"{path}: no such file")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, kind):
        raise CalibrationError(f"{path}: expected a {'list' if kind is list else 'mapping'} at the top level")
    return data


def load_camera_info(path: Path | str) -> tuple[CameraIntrinsics, np.ndarray | None]:
    """Intrinsics and distortion (None: none given) from a samples folder's camera_info.yaml."""
    data = _read_yaml(path, dict)
    try:
        intrinsics = CameraIntrinsics.from_dict(data)
    except (KeyError, TypeError, ValueError) as error:
        raise CalibrationError(f"{path}: expected width, height, fx, fy, cx, cy ({error!r})") from None
    distortion = data.get("d")
    return intrinsics, None if not distortion else np.asarray(distortion, dtype=float)


def load_poses(path: Path | str) -> list[tuple[str, Transform]]:
    """(image file name, T_base_tcp) for each entry of a samples folder's poses.yaml."""
    poses = []
    for index, entry in enumerate(_read_yaml(path, list)):
        try:
            poses.append((str(entry["image"]), Transform.from_dict(entry["T_base_tcp"])))
        except (KeyError, TypeError, ValueError) as error:
            raise CalibrationError(f"{path}: entry {index} needs image and T_base_tcp with translation and "
                                   f"rotation_xyzw ({error!r})") from None
    return poses


def _format(T: Transform) -> str:
    return f"translation {np.round(T.translation, 4).tolist()} m, rotation_xyzw {np.round(T.quat_xyzw, 4).tolist()}"


def calibrate(samples_dir: Path, board: BoardSpec, out: Path, *, method: str = "park", max_mean_mm: float = 10.0,
              max_mean_deg: float = 2.0, command: str = "grasp_cell.calibrate") -> HandEyeResult:
    """Detect, solve, check and write; prints what it does, raises CalibrationError before writing anything bad."""
    intrinsics, distortion = load_camera_info(samples_dir / "camera_info.yaml")
    samples = []
    for name, T_base_tcp in load_poses(samples_dir / "poses.yaml"):
        image = cv2.imread(str(samples_dir / name), cv2.IMREAD_GRAYSCALE)
        detection = (BoardDetection(None, 0, "cannot read the image") if image is None
                     else detect_board(image, board, intrinsics, distortion))
        if detection.T_cam_board is None:
            print(f"{name}: skipped, {detection.reason}")
            continue
        print(f"{name}: {detection.corner_count} corners, board at {np.round(detection.T_cam_board.translation, 3)} "
              "m in the camera")
        samples.append(HandEyeSample(name, T_base_tcp, detection.T_cam_board))
    if len(samples) < MIN_SAMPLES:
        raise CalibrationError(f"only {len(samples)} usable samples (need at least {MIN_SAMPLES}, 10-20 recommended); "
                               "take more images with the whole board in view")
    problem = rotation_spread_problem(samples)
    if problem:
        raise CalibrationError(problem)

    result = solve_hand_eye(samples, method)
    for residual in result.residuals:
        print(f"{residual.name}: residual {residual.translation_mm:.2f} mm, {residual.rotation_deg:.3f} deg")
    print(f"T_base_cam ({method}, {len(samples)} samples): {_format(result.T_base_cam)}")
    print(f"T_tcp_board: {_format(result.T_tcp_board)}")
    print(f"residual mean {result.mean_mm:.2f} mm / {result.mean_deg:.3f} deg, "
          f"max {result.max_mm:.2f} mm / {result.max_deg:.3f} deg")
    if not (result.mean_mm <= max_mean_mm and result.mean_deg <= max_mean_deg):
        worst = max(result.residuals, key=lambda r: r.translation_mm)
        raise CalibrationError(
            f"mean residual {result.mean_mm:.1f} mm / {result.mean_deg:.2f} deg is over the limit "
            f"({max_mean_mm:g} mm / {max_mean_deg:g} deg; worst {worst.name}): check that poses.yaml holds the "
            "tool pose of each image in metres, that the board lengths match the print, and that the board did "
            "not move on the tool")
    save_T_base_cam(out, result.T_base_cam, solved_by=command, method=method, samples_used=len(samples),
                    residual_mean_mm=round(result.mean_mm, 3), residual_mean_deg=round(result.mean_deg, 4),
                    residual_max_mm=round(result.max_mm, 3), residual_max_deg=round(result.max_deg, 4),
                    T_tcp_board=result.T_tcp_board.to_dict())
    print(f"wrote {out}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grasp_cell.calibrate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=Path, required=True, help="folder with poses.yaml, camera_info.yaml, images")
    parser.add_argument("--board", type=Path, default=DEFAULT_BOARD, help="board YAML (default: %(default)s)")
    parser.add_argument("--out", type=Path, required=True, help="hand-eye YAML to write, e.g. config/hand_eye.yaml")
    parser.add_argument("--method", choices=list(HAND_EYE_METHODS), default="park", help="calibrateHandEye method")
    parser.add_argument("--max-residual-mm", type=float, default=10.0,
                        help="refuse to write above this mean board residual [mm]")
    parser.add_argument("--max-residual-deg", type=float, default=2.0,
                        help="refuse to write above this mean board residual [deg]")
    options = parser.parse_args(argv)
    command = shlex.join(["python", "-m", "grasp_cell.calibrate", *(sys.argv[1:] if argv is None else argv)])
    try:
        calibrate(options.samples, BoardSpec.from_yaml(options.board), options.out, method=options.method,
                  max_mean_mm=options.max_residual_mm, max_mean_deg=options.max_residual_deg, command=command)
    except CalibrationError as error:
        print(f"calibrate: {error}; nothing written", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
