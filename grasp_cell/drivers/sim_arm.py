"""The simulated arm: a UR5, KUKA iiwa or Kinova Gen2 twin with our suction cup or parallel jaw, in a
``SimWorld`` shared with the ``SimCamera``.

Base frame: the root link of the arm's URDF, standing on the table beside the bin (UR5: ``base_link``,
which is the UR controller's ``base`` turned by 180 deg about z; iiwa: ``lbr_iiwa_link_0``;
Kinova: ``base``). ``T_base_cam`` is exact, read from the world.
"""

from __future__ import annotations

from typing import Callable

import pybullet

from grasp_cell.core.grasp import GripperKind
from grasp_cell.core.outcome import Outcome
from grasp_cell.core.pick import PickResult
from grasp_cell.core.transform import Transform
from grasp_cell.drivers.base import ArmDriver, PickRequest
from grasp_cell.sim.pick import execute_pick
from grasp_cell.sim.world import SimWorld


class SimArm(ArmDriver):
    """An ``ArmDriver`` on a ``SimWorld``; ``robot``/``gripper`` default to the world's config."""

    def __init__(self, world: SimWorld, robot: str | None = None, gripper: GripperKind | str | None = None):
        self.world = world
        self.robot = world.load_robot(robot, gripper)
        self.gripper = self.robot.gripper

    @property
    def name(self) -> str:
        return self.robot.spec.name

    @property
    def T_world_base(self) -> Transform:
        return self.robot.T_world_base

    @property
    def T_base_cam(self) -> Transform:
        return self.robot.T_world_base.inverse() * self.world.T_world_cam

    def pick(self, request: PickRequest, on_phase: Callable[[str], None] | None = None) -> PickResult:
        refused = self.other_gripper(request)
        if refused is not None:
            return refused
        T_world_grasp = self.robot.T_world_base * request.T_base_grasp
        T_world_place = None if request.T_base_place is None else self.robot.T_world_base * request.T_base_place
        try:
            with self.world.lock:
                return execute_pick(self.world, T_world_grasp, request.width, T_world_place, on_phase)
        except pybullet.error as error:  # the physics server went away
            return PickResult(Outcome.DRIVER_ERROR, message=f"sim arm: {error}")

    def close(self) -> None:
        if self.world.robot is self.robot:
            self.world.unload_robot()
