"""Seed 002's planar grasp-success model: a top-down depth overview in, a grasp (x, y, angle a, opening d) out.

The overview is the bin seen straight down the camera's z axis (the parallel depth image, 2.5 mm cells):
seed 002 relies on the image plane being the task's x-y plane, so that a grasp's window looks the same
wherever it lies. It is turned to ``ANGLES`` (20) angles about the bin centre and the net judges every
window of all of them in one batched pass: ``POSITIONS`` x ``POSITIONS`` (40 x 40) positions x 3 openings
per angle, 96 000 grasp choices (seed III-C). A selection function picks the one to try
(``grasp_cell.models.selection``). The grasp's height is read from the depth under its centre (seed III-A):
the fingertips go ``grip_depth`` below that surface, and never closer than ``tip_clearance`` to the floor.

What the open fingers would land on is read from the same image, not learned by trial: a choice is only
offered where, within ``REFINE_CELLS`` cells (5 mm) of its position, both finger footprints lie over the
bin floor and leave the fingertips deep enough to grip (``Canvases.fingertips``); the chosen one is placed
on such a window start, the best one by the net when exploiting.

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
from grasp_cell.models.base import (
    Observation,
    bin_floor,
    floor_box,
    models_dir,
    register_weights_files,
    weights_file_factory,
)
from grasp_cell.models.selection import SELECTIONS, ExplorationSchedule, select
from grasp_cell.models.snapshots import LearningGraspModel

ANGLES = 20  # seed 002: 20 rotations over 180 degrees (9 degree steps)
THETAS = np.arange(ANGLES) * (math.pi / ANGLES)  # [rad] the angle of each class
POSITIONS = 40  # seed 002: 40 x 40 positions per rotation
CELL = 0.0025  # [m] overview cell (2.5 mm); positions lie STRIDE cells (10 mm) apart
OPENINGS = (0.04, 0.06, 0.08)  # [m] the three gripper distances d (seed 002: 20 mm apart)
HEIGHT_SCALE = 0.05  # [m] heights above the floor are divided by this for the net
REFINE_CELLS = 2  # exploiting choices are moved to the best window start within this many cells (5 mm)
FINGER_MARGIN = 0.0  # [m] the open fingers' footprints are read this much larger on every side
FINGER_CLEARANCE = 0.003  # [m] fingertips stop this far above the highest point seen under a finger
MIN_GRIP = 0.005  # [m] fingers raised over a neighbour must still reach this far below the grasp's surface
WALL_MARGIN = 0.003  # [m] open fingers stay this far inside the bin's walls (the cell grid rounds it by 1.25 mm)
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
    on_floor: np.ndarray  # (rows, cols) float32: 1 over the bin floor (WALL_MARGIN inside its walls), else 0

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
        x_min, x_max, y_min, y_max = floor_box(observation, floor)
        centre = np.array([0.5 * (x_min + x_max), 0.5 * (y_min + y_max)])
        half = np.array([0.5 * (x_max - x_min), 0.5 * (y_max - y_min)])
        x = parallel.x0 + np.arange(heights.shape[1]) / parallel.eta
        y = parallel.y0 + np.arange(heights.shape[0]) / parallel.eta
        inner = half - WALL_MARGIN
        on_floor = (np.abs(y - centre[1]) <= inner[1])[:, None] & (np.abs(x - centre[0]) <= inner[0])[None, :]
        return cls(heights, parallel, floor, (float(centre[0]), float(centre[1])), (float(half[0]), float(half[1])),
                   on_floor.astype(np.float32))

    def windows(self, centres: np.ndarray, thetas: np.ndarray, size: int, layers: np.ndarray | None = None):
        """(n, k, size, size) torch windows of ``layers`` (k, rows, cols) on this grid, by default the heights
        (k = 1): window n is centred on camera-frame ``centres[n]`` (x, y), its columns run along the closing
        direction of ``thetas[n]`` and its rows across it, one CELL apart; bilinear, 0 beyond the overview.
        Training crops and the inference canvas both come from here, so they agree to the cell."""
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
        layers = self.heights[None] if layers is None else np.asarray(layers, dtype=np.float32)
        image = torch.from_numpy(layers)[None].expand(len(centres), *layers.shape)
        grid = torch.from_numpy(grid.astype(np.float32))
        return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


@dataclass(frozen=True)
class PlanarAction:
    """One grasp choice: angle class, opening class, and the first cell (row, col) of its window in the
    angle's canvas (``Canvases``). The dense pass judges the windows starting at every STRIDE-th cell."""

    angle: int
    opening: int
    row: int
    col: int

    @classmethod
    def from_flat(cls, index: int) -> "PlanarAction":
        """The choice at flat ``index`` of the dense output (ANGLES, len(OPENINGS), POSITIONS, POSITIONS)."""
        from grasp_cell.models.planar_net import STRIDE

        angle, opening, row, col = np.unravel_index(index, (ANGLES, len(OPENINGS), POSITIONS, POSITIONS))
        return cls(int(angle), int(opening), STRIDE * int(row), STRIDE * int(col))

    @property
    def theta(self) -> float:
        return float(THETAS[self.angle])


