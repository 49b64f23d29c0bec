"""The simulated overhead camera: renders the shared ``SimWorld`` (depth, color, ground-truth part count)."""

from __future__ import annotations

import time

import numpy as np
import pybullet

from grasp_cell.core.camera import CameraIntrinsics
from grasp_cell.core.transform import Transform
from grasp_cell.drivers.base import CameraDriver, Capture, DriverError
from grasp_cell.sim.camera import Rendering, degrade_depth, render
from grasp_cell.sim.config import DepthNoiseConfig
from grasp_cell.sim.world import SimWorld


class SimCamera(CameraDriver):
    """A ``CameraDriver`` on a ``SimWorld``; pose from ``world.T_world_cam``, intrinsics from the config.

    ``intrinsics`` and ``noise`` override the configured ones (e.g. a smaller image for training data).
    Depth noise draws from a child of the world's generator, so runs stay reproducible by seed.
    """

    frame_id = "camera_optical_frame"

    def __init__(
        self,
        world: SimWorld,
        intrinsics: CameraIntrinsics | None = None,
        noise: DepthNoiseConfig | None = None,
    ):
        self.world = world
        self.intrinsics = intrinsics if intrinsics is not None else world.config.camera.intrinsics
        self.noise = noise if noise is not None else world.config.camera.noise
        self.rng = world.rng.spawn(1)[0]
        self.roi = self._bin_roi()

    def _bin_roi(self) -> tuple[int, int, int, int]:
        """Pixel box of the bin floor's inner rectangle: what a cell operator would configure as the ROI.

        The floor (not the rim) bounds it, so the inner faces of the walls stay outside.
        """
        half_x, half_y = (size / 2 for size in self.world.config.bin.inner_size)
        z = self.world.bin_floor_z
        corners_world = np.array([[sx * half_x, sy * half_y, z] for sx in (-1, 1) for sy in (-1, 1)])
        pixels = self.intrinsics.project(self.world.T_world_cam.inverse().apply(corners_world))
        u_min, v_min = np.clip(np.ceil(pixels.min(axis=0)), 0, None).astype(int)
        u_max = min(int(np.floor(pixels[:, 0].max())), self.intrinsics.width)
        v_max = min(int(np.floor(pixels[:, 1].max())), self.intrinsics.height)
        return int(u_min), int(v_min), u_max, v_max

    @property
    def T_world_cam(self) -> Transform:
        return self.world.T_world_cam

    def render(self) -> Rendering:
        """Noise-free depth, color and body-id segmentation (ground truth for data generation)."""
        camera = self.world.config.camera
        return render(self.world.client, self.intrinsics, self.world.T_world_cam, camera.near, camera.far)

    def capture(self) -> Capture:
        with self.world.lock:
            robot = self.world.robot
            if robot is not None and not robot.is_parked():
                raise DriverError("capture with the arm away from its home pose (it would be in view)")
            try:
                rendering = self.render()
                parts_in_bin = self.world.parts_in_bin()
            except pybullet.error as error:
                raise DriverError(f"sim camera: {error}") from error
            depth = degrade_depth(rendering, self.noise, self.world.parts, self.rng, self.intrinsics)
        return Capture(
            depth=depth,
            intrinsics=self.intrinsics,
            color=rendering.color,
            stamp=time.time(),
            parts_in_bin=parts_in_bin,
            roi=self.roi,
        )
