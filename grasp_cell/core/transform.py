"""Rigid transforms with frame-named variables (``T_world_cam`` maps camera points into world).

numpy only: quaternions are xyzw, the order ROS and scipy use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def _as_vec3(values) -> np.ndarray:
    vec = np.asarray(values, dtype=float).reshape(3)
    return vec


def quat_xyzw_to_matrix(quat_xyzw) -> np.ndarray:
    x, y, z, w = np.asarray(quat_xyzw, dtype=float) / np.linalg.norm(quat_xyzw)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quat_xyzw(rotation) -> np.ndarray:
    """Shepperd's method; returns a unit quaternion with w >= 0."""
    m = np.asarray(rotation, dtype=float)
    trace = np.trace(m)
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        quat = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        quat = [0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        quat = [(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        quat = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s]
    quat = np.array(quat)
    quat /= np.linalg.norm(quat)
    return quat if quat[3] >= 0 else -quat


def rotation_about_axis(axis, angle: float) -> np.ndarray:
    """Rodrigues' formula: rotation matrix of ``angle`` [rad] about ``axis``."""
    axis = _as_vec3(axis)
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def frame_from_z_axis(z_axis, x_hint=(1.0, 0.0, 0.0)) -> np.ndarray:
    """Rotation whose z column is ``z_axis`` and whose x column is as close to ``x_hint`` as possible."""
    z = _as_vec3(z_axis)
    z = z / np.linalg.norm(z)
    x = _as_vec3(x_hint)
    x = x - z * float(x @ z)
    if np.linalg.norm(x) < 1e-6:  # hint parallel to z: any perpendicular will do
        x = np.cross(z, [0.0, 1.0, 0.0] if abs(z[1]) < 0.9 else [1.0, 0.0, 0.0])
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    return np.column_stack([x, y, z])


@dataclass(frozen=True)
class Transform:
    """A rigid transform ``T_a_b``: ``p_a = T_a_b * p_b``."""

    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def __post_init__(self):
        rotation = np.asarray(self.rotation, dtype=float).reshape(3, 3)
        if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-5):
            raise ValueError("rotation is not orthonormal")
        object.__setattr__(self, "rotation", rotation)
        object.__setattr__(self, "translation", _as_vec3(self.translation))

    @classmethod
    def identity(cls) -> "Transform":
        return cls()

    @classmethod
    def from_matrix(cls, matrix) -> "Transform":
        matrix = np.asarray(matrix, dtype=float)
        return cls(matrix[:3, :3], matrix[:3, 3])

    @classmethod
    def from_pos_quat(cls, position, quat_xyzw) -> "Transform":
        return cls(quat_xyzw_to_matrix(quat_xyzw), position)

    @classmethod
    def from_dict(cls, data: dict) -> "Transform":
        """``{"translation": [x, y, z], "rotation_xyzw": [x, y, z, w]}``, as in config YAML."""
        return cls.from_pos_quat(data["translation"], data["rotation_xyzw"])

    @classmethod
    def look_at(cls, eye, target, up=(0.0, 0.0, 1.0)) -> "Transform":
        """``T_world_cam`` of an optical frame (z forward, x right, y down) at ``eye`` looking at ``target``."""
        eye, target, up = _as_vec3(eye), _as_vec3(target), _as_vec3(up)
        z = target - eye
        z /= np.linalg.norm(z)
        x = np.cross(z, up)
        if np.linalg.norm(x) < 1e-6:  # looking along ``up``: pick a right vector
            x = np.cross(z, [0.0, 1.0, 0.0]) if abs(z[1]) < 0.9 else np.cross(z, [1.0, 0.0, 0.0])
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        return cls(np.column_stack([x, y, z]), eye)

    def to_dict(self) -> dict:
        return {"translation": self.translation.tolist(), "rotation_xyzw": self.quat_xyzw.tolist()}

    @property
    def quat_xyzw(self) -> np.ndarray:
        return matrix_to_quat_xyzw(self.rotation)

    def as_matrix(self) -> np.ndarray:
        matrix = np.eye(4)
        matrix[:3, :3] = self.rotation
        matrix[:3, 3] = self.translation
        return matrix

    def inverse(self) -> "Transform":
        return Transform(self.rotation.T, -self.rotation.T @ self.translation)

    def __mul__(self, other: "Transform") -> "Transform":
        if not isinstance(other, Transform):
            return NotImplemented
        return Transform(self.rotation @ other.rotation, self.rotation @ other.translation + self.translation)

    def apply(self, points) -> np.ndarray:
        """Map points (3,) or (N, 3) from frame b into frame a."""
        points = np.asarray(points, dtype=float)
        return points @ self.rotation.T + self.translation
