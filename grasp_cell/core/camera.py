"""Pinhole camera model for ``*_optical_frame`` cameras (z forward, x right, y down)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics in pixels; (cx, cy) follow the ROS convention (pixel centres at integers)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self):
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")
        if not (self.fx > 0 and self.fy > 0):
            raise ValueError(f"focal lengths must be positive, got fx={self.fx}, fy={self.fy}")

    @classmethod
    def from_vertical_fov(cls, width: int, height: int, fov_deg: float) -> "CameraIntrinsics":
        """Square pixels and a centred principal point, as seed 003 eq. 1 (640x480, 60 deg gives f = 415.7)."""
        focal = (height / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
        return cls(width, height, focal, focal, (width - 1) / 2.0, (height - 1) / 2.0)

    @classmethod
    def default(cls) -> "CameraIntrinsics":
        """The cell's default camera: seed 003 eq. 1, 640x480 with a 60 deg vertical field of view."""
        return cls.from_vertical_fov(640, 480, 60.0)

    @classmethod
    def from_k(cls, width: int, height: int, k) -> "CameraIntrinsics":
        """From a row-major 3x3 matrix, as in sensor_msgs/CameraInfo.k."""
        k = np.asarray(k, dtype=float).reshape(3, 3)
        return cls(int(width), int(height), k[0, 0], k[1, 1], k[0, 2], k[1, 2])

    @classmethod
    def from_dict(cls, data: dict) -> "CameraIntrinsics":
        if "fov_deg" in data:
            return cls.from_vertical_fov(int(data["width"]), int(data["height"]), float(data["fov_deg"]))
        return cls(int(data["width"]), int(data["height"]), *(float(data[k]) for k in ("fx", "fy", "cx", "cy")))

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def k(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def vertical_fov_deg(self) -> float:
        return math.degrees(2.0 * math.atan((self.height / 2.0) / self.fy))

    def scaled(self, width: int, height: int) -> "CameraIntrinsics":
        """The same camera resampled to another resolution."""
        sx, sy = width / self.width, height / self.height
        return CameraIntrinsics(
            width, height, self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5
        )

    def cropped(self, u_min: int, v_min: int, width: int, height: int) -> "CameraIntrinsics":
        """The same camera seen through a ``width`` x ``height`` window whose top-left pixel is (u_min, v_min)."""
        return CameraIntrinsics(width, height, self.fx, self.fy, self.cx - u_min, self.cy - v_min)

    def deproject(self, u, v, depth) -> np.ndarray:
        """Pixel(s) and depth [m] along the optical axis to 3D point(s) in the camera frame, shape (..., 3)."""
        u, v, depth = np.broadcast_arrays(np.asarray(u, float), np.asarray(v, float), np.asarray(depth, float))
        return np.stack([(u - self.cx) * depth / self.fx, (v - self.cy) * depth / self.fy, depth], axis=-1)

    def project(self, points) -> np.ndarray:
        """3D point(s) in the camera frame to pixel coordinates (..., 2) as (u, v) floats."""
        points = np.asarray(points, dtype=float)
        z = points[..., 2]
        return np.stack([self.fx * points[..., 0] / z + self.cx, self.fy * points[..., 1] / z + self.cy], axis=-1)

    def point_map(self, depth: np.ndarray) -> np.ndarray:
        """Organised point cloud (H, W, 3) of a depth image in metres; missing pixels stay NaN."""
        if depth.shape != (self.height, self.width):
            raise ValueError(f"depth is {depth.shape[1]}x{depth.shape[0]}, intrinsics are {self.width}x{self.height}")
        v, u = np.mgrid[0 : self.height, 0 : self.width]
        return self.deproject(u, v, depth).astype(np.float32)