def turned(centres, thetas, along, across) -> np.ndarray:
    """(..., 2) camera-frame (x, y) lying ``along`` the closing direction of ``thetas`` and ``across`` it
    from ``centres`` (..., 2); all broadcast against each other."""
    closing = closing_direction(np.asarray(thetas, dtype=float))
    sideways = np.stack([-closing[..., 1], closing[..., 0]], axis=-1)
    return np.asarray(centres) + np.asarray(along)[..., None] * closing + np.asarray(across)[..., None] * sideways


def turned_grid(centres: np.ndarray, thetas: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """(n, m, m, 2) camera-frame (x, y): point [k, i, j] lies ``steps[j]`` along the closing direction of
    ``thetas[k]`` and ``steps[i]`` across it from ``centres[k]`` (n, 2): a square grid turned with a grasp."""
    return turned(centres[:, None, None, :], thetas[:, None, None], steps[None, None, :], steps[None, :, None])


@dataclass(frozen=True)
class Fingertips:
    """Where the fingertips of every window's grasp go, as normalised heights (like ``Overview.heights``)
    over the window starts of ``Canvases``."""

    surface: np.ndarray  # (ANGLES, starts, starts) height under the grasp centre (the mean of its four cells)
    tips: np.ndarray  # (ANGLES, len(OPENINGS), starts, starts); NaN where the fingers cannot grip

    def fit_near(self, stride: int, cells: int) -> np.ndarray:
        """(ANGLES, len(OPENINGS), POSITIONS, POSITIONS): whether the fingers fit at some window start within
        ``cells`` of each dense position (every ``stride``-th start)."""
        fit = np.pad(np.isfinite(self.tips), ((0, 0), (0, 0), (cells, cells), (cells, cells)))
        near = np.zeros(self.tips.shape[:2] + (POSITIONS, POSITIONS), dtype=bool)
        span = stride * (POSITIONS - 1) + 1
        for dr in range(2 * cells + 1):
            for dc in range(2 * cells + 1):
                near |= fit[:, :, dr:dr + span:stride, dc:dc + span:stride]
        return near


@dataclass(frozen=True)
class Canvases:
    """The overview turned to every angle class: image a (CANVAS x CANVAS cells, centred on the bin floor)
    has its columns along the closing direction of angle a. The window of WINDOW x WINDOW cells starting
    at cell (row, col) is the grasp at angle a centred (WINDOW - 1) / 2 cells further in."""

    overview: Overview
    images: "torch.Tensor"  # noqa: F821 (ANGLES, 1, CANVAS, CANVAS) heights
    on_floor: np.ndarray  # (ANGLES, CANVAS, CANVAS) bool: the cell lies over the bin floor (Overview.on_floor)

    @classmethod
    def of(cls, overview: Overview) -> "Canvases":
        from grasp_cell.models.planar_net import STRIDE, WINDOW

        size = WINDOW + STRIDE * (POSITIONS - 1)
        centres = np.repeat(np.asarray(overview.centre)[None], ANGLES, axis=0)
        both = overview.windows(centres, THETAS, size, np.stack([overview.heights, overview.on_floor]))
        return cls(overview, both[:, :1].contiguous(), both[:, 1].numpy() > 0.5)

    @property
    def starts(self) -> int:
        """Window starts per canvas side."""
        from grasp_cell.models.planar_net import WINDOW

        return self.images.shape[-1] - WINDOW + 1

    def centres(self, angles, rows, cols) -> np.ndarray:
        """(..., 2) camera-frame (x, y) of the grasps whose windows start at (``rows``, ``cols``) of the
        canvases of angle classes ``angles`` (broadcast)."""
        from grasp_cell.models.planar_net import WINDOW

        offset = 0.5 * (WINDOW - 1) - 0.5 * (self.images.shape[-1] - 1)  # window start -> its centre, in cells
        along, across = (np.asarray(cols) + offset) * CELL, (np.asarray(rows) + offset) * CELL
        return turned(self.overview.centre, THETAS[np.asarray(angles)], along, across)

    def windows(self, angle: int, rows, cols) -> "torch.Tensor":  # noqa: F821
        """(n, 1, WINDOW, WINDOW) windows of canvas ``angle`` starting at each (row, col): exactly what the
        dense pass judged there."""
        import torch

        from grasp_cell.models.planar_net import WINDOW

        image = self.images[angle]
        return torch.stack([image[:, r:r + WINDOW, c:c + WINDOW] for r, c in zip(rows, cols)])

    def fingertips(self, jaw: JawGeometry, grip_depth: float, tip_clearance: float) -> Fingertips:
        """Fingertip heights of every window's grasp. The tips go ``grip_depth`` below the surface under
        the grasp centre (seed III-A), never closer than ``tip_clearance`` to the floor. Where an open
        finger's footprint (L1 x L2, FINGER_MARGIN larger) shows something higher, the tips stop
        FINGER_CLEARANCE above it, as the seed's arm stopped on a sensed collision. A grasp is left out
        (NaN) when that leaves less than MIN_GRIP (or, on a low part, less than the usual depth) between the
        tips and its surface, or when a footprint leaves the bin floor: the walls are known geometry, not
        something to learn by hitting them. Unseen cells read as floor."""
        from grasp_cell.models.planar_net import WINDOW

        starts, half = self.starts, WINDOW // 2  # a window's centre lies between its cells half - 1 and half
        heights = self.images[:, 0].numpy()
        middle = heights[:, half - 1:, half - 1:]
        surface = 0.25 * (middle[:, :starts, :starts] + middle[:, 1:starts + 1, :starts]
                          + middle[:, :starts, 1:starts + 1] + middle[:, 1:starts + 1, 1:starts + 1])
        rows = 2 * round((0.5 * jaw.finger_width + FINGER_MARGIN) / CELL)  # even: centred between cells
        cols = 2 * round((0.5 * jaw.finger_thickness + FINGER_MARGIN) / CELL)
        pad = round((0.5 * max(OPENINGS) + jaw.finger_thickness) / CELL) + cols
        # per footprint: the highest cell over the floor, and whether any cell is off it
        layers = np.stack([np.where(self.on_floor, heights, 0.0), ~self.on_floor]).astype(np.float32)
        layers = np.pad(layers, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=1.0)
        highest, off_floor = _box_max(layers, rows, cols)
        row = pad + half - rows // 2
        nominal = np.maximum(surface - grip_depth / HEIGHT_SCALE, tip_clearance / HEIGHT_SCALE)
        reach = np.minimum(grip_depth, MIN_GRIP) / HEIGHT_SCALE
        tips = np.empty((ANGLES, len(OPENINGS), starts, starts), dtype=np.float32)
        for k, opening in enumerate(OPENINGS):
            offset = round((0.5 * opening + 0.5 * jaw.finger_thickness) / CELL)  # finger centre from the middle
            first = [pad + half + side - cols // 2 for side in (offset, -offset)]  # footprint column per finger
            fingers = np.maximum(*(highest[:, row:row + starts, c:c + starts] for c in first))
            outside = np.maximum(*(off_floor[:, row:row + starts, c:c + starts] for c in first)) > 0
            stop = np.maximum(nominal, fingers + FINGER_CLEARANCE / HEIGHT_SCALE)
            fits = (stop <= np.maximum(nominal, surface - reach) + 1e-6) & ~outside
            tips[:, k] = np.where(fits, stop, np.nan)
        return Fingertips(surface, tips)


def _box_max(image: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """``out[..., i, j]`` = the largest of ``image[..., i:i + rows, j:j + cols]`` (a max filter, valid part)."""
    height, width = image.shape[-2] - rows + 1, image.shape[-1] - cols + 1
    along_rows = image[..., :height, :]
    for k in range(1, rows):
        along_rows = np.maximum(along_rows, image[..., k:k + height, :])
    out = along_rows[..., :width]
    for k in range(1, cols):
        out = np.maximum(out, along_rows[..., k:k + width])
    return out


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
        refine: bool = True,  # exploiting choices are moved to the best window within REFINE_CELLS cells
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

    def predict(self, canvases: Canvases) -> np.ndarray:
        """Success probabilities (ANGLES, len(OPENINGS), POSITIONS, POSITIONS) of every grasp choice."""
        torch = self._torch
        torch.set_num_threads(self.threads)
        with torch.inference_mode():
            return torch.sigmoid(self.net(canvases.images)).numpy()

    def plan(self, observation: Observation, max_grasps: int = 10) -> list[Grasp]:
        from grasp_cell.models.planar_net import STRIDE

        self.refresh()
        if max_grasps < 1:
            return []
        try:
            overview = Overview.from_observation(observation)
        except ValueError:
            return []  # nothing seen in the bin: nothing to grasp
        canvases = Canvases.of(overview)
        probability = self.predict(canvases)
        fingertips = canvases.fingertips(self.jaw, self.grip_depth, self.tip_clearance)
        # every choice of the dense output (ANGLES, OPENINGS, POSITIONS, POSITIONS) whose fingers fit nearby
        valid = fingertips.fit_near(STRIDE, REFINE_CELLS)
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
        order = [chosen] + [int(i) for i in ranked if i != chosen and valid.flat[i]][: max_grasps - 1]
        # each choice is placed where its fingers fit; the chosen one, when exploiting, where the net likes it best
        exploit = method in ("max", "max5") and self.refine
        placed = [self._placed(canvases, fingertips, PlanarAction.from_flat(i), float(probability.flat[i]),
                               exploit and k == 0) for k, i in enumerate(order)]
        grasps = [self._grasp(a, q, canvases, fingertips, observation.intrinsics) for a, q in placed]
        return [replace(grasps[0], selection=method)] + sorted(grasps[1:], key=lambda g: -g.quality)

    def _placed(self, canvases: Canvases, fingertips: Fingertips, action: PlanarAction, quality: float,
                best: bool) -> tuple[PlanarAction, float]:
        """(action, predicted success) of a dense choice placed on a window start within REFINE_CELLS cells
        of its grid position where its fingers fit: the nearest such start, or with ``best`` the start and
        opening the net scores highest there. The dense positions lie 10 mm apart, coarse against a
        20-30 mm part between the fingers."""
        steps = np.arange(-REFINE_CELLS, REFINE_CELLS + 1)
        rows, cols = (a.ravel() for a in np.meshgrid(action.row + steps, action.col + steps, indexing="ij"))
        keep = (rows >= 0) & (rows < canvases.starts) & (cols >= 0) & (cols < canvases.starts)
        rows, cols = rows[keep], cols[keep]
        fits = np.isfinite(fingertips.tips[action.angle][:, rows, cols].T)  # (starts, openings)
        if best:
            with self._torch.inference_mode():
                windows = canvases.windows(action.angle, rows, cols)
                scores = self._torch.sigmoid(self.net(windows))[:, :, 0, 0].numpy()
            start, opening = np.unravel_index(int(np.argmax(np.where(fits, scores, -1.0))), scores.shape)
            quality = float(scores[start, opening])
        else:
            distance = np.hypot(rows - action.row, cols - action.col)
            start, opening = int(np.argmin(np.where(fits[:, action.opening], distance, np.inf))), action.opening
        return PlanarAction(action.angle, int(opening), int(rows[start]), int(cols[start])), quality

    def _method(self) -> str:
        if self.selection != "schedule":
            return self.selection
        return self.schedule.method(self.attempts_seen, self.rng)

    def _grasp(self, action: PlanarAction, quality: float, canvases: Canvases, fingertips: Fingertips,
               intrinsics: CameraIntrinsics) -> Grasp:
        x, y = canvases.centres(action.angle, action.row, action.col)
        index = (action.angle, action.opening, action.row, action.col)
        floor = canvases.overview.floor
        surface = floor - float(fingertips.surface[action.angle, action.row, action.col]) * HEIGHT_SCALE
        tips = floor - float(fingertips.tips[index]) * HEIGHT_SCALE
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
