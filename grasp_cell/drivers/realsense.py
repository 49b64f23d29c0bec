"""Intel RealSense depth camera (D400 series) through pyrealsense2, live or from a recorded .bag/.db3 file.

Each capture takes one depth + colour frameset, runs the enabled depth filters (before alignment, as Intel
recommends) and aligns depth to the colour camera. Settings: config/hardware/realsense.yaml.

Known behaviour of ``rs.align``: it maps every depth pixel's corners into the colour image and rounds, so even
between cameras with the same intrinsics about 2 % of the aligned pixels come out empty (NaN) in thin rows and
columns, and depth edges may move by a pixel. The grasp models tolerate missing pixels.

Intrinsics are the pinhole part of the stream's; distortion coefficients are dropped (D400 depth streams have
none, the colour camera's are small).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyrealsense2 as rs

from grasp_cell.core.camera import CameraIntrinsics
from grasp_cell.drivers.base import CameraDriver, Capture, DriverError
from grasp_cell.drivers.settings import flag, roi_setting

# setting name -> librealsense filter; applied in this order (none of them changes the resolution)
FILTERS = {"spatial": rs.spatial_filter, "temporal": rs.temporal_filter, "hole_filling": rs.hole_filling_filter}
# colour formats a recording may hold -> channel order that gives RGB
_TO_RGB = {rs.format.rgb8: [0, 1, 2], rs.format.bgr8: [2, 1, 0], rs.format.rgba8: [0, 1, 2], rs.format.bgra8: [2, 1, 0]}
_EPOCH_DOMAINS = (rs.timestamp_domain.system_time, rs.timestamp_domain.global_time)  # host clock [ms]


@dataclass(frozen=True)
class RealSenseSettings:
    """The driver's settings, checked; see config/hardware/realsense.yaml for what each one does."""

    serial: str = ""  # "" = the first camera found
    width: int = 640
    height: int = 480
    fps: int = 30
    align_depth_to_color: bool = True
    filters: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()  # enabled (name, options), in order
    frame_id: str = ""  # "" = the optical frame of the camera depth is expressed in
    timeout_ms: int = 1000
    reconnect_attempts: int = 3
    playback: str = ""  # recorded .bag/.db3 file; "" = live camera
    repeat_playback: bool = False
    roi: tuple[int, int, int, int] | None = None  # (u_min, v_min, u_max, v_max) of the bin floor; None = all

    @classmethod
    def from_dict(cls, settings: dict) -> "RealSenseSettings":
        try:
            return cls(
                serial=str(settings.get("serial") or ""),
                width=int(settings.get("width", cls.width)),
                height=int(settings.get("height", cls.height)),
                fps=int(settings.get("fps", cls.fps)),
                align_depth_to_color=flag(settings.get("align_depth_to_color", cls.align_depth_to_color),
                                          "align_depth_to_color", "realsense"),
                filters=cls._parse_filters(settings.get("filters") or {}),
                frame_id=str(settings.get("frame_id") or ""),
                timeout_ms=int(settings.get("timeout_ms", cls.timeout_ms)),
                reconnect_attempts=max(1, int(settings.get("reconnect_attempts", cls.reconnect_attempts))),
                playback=str(settings.get("playback") or ""),
                repeat_playback=flag(settings.get("repeat_playback", cls.repeat_playback), "repeat_playback",
                                     "realsense"),
                roi=roi_setting(settings, "realsense", int(settings.get("width", cls.width)),
                                int(settings.get("height", cls.height))),
            )
        except (TypeError, ValueError) as error:
            raise DriverError(f"realsense: bad setting ({error}); see config/hardware/realsense.yaml") from None

    @staticmethod
    def _parse_filters(filters: dict) -> tuple:
        unknown = set(filters) - set(FILTERS)
        if unknown:
            raise DriverError(f"realsense: unknown filter(s) {', '.join(sorted(unknown))}; known: {', '.join(FILTERS)}")
        enabled = []
        for name in FILTERS:  # fixed order, whatever order the file lists them in
            options = dict(filters.get(name) or {})
            if flag(options.pop("enable", False), f"filters.{name}.enable", "realsense"):
                enabled.append((name, tuple((option, float(value)) for option, value in options.items())))
        return tuple(enabled)


