"""Parallel-jaw geometry and the planar grasp angle convention shared by labels, models and the sim.

Sizes follow seed 003 Fig. 3(c): L1 finger thickness along the closing direction, L2 finger width across
it, L3 finger length (the deepest a grasp can reach below the surface), L4 the largest opening. The
defaults are our gripper, ``grasp_cell/sim/assets/parallel_jaw.urdf``.

Planar grasp angle (seed 003 eq. 9): theta in [0, pi) is the angle of the closing direction from the
image u axis, counter-clockwise as the image is displayed (v points down), so the closing direction is
(cos theta, -sin theta) in (u, v) and in the camera frame's (x, y). Angle class k stands for k * pi / K.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ANGLE_CLASSES = 18  # seed 003: K = 18, 10 degree steps


@dataclass(frozen=True)
class JawGeometry:
    finger_thickness: float = 0.010  # L1 [m]
    finger_width: float = 0.020  # L2 [m]
    finger_length: float = 0.110  # L3 [m]
    max_opening: float = 0.085  # L4 [m]
    tcp_above_tips: float = 0.005  # the arm's tool point sits this far above the fingertips [m]


def angle_of_class(k, classes: int = ANGLE_CLASSES):
    """Grasp angle theta [rad] of angle class ``k`` (scalar or array)."""
    return np.asarray(k) * (math.pi / classes)


def class_of_angle(theta, classes: int = ANGLE_CLASSES):
    """Nearest angle class of ``theta`` [rad], any real angle (the jaw is symmetric: theta and theta + pi agree)."""
    return np.rint(np.asarray(theta) / (math.pi / classes)).astype(np.int64) % classes


def closing_direction(theta) -> np.ndarray:
    """Unit closing direction (x, y) in the camera frame, equally (du, dv) in the image, for angle theta."""
    theta = np.asarray(theta, dtype=float)
    return np.stack([np.cos(theta), -np.sin(theta)], axis=-1)


def planar_grasp_rotation(theta: float) -> np.ndarray:
    """Seed 003 eq. 9: grasp frame in the camera frame, z (approach) along the camera z axis, x closing."""
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
