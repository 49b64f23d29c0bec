"""Non-learned grasp planners: a geometric baseline (suction cup or parallel jaw) and a random floor.

Both work in the roi crop of the depth image, reduced by block averaging (``downsample``), and map their
picks back to full-resolution pixels. Every per-pixel step is a numpy / scipy.ndimage array operation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from grasp_cell.core.camera import CameraIntrinsics
from grasp_cell.core.geometry import LocalPlanes, downsample_depth, fit_floor_plane, fit_local_planes
from grasp_cell.core.grasp import Grasp, GripperKind
from grasp_cell.models.base import GraspModel, Observation, register

TOP_DOWN = (0.0, 0.0, 1.0)  # approach along the optical axis, away from the camera
_FULL_CONTACT_DEPTH = 0.010  # [m] finger contact depth at which a jaw grasp counts as fully seated
_MIN_VALID_PIXELS = 50  # fewer valid (reduced) roi pixels than this and there is nothing to plan on
_MIN_CONTOUR_SLOPE = 0.3  # height change per lateral distance below which a surface is too gentle to pinch
_CLEARANCE_RING = 2.0  # [cup diameters] the area checked for neighbours standing above the cup
_OBSTRUCTION_SCALE = 0.010  # [m] a neighbour this far above the cup (beyond the tilt) zeroes its clearance
_CANDIDATES_PER_GRASP = 8  # parallel jaw: part tops examined per grasp asked for


@dataclass(frozen=True)
class BaselineConfig:
    """Options of the ``baseline`` model; lengths in metres."""

    gripper: GripperKind = GripperKind.SUCTION
    min_quality: float = 0.1  # grasps below this are dropped (the cell then logs no_grasp)
    downsample: int = 2  # plan on factor x factor pixel blocks
    min_spacing: float = 0.025  # between returned grasps, about one part
    floor_margin: float = 0.005  # points closer than this to the fitted bin floor are floor
    wall_clearance: float = 0.003  # suction: from the cup rim to the roi border (the 8 mm stem clears the wall)
    # suction
    cup_diameter: float = 0.010  # seed 000: a 10 mm cup (the simulated cup too)
    max_tilt_deg: float = 50.0  # steepest approach off the optical axis
    flatness_tolerance: float = 0.002  # RMS deviation from a plane over the cup at which the score halves
    edge_jump: float = 0.006  # depth step between neighbouring (reduced) pixels that counts as an edge
    # parallel jaw
    max_opening: float = 0.085
    finger_width: float = 0.010  # fingertip size, both across and along the closing direction
    jaw_margin: float = 0.005  # opening added on each side of the measured part extent
    grasp_depth: float = 0.015  # deepest the grasp point goes below the part top (else half the part height)
    tip_clearance: float = 0.007  # free space below the grasp point: fingertips reach 5 mm below it, plus 2 mm
    angle_count: int = 16  # closing directions tried over 180 deg
    friction_coefficient: float = 0.5  # finger pads on parts: contacts must be within atan(mu) of square

    def __post_init__(self):
        object.__setattr__(self, "gripper", GripperKind.parse(self.gripper))
        if self.gripper is GripperKind.THREE_FINGER:
            raise ValueError("the baseline plans for 'suction' or 'parallel' grippers, not 'three_finger'")
        if not 0.0 <= self.min_quality <= 1.0:
            raise ValueError(f"min_quality must lie in [0, 1], got {self.min_quality}")
        if self.downsample < 1:
            raise ValueError(f"downsample must be >= 1, got {self.downsample}")
        if self.angle_count < 2:
            raise ValueError(f"angle_count must be >= 2, got {self.angle_count}")
        if self.min_spacing < 0.0:
            raise ValueError(f"min_spacing must be >= 0, got {self.min_spacing}")
        if self.max_opening <= 2 * self.jaw_margin:
            raise ValueError("max_opening must exceed twice the jaw margin")


@dataclass(frozen=True)
class _Crop:
    """The roi of one observation, reduced: what both planners work on."""

    depth: np.ndarray  # (h, w) [m] block means, NaN where any pixel of the block is missing
    nearest: np.ndarray  # (h, w) [m] the nearest (highest) point of each block, NaN where all are missing
    points: np.ndarray  # (h, w, 3) camera frame [m]
    floor: np.ndarray  # (h, w) [m] depth of the fitted bin floor
    u: np.ndarray  # (w,) full-resolution u of each column's centre
    v: np.ndarray  # (h,) full-resolution v of each row's centre
    metres_per_pixel: float  # size of one reduced pixel at unit depth = factor / f
    reference_depth: float  # [m] median floor depth, for converting lengths to pixels

    def pixels(self, length: float) -> float:
        """A length [m] at the reference depth in reduced pixels."""
        return length / (self.metres_per_pixel * self.reference_depth)


def _prepare(observation: Observation, factor: int) -> _Crop | None:
    intrinsics = observation.intrinsics
    u_min, v_min, u_max, v_max = observation.roi or (0, 0, intrinsics.width, intrinsics.height)
    u_min, v_min = max(int(u_min), 0), max(int(v_min), 0)
    u_max, v_max = min(int(u_max), intrinsics.width), min(int(v_max), intrinsics.height)
    if u_max - u_min < 2 * factor or v_max - v_min < 2 * factor:
        return None
    region = observation.depth[v_min:v_max, u_min:u_max]
    region = np.where(region > 0, region, np.nan)  # 0 also means missing
    depth = downsample_depth(region, factor)
    nearest = downsample_depth(region, factor, reduce="nearest")
    # missing pixels next to data (shadows and dropouts at part edges) take the highest neighbour: conservative
    # for collisions without making every part a pixel wider; larger holes stay missing (obstacles)
    highest_around = ndimage.minimum_filter(np.where(np.isfinite(nearest), nearest, np.inf), size=3)
    nearest = np.where(np.isfinite(nearest), nearest, np.where(np.isfinite(highest_around), highest_around, np.nan))
    if np.count_nonzero(np.isfinite(depth)) < _MIN_VALID_PIXELS:
        return None
    u = u_min + factor * np.arange(depth.shape[1]) + (factor - 1) / 2
    v = v_min + factor * np.arange(depth.shape[0]) + (factor - 1) / 2
    points = intrinsics.deproject(u[None, :], v[:, None], depth)
    floor = fit_floor_plane(depth, sample_step=max(1, 4 // factor))
    focal = math.sqrt(intrinsics.fx * intrinsics.fy)
    return _Crop(depth, nearest, points, floor, u, v, factor / focal, float(np.median(floor)))


def _odd(pixels: float, minimum: int = 3) -> int:
    size = max(minimum, int(round(pixels)))
    return size if size % 2 else size + 1


def _select_spread(quality: np.ndarray, rows, cols, spacing: float, count: int) -> np.ndarray:
    """Greedy non-maximum suppression: indices of up to ``count`` candidates, best first, >= ``spacing`` apart."""
    order = np.argsort(-quality, kind="stable")
    rows, cols = rows[order].astype(float), cols[order].astype(float)
    alive = np.ones(order.size, dtype=bool)
    chosen = []
    while len(chosen) < count and alive.any():
        best = int(np.argmax(alive))  # the first alive one is the best left
        chosen.append(order[best])
        alive &= (rows - rows[best]) ** 2 + (cols - cols[best]) ** 2 >= spacing * spacing
        alive[best] = False
    return np.array(chosen, dtype=int)


@register("baseline")
class BaselineModel(GraspModel):
    """Geometric grasp planner on the depth image, for a suction cup or a parallel-jaw gripper.

    suction: local plane fits over the cup footprint give the surface normal (the approach is its
    reverse) and a flatness score; the quality multiplies flatness, tilt, clearance of the cup from
    taller neighbours, distance from depth edges and height above the bin floor.

    parallel: at the tops of parts (maxima of the smoothed height), depth profiles in ``angle_count``
    closing directions find where the surface drops on both sides below the fingertips, with room for
    the fingers; the contour normals at the contacts must lie in the friction cones (antipodal). The
    jaws are centred on the part, and the quality multiplies contact depth, squareness of the contacts,
    a narrow opening, tolerance to the angle and height in the pile. The approach is top-down.
    """

    name = "baseline"

    def __init__(self, **options):
        self.config = BaselineConfig(**options)
        self.gripper = self.config.gripper

    def plan(self, observation: Observation, max_grasps: int = 10) -> list[Grasp]:
        crop = _prepare(observation, self.config.downsample)
        if crop is None or max_grasps <= 0:
            return []
        if self.gripper is GripperKind.SUCTION:
            return self._plan_suction(crop, observation.intrinsics, max_grasps)
        return self._plan_parallel(crop, observation.intrinsics, max_grasps)

    # suction

    def suction_quality(self, crop: _Crop) -> tuple[np.ndarray, LocalPlanes]:
        """Quality map (h, w) in [0, 1] over the reduced crop (0 where no grasp is allowed), and the plane fits."""
        cfg = self.config
        depth = crop.depth
        valid = np.isfinite(depth)
        # a square of the cup's area: its corners stay on a part top about as wide as the cup
        planes = fit_local_planes(crop.points, _odd(crop.pixels(0.5 * math.sqrt(math.pi) * cfg.cup_diameter)))
        height = crop.floor - depth  # [m] above the floor, along the optical axis

        # tilt of the approach (-normal) from the optical axis
        cos_tilt = -planes.normal[..., 2]
        cos_max = math.cos(math.radians(cfg.max_tilt_deg))
        alignment = np.clip((cos_tilt - cos_max) / (1.0 - cos_max), 0.0, 1.0)

        flatness = 1.0 / (1.0 + (planes.rms / cfg.flatness_tolerance) ** 2)

        # clearance: nothing around the cup may stand above the grasp point by more than the tilt explains
        ring = _odd(crop.pixels(_CLEARANCE_RING * cfg.cup_diameter))
        ring_radius = 0.5 * ring * crop.metres_per_pixel * depth
        highest_around = ndimage.minimum_filter(np.where(valid, depth, np.inf), size=ring, mode="nearest")
        tan_tilt = np.sqrt(np.maximum(1.0 - cos_tilt**2, 0.0)) / np.maximum(cos_tilt, 1e-3)
        obstruction = depth - highest_around - ring_radius * tan_tilt - cfg.floor_margin
        clearance = np.clip(1.0 - obstruction / _OBSTRUCTION_SCALE, 0.0, 1.0)

        # distance from depth edges and missing data, relative to the cup diameter
        filled = np.where(valid, depth, -1.0)  # missing pixels make edges with everything around them
        jump = ndimage.maximum_filter(filled, size=3) - ndimage.minimum_filter(filled, size=3)
        edge_free = valid & (jump <= cfg.edge_jump)
        edge_distance = ndimage.distance_transform_edt(edge_free) * crop.metres_per_pixel * depth
        centring = np.clip(edge_distance / cfg.cup_diameter, 0.0, 1.0)

        # rank the top of the pile first
        top = np.where(valid, height, 0.0).max()
        elevation = np.clip(height / max(top, 1e-6), 0.0, 1.0)

        quality = flatness * alignment * clearance * (0.6 + 0.4 * centring) * (0.5 + 0.5 * elevation)

        border = int(math.ceil(crop.pixels(0.5 * cfg.cup_diameter + cfg.wall_clearance)))
        inside = np.zeros_like(valid)
        inside[border : depth.shape[0] - border, border : depth.shape[1] - border] = True
        allowed = (
            inside
            & valid
            & (height > cfg.floor_margin)
            & np.isfinite(planes.depth)
            & (planes.valid_fraction >= 0.9)
            & (alignment > 0.0)
        )
        return np.where(allowed, np.nan_to_num(quality), 0.0), planes

    def _plan_suction(self, crop: _Crop, intrinsics: CameraIntrinsics, max_grasps: int) -> list[Grasp]:
        quality, planes = self.suction_quality(crop)
        peaks = (quality >= self.config.min_quality) & (quality > 0)
        peaks &= quality >= ndimage.maximum_filter(quality, size=3)
        rows, cols = np.nonzero(peaks)
        chosen = _select_spread(quality[rows, cols], rows, cols, crop.pixels(self.config.min_spacing), max_grasps)
        grasps = []
        for i, j in zip(rows[chosen], cols[chosen]):
            position = intrinsics.deproject(crop.u[j], crop.v[i], planes.depth[i, j])
            grasps.append(
                Grasp.from_approach(
                    position,
                    -planes.normal[i, j],
                    GripperKind.SUCTION,
                    float(np.clip(quality[i, j], 0.0, 1.0)),
                    pixel=(int(round(crop.u[j])), int(round(crop.v[i]))),
                    model=self.name,
                )
            )
        return grasps

    # parallel jaw

    def _plan_parallel(self, crop: _Crop, intrinsics: CameraIntrinsics, max_grasps: int) -> list[Grasp]:
        cfg = self.config
        depth = crop.nearest  # conservative for collisions, and not widened by missing pixels at edges
        valid = np.isfinite(depth)
        height = np.where(valid, crop.floor - depth, 0.0)

        # candidate centres: tops of parts = maxima of the height smoothed over about a part
        part = _odd(crop.pixels(cfg.min_spacing))
        smooth = ndimage.uniform_filter(height, size=part, mode="nearest")
        peaks = valid & (height > cfg.floor_margin) & (smooth >= ndimage.maximum_filter(smooth, size=part))
        rows, cols = np.nonzero(peaks)
        if rows.size == 0:
            return []
        keep = np.argsort(-smooth[rows, cols], kind="stable")[: _CANDIDATES_PER_GRASP * max(max_grasps, 10)]
        rows, cols = rows[keep].astype(float), cols[keep].astype(float)
        # the top of each candidate: the highest point next to it
        highest = ndimage.minimum_filter(np.where(valid, depth, np.inf), size=3)
        top_depth = highest[rows.astype(int), cols.astype(int)]
        angles = np.pi * np.arange(cfg.angle_count) / cfg.angle_count
        solid = np.where(valid, depth, -np.inf)  # missing data and all outside the roi (bin walls) are obstacles

        profiles = _JawProfiles.sample(solid, crop, cfg, rows, cols, top_depth, angles[None, :])
        # grasp point below the top: half the height over the lowest surface around, at most grasp_depth
        lowest = np.where(np.isfinite(profiles.depth), profiles.depth, -np.inf).max(axis=(1, 2))
        lowest = np.minimum(lowest, crop.floor[rows.astype(int), cols.astype(int)])
        part_height = lowest - top_depth
        grasp_depth = np.minimum(0.5 * part_height, cfg.grasp_depth)
        fingertip = top_depth + grasp_depth + cfg.tip_clearance
        # contour normals: the height gradient, smoothed for steadier directions on jagged edges,
        # as a slope (Sobel sums 8 pixel differences)
        smooth_height = ndimage.gaussian_filter(height, 1.0)
        pixel_size = crop.metres_per_pixel * crop.reference_depth  # [m]
        slope = tuple(ndimage.sobel(smooth_height, axis=axis) / (8.0 * pixel_size) for axis in (0, 1))
        lines = profiles.measure(fingertip, slope, cfg)
        feasible = lines.feasible & (part_height[:, None] > 2 * cfg.floor_margin)

        # score: seated fingers, a snug opening, tolerance to the angle, and the top of the pile first
        seated = np.clip(grasp_depth / _FULL_CONTACT_DEPTH, 0.0, 1.0)
        neighbours = np.roll(feasible, 1, axis=1).astype(float) + np.roll(feasible, -1, axis=1)
        robust = 0.5 + 0.25 * neighbours
        elevation = np.clip(part_height / max(part_height.max(), 1e-6), 0.0, 1.0)
        base_quality = seated[:, None] * robust * (0.5 + 0.5 * elevation)[:, None]
        quality = base_quality * (0.5 + 0.5 * lines.grip) * _snug(lines.width, cfg.max_opening)
        quality = np.where(feasible, quality, 0.0)

        best = np.argmax(quality, axis=1)
        index = np.nonzero(quality[np.arange(rows.size), best] > 0.0)[0]  # min_quality applies after centring
        if index.size == 0:
            return []
        best = best[index]
        theta = angles[best]
        # centre the jaws on the part: midway between its edges along the closing line and across it
        across = (best + cfg.angle_count // 2) % cfg.angle_count
        shift_along = lines.shift[index, best]
        shift_across = np.where(lines.bounded[index, across], lines.shift[index, across], 0.0)
        pixels_per_metre = profiles.pixels_per_metre[index]
        phi = angles[across]
        moved_rows = rows[index] + (shift_along * np.sin(theta) + shift_across * np.sin(phi)) * pixels_per_metre
        moved_cols = cols[index] + (shift_along * np.cos(theta) + shift_across * np.cos(phi)) * pixels_per_metre
        # keep the centred grasp only where its own closing line is still feasible
        centred = _JawProfiles.sample(
            solid, crop, cfg, moved_rows, moved_cols, top_depth[index], theta[:, None]
        ).measure(fingertip[index], slope, cfg)
        use_centred = centred.feasible[:, 0]  # else the midpoint on the original line
        width = np.where(use_centred, centred.width[:, 0], lines.width[index, best])
        grip = np.where(use_centred, centred.grip[:, 0], lines.grip[index, best])
        shift = np.where(use_centred, centred.shift[:, 0], shift_along)
        centre_rows = np.where(use_centred, moved_rows, rows[index])
        centre_cols = np.where(use_centred, moved_cols, cols[index])
        grasp_rows = centre_rows + shift * np.sin(theta) * pixels_per_metre
        grasp_cols = centre_cols + shift * np.cos(theta) * pixels_per_metre
        final_quality = base_quality[index, best] * (0.5 + 0.5 * grip) * _snug(width, cfg.max_opening)
        final_quality = np.clip(final_quality, 0.0, 1.0)
        ok = np.nonzero((final_quality >= cfg.min_quality) & (final_quality > 0.0))[0]
        spacing = crop.pixels(cfg.min_spacing)
        chosen = ok[_select_spread(final_quality[ok], grasp_rows[ok], grasp_cols[ok], spacing, max_grasps)]

        grasps = []
        for n in chosen:
            u = float(np.interp(grasp_cols[n], np.arange(crop.u.size), crop.u))
            v = float(np.interp(grasp_rows[n], np.arange(crop.v.size), crop.v))
            i = index[n]
            grasps.append(
                Grasp.from_approach(
                    intrinsics.deproject(u, v, top_depth[i] + grasp_depth[i]),
                    TOP_DOWN,
                    GripperKind.PARALLEL,
                    float(final_quality[n]),
                    closing=(math.cos(theta[n]), math.sin(theta[n]), 0.0),
                    width=float(width[n]),
                    pixel=(int(round(u)), int(round(v))),
                    model=self.name,
                )
            )
        return grasps


def _snug(width, max_opening):
    """Prefer the narrow side of a part: 1 for a closed jaw, 0.5 at the full opening."""
    return 1.0 - 0.5 * np.clip(width / max_opening, 0.0, 1.0)


@dataclass(frozen=True)
class _JawLines:
    """Closing lines of a parallel jaw through candidate centres: one per (candidate, angle), shape (n, k)."""

    feasible: np.ndarray  # both fingers fit beside the part and the opening is within reach
    bounded: np.ndarray  # the part ends on both sides within the sampled line
    width: np.ndarray  # [m] jaw opening: the part's extent plus the margins
    shift: np.ndarray  # [m] from the centre to the midpoint between the part's edges, along the line
    grip: np.ndarray  # [0, 1] how far inside the friction cones the contact normals lie (1: square on)


@dataclass(frozen=True)
class _JawProfiles:
    """Depth along closing lines through candidate centres, (n, k, s): the highest surface across the finger width."""

    depth: np.ndarray  # [m]; -inf where an obstacle (missing data, outside the roi) is in the way
    step: float  # [m] between samples
    centre: int  # sample index of the candidate centre
    rows: np.ndarray  # (n,) reduced-pixel row of each candidate centre
    cols: np.ndarray  # (n,)
    angles: np.ndarray  # (n or 1, k) [rad] closing directions in the image
    pixels_per_metre: np.ndarray  # (n,) at each candidate's depth

    @classmethod
    def sample(cls, solid, crop, cfg, rows, cols, top_depth, angles) -> "_JawProfiles":
        step = crop.metres_per_pixel * crop.reference_depth  # [m] about one reduced pixel
        reach = int(math.ceil((cfg.max_opening + cfg.finger_width) / step))
        along = (np.arange(-reach, reach + 1) * step).astype(np.float32)
        across = (np.array([-0.5, 0.0, 0.5]) * cfg.finger_width).astype(np.float32)
        scale = (1.0 / (crop.metres_per_pixel * top_depth)).astype(np.float32)
        cos = np.cos(angles).astype(np.float32)[..., None, None]
        sin = np.sin(angles).astype(np.float32)[..., None, None]
        du = (along[:, None] * cos - across * sin) * scale[:, None, None, None]
        dv = (along[:, None] * sin + across * cos) * scale[:, None, None, None]
        samples = _sample_bilinear(solid, rows[:, None, None, None] + dv, cols[:, None, None, None] + du)
        return cls(samples.min(axis=-1), step, reach, rows, cols, angles, scale)

    def measure(self, fingertip: np.ndarray, slope: tuple[np.ndarray, np.ndarray], cfg: BaselineConfig) -> _JawLines:
        """Where the part ends along each line, whether the fingers fit beside it, and how squarely they meet it.

        ``fingertip`` (n,) [m] is the depth the finger tips reach: any surface above it blocks a finger.
        ``slope`` is the (row, column) gradient of the height map (a slope, [m/m]): its direction is the contour
        normal.
        """
        profile, step, centre = self.depth, self.step, self.centre
        shape = profile.shape[:2]
        tip = fingertip[:, None, None]
        occupied = profile < tip

        # the occupied run through the centre, and the free space beyond it on both sides
        outward = (profile[..., centre:], profile[..., centre::-1])  # from the centre to the right / left end
        first_free = [np.argmax(side >= tip, axis=-1) for side in outward]
        bounded = (
            occupied[..., centre] & (~occupied[..., centre:]).any(-1) & (~occupied[..., : centre + 1]).any(-1)
        )
        # each edge lies between the last occupied and the first free sample: interpolate the crossing
        edges = []
        for side, free in zip(outward, first_free):
            inner = np.take_along_axis(side, np.maximum(free - 1, 0)[..., None], -1)[..., 0]
            outer = np.take_along_axis(side, free[..., None], -1)[..., 0]
            with np.errstate(invalid="ignore", divide="ignore"):
                fraction = (tip[..., 0] - inner) / (outer - inner)
            fraction = np.where(np.isfinite(fraction), np.clip(fraction, 0.0, 1.0), 1.0)
            edges.append(np.maximum(free - 1, 0) + fraction)  # samples from the centre
        right_edge, left_edge = edges
        width = (right_edge + left_edge) * step + 2 * cfg.jaw_margin

        # each finger needs free samples from the part's edge out past its outer face
        size = profile.shape[-1]
        finger = (cfg.jaw_margin + cfg.finger_width) / step
        right_lo, right_hi = centre + first_free[0], centre + np.ceil(right_edge + finger).astype(int)
        left_lo, left_hi = centre - np.ceil(left_edge + finger).astype(int), centre - first_free[1]
        in_range = (left_lo >= 0) & (right_hi < size)
        blocked = np.concatenate([np.zeros(shape + (1,), int), np.cumsum(occupied, axis=-1)], axis=-1)

        def occupied_count(lo, hi):  # occupied samples in [lo, hi]
            lo, hi = np.clip(lo, 0, size - 1), np.clip(hi, 0, size - 1)
            upper = np.take_along_axis(blocked, (hi + 1)[..., None], -1)[..., 0]
            return upper - np.take_along_axis(blocked, lo[..., None], -1)[..., 0]

        fingers_free = (occupied_count(right_lo, right_hi) == 0) & (occupied_count(left_lo, left_hi) == 0)

        # antipodal: the contour normal at each contact must lie inside the friction cone around the closing line;
        # the normal is the height gradient, summed over the finger width
        friction_angle = math.atan(cfg.friction_coefficient)
        deviation = np.zeros(shape)
        cos, sin = np.cos(self.angles), np.sin(self.angles)
        for offset in (right_edge * step, -left_edge * step):
            g_row, g_col = np.zeros(shape), np.zeros(shape)
            for across in np.array([-0.5, 0.0, 0.5]) * cfg.finger_width:
                along_px = offset * self.pixels_per_metre[:, None]
                across_px = across * self.pixels_per_metre[:, None]
                r = np.rint(self.rows[:, None] + along_px * sin + across_px * cos)
                c = np.rint(self.cols[:, None] + along_px * cos - across_px * sin)
                r = np.clip(r, 0, slope[0].shape[0] - 1).astype(int)
                c = np.clip(c, 0, slope[0].shape[1] - 1).astype(int)
                g_row += slope[0][r, c]
                g_col += slope[1][r, c]
            # a weak gradient is a gentle slope, where a finger would slide off: count it as misaligned
            magnitude = np.maximum(np.hypot(g_row, g_col), 3 * _MIN_CONTOUR_SLOPE)  # 3 samples summed
            square = np.clip(np.abs(g_row * sin + g_col * cos) / magnitude, 0.0, 1.0)
            deviation = np.maximum(deviation, np.arccos(square))
        grip = np.clip(1.0 - deviation / friction_angle, 0.0, 1.0)

        feasible = bounded & in_range & fingers_free & (width <= cfg.max_opening) & (grip > 0.0)
        return _JawLines(feasible, bounded, width, 0.5 * (right_edge - left_edge) * step, grip)


def _sample_bilinear(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``image`` (float32); -inf (an obstacle) where a pixel that contributes is -inf or off it."""
    height, width = image.shape
    # a border of obstacles, so that every coordinate clipped to it reads -inf
    padded = np.pad(image.astype(np.float32), 1, constant_values=-np.inf).ravel()
    rows = np.clip(rows, -1.0, height) + 1.0
    cols = np.clip(cols, -1.0, width) + 1.0
    r0 = np.minimum(rows.astype(np.int32), height)  # floor, as rows >= 0
    c0 = np.minimum(cols.astype(np.int32), width)
    fr, fc = rows - r0, cols - c0
    top = r0 * (width + 2) + c0
    bottom = top + (width + 2)
    with np.errstate(invalid="ignore"):
        total = (padded[top] * (1 - fc) + padded[top + 1] * fc) * (1 - fr)
        total += (padded[bottom] * (1 - fc) + padded[bottom + 1] * fc) * fr
    # -inf times a zero weight gives NaN: count it as blocked too (conservative)
    return np.where(np.isnan(total), -np.inf, total)


