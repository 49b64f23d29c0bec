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
_OBSTACLE = -1.0  # [m] parallel jaw: the depth of missing data and of all beyond the bin's walls, in front of all
_LINE_SLACK = 0.010  # [m] parallel jaw: closing lines reach this much further than the jaw could need
_ACROSS_LINES = 5  # parallel jaw: depth profiles across the finger width, edges included
_CONTOUR_SPAN = 0.010  # [m] across the closing line over which a contact's contour normal is averaged
_BOUNDARY_LINES = 2  # lines across the finger width that must see a part end for it to count
_OUTLINE_TOLERANCE = 1.5  # [samples] an end further in than this from between its neighbours' is a dent
_ROUND_DROP = 0.001  # [m] a top falling away by more than this halfway out to its edges is rounded
_MAX_ROUND_ELEVATION = math.radians(10.0)  # contacts this far above a rounded part's widest line do not hold


@dataclass(frozen=True)
class BaselineConfig:
    """Options of the ``baseline`` model; lengths in metres."""

    gripper: GripperKind = GripperKind.SUCTION
    min_quality: float = 0.1  # grasps below this are dropped (the cell then logs no_grasp)
    downsample: int = 2  # plan on factor x factor pixel blocks
    min_spacing: float = 0.025  # between returned grasps, about one part
    floor_margin: float = 0.005  # points closer than this to the fitted bin floor are floor
    wall_clearance: float = 0.003  # from the cup rim to the roi border (the 8 mm stem clears the wall), or from a
    # finger to the bin's walls
    edge_jump: float = 0.006  # depth step between neighbouring (reduced) pixels that counts as an edge
    # suction
    cup_diameter: float = 0.010  # seed 000: a 10 mm cup (the simulated cup too)
    max_tilt_deg: float = 50.0  # steepest approach off the optical axis
    flatness_tolerance: float = 0.002  # RMS deviation from a plane over the cup at which the score halves
    # parallel jaw
    max_opening: float = 0.085
    finger_width: float = 0.020  # finger pad size across the closing direction
    finger_thickness: float = 0.010  # finger size along the closing direction
    jaw_margin: float = 0.005  # opening added on each side of the measured part extent
    min_jaw_margin: float = 0.002  # ... at least, on the side of a close neighbour
    grasp_depth: float = 0.015  # deepest the grasp point goes below the part top (else half the part height)
    tip_clearance: float = 0.007  # free space below the grasp point: fingertips reach 5 mm below it, plus 2 mm
    fingertip_offset: float = 0.005  # how far the fingertips reach below the grasp point (the TCP)
    floor_clearance: float = 0.006  # fingertips stay this far above the bin floor: the arm's position tolerance
    # (2 mm) and then some, as pressing on the floor is a collision
    angle_count: int = 16  # closing directions tried over 180 deg
    friction_coefficient: float = 0.5  # finger pads on parts: contacts must be within atan(mu) of square
    convexity_tolerance: float = 0.002  # drop in the depth slope between samples that ends a part (_piece_ends)

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
        if not 0.0 <= self.min_jaw_margin <= self.jaw_margin:
            raise ValueError(f"need 0 <= min_jaw_margin <= jaw_margin, got {self.min_jaw_margin}, {self.jaw_margin}")


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
    inside: np.ndarray | None = None  # (h, w) reduced pixels inside the roi, where the crop reaches past it
    bin_box: tuple[float, float, float, float] | None = None  # where the crop reaches past the roi: the bin's
    # walls, rising straight up from the roi's edges on the floor: x_min, x_max, y_min, y_max [m], camera frame
    intrinsics: CameraIntrinsics | None = None
    factor: int = 1

    def pixels(self, length: float) -> float:
        """A length [m] at the reference depth in reduced pixels."""
        return length / (self.metres_per_pixel * self.reference_depth)

    def in_bin(self, margin: float) -> np.ndarray:
        """(h, w) whether each reduced pixel's point lies inside the bin's walls (by ``margin`` [m]), everywhere
        where the crop is the roi itself."""
        if self.bin_box is None:
            return np.ones(self.depth.shape, dtype=bool)
        x_min, x_max, y_min, y_max = self.bin_box
        x, y = self.from_reduced(np.arange(self.v.size)[:, None], np.arange(self.u.size)[None, :], self.nearest)
        with np.errstate(invalid="ignore"):
            return (x > x_min + margin) & (x < x_max - margin) & (y > y_min + margin) & (y < y_max - margin)

    def to_reduced(self, x, y, z):
        """Reduced (row, column) coordinates where camera-frame points (x, y, z) [m] show."""
        k = self.intrinsics
        return (k.cy + k.fy * y / z - self.v[0]) / self.factor, (k.cx + k.fx * x / z - self.u[0]) / self.factor

    def from_reduced(self, rows, cols, z):
        """Camera-frame (x, y) [m] of the points at depth ``z`` that show at reduced (row, column)."""
        k = self.intrinsics
        return (self.u[0] + self.factor * cols - k.cx) / k.fx * z, (self.v[0] + self.factor * rows - k.cy) / k.fy * z


