"""Seed 002's planar grasp-success model: a top-down depth overview in, a grasp (x, y, angle a, opening d) out.

The overview is the bin seen straight down the camera's z axis (the parallel depth image, 2.5 mm cells):
seed 002 relies on the image plane being the task's x-y plane, so that a grasp's window looks the same
wherever it lies. It is turned to ``ANGLES`` (20) angles about the bin centre and the net judges every
window of all of them in one batched pass: ``POSITIONS`` x ``POSITIONS`` (40 x 40) positions x 3 openings
per angle, 96 000 grasp choices (seed III-C). A selection function picks the one to try
(``grasp_cell.models.selection``). The grasp's height is read from the depth under its centre (seed III-A):
the fingertips go ``grip_depth`` below that surface, and never closer than ``tip_clearance`` to the floor.

Served by name: ``planar_fcn`` from ``models/planar_fcn.pt``. Built with ``snapshots=<folder>`` it follows a
learning run instead, loading each new weights version before the next plan
(``grasp_cell.models.snapshots``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from grasp_cell.core.camera import CameraIntrinsics
from grasp_cell.core.geometry import ParallelDepth
from grasp_cell.core.grasp import Grasp, GripperKind
from grasp_cell.core.jaw import JawGeometry, closing_direction, planar_grasp_rotation
from grasp_cell.core.transform import Transform
from grasp_cell.models.base import Observation, bin_floor, models_dir, register_weights_files, weights_file_factory
from grasp_cell.models.selection import SELECTIONS, ExplorationSchedule, select
from grasp_cell.models.snapshots import LearningGraspModel

ANGLES = 20  # seed 002: 20 rotations over 180 degrees (9 degree steps)
THETAS = np.arange(ANGLES) * (math.pi / ANGLES)  # [rad] the angle of each class
POSITIONS = 40  # seed 002: 40 x 40 positions per rotation
CELL = 0.0025  # [m] overview cell (2.5 mm); positions lie STRIDE cells (10 mm) apart
OPENINGS = (0.04, 0.06, 0.08)  # [m] the three gripper distances d (seed 002: 20 mm apart)
HEIGHT_SCALE = 0.05  # [m] heights above the floor are divided by this for the net
REFINE_OFFSETS = (-0.005, -0.0025, 0.0, 0.0025, 0.005)  # [m] along and across the closing direction
WALL_MARGIN = 0.002  # [m] open fingers stay this far inside the bin's walls
CHANGED_CELLS = 20  # overview cells that must change for a scene to count as changed
WEIGHTS_NAME = re.compile(r"^planar_fcn$")


@dataclass(frozen=True)
class Overview:
    """The bin from straight above: heights above its floor on a CELL grid of the camera's x-y plane."""

    heights: np.ndarray  # (rows, cols) float32, (floor - z) / HEIGHT_SCALE, 0 where unseen
    parallel: ParallelDepth  # camera z per cell (NaN unseen), the same grid
    floor: float  # [m] camera z of the bin floor
    centre: tuple[float, float]  # [m] camera-frame x, y of the bin floor's centre
    half_size: tuple[float, float]  # [m] half extents of the bin floor along camera x and y

    @classmethod
    def from_observation(cls, observation: Observation, margin: int = 60) -> "Overview":
        """From a depth image whose roi is the bin floor's image box (whole image without one); the floor is the
        deep end of the roi's depths. ``margin`` [px] of image around the roi is kept (walls, context)."""
        intrinsics = observation.intrinsics
        u_min, v_min, u_max, v_max = observation.roi or (0, 0, intrinsics.width, intrinsics.height)
        floor = bin_floor(observation)
        box = (u_min - margin, v_min - margin, u_max + margin, v_max + margin)
        parallel = ParallelDepth.from_depth(observation.depth, intrinsics, box, eta=1.0 / CELL)
        with np.errstate(invalid="ignore"):
            heights = np.clip((floor - parallel.depth) / HEIGHT_SCALE, -0.5, 3.0)
        heights = np.where(np.isfinite(heights), heights, 0.0).astype(np.float32)
        corners = intrinsics.deproject(np.array([u_min, u_max]), np.array([v_min, v_max]), floor)
        centre = 0.5 * (corners[0, :2] + corners[1, :2])
        half = 0.5 * np.abs(corners[1, :2] - corners[0, :2])
        return cls(heights, parallel, floor, (float(centre[0]), float(centre[1])), (float(half[0]), float(half[1])))

    def windows(self, centres: np.ndarray, thetas: np.ndarray, size: int):
        """(n, 1, size, size) torch windows of the heights: window n is centred on camera-frame ``centres[n]``
        (x, y), its columns run along the closing direction of ``thetas[n]`` and its rows across it, one
        CELL apart; bilinear, 0 beyond the overview. Training crops and the inference canvas both come from
        here, so they agree to the cell."""
        import torch
        import torch.nn.functional as F

        centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
        # camera-frame (x, y) of every sample, then the overview's fractional (col, row)
        steps = (np.arange(size) - 0.5 * (size - 1)) * CELL
        xy = turned_grid(centres, np.asarray(thetas, dtype=np.float64).reshape(-1), steps)
        rows, cols = self.heights.shape
        col = (xy[..., 0] - self.parallel.x0) * self.parallel.eta
        row = (xy[..., 1] - self.parallel.y0) * self.parallel.eta
        grid = np.stack([2.0 * col / max(cols - 1, 1) - 1.0, 2.0 * row / max(rows - 1, 1) - 1.0], axis=-1)
        image = torch.from_numpy(self.heights)[None, None].expand(len(centres), 1, rows, cols)
        grid = torch.from_numpy(grid.astype(np.float32))
        return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


