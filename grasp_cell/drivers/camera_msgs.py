"""sensor_msgs Image and CameraInfo as the ``rosbags`` library reads and writes them, to and from numpy.

The message classes come from rosbags' ROS 2 Kilted typestore, so bags are read and written without rclpy.
Decoders raise ``ValueError`` (``DepthError`` for depth) naming what is wrong; callers add where it was found.
"""

from __future__ import annotations

import numpy as np
from rosbags.typesys import Stores, get_typestore

from grasp_cell.core.camera import CameraIntrinsics
from grasp_cell.core.depth import SUPPORTED_ENCODINGS as DEPTH_ENCODINGS
from grasp_cell.core.depth import color_from_bytes, depth_from_bytes

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"

Header = TYPESTORE.types["std_msgs/msg/Header"]
Time = TYPESTORE.types["builtin_interfaces/msg/Time"]
Image = TYPESTORE.types[IMAGE]
CameraInfo = TYPESTORE.types[CAMERA_INFO]
RegionOfInterest = TYPESTORE.types["sensor_msgs/msg/RegionOfInterest"]


def stamp_ns(header) -> int:
    """A header's stamp in integer nanoseconds (exact, for matching messages by stamp)."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def make_header(stamp: float, frame_id: str):
    """A std_msgs/Header at ``stamp`` [s since epoch]."""
    total_ns = int(round(stamp * 1e9))
    return Header(stamp=Time(sec=total_ns // 1_000_000_000, nanosec=total_ns % 1_000_000_000), frame_id=frame_id)


def depth_from_image(msg) -> np.ndarray:
    """32FC1 [m] or 16UC1 [mm] -> (H, W) float32 metres, NaN where missing (0 or non-finite)."""
    return depth_from_bytes(msg.data, msg.height, msg.width, msg.encoding, msg.step, bool(msg.is_bigendian))


def color_from_image(msg) -> np.ndarray:
    """rgb8, bgr8, rgba8 or bgra8 (row stride ``step``) -> (H, W, 3) uint8 RGB; alpha is dropped."""
    return color_from_bytes(bytes(msg.data), msg.height, msg.width, msg.encoding, msg.step)


def intrinsics_from_camera_info(msg) -> CameraIntrinsics:
    """The pinhole model of a CameraInfo (its K); ValueError when it has no size or focal length."""
    k = np.asarray(msg.k, dtype=float)
    if msg.width == 0 or msg.height == 0 or k.size != 9 or not (k[0] > 0 and k[4] > 0):
        raise ValueError(f"CameraInfo is empty or malformed (size {msg.width}x{msg.height}, K {k.tolist()})")
    return CameraIntrinsics.from_k(msg.width, msg.height, k)


def depth_to_image(depth: np.ndarray, header, encoding: str = "32FC1"):
    """float32 metres (NaN = missing) -> 32FC1 [m, NaN kept] or 16UC1 [mm, 0 = missing] Image."""
    depth = np.asarray(depth, dtype=np.float32)
    if encoding == "32FC1":
        pixels = depth.astype("<f4")
    elif encoding == "16UC1":
        millimetres = np.where(np.isfinite(depth), np.round(depth * 1e3), 0.0)
        pixels = np.clip(millimetres, 0, np.iinfo(np.uint16).max).astype("<u2")
    else:
        raise ValueError(f"unsupported depth encoding '{encoding}'; expected one of {', '.join(DEPTH_ENCODINGS)}")
    height, width = depth.shape
    return Image(header=header, height=height, width=width, encoding=encoding, is_bigendian=0,
                 step=pixels.itemsize * width, data=np.frombuffer(pixels.tobytes(), np.uint8))


def color_to_image(color: np.ndarray, header):
    """(H, W, 3) uint8 RGB -> rgb8 Image."""
    color = np.ascontiguousarray(color, dtype=np.uint8)
    height, width = color.shape[:2]
    return Image(header=header, height=height, width=width, encoding="rgb8", is_bigendian=0, step=3 * width,
                 data=color.reshape(-1))


def intrinsics_to_camera_info(intrinsics: CameraIntrinsics, header):
    """An undistorted (plumb_bob, D = 0) CameraInfo with K and P from the pinhole model."""
    p = np.zeros((3, 4))
    p[:, :3] = intrinsics.k
    return CameraInfo(header=header, height=intrinsics.height, width=intrinsics.width, distortion_model="plumb_bob",
                      d=np.zeros(5), k=intrinsics.k.reshape(-1), r=np.eye(3).reshape(-1), p=p.reshape(-1),
                      binning_x=0, binning_y=0,
                      roi=RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