class RealSenseCamera(CameraDriver):
    """A ``CameraDriver`` on one RealSense pipeline; restarts it after a failed capture."""

    def __init__(self, settings: RealSenseSettings):
        self.settings = settings
        self.frame_id = settings.frame_id or (
            "camera_color_optical_frame" if settings.align_depth_to_color else "camera_depth_optical_frame"
        )
        self._filters = [_make_filter(name, options) for name, options in settings.filters]
        self._align = rs.align(rs.stream.color) if settings.align_depth_to_color else None
        self._pipeline: rs.pipeline | None = None
        self._playback: rs.playback | None = None  # the file's player, when playing one back
        self._depth_scale = 0.0  # [m] per z16 unit, read from the device at start
        self._serial = settings.serial  # once started: the camera's, so a restart finds the same one
        self._failures = 0  # failed captures in a row
        self._start()  # start-up faults (no camera, wrong serial, bad file) surface at construction

    @classmethod
    def from_settings(cls, settings: dict) -> "RealSenseCamera":
        return cls(RealSenseSettings.from_dict(settings))

    @property
    def dead(self) -> bool:
        return self._failures >= self.settings.reconnect_attempts

    def capture(self) -> Capture:
        if self.dead:
            raise DriverError(self._dead_message())
        try:
            if self._pipeline is None:
                self._start()
            capture = self._to_capture(self._next_frames())
        except RuntimeError as error:  # librealsense errors, and DriverError from a failed restart
            self._stop()
            self._failures += 1
            if self.dead:
                raise DriverError(self._dead_message(error)) from None
            raise DriverError(
                f"{self._name()}: capture failed ({error}); the next capture restarts the camera "
                f"({self._failures} of {self.settings.reconnect_attempts} failures in a row allowed)"
            ) from None
        self._failures = 0
        return capture

    def close(self) -> None:
        self._stop()

    # pipeline

    def _next_frames(self) -> rs.composite_frame:
        if not self.settings.playback:
            self._pipeline.poll_for_frames()  # drop a queued frameset: it may predate the trigger
        ok, frames = self._pipeline.try_wait_for_frames(self.settings.timeout_ms)
        if not ok and self._ended() and self.settings.repeat_playback:
            # start over ourselves: librealsense's own repeat pairs the last colour frame with the first depth one
            self._stop()
            self._start()
            ok, frames = self._pipeline.try_wait_for_frames(self.settings.timeout_ms)
        if not ok:
            reason = "the recording has ended" if self._ended() else f"no frameset in {self.settings.timeout_ms} ms"
            raise DriverError(reason)
        return frames

    def _ended(self) -> bool:
        return self._playback is not None and self._playback.current_status() == rs.playback_status.stopped

    def _start(self) -> None:
        settings = self.settings
        config = rs.config()
        if settings.playback:
            path = Path(settings.playback).expanduser()
            if not path.is_file():
                raise DriverError(f"{self._name()}: no such file (set 'playback' to a .bag or .db3 recording)")
            config.enable_device_from_file(str(path), False)
            # a recording holds the streams it holds: take them at their recorded size and format
            config.enable_stream(rs.stream.depth)
            if self._align:
                config.enable_stream(rs.stream.color)
        else:
            self._serial = _find_serial(self._serial)
            config.enable_device(self._serial)
            size = (settings.width, settings.height)
            config.enable_stream(rs.stream.depth, *size, rs.format.z16, settings.fps)
            if self._align:
                config.enable_stream(rs.stream.color, *size, rs.format.rgb8, settings.fps)
        pipeline = rs.pipeline()
        try:
            if settings.playback:
                # pipeline.start() takes the device resolved here: make it non-real-time before it starts, or it
                # plays on ahead of the first capture. Frames then come at the pace captures ask for them.
                config.resolve(rs.pipeline_wrapper(pipeline)).get_device().as_playback().set_real_time(False)
            profile = pipeline.start(config)
        except RuntimeError as error:
            wanted = "depth + colour" if self._align else "depth"
            if settings.playback:
                raise DriverError(f"{self._name()}: cannot play back {wanted} from it ({error})") from None
            raise DriverError(
                f"{self._name()}: cannot stream {wanted} at {settings.width}x{settings.height} @ {settings.fps} fps "
                f"({error}); check width/height/fps against `rs-enumerate-devices`"
            ) from None
        device = profile.get_device()
        self._playback = device.as_playback() if device.is_playback() else None
        self._depth_scale = device.first_depth_sensor().get_depth_scale()
        self._pipeline = pipeline

    def _stop(self) -> None:
        if self._pipeline is not None:
            try:
                self._pipeline.stop()
            except RuntimeError:
                pass  # the device is gone already: nothing left to release
            self._pipeline = self._playback = None

    def _name(self) -> str:
        """What the messages call the camera."""
        if self.settings.playback:
            return f"RealSense recording {self.settings.playback}"
        return f"RealSense {self._serial or '(first found)'}"

    def _dead_message(self, error: Exception | None = None) -> str:
        last = f" (last: {error})" if error else ""
        check = "the file" if self.settings.playback else "its USB 3 cable and power"
        return (
            f"{self._name()}: camera is dead after {self._failures} failed captures in a row{last}; check {check}, "
            "then restart the camera driver"
        )

    # frames

    def _to_capture(self, frames: rs.composite_frame) -> Capture:
        for block in self._filters:
            frames = block.process(frames).as_frameset()
        if self._align:
            frames = self._align.process(frames)
        depth_frame = frames.get_depth_frame()
        if not depth_frame:
            raise DriverError(f"{self._name()}: the frameset has no depth frame")
        depth = np.asanyarray(depth_frame.get_data()).astype(np.float32) * np.float32(self._depth_scale)
        depth[depth <= 0.0] = np.nan  # z16 0 = no depth
        color, stream = None, depth_frame
        if self._align:
            color_frame = frames.get_color_frame()
            stream = color_frame  # aligned depth is seen by the colour camera
            color = _to_rgb(color_frame, self._name())
        intrinsics = stream.get_profile().as_video_stream_profile().get_intrinsics()
        return Capture(
            depth=depth,
            intrinsics=CameraIntrinsics(
                intrinsics.width, intrinsics.height, intrinsics.fx, intrinsics.fy, intrinsics.ppx, intrinsics.ppy
            ),
            color=color,
            stamp=_stamp(depth_frame),
            roi=self.settings.roi,
        )


