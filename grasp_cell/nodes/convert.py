"""All conversions between ROS messages and core types, as paired to_*/from_* functions."""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from sensor_msgs.msg import CameraInfo, Image, RegionOfInterest
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from grasp_cell.core.camera import CameraIntrinsics
from grasp_cell.core.depth import DepthError, color_from_bytes, depth_from_bytes
from grasp_cell.core.grasp import Grasp
from grasp_cell.core.transform import Transform
from grasp_cell.msg import Grasp as GraspMsg


def to_time_msg(seconds: float) -> Time:
    whole = int(seconds)
    return Time(sec=whole, nanosec=int(round((seconds - whole) * 1e9)) % 1_000_000_000)


def to_depth_msg(depth: np.ndarray, header: Header) -> Image:
    """float32 metres -> 32FC1 (NaN stays NaN)."""
    depth = np.ascontiguousarray(depth, dtype="<f4")
    height, width = depth.shape
    return Image(
        header=header,
        height=height,
        width=width,
        encoding="32FC1",
        is_bigendian=0,
        step=4 * width,
        data=depth.tobytes(),
    )


def from_depth_msg(msg: Image) -> np.ndarray:
    """32FC1 metres or 16UC1 millimetres -> float32 metres with NaN for missing; DepthError on anything else."""
    return depth_from_bytes(bytes(msg.data), msg.height, msg.width, msg.encoding, msg.step, bool(msg.is_bigendian))


def to_color_msg(color: np.ndarray, header: Header) -> Image:
    color = np.ascontiguousarray(color, dtype=np.uint8)
    height, width = color.shape[:2]
    return Image(header=header, height=height, width=width, encoding="rgb8", step=3 * width, data=color.tobytes())


def from_color_msg(msg: Image) -> np.ndarray | None:
    """rgb8, bgr8, rgba8 or bgra8 -> (H, W, 3) uint8 RGB; None for an empty image (no colour sent)."""
    if msg.width == 0 or msg.height == 0:
        return None
    return color_from_bytes(bytes(msg.data), msg.height, msg.width, msg.encoding, msg.step)


def to_camera_info_msg(intrinsics: CameraIntrinsics, header: Header) -> CameraInfo:
    k = intrinsics.k
    p = np.zeros((3, 4))
    p[:, :3] = k
    return CameraInfo(
        header=header,
        width=intrinsics.width,
        height=intrinsics.height,
        distortion_model="plumb_bob",
        d=[0.0] * 5,
        k=k.flatten().tolist(),
        r=np.eye(3).flatten().tolist(),
        p=p.flatten().tolist(),
    )


def from_camera_info_msg(msg: CameraInfo) -> CameraIntrinsics:
    """CameraInfo -> intrinsics; DepthError when it is missing (all zero) or malformed."""
    k = np.asarray(msg.k, dtype=float)
    if msg.width == 0 or msg.height == 0 or k.size != 9 or k[0] <= 0 or k[4] <= 0:
        raise DepthError("CameraInfo is missing or empty (no image size or focal length)")
    return CameraIntrinsics.from_k(msg.width, msg.height, k)


def to_roi_msg(roi: tuple[int, int, int, int] | None) -> RegionOfInterest:
    if roi is None:
        return RegionOfInterest()
    u_min, v_min, u_max, v_max = (int(x) for x in roi)
    return RegionOfInterest(x_offset=u_min, y_offset=v_min, width=u_max - u_min, height=v_max - v_min)


def from_roi_msg(msg: RegionOfInterest) -> tuple[int, int, int, int] | None:
    if msg.width == 0 or msg.height == 0:
        return None
    return (msg.x_offset, msg.y_offset, msg.x_offset + msg.width, msg.y_offset + msg.height)


def to_pose_msg(transform: Transform) -> Pose:
    x, y, z = (float(v) for v in transform.translation)
    qx, qy, qz, qw = (float(v) for v in transform.quat_xyzw)
    return Pose(position=Point(x=x, y=y, z=z), orientation=Quaternion(x=qx, y=qy, z=qz, w=qw))


def from_pose_msg(msg: Pose) -> Transform:
    q = msg.orientation
    quat = [q.x, q.y, q.z, q.w]
    if np.linalg.norm(quat) < 1e-9:
        raise ValueError("pose has a zero quaternion")
    return Transform.from_pos_quat([msg.position.x, msg.position.y, msg.position.z], quat)


def to_grasp_msg(grasp: Grasp, header: Header) -> GraspMsg:
    approach = grasp.approach
    return GraspMsg(
        header=header,
        pose=to_pose_msg(grasp.T_cam_grasp),
        approach=Vector3(x=float(approach[0]), y=float(approach[1]), z=float(approach[2])),
        gripper=grasp.gripper.value,
        width=float(grasp.width),
        quality=float(grasp.quality),
        pixel_u=int(grasp.pixel[0]),
        pixel_v=int(grasp.pixel[1]),
        model=grasp.model,
        model_version=int(grasp.model_version),
        selection=grasp.selection,
    )


def from_grasp_msg(msg: GraspMsg) -> Grasp:
    return Grasp(
        T_cam_grasp=from_pose_msg(msg.pose),
        gripper=msg.gripper,
        quality=float(msg.quality),
        width=float(msg.width),
        pixel=(int(msg.pixel_u), int(msg.pixel_v)),
        model=msg.model,
        model_version=int(msg.model_version),
        selection=msg.selection,
    )


def to_marker_array(grasps: list[Grasp], header: Header, namespace: str = "grasps") -> MarkerArray:
    """Arrows along each grasp's approach (ending at the grasp point), coloured red→green by quality.

    Starts with a DELETEALL so markers of an earlier, longer list do not linger in RViz.
    """
    markers = [Marker(header=header, ns=namespace, action=Marker.DELETEALL)]
    for index, grasp in enumerate(grasps):
        start = grasp.position - 0.06 * grasp.approach
        quality = float(grasp.quality)
        markers.append(
            Marker(
                header=header,
                ns=namespace,
                id=index,
                type=Marker.ARROW,
                action=Marker.ADD,
                points=[
                    Point(x=float(start[0]), y=float(start[1]), z=float(start[2])),
                    Point(x=float(grasp.position[0]), y=float(grasp.position[1]), z=float(grasp.position[2])),
                ],
                scale=Vector3(x=0.004, y=0.008, z=0.01),
                color=ColorRGBA(r=1.0 - quality, g=quality, b=0.1, a=1.0 if index == 0 else 0.6),
            )
        )
    return MarkerArray(markers=markers)
