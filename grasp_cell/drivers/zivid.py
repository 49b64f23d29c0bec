"""Zivid 3D camera (Zivid 2 / 2+) through the zivid-python SDK (SDK 2.10 or newer).

The SDK is imported only when a ``ZividCamera`` is created, so the rest of the cell never needs it. A capture
triggers one 3D acquisition set (merged to one HDR point cloud when there are several acquisitions), with a 2D
colour acquisition on SDK 2.14+ (``capture_2d_3d``; older SDKs colour the cloud with ``capture``). The organised
point cloud is in the camera's optical frame (x right, y down, z forward) in millimetres with NaN where there
is no point; its z becomes the depth image in metres, so pixel (u, v) of depth and colour are the same point.

What was exercised, and what was not (the SDK needs the Zivid SDK install and a camera, neither of which is
available here):

* exercised (test/test_zivid_driver.py): the plain conversions below on synthetic arrays (organised xyz [mm]
  -> float32 depth [m] with NaN kept, RGBA -> RGB, the Zivid camera matrix -> ``CameraIntrinsics``, this
  driver's YAML -> the keyword arguments of ``zivid.Settings.Acquisition`` / ``Settings2D.Acquisition`` and
  the filter assignments), their validation errors, and the ``DriverError`` raised when zivid is not installed;
* not exercised: everything behind ``_import_zivid`` (connecting, building ``zivid.Settings``, loading a
  settings file, ``capture_2d_3d`` / ``capture_3d`` / ``capture``, ``copy_data``, the intrinsics query). That
  code is written against the zivid-python sources (``Application.connect_camera(serial_number=...)``,
  ``Camera.capture_2d_3d``, ``PointCloud.copy_data("xyz" | "rgba")``,
  ``zivid.experimental.calibration.intrinsics(camera, settings)``) and has never run against a real SDK.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np

from grasp_cell.core.camera import CameraIntrinsics
from grasp_cell.drivers.base import CameraDriver, Capture, DriverError
from grasp_cell.drivers.settings import flag, roi_setting

INSTALL_HINT = ("install the Zivid SDK (https://www.zivid.com/downloads) and then the matching Python package "
                "(pip install zivid)")
# this driver's acquisition keys -> zivid.Settings.Acquisition / Settings2D.Acquisition keyword
ACQUISITION_KEYS = {"exposure_time_us": "exposure_time", "aperture": "aperture", "brightness": "brightness",
                    "gain": "gain"}


# -- plain conversions (tested without the SDK) --------------------------------------------------------------


def depth_from_xyz(xyz_mm: np.ndarray) -> np.ndarray:
    """Organised point cloud (H, W, 3) [mm], NaN where missing -> (H, W) float32 depth [m] (its z), NaN kept."""
    xyz_mm = np.asarray(xyz_mm)
    if xyz_mm.ndim != 3 or xyz_mm.shape[2] != 3:
        raise ValueError(f"expected an organised (H, W, 3) point cloud, got shape {xyz_mm.shape}")
    depth = (xyz_mm[..., 2] * 1e-3).astype(np.float32)
    depth[~np.isfinite(depth) | (depth <= 0)] = np.nan
    return depth


def rgb_from_rgba(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 RGBA, as ``copy_data("rgba")`` returns it -> (H, W, 3) uint8 RGB."""
    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
        raise ValueError(f"expected (H, W, 4) uint8 RGBA, got {rgba.dtype} of shape {rgba.shape}")
    return np.ascontiguousarray(rgba[..., :3])


def intrinsics_from_camera_matrix(fx: float, fy: float, cx: float, cy: float, width: int, height: int):
    """Zivid's camera matrix (OpenCV convention, as ROS) for a point cloud of ``width`` x ``height``."""
    return CameraIntrinsics(int(width), int(height), float(fx), float(fy), float(cx), float(cy))


