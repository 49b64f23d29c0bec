"""Driver creation by name, driver settings files and the hand-eye calibration file."""

import pytest

from grasp_cell.core.transform import Transform, rotation_about_axis
from grasp_cell.drivers import create_arm_driver, create_camera_driver
from grasp_cell.drivers.base import DriverError
from grasp_cell.drivers.hand_eye import load_T_base_cam, save_T_base_cam
from grasp_cell.drivers.settings import load_settings, require


def test_unknown_and_simulated_drivers_are_refused_with_the_reason():
    with pytest.raises(DriverError, match="unknown camera driver 'kinect'.*realsense"):
        create_camera_driver("kinect")
    with pytest.raises(DriverError, match="sim_cell_node"):
        create_arm_driver("sim")


def test_settings_file_with_launch_options_laid_over(tmp_path):
    path = tmp_path / "ur5.yaml"
    path.write_text("host: 192.168.1.10\nfrequency: 125\n")
    assert load_settings(path, {"host": "10.0.0.5", "gripper": ""}) == {"host": "10.0.0.5", "frequency": 125}
    assert load_settings(None, {"path": "x.mcap"}) == {"path": "x.mcap"}
    with pytest.raises(DriverError, match="no such file"):
        load_settings(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(DriverError, match="mapping"):
        load_settings(tmp_path / "list.yaml")
    with pytest.raises(DriverError, match="ur5: setting 'host' is missing"):
        require({}, "host", "ur5")


def test_hand_eye_file_round_trip_and_errors(tmp_path):
    T_base_cam = Transform(rotation_about_axis((0.0, 1.0, 0.0), 2.9), (0.6, -0.1, 0.9))
    path = tmp_path / "hand_eye.yaml"
    save_T_base_cam(path, T_base_cam, method="park")
    loaded = load_T_base_cam(path)
    assert loaded.translation == pytest.approx(T_base_cam.translation)
    assert loaded.rotation == pytest.approx(T_base_cam.rotation)
    with pytest.raises(DriverError, match="grasp_cell.calibrate"):
        load_T_base_cam(tmp_path / "none.yaml")
    path.write_text("T_base_cam: {translation: [0, 0, 1]}\n")
    with pytest.raises(DriverError, match="rotation_xyzw"):
        load_T_base_cam(path)
