"""Seed 004 in the cell: 6-DOF grasps for the three-finger hand from one depth image, by pose optimisation.

1. The bin from straight above (``ParallelDepth``) on the quality net's cell (3.75 mm): heights above the
   floor. Parts are the connected regions standing more than ``MIN_HEIGHT`` above it on the bin floor.
2. Per part (the ``MAX_PARTS`` largest) an image as the net was trained on: ``pixels`` x ``pixels`` centred
   on the part's box, heights above the floor, the other parts blanked out (the training images show one
   object). Its frame ``T_cam_img``: x along the camera's x, y against the camera's y, z up from the floor.
3. Start poses: the hand straight down over the part's middle at ``YAWS`` turns, its fingertips just clear
   of the floor (seed 004 starts from given poses; here they come from the depth image alone).
4. Of the net's best start poses, those whose closing fingers (``HandGeometry.closing_points``) would pass
   through another part are dropped (the net sees its part alone: fingers that close on two parts hold
   neither). BFGS (SciPy) on the rest at once maximises the net's logit (trained with colliding negatives,
   the seed's model-free variant: no object model in a cell) minus a penalty that keeps the open hand's
   outline (``HandGeometry.open_points``) above every surface seen in the depth image and inside the bin's
   walls along its whole approach, and its approach within ``MAX_TILT`` of straight down (reachable, and as
   the camera sees it).
5. Every optimised pose that keeps clear (its closing fingers off the other parts too) is a grasp, quality
   the net's success probability; best first.

Served by name: ``hand_quality`` from ``models/hand_quality.pt`` (trained by
``grasp_cell.learn.train_hand_quality --model-free``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from scipy.optimize import minimize

from grasp_cell.core.geometry import ParallelDepth
from grasp_cell.core.grasp import Grasp, GripperKind, rank
from grasp_cell.core.transform import Transform, rotation_about_axis
from grasp_cell.models.base import (
    GraspModel,
    Observation,
    bin_floor,
    floor_box,
    models_dir,
    register_weights_files,
    weights_file_factory,
)
from grasp_cell.models.hand_quality_net import (
    POSITION_SCALE,
    HandQualityNet,
    load_checkpoint,
    quality_net_from,
    rotation_vector_matrices,
)
from grasp_cell.sim.hand import HandGeometry

MIN_HEIGHT = 0.005  # [m] above the floor: a part
MIN_PART_CELLS = 12  # smaller regions are noise or slivers
MAX_PARTS = 4  # the largest parts get candidates
YAWS = 8  # candidate yaws, 45 degrees apart (the hand has no symmetry about its approach)
TILT = math.radians(15.0)  # candidates also lean this far towards four sides
SHIFTS = (-0.015, 0.0, 0.015)  # [m] candidates over the part's middle and either side along the closing direction
REFINED = 8  # the best candidates by the net are refined by BFGS
SHORTLIST = 48  # the best candidates by the net checked for closing on a neighbour, best first
CLEARANCE = 0.005  # [m] the open hand keeps this far above what the camera sees and inside the walls
APPROACH_CHECK = 0.15  # [m] the open hand keeps clear this far back along its approach too (the motion
# node's pre-grasp distance, motion.pregrasp_distance of config/sim_hand_cell.yaml), as the walls stand taller
# than the grasps
APPROACH_STEP = 0.05  # [m] the approach is checked this far apart: a tilted approach that starts over a wall's
# rim and ends inside the bin passes through the wall between its ends
MAX_TILT = math.radians(30.0)  # approach from straight down
PENALTY = 1e4  # per m^2 of violation (a 1 cm violation outweighs a logit of 1)
MAX_ITERATIONS = 8
WEIGHTS_NAME = re.compile(r"^hand_quality$")


@dataclass(frozen=True)
class HeightMap:
    """The bin from straight above: heights [m] above the floor on a square grid of the camera's x-y plane
    (rows along camera y), 0 where unseen or beyond the bin floor."""

    heights: np.ndarray
    x0: float  # camera x, y [m] of cell (0, 0)
    y0: float
    cell: float
    floor: float  # camera z of the floor [m]
    floor_box: tuple[float, float, float, float]  # camera x_min, x_max, y_min, y_max [m] of the bin floor
    wall_top: float  # [m] above the floor: the walls' rim as seen around the floor (inf: not seen)

    @classmethod
    def from_observation(cls, observation: Observation, cell: float, margin: int = 30) -> "HeightMap":
        """From a depth image whose roi is the bin floor's image box (whole image without one); ``margin`` [px]
        around it are read for the rim of the walls."""
        intrinsics = observation.intrinsics
        roi = observation.roi or (0, 0, intrinsics.width, intrinsics.height)
        floor = bin_floor(observation)
        box = (roi[0] - margin, roi[1] - margin, roi[2] + margin, roi[3] + margin)
        parallel = ParallelDepth.from_depth(observation.depth, intrinsics, box, eta=1.0 / cell)
        with np.errstate(invalid="ignore"):
            heights = np.where(np.isfinite(parallel.depth), floor - parallel.depth, 0.0)
        heights = np.clip(heights, 0.0, None).astype(np.float32)
        # the roi is the bin floor's image box: the walls stand just outside it
        x_min, x_max, y_min, y_max = walls = floor_box(observation, floor)
        x = parallel.x0 + np.arange(heights.shape[1]) * cell
        y = parallel.y0 + np.arange(heights.shape[0]) * cell
        inside = ((y >= y_min) & (y <= y_max))[:, None] & ((x >= x_min) & (x <= x_max))[None, :]
        rim = heights[~inside]
        # the walls' inner faces fall on the cells along the floor's edges: taken for floor, they were parts
        # (strips the length of a wall, or merged with a part lying against one)
        inside &= (((y > y_min + cell) & (y < y_max - cell))[:, None]
                   & ((x > x_min + cell) & (x < x_max - cell))[None, :])
        wall_top = float(np.percentile(rim[rim > MIN_HEIGHT], 90)) if np.any(rim > MIN_HEIGHT) else math.inf
        return cls(heights * inside, parallel.x0, parallel.y0, cell, floor, walls, wall_top)

    def parts(self) -> list[np.ndarray]:
        """Boolean masks of the parts, largest first (regions too small to be a part are left out, and stay
        in the heights as obstacles)."""
        labels, count = ndimage.label(self.heights > MIN_HEIGHT)
        sizes = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, count + 1))
        order = [i + 1 for i in np.argsort(-sizes) if sizes[i] >= MIN_PART_CELLS]
        return [labels == label for label in order]

    def part_image(self, mask: np.ndarray, pixels: int) -> tuple[np.ndarray, Transform]:
        """The part alone, centred on its box, as the net's training images are: (pixels, pixels) heights and
        ``T_cam_img`` (origin on the floor under the image centre, x = camera x, y = -camera y, z up)."""
        rows, cols = np.nonzero(mask)
        first_row = int(round(0.5 * (rows.min() + rows.max()) - 0.5 * (pixels - 1)))
        first_col = int(round(0.5 * (cols.min() + cols.max()) - 0.5 * (pixels - 1)))
        # image row r lies at image y = (r - (pixels - 1) / 2) cell: against camera y, so the rows run backwards
        row_index = first_row + np.arange(pixels)[::-1]
        col_index = first_col + np.arange(pixels)
        valid_rows = (row_index >= 0) & (row_index < mask.shape[0])
        valid_cols = (col_index >= 0) & (col_index < mask.shape[1])
        image = np.zeros((pixels, pixels), np.float32)
        part = np.where(mask, self.heights, 0.0)
        image[np.ix_(valid_rows, valid_cols)] = part[np.ix_(row_index[valid_rows], col_index[valid_cols])]
        centre = (self.x0 + (first_col + 0.5 * (pixels - 1)) * self.cell,
                  self.y0 + (first_row + 0.5 * (pixels - 1)) * self.cell, self.floor)
        return image, Transform(np.diag([1.0, -1.0, -1.0]), centre)

    def surfaces(self, maps: torch.Tensor, index: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Heights [m] at camera ``x``, ``y`` (N, M) on map ``index[n]`` of ``maps`` (P, rows, cols) laid on this
        map's grid, e.g. ``heights`` itself (bilinear, differentiable in x, y; 0 beyond the grid)."""
        rows, cols = self.heights.shape
        u, v = (x - self.x0) / self.cell, (y - self.y0) / self.cell
        inside = (u >= 0) & (u <= cols - 1) & (v >= 0) & (v <= rows - 1)
        u0 = u.detach().floor().clamp(0, cols - 2).long()
        v0 = v.detach().floor().clamp(0, rows - 2).long()
        du, dv = (u - u0).clamp(0, 1), (v - v0).clamp(0, 1)
        flat = maps.reshape(-1)
        corner = index[:, None] * (rows * cols) + v0 * cols + u0
        value = ((1 - dv) * ((1 - du) * flat[corner] + du * flat[corner + 1])
                 + dv * ((1 - du) * flat[corner + cols] + du * flat[corner + cols + 1]))
        return value * inside