def _prepare(observation: Observation, factor: int, walls: bool = False) -> _Crop | None:
    """The reduced roi crop. ``walls``: reach past the roi as far as the inside of the bin shows in the image.

    The roi bounds the bin floor, and a bin's walls rise straight up from it: seen from above, whatever stands
    inside the bin near a wall shows outside the roi's pixel box (further from the image centre the higher it
    is). With ``walls`` the crop takes that in, ``inside`` marks the roi proper and ``bin_box`` the walls.
    """
    intrinsics = observation.intrinsics
    u_min, v_min, u_max, v_max = observation.roi or (0, 0, intrinsics.width, intrinsics.height)
    u_min, v_min = max(int(u_min), 0), max(int(v_min), 0)
    u_max, v_max = min(int(u_max), intrinsics.width), min(int(v_max), intrinsics.height)
    if u_max - u_min < 2 * factor or v_max - v_min < 2 * factor:
        return None
    box = (u_min, v_min, u_max, v_max)
    if walls:
        u_min, v_min, u_max, v_max = _bin_view(observation, box, factor)
    region = observation.depth[v_min:v_max, u_min:u_max]
    region = np.where(region > 0, region, np.nan)  # 0 also means missing
    depth = downsample_depth(region, factor)
    nearest = downsample_depth(region, factor, reduce="nearest")
    # missing pixels next to data (shadows and dropouts at part edges) take the highest neighbour: conservative
    # for collisions without making every part a pixel wider; larger holes stay missing (obstacles)
    highest_around = ndimage.minimum_filter(np.where(np.isfinite(nearest), nearest, np.inf), size=3)
    nearest = np.where(np.isfinite(nearest), nearest, np.where(np.isfinite(highest_around), highest_around, np.nan))
    u = u_min + factor * np.arange(depth.shape[1]) + (factor - 1) / 2
    v = v_min + factor * np.arange(depth.shape[0]) + (factor - 1) / 2
    inside = None
    if walls:  # reduced blocks wholly inside the roi
        inside = ((u - (factor - 1) / 2 >= box[0]) & (u + (factor - 1) / 2 < box[2]))[None, :] & (
            (v - (factor - 1) / 2 >= box[1]) & (v + (factor - 1) / 2 < box[3])
        )[:, None]
    if np.count_nonzero(np.isfinite(depth) if inside is None else np.isfinite(depth) & inside) < _MIN_VALID_PIXELS:
        return None
    points = intrinsics.deproject(u[None, :], v[:, None], depth)
    floor = fit_floor_plane(depth, mask=inside, sample_step=max(1, 4 // factor))
    focal = math.sqrt(intrinsics.fx * intrinsics.fy)
    reference_depth = float(np.median(floor if inside is None else floor[inside]))
    bin_box = None
    if walls:  # the roi's pixel box edges (pixel centres are at integers) on the floor
        bin_box = (
            (box[0] - 0.5 - intrinsics.cx) / intrinsics.fx * reference_depth,
            (box[2] - 0.5 - intrinsics.cx) / intrinsics.fx * reference_depth,
            (box[1] - 0.5 - intrinsics.cy) / intrinsics.fy * reference_depth,
            (box[3] - 0.5 - intrinsics.cy) / intrinsics.fy * reference_depth,
        )
    return _Crop(
        depth, nearest, points, floor, u, v, factor / focal, reference_depth, inside, bin_box, intrinsics, factor
    )


def _bin_view(observation: Observation, box, factor: int) -> tuple[int, int, int, int]:
    """The pixel box that shows the inside of the bin up to its highest point: the roi grown away from the image
    centre by whole blocks, so the roi's own blocks stay where they were."""
    intrinsics = observation.intrinsics
    u_min, v_min, u_max, v_max = box
    region = observation.depth[v_min:v_max, u_min:u_max]
    seen = region[np.isfinite(region) & (region > 0)]
    if seen.size == 0:
        return box
    grow = float(np.max(seen) / np.min(seen))  # floor depth / depth of the highest point
    grown = []
    for edge, centre, limit, sign in (
        (u_min, intrinsics.cx, 0, -1),
        (v_min, intrinsics.cy, 0, -1),
        (u_max, intrinsics.cx, intrinsics.width, 1),
        (v_max, intrinsics.cy, intrinsics.height, 1),
    ):
        reach = max(0.0, sign * (centre + (edge - centre) * grow - edge))
        blocks = min(int(math.ceil(reach / factor)), abs(limit - edge) // factor)
        grown.append(edge + sign * factor * blocks)
    return tuple(grown)


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

    parallel: candidates are the middles of part tops (maxima of the distance to depth edges), centred on
    their part along its chords. Closing lines in ``angle_count`` directions are laid out in the camera frame
    where the fingertips go, five profiles across the finger width each, and split into parts by shape (a
    convex part's depth along a line is convex, its outline across the finger concave, and a line meets it
    in one interval). Along each line the part's edges at the fingertip depth set the opening; the fingers
    need free room beyond them (down to ``min_jaw_margin`` on a tight side, the jaw shifting to the other),
    stop above a neighbour under a finger instead of landing on it, stay ``floor_clearance`` above the floor
    and inside the bin's walls (which rise straight up from the roi's edges on the floor), and nothing but the
    part may stand between them. The contour normals at the contacts must lie in the friction cones, and a
    rounded part must be pinched no higher than its widest line. The quality multiplies contact depth,
    squareness of the contacts and room to miss the part with the mean of three preferences: tolerance to the
    angle, height in the pile and a narrow opening. The approach is top-down.
    """

    name = "baseline"

    def __init__(self, **options):
        self.config = BaselineConfig(**options)
        self.gripper = self.config.gripper

    def plan(self, observation: Observation, max_grasps: int = 10) -> list[Grasp]:
        suction = self.gripper is GripperKind.SUCTION
        crop = _prepare(observation, self.config.downsample, walls=not suction)  # fingers reach beside parts
        if crop is None or max_grasps <= 0:
            return []
        if suction:
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
        inside = valid & crop.inside
        height = np.where(valid, crop.floor - depth, 0.0)  # beyond the roi: the inner faces of the walls

        # candidate centres: the middles of part tops, in the roi. A part's top is bounded by depth edges (its
        # silhouette, or a step to a neighbour) and the floor: its middle is a local maximum of the distance to
        # them, a neck between touching parts is not. Highest first, about half a part apart.
        filled = np.where(valid, depth, -1.0)  # missing pixels make edges with everything around them
        jump = ndimage.maximum_filter(filled, size=3) - ndimage.minimum_filter(filled, size=3)
        tops = valid & (height > cfg.floor_margin) & (jump <= cfg.edge_jump) & crop.in_bin(cfg.wall_clearance)
        interior = ndimage.distance_transform_edt(tops)
        core = _odd(crop.pixels(0.5 * cfg.min_spacing))
        peaks = tops & inside & (interior >= ndimage.maximum_filter(interior, size=core)) & (interior >= 1.5)
        rows, cols = np.nonzero(peaks)
        if rows.size == 0:
            return []
        count = _CANDIDATES_PER_GRASP * max(max_grasps, 10)
        keep = _select_spread(height[rows, cols], rows, cols, crop.pixels(0.5 * cfg.min_spacing), count)
        rows, cols = rows[keep].astype(float), cols[keep].astype(float)
        # the top of each candidate: the highest point next to it; its centre in the camera frame
        highest = ndimage.minimum_filter(np.where(inside, depth, np.inf), size=3)
        top_depth = highest[rows.astype(int), cols.astype(int)]
        x, y = crop.from_reduced(rows, cols, top_depth)
        angles = np.pi * np.arange(cfg.angle_count) / cfg.angle_count
        solid = np.where(valid, depth, _OBSTACLE).astype(np.float32)  # missing data is an obstacle

        # grasp point below the top: half the height over the floor, at most grasp_depth, and the fingertips
        # floor_clearance above the floor
        floor_depth = crop.floor[rows.astype(int), cols.astype(int)]
        part_height = floor_depth - top_depth
        grasp_depth = np.minimum(0.5 * part_height, cfg.grasp_depth)
        grasp_depth = np.minimum(grasp_depth, part_height - cfg.fingertip_offset - cfg.floor_clearance)
        fingertip = top_depth + grasp_depth + cfg.tip_clearance
        # contour normals: the height gradient, smoothed for steadier directions on jagged edges,
        # as a slope (Sobel sums 8 pixel differences)
        smooth_height = ndimage.gaussian_filter(height, 1.0)
        pixel_size = crop.metres_per_pixel * crop.reference_depth  # [m]
        slope = tuple(ndimage.sobel(smooth_height, axis=axis) / (8.0 * pixel_size) for axis in (0, 1))
        # centre each candidate on its part first (a top's middle in the image is a pixel or two off, and
        # off-centre contacts on round parts are oblique): midway along the part's narrowest chord of four, which
        # puts it on the part's long axis, then midway along the chord square to that
        compass = np.pi * np.arange(4)[None, :] / 4
        middle, extent, spanned = _JawProfiles.sample(solid, crop, cfg, x, y, fingertip, compass).ends(fingertip, cfg)
        narrow = np.argmin(extent, axis=1)
        square = (narrow + 2) % 4
        found = np.isfinite(extent[np.arange(x.size), narrow])
        both = found & spanned[np.arange(x.size), square]
        for pick, use in ((narrow, found), (square, both)):
            move = np.where(use, middle[np.arange(x.size), pick], 0.0)
            x = x + move * np.cos(compass[0, pick])
            y = y + move * np.sin(compass[0, pick])

        profiles = _JawProfiles.sample(solid, crop, cfg, x, y, fingertip, angles[None, :])
        lines = profiles.measure(fingertip, top_depth, floor_depth, slope, cfg)
        # how deep each closing line's grasp point goes below the top: less where the fingers must stay above a
        # neighbour
        line_depth = lines.fingertip - cfg.tip_clearance - top_depth[:, None]
        feasible = lines.feasible & (part_height[:, None] > 2 * cfg.floor_margin) & (line_depth > 0.0)

        # score (see _line_quality): how well the fingers hold the part, ranked by tolerance to the angle, the top
        # of the pile first and a snug opening
        neighbours = np.roll(feasible, 1, axis=1).astype(float) + np.roll(feasible, -1, axis=1)
        robust = 0.5 + 0.25 * neighbours
        elevation = 0.5 + 0.5 * np.clip(part_height / max(part_height.max(), 1e-6), 0.0, 1.0)
        quality = _line_quality(line_depth, lines.grip, lines.width, lines.margin, robust, elevation[:, None], cfg)
        quality = np.where(feasible, quality, 0.0)

        best = np.argmax(quality, axis=1)
        index = np.nonzero(quality[np.arange(rows.size), best] > 0.0)[0]  # min_quality applies after centring
        if index.size == 0:
            return []
        best = best[index]
        theta = angles[best]
        # centre the jaws on the part along the closing line (across it, the candidate is centred already)
        shift_along = lines.middle[index, best]
        moved_x = x[index] + shift_along * np.cos(theta)
        moved_y = y[index] + shift_along * np.sin(theta)
        # keep the centred grasp only where its own closing line is still feasible
        centred = _JawProfiles.sample(solid, crop, cfg, moved_x, moved_y, fingertip[index], theta[:, None]).measure(
            fingertip[index], top_depth[index], floor_depth[index], slope, cfg
        )
        centred_depth = centred.fingertip[:, 0] - cfg.tip_clearance - top_depth[index]
        use_centred = centred.feasible[:, 0] & (centred_depth > 0.0)  # else the midpoint on the original line
        width = np.where(use_centred, centred.width[:, 0], lines.width[index, best])
        grip = np.where(use_centred, centred.grip[:, 0], lines.grip[index, best])
        margin = np.where(use_centred, centred.margin[:, 0], lines.margin[index, best])
        final_depth = np.where(use_centred, centred_depth, line_depth[index, best])
        shift = np.where(use_centred, centred.shift[:, 0], lines.shift[index, best])
        grasp_x = np.where(use_centred, moved_x, x[index]) + shift * np.cos(theta)
        grasp_y = np.where(use_centred, moved_y, y[index]) + shift * np.sin(theta)
        final_quality = _line_quality(final_depth, grip, width, margin, robust[index, best], elevation[index], cfg)
        final_quality = np.clip(final_quality, 0.0, 1.0)
        # where the part's top shows above the grasp point: the jaw's centre must be on a roi pixel
        grasp_rows, grasp_cols = crop.to_reduced(grasp_x, grasp_y, top_depth[index])
        r = np.clip(np.rint(grasp_rows), 0, inside.shape[0] - 1).astype(int)
        c = np.clip(np.rint(grasp_cols), 0, inside.shape[1] - 1).astype(int)
        in_roi = crop.inside[r, c] & (grasp_rows > -0.5) & (grasp_cols > -0.5)
        in_roi &= (grasp_rows < inside.shape[0] - 0.5) & (grasp_cols < inside.shape[1] - 0.5)
        ok = np.nonzero((final_quality >= cfg.min_quality) & (final_quality > 0.0) & in_roi)[0]
        spacing = crop.pixels(cfg.min_spacing)
        chosen = ok[_select_spread(final_quality[ok], grasp_rows[ok], grasp_cols[ok], spacing, max_grasps)]

        grasps = []
        for n in chosen:
            i = index[n]
            z = top_depth[i]
            u, v = intrinsics.cx + intrinsics.fx * grasp_x[n] / z, intrinsics.cy + intrinsics.fy * grasp_y[n] / z
            grasps.append(
                Grasp.from_approach(
                    (grasp_x[n], grasp_y[n], z + final_depth[n]),
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


def _line_quality(grasp_depth, grip, width, margin, robust, elevation, cfg: BaselineConfig):
    """Score of a closing line: how well the fingers hold the part (seated, contacts inside the friction cones,
    room for the pads to miss the part by a little), times the mean of the preferences ``robust`` (neighbouring
    angles work too) and ``elevation`` (top of the pile first), both in [0.5, 1], and a snug opening: they rank
    sound grasps without vetoing any."""
    seated = np.clip(grasp_depth / _FULL_CONTACT_DEPTH, 0.0, 1.0)
    room = 0.75 + 0.25 * np.clip(margin / cfg.jaw_margin, 0.0, 1.0)
    preference = (robust + elevation + _snug(width, cfg.max_opening)) / 3.0
    return seated * (0.5 + 0.5 * grip) * room * preference


def _snug(width, max_opening):
    """Prefer the narrow side of a part: 1 for a closed jaw, 0.5 at the full opening."""
    return 1.0 - 0.5 * np.clip(width / max_opening, 0.0, 1.0)


@dataclass(frozen=True)
class _JawLines:
    """Closing lines of a parallel jaw through candidate centres: one per (candidate, angle), shape (n, k)."""

    feasible: np.ndarray  # both fingers fit beside the part and the opening is within reach
    bounded: np.ndarray  # the part ends on both sides within the sampled line
    width: np.ndarray  # [m] jaw opening: the part's extent plus the margins
    shift: np.ndarray  # [m] from the centre to the jaw's centre, along the line
    grip: np.ndarray  # [0, 1] how far inside the friction cones the contact normals lie (1: square on)
    fingertip: np.ndarray  # [m] depth down to which the fingers find free space: the requested one, or less
    # where the fingers must stay above a neighbouring part
    middle: np.ndarray  # [m] from the centre to the midpoint between the part's edges, along the line
    margin: np.ndarray  # [m] the smaller of the pads' openings beyond the part


@dataclass(frozen=True)
class _JawProfiles:
    """Depth along closing lines through candidate centres, (n, k, s, L): L lines across the finger width."""

    samples: np.ndarray  # [m]; _OBSTACLE where missing data or the bin's walls are in the way
    step: float  # [m] between samples
    centre: int  # sample index of the candidate centre
    rows: np.ndarray  # (n,) reduced-pixel row of each candidate centre
    cols: np.ndarray  # (n,)
    angles: np.ndarray  # (n or 1, k) [rad] closing directions in the image
    pixels_per_metre: np.ndarray  # (n,) reduced pixels per metre at the fingertips

    @classmethod
    def sample(cls, solid, crop: _Crop, cfg, x, y, fingertip, angles) -> "_JawProfiles":
        """Profiles through centres at camera-frame (x, y) (n,) [m], where the lines show at depth ``fingertip``
        (n,): a finger standing on the line occupies that point from the fingertip up, and whatever stands there
        (from the floor up) hides the fingertip's point from the camera. Beyond the bin's walls is an obstacle.

        Each half-line reaches past half the largest opening by a margin and a finger, plus _LINE_SLACK for
        candidates off their part's middle."""
        step = crop.metres_per_pixel * crop.reference_depth  # [m] about one reduced pixel
        reach = 0.5 * cfg.max_opening + cfg.jaw_margin + cfg.finger_thickness + _LINE_SLACK
        reach = int(math.ceil(reach / step))
        along = (np.arange(-reach, reach + 1) * step).astype(np.float32)
        across = (np.linspace(-0.5, 0.5, _ACROSS_LINES) * cfg.finger_width).astype(np.float32)
        cos = np.cos(angles).astype(np.float32)[..., None, None]
        sin = np.sin(angles).astype(np.float32)[..., None, None]
        x_line = x.astype(np.float32)[:, None, None, None] + (along[:, None] * cos - across * sin)
        y_line = y.astype(np.float32)[:, None, None, None] + (along[:, None] * sin + across * cos)
        rows, cols = crop.to_reduced(x_line, y_line, fingertip.astype(np.float32)[:, None, None, None])
        samples = ndimage.map_coordinates(
            solid, (rows.ravel(), cols.ravel()), order=1, mode="constant", cval=_OBSTACLE
        ).reshape(rows.shape)
        if crop.bin_box is not None:  # the fingers stay inside the bin's walls
            x_min, x_max, y_min, y_max = crop.bin_box
            clearance = cfg.wall_clearance
            beyond = (x_line < x_min + clearance) | (x_line > x_max - clearance)
            beyond |= (y_line < y_min + clearance) | (y_line > y_max - clearance)
            samples[beyond] = _OBSTACLE
        centre_rows, centre_cols = crop.to_reduced(x, y, fingertip)
        scale = 1.0 / (crop.metres_per_pixel * fingertip)  # reduced pixels per metre at the fingertips
        return cls(samples, step, reach, centre_rows, centre_cols, angles, scale)

    def _sides(self, cfg: BaselineConfig):
        """The two half-lines from the centre outwards, (n, k, m, L) each with index 0 at the centre, and where
        the piece of surface through the centre ends on each."""
        sides = (self.samples[:, :, self.centre :, :], self.samples[:, :, self.centre :: -1, :])
        return sides, _piece_ends(sides, cfg.convexity_tolerance)

    def ends(self, fingertip: np.ndarray, cfg: BaselineConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where the part ends along each line at depth ``fingertip`` (n,) [m] (at a wall or a neighbour, if not
        before): the offset [m] from the centre to the midpoint between its ends and the length between them, and
        whether it ends on both sides (n, k) each. The widest across the finger width counts, where the ends on
        the lines across it outline one convex part."""
        sides, others = self._sides(cfg)
        tip = np.broadcast_to(fingertip.astype(np.float32)[:, None], self.samples.shape[:2])
        edges = [_crossing(side, other, tip)[0] for side, other in zip(sides, others)]
        reach = [edge.max(-1) for edge in edges]
        spanned = (reach[0] >= 0.0) & (reach[1] >= 0.0)
        for side, edge, far in zip(sides, edges, reach):
            spanned &= _convex_outline(edge) & _single_run(side, tip, far)
        middle = np.where(spanned, 0.5 * (reach[0] - reach[1]) * self.step, 0.0)
        extent = np.where(spanned, (reach[0] + reach[1]) * self.step, np.inf)
        return middle, extent, spanned

    def measure(self, fingertip, top, bottom, slope: tuple[np.ndarray, np.ndarray], cfg: BaselineConfig) -> _JawLines:
        """Where the part ends along each line, whether the fingers fit beside it, and how squarely they meet it.

        ``fingertip`` (n,) [m] is the depth down to which the fingers need free space (``tip_clearance`` below the
        grasp point): any surface above it blocks a finger. Where a neighbouring part lies under a finger, the
        fingers stop above it instead (``_JawLines.fingertip``). ``top`` and ``bottom`` (n,) [m] are the depths of
        the part's top and of what it rests on. ``slope`` is the (row, column) gradient of the height map (a slope,
        [m/m]): its direction is the contour normal.

        The part is told from what lies next to it by its shape (see ``_piece_ends``, ``_convex_outline`` and
        ``_single_run``): the fingers must clear anything else beside it, and nothing else may stand between them.
        """
        step = self.step
        sides, others = self._sides(cfg)
        finger = (cfg.min_jaw_margin + cfg.finger_thickness) / step
        desired = np.broadcast_to(fingertip.astype(np.float32)[:, None], self.samples.shape[:2])

        # first pass at the requested depth: the fingers stop above any other part beside the target
        clear = np.full(desired.shape, np.inf, dtype=np.float32)
        for side, other in zip(sides, others):
            edge = _crossing(side, other, desired)[0].max(-1)
            index = np.arange(side.shape[2])[:, None]
            # the samples under a pad that opens min_jaw_margin beyond the part (as the room in the second pass)
            lo, hi = np.floor(edge) + 1, edge + finger
            beside = (index >= lo[..., None, None]) & (index < hi[..., None, None]) & (index >= other[:, :, None, :])
            clear = np.minimum(clear, np.where(beside, side, np.inf).min(axis=(2, 3)))
        tip = np.minimum(desired, clear)

        # second pass at that depth: the edges, and free space for each finger from the edge past its outer face
        fingers_free = np.ones(tip.shape, dtype=bool)
        bounded = np.ones(tip.shape, dtype=bool)
        side_edges, rooms = [], []
        for side, other in zip(sides, others):
            edges, piece_end, _ = _crossing(side, other, tip)
            edge = edges.max(-1)  # the widest across the finger: where the flat pad touches the part
            occupied = side < tip[..., None, None]
            # between the fingers, everything above the fingertips must be the part: a neighbour there would be
            # pinched with it. Where two parts touch at about the same height, only the lines across the finger
            # width that cross the gap between them tell them apart: two such lines are enough
            index = np.arange(side.shape[2])[:, None]
            between = (index >= piece_end[:, :, None, :]) & (index <= np.floor(edge)[..., None, None])
            foreign = (between & occupied).any(axis=2).sum(axis=-1)
            fingers_free &= (foreign < _BOUNDARY_LINES) & _convex_outline(edges) & _single_run(side, tip, edge)
            bounded &= edge >= 0.0
            edge = np.maximum(edge, 0.0)
            # free room beyond the edge: up to the first sample with anything above the fingertips on any line
            blocked = occupied.any(axis=-1) & (index[:, 0] > np.floor(edge)[..., None])
            first = np.where(blocked.any(axis=-1), blocked.argmax(axis=-1), side.shape[2])
            rooms.append((first - edge) * step)
            side_edges.append(edge)
        right_edge, left_edge = side_edges
        # each pad opens jaw_margin beyond the part where there is room; where there is not, down to min_jaw_margin,
        # the other pad opening as much further (the nearer pad touches first and slides the part across)
        spare = [room - cfg.finger_thickness for room in rooms]  # the most each pad can open beyond the part
        fingers_free &= (spare[0] >= cfg.min_jaw_margin) & (spare[1] >= cfg.min_jaw_margin)
        margins = [np.minimum(room, cfg.jaw_margin) for room in spare]
        deficit = 2 * cfg.jaw_margin - margins[0] - margins[1]
        for n in range(2):
            extra = np.clip(np.minimum(deficit, spare[n] - margins[n]), 0.0, None)
            margins[n] = margins[n] + extra
            deficit = deficit - extra
        width = (right_edge + left_edge) * step + margins[0] + margins[1]
        middle = 0.5 * (right_edge - left_edge) * step

        # antipodal: the contour normal at each contact must lie inside the friction cone around the closing line;
        # the normal is the height gradient, summed over the finger width
        shape = tip.shape
        friction_angle = math.atan(cfg.friction_coefficient)
        deviation = np.zeros(shape)
        cos, sin = np.cos(self.angles), np.sin(self.angles)
        for offset in (right_edge * step, -left_edge * step):
            g_row, g_col = np.zeros(shape), np.zeros(shape)
            for across in np.array([-0.5, 0.0, 0.5]) * _CONTOUR_SPAN:
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

        # a flat pad meets a rounded part (a sphere, a cylinder across its axis) square on only at its widest,
        # halfway up; fingertips that stop above that (over a neighbour) pinch its upper flank with an edge, and
        # it squeezes out. Rounded: the top falls away by more than _ROUND_DROP halfway out to the edges.
        middle_line = self.samples.shape[-1] // 2
        drop = np.zeros(tip.shape)
        for side, edge in zip(sides, side_edges):
            half = np.clip(np.rint(0.5 * edge).astype(int), 0, side.shape[2] - 1)
            at_half = np.take_along_axis(side[..., middle_line], half[..., None], -1)[..., 0]
            drop = np.maximum(drop, at_half - top[:, None])
        radius = np.maximum(0.5 * (bottom - top), 1e-6)[:, None]
        lowest_tip = tip - cfg.tip_clearance + cfg.fingertip_offset
        above = np.clip((top[:, None] + radius - lowest_tip) / radius, 0.0, 1.0)  # sine of the contact's elevation
        elevation = np.where(drop > _ROUND_DROP, np.arcsin(above), 0.0)
        grip = grip * np.clip(1.0 - elevation / _MAX_ROUND_ELEVATION, 0.0, 1.0)

        feasible = bounded & fingers_free & (width <= cfg.max_opening) & (grip > 0.0)
        shift = middle + 0.5 * (margins[0] - margins[1])
        return _JawLines(feasible, bounded, width, shift, grip, tip, middle, np.minimum(margins[0], margins[1]))


def _piece_ends(sides, tolerance: float) -> list[np.ndarray]:
    """For each half-line (n, k, m, L) from the centre outwards: the index of its first sample that is not on the
    convex piece of surface through the centre, (n, k, L) (m where the piece runs to the end).

    Seen from the camera, a convex part's depth along any image line is a convex function (1/depth of its front
    surface is concave in image coordinates), so from the centre outwards the depth slope can only grow.

    Within a piece the outward depth differences never fall by more than ``tolerance`` below the steepest one
    before (seeded across the centre by the other half-line's first difference); the first sample of a
    difference that does, twice in a row or by twice as much at once, belongs to something else: where a surface
    levels out after a drop, or rises after a valley, that surface is the next part (the sample before the change
    is counted with it, to be safe). Obstacles (negative depth) always end a piece.
    """
    with np.errstate(invalid="ignore"):
        diffs = [np.diff(side, axis=2) for side in sides]  # (n, k, m - 1, L)
        ends = []
        for this, opposite in ((0, 1), (1, 0)):
            d = diffs[this]
            seed = -diffs[opposite][:, :, :1, :]
            steepest = np.maximum.accumulate(np.concatenate([seed, d[:, :, :-1, :]], axis=2), axis=2)
            low = d < steepest - tolerance
            broken = low & np.concatenate([low[:, :, 1:, :], np.ones_like(low[:, :, :1, :])], axis=2)
            broken |= d < steepest - 2 * tolerance  # a step up onto a plateau shows once
            broken |= sides[this][:, :, 1:, :] < 0.0  # an obstacle ends it at once
            ends.append(np.where(broken.any(axis=2), broken.argmax(axis=2), sides[this].shape[2]))
    return ends


def _single_run(side: np.ndarray, tip: np.ndarray, edge: np.ndarray) -> np.ndarray:
    """Whether every line across the finger width (n, k, m, L) that starts on the part at the centre stays on it
    until it leaves it for good, out to ``edge`` (n, k) samples: a straight line meets a convex part in one
    interval, so what stands above ``tip`` (n, k) again after a gap is another part."""
    occupied = side < tip[..., None, None]
    index = np.arange(side.shape[2])[:, None]
    gap = np.maximum.accumulate(~occupied, axis=2)  # at or past the first free sample
    again = occupied & gap & (index <= np.floor(edge)[..., None, None]) & occupied[:, :, :1, :]
    return ~again.any(axis=(2, 3))


def _convex_outline(edges: np.ndarray) -> np.ndarray:
    """Whether the part's ends on the lines across the finger width, (n, k, L) in samples, outline one convex part.

    A convex part's end, as a function of the position across the finger, is concave: it may slant or bulge
    outwards, but never dent inwards or leave a gap. A dent is where two parts meet (where they touch at about
    the same height, the lines across the gap end there and the others run on into the neighbour).
    """
    present = np.isfinite(edges) & (edges >= 0.0)
    convex = np.ones(edges.shape[:-1], dtype=bool)
    for i in range(1, edges.shape[-1] - 1):
        around = present[..., i - 1] & present[..., i + 1]
        with np.errstate(invalid="ignore"):
            dented = edges[..., i] < 0.5 * (edges[..., i - 1] + edges[..., i + 1]) - _OUTLINE_TOLERANCE
        convex &= ~(around & (~present[..., i] | dented))
    return convex


def _crossing(side: np.ndarray, other: np.ndarray, tip: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the piece on each half-line (n, k, m, L) first drops below depth ``tip`` (n, k): in samples from the
    centre, interpolated, (n, k, L); -inf where the centre itself is free. Also the index of the first sample
    that is not the piece's, and whether the piece ran into something else above ``tip`` first, (n, k, L) each.

    The first sample beyond the piece (``other``) may still be the piece's own edge (a sample blending a steep
    side into what lies below it): it counts as the piece where the next sample is free already. Where the
    surface stays above ``tip`` past it, the next part begins there, and the edge is put halfway before it.
    """
    size = side.shape[2]
    index = np.arange(size)[:, None]
    level = tip[..., None, None]
    free = side >= level
    after = np.take_along_axis(free, np.minimum(other + 1, size - 1)[:, :, None, :], 2)[:, :, 0, :]
    limit = np.minimum(np.where(after, other + 1, other), size - 1)
    free &= index <= limit[:, :, None, :]
    found = free.any(axis=2)
    first = free.argmax(axis=2)
    inner = np.take_along_axis(side, np.maximum(first - 1, 0)[:, :, None, :], 2)[:, :, 0, :]
    outer = np.take_along_axis(side, first[:, :, None, :], 2)[:, :, 0, :]
    # a step edge (a part's side down to the floor) shows as a ramp one pixel wide: it lies where the ramp is
    # halfway down, however low the fingertips reach
    level = np.minimum(tip[..., None], 0.5 * (inner + outer))
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = (level - inner) / (outer - inner)
    fraction = np.where(np.isfinite(fraction), np.clip(fraction, 0.0, 1.0), 1.0)
    edge = np.where(first > 0, first - 1 + fraction, -np.inf)
    return np.where(found, edge, np.minimum(other, size) - 0.5), np.where(after, other + 1, other), ~found


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
