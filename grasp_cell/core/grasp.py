"""The one grasp type every model produces and every arm executes.

Grasp frame convention: origin at the grasp point on the part (suction: the contact point;
parallel and three-finger: the centre between the fingertips), z axis = approach direction
(the gripper travels along +z into the part), x axis = closing direction of the jaws.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

import numpy as np

from grasp_cell.core.transform import Transform, frame_from_z_axis


class GripperKind(str, enum.Enum):
    SUCTION = "suction"
    PARALLEL = "parallel"
    THREE_FINGER = "three_finger"

    @classmethod
    def parse(cls, value: "str | GripperKind") -> "GripperKind":
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(kind.value for kind in cls)
            raise ValueError(f"unknown gripper kind '{value}'; expected one of {names}") from None


@dataclass(frozen=True)
class Grasp:
    """A grasp in the camera optical frame, ranked by ``quality``."""

    T_cam_grasp: Transform
    gripper: GripperKind
    quality: float  # [0, 1]
    width: float = 0.0  # jaw opening [m]; 0 for suction
    pixel: tuple[int, int] = (-1, -1)  # (u, v) the grasp came from, (-1, -1) if none
    model: str = ""
    model_version: int = -1  # weights version of a model that keeps learning; -1 if none
    selection: str = ""  # how a learning model chose it (grasp_cell.models.selection); "" if simply ranked

    def __post_init__(self):
        object.__setattr__(self, "gripper", GripperKind.parse(self.gripper))
        if not 0.0 <= self.quality <= 1.0:
            raise ValueError(f"quality must lie in [0, 1], got {self.quality}")
        if self.width < 0.0:
            raise ValueError(f"width must be >= 0, got {self.width}")

    @classmethod
    def from_approach(
        cls, position, approach, gripper, quality, closing=(1.0, 0.0, 0.0), **kwargs
    ) -> "Grasp":
        """Build from a point, an approach direction and (for jaws) a closing direction, all in the camera frame."""
        rotation = frame_from_z_axis(approach, x_hint=closing)
        return cls(Transform(rotation, position), gripper, float(quality), **kwargs)

    @property
    def position(self) -> np.ndarray:
        return self.T_cam_grasp.translation

    @property
    def approach(self) -> np.ndarray:
        """Unit approach direction in the camera frame (the grasp frame's z axis)."""
        return self.T_cam_grasp.rotation[:, 2]

    @property
    def closing(self) -> np.ndarray:
        return self.T_cam_grasp.rotation[:, 0]

    def with_quality(self, quality: float) -> "Grasp":
        return replace(self, quality=float(quality))


def rank(grasps: list[Grasp]) -> list[Grasp]:
    """Best first; stable for equal quality."""
    return sorted(grasps, key=lambda grasp: -grasp.quality)