class HandPoseSearch:
    """One plan's search: candidate poses over several parts, scored in one pass; the best refined together.

    Poses are the tcp's in its part image's frame (z up from the floor); each candidate keeps its image's
    convolution features and ``T_cam_img``, so the net and the depth image judge it without recomputing."""

    def __init__(self, net: HandQualityNet, scene: HeightMap, outline: np.ndarray, closing: np.ndarray):
        self.net = net
        self.scene = scene
        self.outline = torch.from_numpy(outline)  # (M, 3) the open hand in the tcp frame
        backs = np.linspace(0.0, APPROACH_CHECK, round(APPROACH_CHECK / APPROACH_STEP) + 1)
        self.approach = torch.cat([self.outline - torch.tensor([0.0, 0.0, back]) for back in backs])
        self.closing = torch.from_numpy(closing)  # (K, 3) the fingers on their way closed, in the tcp frame
        # map 0: everything the camera sees; map 1 + k: everything but part k
        self.maps = torch.from_numpy(scene.heights.astype(np.float64))[None]
        self.part = torch.zeros(0, dtype=torch.long)  # per candidate: its part's map, 1 + k
        self.features = torch.zeros((0, 0))  # (N, F) per candidate: its image's convolution features
        self.R_cam_img = torch.zeros((0, 3, 3), dtype=torch.float64)
        self.t_cam_img = torch.zeros((0, 3), dtype=torch.float64)
        self.rotations = torch.zeros((0, 3, 3), dtype=torch.float64)  # R_img_tcp of each candidate
        self.positions = torch.zeros((0, 3), dtype=torch.float64)  # t_img_tcp

    def __len__(self) -> int:
        return len(self.positions)

    def add_part(self, mask: np.ndarray, pixels: int) -> None:
        """Candidates over the part (``mask`` on the scene's grid): the hand over its middle and ``SHIFT``
        either side along the closing direction, at every yaw and tilt of ``ORIENTATIONS``, each as low as the
        open hand keeps clear."""
        image, T_cam_img = self.scene.part_image(mask, pixels)
        with torch.no_grad():
            features = self.net.image_features(torch.from_numpy(image)[None, None])[0]
        middle = np.zeros(2)  # the image is centred on the part's box
        rotations = torch.from_numpy(ORIENTATIONS).repeat_interleave(len(SHIFTS), dim=0)
        closing = rotations[:, :2, 1]  # the hand's y axis (fingers a to b, c) in the image's x-y plane
        shifts = torch.tensor(SHIFTS, dtype=torch.float64).repeat(len(ORIENTATIONS))[:, None] * closing
        positions = torch.cat([torch.from_numpy(middle)[None] + shifts, torch.zeros(len(shifts), 1,
                                                                                    dtype=torch.float64)], dim=1)
        count = len(positions)
        R_cam_img = torch.from_numpy(T_cam_img.rotation).expand(count, 3, 3)
        t_cam_img = torch.from_numpy(T_cam_img.translation).expand(count, 3)
        positions[:, 2] = self._clear_heights(R_cam_img, t_cam_img, positions, rotations)
        self.part = torch.cat([self.part, torch.full((count,), len(self.maps), dtype=torch.long)])
        self.maps = torch.cat([self.maps, torch.where(torch.from_numpy(mask), 0.0, self.maps[0])[None]])
        self.features = torch.cat([self.features.reshape(-1, features.numel()), features.expand(count, -1)])
        self.R_cam_img = torch.cat([self.R_cam_img, R_cam_img])
        self.t_cam_img = torch.cat([self.t_cam_img, t_cam_img])
        self.rotations = torch.cat([self.rotations, rotations])
        self.positions = torch.cat([self.positions, positions])

    def _outline_in_camera(self, R_cam_img, t_cam_img, positions, rotations) -> torch.Tensor:
        """(N, S M, 3) the open hand's outline in the camera frame at the grasp and every APPROACH_STEP back along
        its approach up to APPROACH_CHECK (where the arm's straight approach starts)."""
        return _in_camera(self.approach, R_cam_img, t_cam_img, positions, rotations)

    def neighbour_violations(self, positions, rotations) -> torch.Tensor:
        """(N, K) how far [m] each closing finger point lies below CLEARANCE above the other parts."""
        points = _in_camera(self.closing, self.R_cam_img, self.t_cam_img, positions, rotations)
        heights = self.scene.floor - points[..., 2]
        others = self.scene.surfaces(self.maps, self.part, points[..., 0], points[..., 1])
        return torch.relu(others + CLEARANCE - heights) * (others > MIN_HEIGHT)

    def _clear_heights(self, R_cam_img, t_cam_img, positions, rotations) -> torch.Tensor:
        """The lowest tcp height [m] at which each pose's open hand stays CLEARANCE above what the camera
        sees: raising the hand along the image's z leaves its outline's x, y and so the heights under it."""
        at_floor = positions.clone()
        at_floor[:, 2] = 0.0
        points = self._outline_in_camera(R_cam_img, t_cam_img, at_floor, rotations)
        heights = self.scene.floor - points[..., 2]
        return (self._seen(points) + CLEARANCE - heights).amax(dim=1)

    def _seen(self, points: torch.Tensor) -> torch.Tensor:
        """(N, M) heights [m] of everything the camera sees under camera-frame ``points`` (N, M, 3)."""
        scene = torch.zeros(len(points), dtype=torch.long)
        return self.scene.surfaces(self.maps, scene, points[..., 0], points[..., 1])

    def logits(self) -> torch.Tensor:
        with torch.no_grad():
            return self.net.pose_logits(self.features, self.positions.float(), self.rotations.float()).double()

    def keep(self, rows: torch.Tensor) -> None:
        for name in ("features", "R_cam_img", "t_cam_img", "rotations", "positions", "part"):
            setattr(self, name, getattr(self, name)[rows])

    def _poses(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3) positions and (N, 3, 3) rotations in the image frames at variables ``x`` (N, 6): the offset
        in POSITION_SCALE units and a rotation vector applied to the candidate's rotation."""
        return self.positions + POSITION_SCALE * x[:, :3], self.rotations @ rotation_vector_matrices(x[:, 3:])

    def terms(self, x: torch.Tensor, neighbours: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N,) logits, (N,) penalties [m^2] and (N,) the deepest of the hand's violations [m] of the poses at
        ``x``; without ``neighbours``, the closing fingers are not checked against the other parts."""
        positions, rotations = self._poses(x)
        logits = self.net.pose_logits(self.features, positions.float(), rotations.float()).double()
        points = self._outline_in_camera(self.R_cam_img, self.t_cam_img, positions, rotations)
        height = self.scene.floor - points[..., 2]
        above = torch.relu(self._seen(points) + CLEARANCE - height)
        x_min, x_max, y_min, y_max = self.scene.floor_box
        walls = (torch.relu(x_min + CLEARANCE - points[..., 0]) + torch.relu(points[..., 0] - x_max + CLEARANCE)
                 + torch.relu(y_min + CLEARANCE - points[..., 1]) + torch.relu(points[..., 1] - y_max + CLEARANCE))
        walls = walls * (height < self.scene.wall_top + CLEARANCE)  # over the rim the hand may reach out
        # the approach's tilt from the image's -z beyond MAX_TILT, as a cosine (acos has no gradient at 0)
        tilt = torch.relu(math.cos(MAX_TILT) + rotations[:, 2, 2])
        penalties = (above**2 + walls**2).sum(dim=1) + (POSITION_SCALE * tilt) ** 2
        violations = torch.maximum(above, walls).amax(dim=1)
        if neighbours:
            on_neighbours = self.neighbour_violations(positions, rotations)
            penalties = penalties + (on_neighbours**2).sum(dim=1)
            violations = torch.maximum(violations, on_neighbours.amax(dim=1))
        return logits, penalties, violations

    def optimise(self) -> tuple[list[Transform], np.ndarray, np.ndarray]:
        """BFGS on all candidates at once (one objective, the sum of theirs: they do not interact). Returns the
        optimised ``T_cam_tcp``, their logits, and whether each keeps clear: the penalty leaves violations of
        a few millimetres, so each pose is then raised along the image's z by its deepest one. The closing
        fingers are kept off the other parts by the choice of candidates and checked at the end, not in the
        objective (it would double the time of an evaluation)."""
        count = len(self)

        def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
            x = torch.tensor(flat.reshape(count, 6), requires_grad=True)
            logits, penalties, _ = self.terms(x, neighbours=False)
            value = (-logits + PENALTY * penalties).sum()
            value.backward()
            return float(value.detach()), x.grad.numpy().ravel()

        with torch.enable_grad():
            result = minimize(objective, np.zeros(6 * count), jac=True, method="BFGS",
                              options={"maxiter": MAX_ITERATIONS, "gtol": 1e-3})
        x = torch.from_numpy(result.x.reshape(count, 6))
        with torch.no_grad():
            _, _, violations = self.terms(x)
            x[:, 2] += violations / POSITION_SCALE
            logits, _, violations = self.terms(x)
            positions, rotations = self._poses(x)
        clear = (violations <= CLEARANCE / 2) & (-rotations[:, 2, 2] >= math.cos(MAX_TILT) - 1e-3)
        R_cam_tcp = self.R_cam_img @ rotations
        t_cam_tcp = torch.einsum("nij,nj->ni", self.R_cam_img, positions) + self.t_cam_img
        poses = [Transform(R.numpy(), t.numpy()) for R, t in zip(R_cam_tcp, t_cam_tcp)]
        return poses, logits.numpy(), clear.numpy()


def _orientations() -> np.ndarray:
    """(K, 3, 3) candidate R_img_tcp: straight down at YAWS yaws, and tilted by TILT towards 4 sides."""
    down = np.diag([1.0, -1.0, -1.0])  # the tcp's z (the approach) along the image's -z
    tilts = [np.eye(3)] + [rotation_about_axis((math.cos(a), math.sin(a), 0.0), TILT)
                           for a in np.arange(4) * math.pi / 2]
    yaws = [rotation_about_axis((0.0, 0.0, 1.0), 2 * math.pi * k / YAWS) for k in range(YAWS)]
    return np.array([tilt @ yaw @ down for tilt in tilts for yaw in yaws])


ORIENTATIONS = _orientations()


def _in_camera(points: torch.Tensor, R_cam_img, t_cam_img, positions, rotations) -> torch.Tensor:
    """(N, M, 3) ``points`` (M, 3) of the tcp frame in the camera frame for N poses in their image frames."""
    in_img = positions[:, None, :] + torch.einsum("nij,mj->nmi", rotations, points)
    return torch.einsum("nij,nmj->nmi", R_cam_img, in_img) + t_cam_img[:, None, :]


class HandQualityModel(GraspModel):
    """Image in, ranked 6-DOF three-finger grasps out (the module docstring)."""

    gripper = GripperKind.THREE_FINGER

    def __init__(self, net: HandQualityNet, pixels: int, name: str = "hand_quality",
                 geometry: HandGeometry = HandGeometry()):
        if net.frame != "image":
            raise ValueError("the cell planner needs a quality net whose poses are in the image frame")
        self.net = net
        self.pixels = pixels
        self.name = name
        self.geometry = geometry
        self.outline = geometry.open_points()
        self.closing = geometry.closing_points()

    @classmethod
    def from_file(cls, path: Path, name: str = "hand_quality", threads: int = 1) -> "HandQualityModel":
        torch.set_num_threads(threads)
        checkpoint = load_checkpoint(path)
        return cls(quality_net_from(checkpoint), int(checkpoint["pixels"]), name)

    def plan(self, observation: Observation, max_grasps: int = 10) -> list[Grasp]:
        scene = HeightMap.from_observation(observation, self.net.cell)
        search = HandPoseSearch(self.net, scene, self.outline, self.closing)
        for mask in scene.parts()[:MAX_PARTS]:
            search.add_part(mask, self.pixels)
        if not len(search):
            return []
        search.keep(torch.argsort(search.logits(), descending=True)[:SHORTLIST])
        with torch.no_grad():  # candidates whose fingers would close on a neighbour too are not refined
            free = search.neighbour_violations(search.positions, search.rotations).amax(dim=1) <= CLEARANCE / 2
        search.keep(torch.nonzero(free)[:REFINED, 0])
        if not len(search):
            return []
        poses, logits, clear = search.optimise()
        grasps = [
            Grasp(T_cam_tcp, GripperKind.THREE_FINGER, float(1 / (1 + math.exp(-logit))), model=self.name)
            for T_cam_tcp, logit, ok in zip(poses, logits, clear) if ok
        ]
        return rank(grasps)[:max_grasps]


def register_hand_models(folder: Path | None = None) -> list[str]:
    """Make the registry list ``hand_quality`` while ``models/hand_quality.pt`` exists."""
    return register_weights_files(folder or models_dir(), WEIGHTS_NAME, _factory, _registered)


_registered: set[str] = set()  # the names register_hand_models added


def _factory(name: str):
    return weights_file_factory(name, GripperKind.THREE_FINGER, HandQualityModel)
