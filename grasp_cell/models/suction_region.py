"""Seed 001's suction-region model: an RGB-D image in, a map of suction success over the bin, a vertical
suction grasp at the chosen cell out.

The bin's region of the image (plus a context margin) goes through ``SuctionRegionNet`` at once: the net is
fully convolutional, so this equals running it on the seed's 168 x 168 patches without their seams. One
output cell stands for 3 x 3 pixels; its grasp is the centre pixel's 3-D point, approached along the
camera's z axis (the seed considers vertical suction only; our camera looks straight down on the bin).
Selection (seed 001 Algorithm 1 and eq. 4): with probability p = 0.5 x 5^(-n / N_ep) a random cell of the
bin, else the best one; ``selection="max"`` turns exploration off.

Served by name: ``suction_region`` from ``models/suction_region.pt``; with ``snapshots=<folder>`` it follows
a learning run's newest weights (``grasp_cell.models.snapshots``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from grasp_cell.core.grasp import Grasp, GripperKind
from grasp_cell.models.base import Observation, bin_floor, models_dir, register_weights_files, weights_file_factory
from grasp_cell.models.selection import decaying_exploration
from grasp_cell.models.snapshots import LearningGraspModel
from grasp_cell.models.suction_grasp import window

WEIGHTS_NAME = re.compile(r"^suction_region$")
CELL = 3  # [px] one output per 3 x 3 pixels (seed 001)
BLOCK = 12  # [px] crops are multiples of this: x 4/3 they are multiples of 16, as the net needs
HEIGHT_SCALE = 0.05  # [m] heights above the bin floor are divided by this
RGB_MEAN, RGB_SCALE = 0.5, 0.25
EXPLORATION_ATTEMPTS = 1000.0  # seed 001: N_ep = 1000


@dataclass(frozen=True)
class RegionInput:
    """The net's two streams for one image crop, at the crop's own resolution (resizing is the net's step)."""

    rgb: np.ndarray  # (3, H, W) float32, centred colour
    heights: np.ndarray  # (1, H, W) float32, height above the bin floor / HEIGHT_SCALE, 0 where missing

    @classmethod
    def crop(cls, observation: Observation, left: int, top: int, width: int, height: int, floor: float):
        """The window (left, top, width, height) of the observation, zeros beyond the image."""
        depth = window(observation.depth, left, top, width, height, np.nan)
        with np.errstate(invalid="ignore"):
            heights = np.where(depth > 0, (floor - depth) / HEIGHT_SCALE, 0.0)
        heights = np.clip(np.nan_to_num(heights, nan=0.0), -0.5, 3.0).astype(np.float32)[None]
        if observation.color is None:
            rgb = np.zeros((3, height, width), np.float32)
        else:
            colour = window(observation.color, left, top, width, height, 0)
            rgb = (np.moveaxis(colour, -1, 0).astype(np.float32) / 255.0 - RGB_MEAN) / RGB_SCALE
        return cls(rgb.astype(np.float32), heights)


def run_net(net, inputs: list[RegionInput]):
    """Logits (B, H / 3, W / 3) of same-sized crops (H, W multiples of BLOCK): resized by 4/3 as the seed's
    168 -> 224, then the net (output stride 4 of the resized image = 3 pixels of the crop)."""
    import torch
    import torch.nn.functional as F

    from grasp_cell.models.region_net import SCALE

    rgb = torch.from_numpy(np.stack([i.rgb for i in inputs]))
    heights = torch.from_numpy(np.stack([i.heights for i in inputs]))
    size = (round(rgb.shape[-2] * SCALE), round(rgb.shape[-1] * SCALE))
    rgb = F.interpolate(rgb, size=size, mode="bilinear", align_corners=False)
    heights = F.interpolate(heights, size=size, mode="bilinear", align_corners=False)
    return net(rgb, heights)


class SuctionRegionModel(LearningGraspModel):
    """Seed 001's network as a grasp model (see the module docstring)."""

    gripper = GripperKind.SUCTION

    def __init__(
        self,
        checkpoint: dict | None = None,
        name: str = "suction_region",
        selection: str = "max",  # "max" (exploration off) or "schedule" (seed 001 eq. 4)
        snapshots: Path | str | None = None,
        seed: int = 0,
        context: int = 24,  # [px] of image around the roi the net also sees
        spacing: int = 4,  # [cells] ranked grasps lie this far apart (Chebyshev) or more
        threads: int = 1,
    ):
        from grasp_cell.models.region_net import SuctionRegionNet

        if selection not in ("max", "schedule"):
            raise ValueError(f"unknown selection '{selection}'; expected max or schedule")
        self.name, self.selection, self.context, self.spacing, self.threads = name, selection, context, spacing, threads
        self.rng = np.random.default_rng(seed)
        self._init_weights(SuctionRegionNet(), checkpoint, snapshots)

    def plan(self, observation: Observation, max_grasps: int = 10) -> list[Grasp]:
        self.refresh()
        intrinsics = observation.intrinsics
        u_min, v_min, u_max, v_max = observation.roi or (0, 0, intrinsics.width, intrinsics.height)
        if max_grasps < 1 or u_max - u_min < CELL or v_max - v_min < CELL:
            return []
        try:
            floor = bin_floor(observation)
        except ValueError:
            return []
        # the roi and some context, grown to whole blocks
        left, top = int(u_min) - self.context, int(v_min) - self.context
        width = _whole_blocks(int(u_max) + self.context - left)
        height = _whole_blocks(int(v_max) + self.context - top)
        self._torch.set_num_threads(self.threads)
        with self._torch.inference_mode():
            logits = run_net(self.net, [RegionInput.crop(observation, left, top, width, height, floor)])[0]
        probability = self._torch.sigmoid(logits).numpy()
        # each cell's centre pixel; valid inside the roi with depth
        rows, cols = np.mgrid[0 : probability.shape[0], 0 : probability.shape[1]]
        u, v = left + CELL * cols + CELL // 2, top + CELL * rows + CELL // 2
        valid = (u >= u_min) & (u < u_max) & (v >= v_min) & (v < v_max)
        depth = observation.depth[np.clip(v, 0, intrinsics.height - 1), np.clip(u, 0, intrinsics.width - 1)]
        with np.errstate(invalid="ignore"):
            valid &= depth > 0
        if not valid.any():
            return []
        method = self._method()
        candidates = np.flatnonzero(valid)
        if method == "random":
            chosen = int(self.rng.choice(candidates))
        else:
            chosen = int(candidates[np.argmax(probability.ravel()[candidates])])
        self.plans_since_load += 1
        order = [chosen]
        for index in candidates[np.argsort(-probability.ravel()[candidates], kind="stable")]:
            if len(order) == max_grasps:
                break
            r, c = divmod(int(index), probability.shape[1])
            if all(max(abs(r - rows.flat[o]), abs(c - cols.flat[o])) >= self.spacing for o in order):
                order.append(int(index))
        grasps = []
        for index in order:
            pu, pv = int(u.flat[index]), int(v.flat[index])
            position = intrinsics.deproject(pu, pv, float(depth.flat[index]))
            quality = float(np.clip(probability.flat[index], 0.0, 1.0))
            grasps.append(Grasp.from_approach(position, (0.0, 0.0, 1.0), GripperKind.SUCTION, quality,
                                              pixel=(pu, pv), model=self.name, model_version=self.version))
        grasps[0] = replace(grasps[0], selection=method)
        return grasps

    def _method(self) -> str:
        if self.selection == "max":
            return "max"
        explore = decaying_exploration(self.attempts_seen, EXPLORATION_ATTEMPTS)
        return "random" if self.rng.random() < explore else "max"


def _whole_blocks(length: int) -> int:
    return int(math.ceil(length / BLOCK)) * BLOCK


def register_region_models(folder: Path | None = None) -> list[str]:
    """Make the registry list ``suction_region`` while ``models/suction_region.pt`` exists."""
    return register_weights_files(folder or models_dir(), WEIGHTS_NAME, _factory, _registered)


_registered: set[str] = set()


def _factory(name: str):
    return weights_file_factory(name, GripperKind.SUCTION, SuctionRegionModel, follows_snapshots=True)