@register("random")
class RandomModel(GraspModel):
    """Top-down grasps at uniformly random valid pixels of the roi, with random angle, width and quality.

    The floor that every other model must beat; one ``np.random.Generator`` seeded by ``seed`` drives it.
    """

    name = "random"

    def __init__(
        self,
        gripper: str | GripperKind = GripperKind.SUCTION,
        seed: int | None = None,
        min_width: float = 0.010,  # [m] parallel-jaw openings are drawn from [min_width, max_opening]
        max_opening: float = 0.085,  # [m]
    ):
        self.gripper = GripperKind.parse(gripper)
        if self.gripper is GripperKind.THREE_FINGER:
            raise ValueError("the random model plans for 'suction' or 'parallel' grippers, not 'three_finger'")
        if not 0.0 <= min_width <= max_opening:
            raise ValueError(f"need 0 <= min_width <= max_opening, got {min_width} and {max_opening}")
        self.rng = np.random.default_rng(seed)
        self.min_width, self.max_opening = min_width, max_opening

    def plan(self, observation: Observation, max_grasps: int = 10) -> list[Grasp]:
        intrinsics = observation.intrinsics
        u_min, v_min, u_max, v_max = observation.roi or (0, 0, intrinsics.width, intrinsics.height)
        u_min, v_min = max(int(u_min), 0), max(int(v_min), 0)
        u_max, v_max = min(int(u_max), intrinsics.width), min(int(v_max), intrinsics.height)
        region = observation.depth[v_min:v_max, u_min:u_max]
        rows, cols = np.nonzero(np.isfinite(region) & (region > 0))
        count = min(max(max_grasps, 0), rows.size)
        if count == 0:
            return []
        pick = self.rng.choice(rows.size, size=count, replace=False)
        v, u = rows[pick] + v_min, cols[pick] + u_min
        angles = self.rng.uniform(0.0, np.pi, count)
        if self.gripper is GripperKind.PARALLEL:
            widths = self.rng.uniform(self.min_width, self.max_opening, count)
        else:
            widths = np.zeros(count)
        qualities = np.sort(self.rng.random(count))[::-1]
        positions = intrinsics.deproject(u, v, observation.depth[v, u])
        return [
            Grasp.from_approach(
                positions[n],
                TOP_DOWN,
                self.gripper,
                float(qualities[n]),
                closing=(math.cos(angles[n]), math.sin(angles[n]), 0.0),
                width=float(widths[n]),
                pixel=(int(u[n]), int(v[n])),
                model=self.name,
            )
            for n in range(count)
        ]