def _find_serial(serial: str) -> str:
    """``serial``, or the first connected camera's when empty; DriverError listing the cameras otherwise."""
    connected = [device.get_info(rs.camera_info.serial_number) for device in rs.context().query_devices()]
    listing = ", ".join(connected) or "none"
    if not connected:
        wanted = f" with serial {serial}" if serial else ""
        raise DriverError(f"no RealSense camera{wanted} connected (connected: none); check the USB cable")
    if serial and serial not in connected:
        raise DriverError(f"no RealSense camera with serial {serial}; connected: {listing} (set 'serial')")
    return serial or connected[0]


def _make_filter(name: str, options: tuple[tuple[str, float], ...]):
    block = FILTERS[name]()
    supported = block.get_supported_options()
    for option_name, value in options:
        option = getattr(rs.option, option_name, None)
        if option not in supported:
            known = ", ".join(o.name for o in supported if o.name.startswith(("filter", "holes")))
            raise DriverError(f"realsense: the {name} filter has no option '{option_name}'; it has {known}")
        try:
            block.set_option(option, value)
        except RuntimeError as error:
            raise DriverError(f"realsense: {name} filter {option_name}={value:g}: {error}") from None
    return block


def _to_rgb(frame: rs.video_frame, name: str) -> np.ndarray:
    fmt = frame.get_profile().format()
    if fmt not in _TO_RGB:
        raise DriverError(f"{name}: colour format {fmt.name} is not supported; record rgb8 or bgr8")
    return np.ascontiguousarray(np.asanyarray(frame.get_data())[..., _TO_RGB[fmt]], dtype=np.uint8)


def _stamp(frame: rs.frame) -> float:
    """Frame time [s since epoch] where the camera stamps it on the host clock, else now."""
    if frame.get_frame_timestamp_domain() in _EPOCH_DOMAINS:
        return frame.get_timestamp() / 1000.0
    return time.time()
