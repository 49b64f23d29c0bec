"""Zivid driver up to the SDK boundary: conversions on synthetic arrays, settings, and the missing-SDK error.

The zivid SDK cannot be installed here, so nothing below talks to zivid-python (see grasp_cell/drivers/zivid.py).
"""

import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml

from grasp_cell.core.camera import CameraIntrinsics
from grasp_cell.drivers import DriverError, create_camera_driver
from grasp_cell.drivers.settings import load_settings
from grasp_cell.drivers.zivid import (
    CaptureSettings,
    acquisition_arguments,
    depth_from_xyz,
    filter_assignments,
    intrinsics_from_camera_matrix,
    rgb_from_rgba,
)

CONFIG = Path(__file__).resolve().parents[1] / "config" / "hardware" / "zivid.yaml"


def default_settings() -> dict:
    return yaml.safe_load(CONFIG.read_text(encoding="utf-8"))


def test_organised_point_cloud_in_mm_becomes_depth_in_metres_with_nan_kept():
    camera = intrinsics_from_camera_matrix(fx=1780.5, fy=1779.8, cx=970.2, cy=598.7, width=1944, height=1200)
    assert camera == CameraIntrinsics(1944, 1200, 1780.5, 1779.8, 970.2, 598.7)
    small = camera.scaled(48, 30)
    depth_m = np.random.default_rng(0).uniform(0.6, 1.2, (30, 48)).astype(np.float32)
    xyz_mm = small.point_map(depth_m) * 1000.0  # as copy_data("xyz") gives it: optical frame, mm
    xyz_mm[3, 4] = np.nan  # no point there
    depth = depth_from_xyz(xyz_mm)
    assert depth.dtype == np.float32 and depth.shape == (30, 48)
    assert np.isnan(depth[3, 4]) and np.isfinite(depth).sum() == 30 * 48 - 1
    np.testing.assert_allclose(depth[np.isfinite(depth)], depth_m[np.isfinite(depth)], rtol=1e-6)
    # the served intrinsics deproject the depth back onto Zivid's own points
    np.testing.assert_allclose(small.point_map(depth) * 1000.0, xyz_mm, rtol=1e-5)
    with pytest.raises(ValueError, match=r"organised \(H, W, 3\)"):
        depth_from_xyz(xyz_mm.reshape(-1, 3))


def test_rgba_becomes_rgb():
    rgba = np.random.default_rng(1).integers(0, 255, (30, 48, 4), dtype=np.uint8)
    rgb = rgb_from_rgba(rgba)
    assert rgb.shape == (30, 48, 3) and rgb.flags.c_contiguous
    np.testing.assert_array_equal(rgb, rgba[..., :3])
    with pytest.raises(ValueError, match="uint8 RGBA"):
        rgb_from_rgba(rgba.astype(np.float32))


def test_default_yaml_becomes_sdk_arguments():
    spec = CaptureSettings.from_settings(default_settings())
    assert spec.acquisitions == (
        {"exposure_time": timedelta(microseconds=10000), "aperture": 5.66, "brightness": 1.8, "gain": 1.0},
    )
    assert (("outlier", "removal", "threshold"), 5.0) in spec.filters
    assert (("reflection", "removal", "enabled"), True) in spec.filters
    assert spec.color_acquisitions[0]["aperture"] == 2.83 and spec.settings_file is None
    assert CaptureSettings.from_settings({**default_settings(), "color": False}).color_acquisitions is None


def test_settings_file_replaces_acquisitions(tmp_path):
    studio = tmp_path / "studio.yml"
    studio.write_text("__version__: 1\n", encoding="utf-8")
    spec = CaptureSettings.from_settings({"settings_file": str(studio), "acquisitions": []})
    assert spec.settings_file == studio
    with pytest.raises(DriverError, match="settings_file .*: no such file"):
        CaptureSettings.from_settings({"settings_file": str(tmp_path / "missing.yml")})


def test_bad_settings_are_named():
    with pytest.raises(DriverError, match="acquisitions must be a non-empty list"):
        CaptureSettings.from_settings({"acquisitions": []})
    with pytest.raises(DriverError, match=r"acquisitions\[0\] has unknown keys exposure; allowed: exposure_time_us"):
        acquisition_arguments({"exposure": 100}, "acquisitions[0]")
    with pytest.raises(DriverError, match="exposure_time_us must be a number > 0"):
        acquisition_arguments({"exposure_time_us": 0}, "acquisitions[0]")
    assert acquisition_arguments({"brightness": 0}, "a") == {"brightness": 0.0}  # projector off is allowed
    with pytest.raises(DriverError, match="filters.noise.removal.threshold must be a number"):
        filter_assignments({"noise": {"removal": {"threshold": [7.0]}}})
    with pytest.raises(DriverError, match="color must be true or false"):
        CaptureSettings.from_settings({**default_settings(), "color": "yes"})


def test_missing_sdk_is_a_driver_error_saying_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "zivid", None)  # import zivid fails, as on a machine without the SDK
    with pytest.raises(DriverError, match=r"Zivid Python package cannot be imported .*Zivid SDK.*pip install zivid"):
        create_camera_driver("zivid", load_settings(CONFIG))
    with pytest.raises(DriverError, match="roi must be"):
        create_camera_driver("zivid", load_settings(CONFIG, {"roi": [1, 2, 3]}))
