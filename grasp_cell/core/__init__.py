"""Pure data and math of the cell (numpy only, no ROS)."""

from grasp_cell.core.camera import CameraIntrinsics
from grasp_cell.core.depth import DepthError, depth_from_bytes, depth_to_metres, validate_depth
from grasp_cell.core.grasp import Grasp, GripperKind, rank
from grasp_cell.core.outcome import Outcome
from grasp_cell.core.transform import Transform

__all__ = [
    "CameraIntrinsics",
    "DepthError",
    "Grasp",
    "GripperKind",
    "Outcome",
    "Transform",
    "depth_from_bytes",
    "depth_to_metres",
    "rank",
    "validate_depth",
]
