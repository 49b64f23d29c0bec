"""Camera and arm drivers behind two small interfaces, created by name from node parameters."""

from __future__ import annotations

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


def _sim_only(kind: str):
    def factory(settings: str):
        raise DriverError(
            f"the simulated {kind} shares one physics world with the rest of the cell: "
            "run it inside sim_cell_node (launch with sim:=true)"
        )

    return factory


# hardware drivers register here as they arrive; each factory takes the driver_config path
CAMERA_DRIVERS = {"sim": _sim_only("camera")}
ARM_DRIVERS = {"sim": _sim_only("arm")}


def create_camera_driver(name: str, settings: str = "") -> CameraDriver:
    if name not in CAMERA_DRIVERS:
        raise DriverError(f"unknown camera driver '{name}'; available: {', '.join(sorted(CAMERA_DRIVERS))}")
    return CAMERA_DRIVERS[name](settings)


def create_arm_driver(name: str, settings: str = "") -> ArmDriver:
    if name not in ARM_DRIVERS:
        raise DriverError(f"unknown arm driver '{name}'; available: {', '.join(sorted(ARM_DRIVERS))}")
    return ARM_DRIVERS[name](settings)
