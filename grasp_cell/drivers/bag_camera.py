"""Replay a recorded camera (Ensenso, RealSense, anything publishing Image + CameraInfo) from a rosbag2.

The bag is read with the ``rosbags`` library, not rclpy, so replay needs no ROS install. mcap and sqlite3
storage are both read, as a bag folder (with metadata.yaml) or a single .mcap / .db3 file.

At start the bag is indexed once: every depth message is paired by header stamp with the nearest CameraInfo
(and colour image) within ``match_tolerance``; only the stamps, the pairing and the intrinsics are kept.
Image data is read from the bag when a capture is served, so a 1000-frame bag costs little memory.

Two ways of serving captures:

* ``trigger``: each ``capture()`` returns the next recorded capture, in stamp order.
* ``rate``: the recording plays in real time from the first ``capture()``; each call returns the latest
  capture due by then (the ones that went by are skipped), or waits for the next one, like a streaming camera.

``write_capture_bag`` does the reverse: it records ``Capture`` objects as a bag this driver replays.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from rosbags.interfaces import Connection
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer

from grasp_cell.core.camera import CameraIntrinsics
from grasp_cell.core.depth import COLOR_ENCODINGS
from grasp_cell.core.depth import SUPPORTED_ENCODINGS as DEPTH_ENCODINGS
from grasp_cell.drivers import camera_msgs
from grasp_cell.drivers.base import CameraDriver, Capture, DriverError
from grasp_cell.drivers.settings import flag, require, roi_setting

MODES = ("trigger", "rate")
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


@dataclass(frozen=True)
class MessageRef:
    """Where one message lies in the bag: its connection and log time (how storage indexes it)."""

    connection: Connection
    log_time_ns: int  # the bag's receive time
    stamp_ns: int  # the message's header stamp


@dataclass(frozen=True)
class RecordedCapture:
    """One depth image with the colour image and camera model recorded with it."""

    stamp: float  # depth header stamp [s]
    depth: MessageRef
    color: MessageRef | None
    intrinsics: CameraIntrinsics


class BagCamera(CameraDriver):
    """A ``CameraDriver`` serving the captures recorded in a rosbag2; see the module docstring.

    ``clock`` and ``sleep`` pace ``rate`` mode (injectable, so tests need not wait).
    """

    def __init__(
        self,
        path: str | Path,
        depth_topic: str,
        camera_info_topic: str,
        color_topic: str = "",
        mode: str = "trigger",
        loop: bool = False,
        match_tolerance: float = 0.01,
        frame_id: str = "",
        roi: tuple[int, int, int, int] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if mode not in MODES:
            raise DriverError(f"bag: mode '{mode}' is not one of {', '.join(MODES)}")
        if not match_tolerance >= 0:
            raise DriverError(f"bag: match_tolerance must be >= 0 s, got {match_tolerance}")
        self.path = Path(path).expanduser()
        self.mode, self.loop = mode, flag(loop, "loop", "bag")
        self._clock, self._sleep = clock, sleep
        self._reader = _open(self.path)
        try:
            self.captures, recorded_frame_id = self._index(depth_topic, camera_info_topic, color_topic,
                                                           float(match_tolerance))
            recorded = self.captures[0].intrinsics
            self.roi = roi_setting({"roi": roi}, f"bag {self.path}", recorded.width, recorded.height)
        except BaseException:
            self._reader.close()
            raise
        self.frame_id = frame_id or recorded_frame_id or CameraDriver.frame_id
        offsets = np.array([c.stamp for c in self.captures]) - self.captures[0].stamp
        self._offsets = offsets.tolist()  # [s] after the first capture
        # one replay cycle: the recording plus one typical frame interval before it starts over
        self._period = float(offsets[-1] + np.median(np.diff(offsets))) if len(offsets) > 1 else 0.0
        self._served_seq = -1  # captures counted from the start across loops; -1: none served yet
        self._t0: float | None = None
        self.served_count = 0
        self.skipped_count = 0

    @classmethod
    def from_settings(cls, settings: dict) -> "BagCamera":
        return cls(
            path=require(settings, "path", "bag"),
            depth_topic=require(settings, "depth_topic", "bag"),
            camera_info_topic=require(settings, "camera_info_topic", "bag"),
            color_topic=settings.get("color_topic") or "",
            mode=settings.get("mode", "trigger"),
            loop=settings.get("loop", False),
            match_tolerance=float(settings.get("match_tolerance", 0.01)),
            frame_id=settings.get("frame_id") or "",
            roi=settings.get("roi") or None,
        )

    # -- indexing ----------------------------------------------------------------------------------------------

    def _connections(self, topic: str, msgtype: str) -> list[Connection]:
        connections = [c for c in self._reader.connections if c.topic == topic]
        if not connections:
            recorded = ", ".join(f"{name} ({info.msgtype})" for name, info in sorted(self._reader.topics.items()))
            raise DriverError(f"bag {self.path}: topic '{topic}' is not in the bag; it has: {recorded or 'no topics'}")
        wrong = {c.msgtype for c in connections} - {msgtype}
        if wrong:
            raise DriverError(f"bag {self.path}: topic '{topic}' holds {', '.join(sorted(wrong))}, expected {msgtype}")
        return connections

    def _index(self, depth_topic: str, info_topic: str, color_topic: str, tolerance: float):
        """Pair every depth message with its CameraInfo (and colour); returns the captures and the frame_id."""
        roles = {c.id: "depth" for c in self._connections(depth_topic, camera_msgs.IMAGE)}
        roles.update({c.id: "info" for c in self._connections(info_topic, camera_msgs.CAMERA_INFO)})
        if color_topic:
            roles.update({c.id: "colour" for c in self._connections(color_topic, camera_msgs.IMAGE)})
        found: dict[str, list] = {"depth": [], "info": [], "colour": []}
        frame_id = ""
        for connection, log_time, raw in self._reader.messages(
            [c for c in self._reader.connections if c.id in roles]
        ):
            msg = camera_msgs.TYPESTORE.deserialize_cdr(raw, connection.msgtype)
            role = roles[connection.id]
            ref = MessageRef(connection, log_time, camera_msgs.stamp_ns(msg.header))
            where = f"bag {self.path}: {connection.topic} at t={ref.stamp_ns / 1e9:.6f}"
            if role == "info":
                try:
                    found["info"].append((ref.stamp_ns, camera_msgs.intrinsics_from_camera_info(msg)))
                except ValueError as error:
                    raise DriverError(f"{where}: {error}") from None
                continue
            supported = DEPTH_ENCODINGS if role == "depth" else tuple(COLOR_ENCODINGS)
            if msg.encoding not in supported:
                raise DriverError(f"{where}: {role} encoding '{msg.encoding}' is not supported; "
                                  f"supported: {', '.join(supported)}")
            if role == "depth" and not frame_id:
                frame_id = msg.header.frame_id
            found[role].append((ref.stamp_ns, ref, (msg.width, msg.height)))
        if not found["depth"]:
            raise DriverError(f"bag {self.path}: no messages on depth topic '{depth_topic}'")
        infos = sorted(found["info"], key=lambda item: item[0])
        colors = sorted(found["colour"], key=lambda item: item[0])
        captures = []
        for stamp_ns, depth_ref, size in sorted(found["depth"], key=lambda item: item[0]):
            where = f"bag {self.path}: depth on {depth_topic} at t={stamp_ns / 1e9:.6f}"
            intrinsics = _nearest(infos, stamp_ns, tolerance, f"{where} has no CameraInfo on {info_topic}")[1]
            if (intrinsics.width, intrinsics.height) != size:
                raise DriverError(f"{where} is {size[0]}x{size[1]} but its CameraInfo is "
                                  f"{intrinsics.width}x{intrinsics.height}: check camera_info_topic")
            color_ref = None
            if color_topic:
                missing = f"{where} has no colour on {color_topic}"
                _, color_ref, color_size = _nearest(colors, stamp_ns, tolerance, missing)
                if color_size != size:
                    raise DriverError(f"{where} is {size[0]}x{size[1]} but its colour image is "
                                      f"{color_size[0]}x{color_size[1]}: record colour aligned to depth")
            captures.append(RecordedCapture(stamp_ns / 1e9, depth_ref, color_ref, intrinsics))
        return captures, frame_id

    # -- serving -----------------------------------------------------------------------------------------------

    def capture(self) -> Capture:
        if self.mode == "rate":
            seq = self._next_due()
        else:
            seq = self._served_seq + 1
            self._check_not_exhausted(seq)
        self.skipped_count += seq - self._served_seq - 1
        self._served_seq = seq
        self.served_count += 1
        return self._load(self.captures[seq % len(self.captures)])

    def _next_due(self) -> int:
        """Sequence number of the capture to serve now at the recorded rate; waits if none is new yet."""
        now = self._clock()
        if self._t0 is None:
            self._t0 = now
        elapsed = now - self._t0
        seq = self._due_at(elapsed)
        if seq > self._served_seq:
            return seq
        # nothing new since the last call: wait for the next capture, as a streaming camera would
        seq = self._served_seq + 1
        self._check_not_exhausted(seq)
        wait = self._time_of(seq) - elapsed
        if wait > 0:
            self._sleep(wait)
        return seq

    def _due_at(self, elapsed: float) -> int:
        """The latest capture recorded by ``elapsed`` seconds into the replay (the last one once it ended)."""
        count = len(self.captures)
        if self.loop and self._period > 0:
            cycle, within = divmod(elapsed, self._period)
            return int(cycle) * count + bisect.bisect_right(self._offsets, within) - 1
        return min(bisect.bisect_right(self._offsets, elapsed), count) - 1

    def _time_of(self, seq: int) -> float:
        cycle, index = divmod(seq, len(self.captures))
        return cycle * self._period + self._offsets[index]

    def _check_not_exhausted(self, seq: int) -> None:
        if seq >= len(self.captures) and not self.loop:
            skipped = f", {self.skipped_count} skipped at the recorded rate" if self.mode == "rate" else ""
            raise DriverError(f"bag {self.path}: exhausted after serving {self.served_count} of "
                              f"{len(self.captures)} recorded captures{skipped}; set loop: true to replay it again")

    def _load(self, recorded: RecordedCapture) -> Capture:
        depth = self._decode(recorded.depth, camera_msgs.depth_from_image)
        color = self._decode(recorded.color, camera_msgs.color_from_image) if recorded.color else None
        return Capture(depth=depth, intrinsics=recorded.intrinsics, color=color, stamp=recorded.stamp, roi=self.roi)

    def _decode(self, ref: MessageRef, decode: Callable) -> np.ndarray:
        where = f"bag {self.path}: {ref.connection.topic} at t={ref.stamp_ns / 1e9:.6f}"
        try:
            for connection, _, raw in self._reader.messages([ref.connection], ref.log_time_ns, ref.log_time_ns + 1):
                msg = camera_msgs.TYPESTORE.deserialize_cdr(raw, connection.msgtype)
                if camera_msgs.stamp_ns(msg.header) == ref.stamp_ns:
                    return decode(msg)
        except (ReaderError, ValueError) as error:
            raise DriverError(f"{where}: {error}") from None
        raise DriverError(f"{where}: message indexed at start is no longer in the bag")

    def close(self) -> None:
        if self._reader.is_open:
            self._reader.close()


def _open(path: Path) -> Reader:
    if not path.exists():
        raise DriverError(f"bag {path}: no such file or folder (set 'path' to a rosbag2 folder with metadata.yaml, "
                          "or to a .mcap or .db3 file)")
    if path.is_dir() and not (path / "metadata.yaml").exists():
        raise DriverError(f"bag {path}: folder has no metadata.yaml; set 'path' to the .mcap or .db3 file in it")
    try:
        reader = Reader(path)
        reader.open()
    except (ReaderError, OSError) as error:
        raise DriverError(f"bag {path}: cannot be read as a rosbag2 ({error})") from None
    return reader


def _nearest(items: list[tuple], stamp_ns: int, tolerance: float, missing: str) -> tuple:
    """The item (sorted by its first field, a stamp in ns) nearest ``stamp_ns``, or DriverError ``missing``."""
    stamps = [item[0] for item in items]
    i = bisect.bisect_left(stamps, stamp_ns)
    candidates = [items[j] for j in (i - 1, i) if 0 <= j < len(items)]
    if not candidates:
        raise DriverError(f"{missing} (that topic has no messages)")
    best = min(candidates, key=lambda item: abs(item[0] - stamp_ns))
    gap = abs(best[0] - stamp_ns) / 1e9
    if gap > tolerance:
        raise DriverError(f"{missing} within match_tolerance {tolerance} s (nearest is {gap:.6f} s away)")
    return best


def write_capture_bag(
    path: str | Path,
    captures: Iterable[Capture],
    *,
    depth_topic: str = "/depth/image",
    camera_info_topic: str = "/depth/camera_info",
    color_topic: str = "/color/image",
    frame_id: str = "camera_optical_frame",
    depth_encoding: str = "32FC1",
    storage: str = "mcap",
) -> Path:
    """Record ``captures`` as a new rosbag2 folder at ``path`` that ``BagCamera`` (or ``ros2 bag play``) replays.

    Each capture becomes a depth Image (``depth_encoding`` 32FC1 [m] or 16UC1 [mm]), a CameraInfo and, when it
    has colour, an rgb8 Image, all stamped with ``capture.stamp``, which is also the log time (so captures must
    come in stamp order). ``storage`` is ``mcap`` or ``sqlite3``. Returns ``path``; it must not exist yet.
    """
    if storage not in STORAGES:
        raise ValueError(f"storage '{storage}' is not one of {', '.join(STORAGES)}")
    path = Path(path)
    typestore = camera_msgs.TYPESTORE
    with Writer(path, version=9, storage_plugin=STORAGES[storage]) as writer:
        depth_conn = writer.add_connection(depth_topic, camera_msgs.IMAGE, typestore=typestore)
        info_conn = writer.add_connection(camera_info_topic, camera_msgs.CAMERA_INFO, typestore=typestore)
        color_conn = None  # added with the first colour image, so a depth-only bag has no empty colour topic
        for capture in captures:
            header = camera_msgs.make_header(capture.stamp, frame_id)
            log_time = camera_msgs.stamp_ns(header)
            messages = [(depth_conn, camera_msgs.depth_to_image(capture.depth, header, depth_encoding)),
                        (info_conn, camera_msgs.intrinsics_to_camera_info(capture.intrinsics, header))]
            if color_topic and capture.color is not None:
                if color_conn is None:
                    color_conn = writer.add_connection(color_topic, camera_msgs.IMAGE, typestore=typestore)
                messages.append((color_conn, camera_msgs.color_to_image(capture.color, header)))
            for connection, msg in messages:
                writer.write(connection, log_time, typestore.serialize_cdr(msg, connection.msgtype))
    return path