@dataclass(frozen=True)
class PlanarAction:
    """One grasp choice of the dense output: angle class, opening class, position row and column."""

    angle: int
    opening: int
    row: int
    col: int

    @classmethod
    def from_flat(cls, index: int) -> "PlanarAction":
        return cls(*(int(i) for i in np.unravel_index(index, (ANGLES, len(OPENINGS), POSITIONS, POSITIONS))))

    @property
    def theta(self) -> float:
        return float(THETAS[self.angle])


def turned_grid(centres: np.ndarray, thetas: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """(n, m, m, 2) camera-frame (x, y): point [k, i, j] lies ``steps[j]`` along the closing direction of
    ``thetas[k]`` and ``steps[i]`` across it from ``centres[k]`` (n, 2): a square grid turned with a grasp."""
    closing = closing_direction(thetas)  # (n, 2)
    across = np.stack([-closing[:, 1], closing[:, 0]], axis=-1)
    return (
        centres[:, None, None, :]
        + steps[None, None, :, None] * closing[:, None, None, :]
        + steps[None, :, None, None] * across[:, None, None, :]
    )


def canvas_centres(overview: Overview, thetas: np.ndarray) -> np.ndarray:
    """(angles, POSITIONS, POSITIONS, 2) camera-frame centres of the dense pass's windows per angle."""
    from grasp_cell.models.planar_net import STRIDE

    thetas = np.asarray(thetas, dtype=np.float64)
    centres = np.repeat(np.asarray(overview.centre, dtype=np.float64)[None], len(thetas), axis=0)
    return turned_grid(centres, thetas, (np.arange(POSITIONS) - 0.5 * (POSITIONS - 1)) * STRIDE * CELL)


def fingers_inside_bin(overview: Overview, centres: np.ndarray, thetas, openings, jaw: JawGeometry) -> np.ndarray:
    """Whether both open fingers (L1 x L2 footprints) of grasps at ``centres`` (..., 2) with angles ``thetas``
    and ``openings`` [m] (broadcast against ``centres[..., 0]``) lie inside the bin's floor, ``WALL_MARGIN``
    clear of the walls. The walls are known geometry, not something to learn by hitting them."""
    closing = closing_direction(np.asarray(thetas, dtype=float))
    across = np.stack([-closing[..., 1], closing[..., 0]], axis=-1)
    reach = (0.5 * np.asarray(openings, dtype=float) + jaw.finger_thickness)[..., None]  # to the outer face
    half = np.asarray(overview.half_size) - WALL_MARGIN
    ok = True
    for sign in (1.0, -1.0):
        for side in (1.0, -1.0):
            corner = centres + sign * reach * closing + side * 0.5 * jaw.finger_width * across
            ok = ok & (np.abs(corner - np.asarray(overview.centre)) <= half).all(axis=-1)
    return ok


def _unchanged(before: np.ndarray, after: np.ndarray) -> bool:
    """True when two overviews show the same scene: fewer than ``CHANGED_CELLS`` cells moved by more than
    5 mm in height (the smallest part covers about 36 cells; a few flickering cells are sensor noise)."""
    if before.shape != after.shape:
        return False
    return int(np.count_nonzero(np.abs(after - before) * HEIGHT_SCALE > 0.005)) < CHANGED_CELLS


class PlanarGraspModel(LearningGraspModel):
    """Seed 002's grasp-success FCN as a grasp model (see the module docstring)."""

    gripper = GripperKind.PARALLEL

    def __init__(
        self,
        checkpoint: dict | None = None,
        name: str = "planar_fcn",
        selection: str = "max",  # one of SELECTIONS, or "schedule" (seed 002's exploration over a run)
        snapshots: Path | str | None = None,  # follow this snapshot folder's newest weights
        seed: int = 0,  # the model's own generator, for the random selections
        grip_depth: float = 0.015,  # [m] fingertips below the surface under the grasp centre
        tip_clearance: float = 0.006,  # [m] fingertips at least this far above the bin floor
        schedule: ExplorationSchedule = ExplorationSchedule(),
        refine: bool = True,  # exploiting choices are moved to the best position within 5 mm (REFINE_OFFSETS)
        jaw: JawGeometry = JawGeometry(),
        threads: int = 1,
    ):
        from grasp_cell.models.planar_net import PlanarGraspNet

        if selection not in SELECTIONS + ("schedule",):
            raise ValueError(f"unknown selection '{selection}'; expected one of {', '.join(SELECTIONS)}, schedule")
        self.name, self.selection, self.schedule = name, selection, schedule
        self.grip_depth, self.tip_clearance, self.threads = grip_depth, tip_clearance, threads
        self.refine = refine
        self.rng = np.random.default_rng(seed)
        self.last_selection = ""
        self.jaw = jaw
        self._last_choice = -1  # flat index of the last chosen action
        self._last_heights: np.ndarray | None = None  # the overview it was chosen on
        self._failed: set[int] = set()  # actions that left the scene as it was
        self._init_weights(PlanarGraspNet(), checkpoint, snapshots)

    @classmethod
    def untrained(cls, seed: int = 0, **options) -> "PlanarGraspModel":
        """Randomly initialised weights (from ``seed``): where a learning run starts."""
        import torch

        from grasp_cell.models.planar_net import PlanarGraspNet

        torch.manual_seed(seed)
        return cls({"state_dict": PlanarGraspNet().state_dict()}, seed=seed, **options)

    def predict(self, overview: Overview) -> np.ndarray:
        """Success probabilities (ANGLES, len(OPENINGS), POSITIONS, POSITIONS) of every grasp choice."""
        from grasp_cell.models.planar_net import STRIDE, WINDOW

        torch = self._torch
        torch.set_num_threads(self.threads)
        canvas = WINDOW + STRIDE * (POSITIONS - 1)
        centres = np.repeat(np.asarray(overview.centre)[None], ANGLES, axis=0)
        with torch.inference_mode():
            images = overview.windows(centres, THETAS, canvas)
            return torch.sigmoid(self.net(images)).numpy()

    def plan(self, observation: Observation, max_grasps: int = 10) -> list[Grasp]:
        self.refresh()
        if max_grasps < 1:
            return []
        try:
            overview = Overview.from_observation(observation)
        except ValueError:
            return []  # nothing seen in the bin: nothing to grasp
        probability = self.predict(overview)
        centres = canvas_centres(overview, THETAS)  # (ANGLES, POSITIONS, POSITIONS, 2)
        # every choice of the dense output: (ANGLES, OPENINGS, POSITIONS, POSITIONS)
        valid = fingers_inside_bin(overview, centres[:, None], THETAS[:, None, None, None],
                                   np.asarray(OPENINGS)[None, :, None, None], self.jaw)
        if not valid.any():
            return []
        method = self._method()
        # a scene that did not change since the last plan means the last grasp failed without touching
        # anything: that action stays out while the scene stays so (seed 002 then tries max(5))
        if self._last_heights is not None and _unchanged(self._last_heights, overview.heights):
            self._failed.add(self._last_choice)
        else:
            self._failed.clear()
        if method in ("max", "max5") and self._failed:
            untried = valid.copy()
            untried.flat[list(self._failed)] = False
            if untried.any():  # (if every choice failed on this scene, they may all be tried again)
                valid, method = untried, "max5"
        chosen = select(method, probability, valid, self.rng)
        self.last_selection = method
        self._last_choice, self._last_heights = chosen, overview.heights
        self.plans_since_load += 1
        # the chosen grasp first, then the rest by predicted success
        ranked = np.argsort(-np.where(valid, probability, -1.0), axis=None, kind="stable")[: max_grasps + 1]
        order = [chosen] + [int(i) for i in ranked if i != chosen][: max_grasps - 1]
        actions = [PlanarAction.from_flat(i) for i in order]
        points = [centres[a.angle, a.row, a.col] for a in actions]
        qualities = [float(probability.flat[i]) for i in order]
        if method in ("max", "max5") and self.refine:
            points[0], qualities[0] = self._refined(overview, actions[0], points[0], qualities[0])
        grasps = [self._grasp(a, q, p, overview, observation.intrinsics) for a, q, p in zip(actions, qualities, points)]
        grasps[0] = replace(grasps[0], selection=method)
        return grasps

    def _refined(self, overview: Overview, action: PlanarAction, point: np.ndarray, quality: float):
        """The chosen grasp moved to the best of REFINE_OFFSETS around its grid position (along and across
        its closing direction), judged by the net on single windows: the dense pass's positions lie 10 mm
        apart, coarse against a 20-30 mm part between the fingers."""
        from grasp_cell.models.planar_net import WINDOW

        points = turned_grid(np.asarray(point)[None], np.array([action.theta]), np.asarray(REFINE_OFFSETS))
        points = points.reshape(-1, 2)
        points = points[fingers_inside_bin(overview, points, action.theta, OPENINGS[action.opening], self.jaw)]
        if len(points) == 0:
            return point, quality
        with self._torch.inference_mode():
            windows = overview.windows(points, np.full(len(points), action.theta), WINDOW)
            scores = self._torch.sigmoid(self.net(windows))[:, action.opening, 0, 0].numpy()
        best = int(np.argmax(scores))
        if scores[best] <= quality:
            return point, quality
        return points[best], float(scores[best])

    def _method(self) -> str:
        if self.selection != "schedule":
            return self.selection
        return self.schedule.method(self.attempts_seen, self.rng)

    def _grasp(self, action: PlanarAction, quality: float, point: np.ndarray, overview: Overview,
               intrinsics: CameraIntrinsics) -> Grasp:
        x, y = point
        surface = float(overview.parallel.at(np.array([x]), np.array([y]))[0])
        if not np.isfinite(surface):
            surface = overview.floor
        tips = min(surface + self.grip_depth, overview.floor - self.tip_clearance)  # seed III-A: z from the depth
        u, v = intrinsics.project([[x, y, surface]])[0]
        return Grasp(
            Transform(planar_grasp_rotation(action.theta), np.array([x, y, tips])),
            GripperKind.PARALLEL,
            min(max(quality, 0.0), 1.0),
            width=OPENINGS[action.opening],
            pixel=(int(round(u)), int(round(v))),
            model=self.name,
            model_version=self.version,
        )


def register_planar_models(folder: Path | None = None) -> list[str]:
    """Make the registry list ``planar_fcn`` while ``models/planar_fcn.pt`` exists."""
    return register_weights_files(folder or models_dir(), WEIGHTS_NAME, _factory, _registered)


_registered: set[str] = set()  # the names register_planar_models added


def _factory(name: str):
    return weights_file_factory(name, GripperKind.PARALLEL, PlanarGraspModel, follows_snapshots=True)
