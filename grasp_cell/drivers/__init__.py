"""Camera and arm drivers behind two small interfaces, created by name from node parameters.

Hardware drivers are imported only when chosen, so the simulated cell never needs an SDK. Each hardware
driver class has ``from_settings(settings: dict)``; the settings are its YAML file (``driver_config``,
default ``config/hardware/<name>.yaml``) with the node's ``driver_options`` laid over it.
"""

from __future__ import annotations

import importlib

from grasp_cell.drivers.base import ArmDriver, CameraDriver, Capture, DriverError, PickRequest

__all__ = [
    "ArmDriver",
    "CameraDriver",
    "Capture",
    "DriverError",
    "PickRequest",
    "create_arm_driver",
    "create_camera_driver",
]

SIM = "sim"
# name -> "module:class"; the simulated ones are built by sim_cell_node around its one physics world
CAMERA_DRIVERS = {
    "realsense": "grasp_cell.drivers.realsense:RealSenseCamera",
    "zivid": "grasp_cell.drivers.zivid:ZividCamera",
    "bag": "grasp_cell.drivers.bag_camera:BagCamera",
}
ARM_DRIVERS = {
    "ur5": "grasp_cell.drivers.ur_rtde_arm:URArm",
    "iiwa": "grasp_cell.drivers.trajectory_arm:TrajectoryArm",
    "kinova": "grasp_cell.drivers.trajectory_arm:TrajectoryArm",
}


def _create(kind: str, table: dict[str, str], name: str, settings: dict):
    if name == SIM:
        raise DriverError(
            f"the simulated {kind} shares one physics world with the rest of the cell: "
            "run it inside sim_cell_node (launch with sim:=true)"
        )
    if name not in table:
        raise DriverError(f"unknown {kind} driver '{name}'; available: {', '.join(sorted(table))}")
    module, _, cls = table[name].partition(":")
    return getattr(importlib.import_module(module), cls).from_settings({"driver": name, **settings})


def create_camera_driver(name: str, settings: dict | None = None) -> CameraDriver:
    return _create("camera", CAMERA_DRIVERS, name, settings or {})


def create_arm_driver(name: str, settings: dict | None = None) -> ArmDriver:
    return _create("arm", ARM_DRIVERS, name, settings or {})