def acquisition_arguments(entry: dict, where: str) -> dict:
    """One acquisition of the YAML -> keyword arguments of ``zivid.Settings.Acquisition`` (or Settings2D's).

    Keys left out keep the SDK's defaults; ``exposure_time_us`` becomes the ``timedelta`` the SDK takes.
    """
    if not isinstance(entry, dict):
        raise DriverError(f"zivid: {where} must be a mapping of {', '.join(ACQUISITION_KEYS)}, got {entry!r}")
    unknown = set(entry) - set(ACQUISITION_KEYS)
    if unknown:
        raise DriverError(f"zivid: {where} has unknown keys {', '.join(sorted(unknown))}; "
                          f"allowed: {', '.join(ACQUISITION_KEYS)}")
    arguments = {}
    for key, value in entry.items():
        bound = ">= 0" if key == "brightness" else "> 0"  # brightness 0: projector off
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not (value >= 0 if key == "brightness" else value > 0):
            raise DriverError(f"zivid: {where}: {key} must be a number {bound}, got {value!r}")
        arguments[ACQUISITION_KEYS[key]] = timedelta(microseconds=value) if key == "exposure_time_us" else float(value)
    return arguments


def filter_assignments(filters: dict, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    """Nested filter settings -> (attribute path under ``settings.processing.filters``, value) pairs.

    ``{"outlier": {"removal": {"enabled": True}}}`` -> ``[(("outlier", "removal", "enabled"), True)]``.
    """
    if not isinstance(filters, dict):
        raise DriverError(f"zivid: filters{''.join('.' + p for p in prefix)} must be a mapping, got {filters!r}")
    assignments = []
    for name, value in filters.items():
        path = (*prefix, str(name))
        if isinstance(value, dict):
            assignments += filter_assignments(value, path)
        elif isinstance(value, (bool, int, float, str)):
            assignments.append((path, value))
        else:
            raise DriverError(f"zivid: filters.{'.'.join(path)} must be a number, true/false or a name, got {value!r}")
    return assignments


@dataclass(frozen=True)
class CaptureSettings:
    """What the YAML asks the SDK for, in plain values; ``build_settings`` turns it into ``zivid.Settings``."""

    acquisitions: tuple[dict, ...]  # keyword arguments of zivid.Settings.Acquisition, one per HDR exposure
    filters: tuple[tuple[tuple[str, ...], object], ...]  # (path under processing.filters, value)
    color_acquisitions: tuple[dict, ...] | None  # keyword arguments of zivid.Settings2D.Acquisition; None: no colour
    settings_file: Path | None  # a Zivid Studio settings .yml used instead of acquisitions and filters

    @classmethod
    def from_settings(cls, settings: dict) -> "CaptureSettings":
        settings_file = settings.get("settings_file") or None
        if settings_file is not None:
            settings_file = Path(settings_file).expanduser()
            if not settings_file.exists():
                raise DriverError(f"zivid: settings_file {settings_file}: no such file (export one from Zivid Studio, "
                                  "or leave it empty to use acquisitions and filters)")
        acquisitions = settings.get("acquisitions") or []
        if settings_file is None and (not isinstance(acquisitions, list) or not acquisitions):
            raise DriverError("zivid: acquisitions must be a non-empty list (one entry per HDR exposure), "
                              "or set settings_file")
        color = flag(settings.get("color", True), "color", "zivid")
        color_entries = settings.get("color_acquisitions") or [{}]
        return cls(
            acquisitions=tuple(acquisition_arguments(a, f"acquisitions[{i}]") for i, a in enumerate(acquisitions)),
            filters=tuple(filter_assignments(settings.get("filters") or {})),
            color_acquisitions=tuple(acquisition_arguments(a, f"color_acquisitions[{i}]")
                                     for i, a in enumerate(color_entries)) if color else None,
            settings_file=settings_file,
        )


# -- the SDK boundary (not exercised here, see the module docstring) -----------------------------------------


def _import_zivid():
    try:
        import zivid
        import zivid.experimental.calibration
    except ImportError as error:
        raise DriverError(f"zivid: the Zivid Python package cannot be imported ({error}); {INSTALL_HINT}") from None
    return zivid


def build_settings(zivid, spec: CaptureSettings, with_color: bool):
    """``zivid.Settings`` for ``spec``; ``with_color`` adds the 2D colour settings (SDK 2.14+)."""
    if spec.settings_file is not None:
        settings = zivid.Settings.load(str(spec.settings_file))
    else:
        settings = zivid.Settings(acquisitions=[zivid.Settings.Acquisition(**a) for a in spec.acquisitions])
        for path, value in spec.filters:
            node = settings.processing.filters
            for name in path[:-1]:
                node = getattr(node, name, None)
            # only SDK properties: a plain setattr of a misspelt name would be silently ignored
            if node is None or not isinstance(getattr(type(node), path[-1], None), property):
                raise DriverError(f"zivid: filters.{'.'.join(path)} is not a setting of "
                                  "zivid.Settings.Processing.Filters in this SDK")
            setattr(node, path[-1], value)
    if with_color and spec.color_acquisitions is not None and settings.color is None:
        settings.color = zivid.Settings2D(acquisitions=[zivid.Settings2D.Acquisition(**a)
                                                        for a in spec.color_acquisitions])
    return settings


class ZividCamera(CameraDriver):
    """A ``CameraDriver`` on one Zivid camera; settings as in config/hardware/zivid.yaml."""

    def __init__(self, serial_number: str, spec: CaptureSettings, frame_id: str = "",
                 roi: tuple[int, int, int, int] | None = None):
        zivid = _import_zivid()
        self.frame_id = frame_id or CameraDriver.frame_id
        self.roi = roi
        self.with_color = spec.color_acquisitions is not None
        self.name = f"camera {serial_number}" if serial_number else "the first camera found"
        self._app = self._camera = None
        try:
            self._app = zivid.Application()
            self._camera = self._app.connect_camera(serial_number=serial_number or None)
            # SDK 2.14+ captures 2D colour with its own settings; before, colour came from the 3D acquisitions
            self._two_part = hasattr(self._camera, "capture_2d_3d")
            self._settings = build_settings(zivid, spec, with_color=self.with_color and self._two_part)
            camera_matrix = zivid.experimental.calibration.intrinsics(self._camera, self._settings).camera_matrix
        except (RuntimeError, TypeError, ValueError) as error:  # device faults; settings of the wrong type
            self.close()
            raise DriverError(f"zivid: cannot start {self.name}: {error}") from None
        except DriverError:
            self.close()
            raise
        self._camera_matrix = (camera_matrix.fx, camera_matrix.fy, camera_matrix.cx, camera_matrix.cy)

    @classmethod
    def from_settings(cls, settings: dict) -> "ZividCamera":
        return cls(
            serial_number=str(settings.get("serial_number") or ""),
            spec=CaptureSettings.from_settings(settings),
            frame_id=settings.get("frame_id") or "",
            roi=roi_setting(settings, "zivid"),
        )

    def capture(self) -> Capture:
        stamp = time.time()  # the trigger; the SDK returns once the acquisition is done
        try:
            if not self._two_part:
                frame = self._camera.capture(self._settings)
            elif self.with_color:
                frame = self._camera.capture_2d_3d(self._settings)
            else:
                frame = self._camera.capture_3d(self._settings)
            with frame:
                point_cloud = frame.point_cloud()  # blocks until transfer and processing are done
                xyz = point_cloud.copy_data("xyz")
                rgba = point_cloud.copy_data("rgba") if self.with_color else None
        except RuntimeError as error:
            raise DriverError(f"zivid {self.name}: capture failed: {error}") from None
        height, width = xyz.shape[:2]
        return Capture(
            depth=depth_from_xyz(xyz),
            intrinsics=intrinsics_from_camera_matrix(*self._camera_matrix, width, height),
            color=rgb_from_rgba(rgba) if rgba is not None else None,
            stamp=stamp,
            roi=self.roi,
        )

    def close(self) -> None:
        for handle in (self._camera, self._app):
            if handle is not None:
                handle.release()
        self._app = self._camera = None
