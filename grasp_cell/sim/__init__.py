"""The simulated PyBullet cell: bin, parts, overhead camera, arm twins and grasp execution (no ROS here).

Typical use (one world shared by camera and arm)::

    world = SimWorld(CellConfig.from_yaml("config/sim_cell.yaml"))
    camera, arm = SimCamera(world), SimArm(world)   # grasp_cell.drivers
    world.reset()                                   # drop and settle a new bin
"""

from grasp_cell.sim.camera import Rendering, render
from grasp_cell.sim.config import CellConfig, ConfigError
from grasp_cell.sim.parts import PartSpec
from grasp_cell.sim.pick import execute_pick
from grasp_cell.sim.world import SimWorld

__all__ = ["CellConfig", "ConfigError", "PartSpec", "Rendering", "SimWorld", "execute_pick", "render"]
