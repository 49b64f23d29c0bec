"""The two small interfaces hardware and simulation plug into: a camera and an arm."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Callable

import numpy as np

from grasp_cell.core.camera import CameraIntrinsics
from grasp_cell.core.grasp import GripperKind
from grasp_cell.core.outcome import Outcome
from grasp_cell.core.pick import PickResult
from grasp_cell.core.transform import Transform


class DriverError(RuntimeError):
    """A camera or arm fault (disconnected, timed out, protective stop); the message says which."""


@dataclass(frozen=True)
class Capture:
    """One triggered capture: depth in metres (NaN = missing), RGB, and the camera that took it."""

    depth: np.ndarray  # (H, W) float32 [m]
    intrinsics: CameraIntrinsics
    color: np.ndarray | None = None  # (H, W, 3) uint8 RGB, aligned to depth
    stamp: float = 0.0  # capture time [s since epoch]
    parts_in_bin: int = -1  # ground truth where the driver knows it (simulation); -1 otherwise
    roi: tuple[int, int, int, int] | None = None  # (u_min, v_min, u_max, v_max) of the bin interior


class CameraDriver(abc.ABC):
    frame_id: str = "camera_optical_frame"

    @abc.abstractmethod
    def capture(self) -> Capture:
        """Trigger one capture; raise DriverError on a camera fault."""

    def close(self) -> None:
        """Release the device."""


@dataclass(frozen=True)
class PickRequest:
    """A grasp in the arm's base frame and where to put the part."""

    T_base_grasp: Transform  # grasp frame: z = approach, x = jaw closing direction
    gripper: GripperKind
    width: float = 0.0  # jaw opening [m]
    T_base_place: Transform | None = None  # None: the arm's configured place pose


class ArmDriver(abc.ABC):
    gripper: GripperKind = GripperKind.SUCTION

    @property
    @abc.abstractmethod
    def T_base_cam(self) -> Transform:
        """Hand-eye calibration: camera optical frame in the arm's base frame."""

    @abc.abstractmethod
    def pick(self, request: PickRequest, on_phase: Callable[[str], None] | None = None) -> PickResult:
        """Approach, grip, lift and place; report the outcome classified from what happened.

        ``on_phase`` is called with each phase name of ``grasp_cell.core.pick.PHASES`` as it starts.
        Faults are reported as ``Outcome.DRIVER_ERROR`` results, not raised.
        """

    def other_gripper(self, request: PickRequest, note: str = "") -> PickResult | None:
        """A DRIVER_ERROR result when ``request`` is for another gripper than this arm's, else None."""
        gripper = GripperKind.parse(request.gripper)
        if gripper is self.gripper:
            return None
        message = f"asked for a {gripper.value} grasp, the arm has a {self.gripper.value}"
        return PickResult(Outcome.DRIVER_ERROR, message=f"{message} ({note})" if note else message)

    def close(self) -> None:
        """Release the arm."""
