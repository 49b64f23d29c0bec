"""Synthetic bin scenes rendered into depth images by ray casting analytic shapes (no physics, no PyBullet).

The bin frame has its origin at the centre of the bin floor, z up. Parts rest on the floor or, where they
overlap others, on top of them (a crude pile: no physics, so a stacked part may float or cut into another).
Every renderer call is vectorised over the pixels of each shape's image bounding box.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from grasp_cell.core.camera import CameraIntrinsics
from grasp_cell.core.transform import Transform, rotation_about_axis

FLOOR_ID = 0  # the bin floor
WALL_ID = -1  # bin walls and rims
TABLE_ID = -2  # the table around the bin (and anything a ray misses)


class PartShape(str, enum.Enum):
    CYLINDER = "cylinder"  # axis along the part's z
    BOX = "box"
    SPHERE = "sphere"
    CAPSULE = "capsule"  # axis along the part's z


@dataclass(frozen=True)
class Part:
    """One part of a scene; ``extents`` is its bounding box in its own frame [m]."""

    part_id: int  # >= 1, the value of its pixels in the scene's part-id mask
    shape: PartShape
    extents: tuple[float, float, float]  # cylinder/capsule: (diameter, diameter, length); sphere: (d, d, d)
    T_bin_part: Transform

    @property
    def radius(self) -> float:
        return 0.5 * self.extents[0]


@dataclass(frozen=True)
class BinGeometry:
    """An open box; sizes in metres."""

    inner_length: float = 0.35  # along the bin x axis
    inner_width: float = 0.25  # along the bin y axis
    wall_height: float = 0.10
    wall_thickness: float = 0.01
    floor_thickness: float = 0.01


@dataclass(frozen=True)
class SyntheticScene:
    depth: np.ndarray  # (H, W) float32 [m], NaN where missing
    part_id: np.ndarray  # (H, W) int16: part ids >= 1, or FLOOR_ID / WALL_ID / TABLE_ID
    parts: tuple[Part, ...]
    intrinsics: CameraIntrinsics
    T_cam_bin: Transform
    roi: tuple[int, int, int, int]  # (u_min, v_min, u_max, v_max), max exclusive: the bin floor's image box
    bin: BinGeometry

    def T_cam_part(self, part: Part) -> Transform:
        return self.T_cam_bin * part.T_bin_part


# part size ranges [m], drawn uniformly
CYLINDER_DIAMETER = (0.019, 0.0307)
CYLINDER_LENGTH = (0.0257, 0.0317)
BOX_EDGE = (0.015, 0.040)
SPHERE_DIAMETER = (0.015, 0.030)
CAPSULE_DIAMETER = (0.012, 0.020)
CAPSULE_LENGTH = (0.030, 0.045)


def overhead_camera(camera_height: float = 0.7) -> Transform:
    """``T_cam_bin`` of a camera ``camera_height`` [m] above the bin floor centre, looking straight down.

    Image x runs along the bin's length, image y against the bin's y axis.
    """
    T_bin_cam = Transform.look_at(eye=(0.0, 0.0, camera_height), target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0))
    return T_bin_cam.inverse()


def random_scene(
    rng: np.random.Generator,
    part_count: int = 20,
    intrinsics: CameraIntrinsics | None = None,
    camera_height: float = 0.7,  # [m] above the bin floor
    shapes: tuple[PartShape, ...] = (PartShape.CYLINDER, PartShape.BOX),
    standing_fraction: float = 0.3,  # share of cylinders / capsules standing on an end face
    pile: bool = True,  # False: parts that find no free floor spot are dropped instead of stacked
    bin_geometry: BinGeometry | None = None,
) -> SyntheticScene:
    """Place ``part_count`` parts at random poses in a bin and render the depth image (noise-free)."""
    intrinsics = intrinsics or CameraIntrinsics.default()
    bin_geometry = bin_geometry or BinGeometry()
    parts = place_parts(rng, part_count, bin_geometry, tuple(PartShape(s) for s in shapes), standing_fraction, pile)
    return render_scene(parts, intrinsics, overhead_camera(camera_height), bin_geometry)


def place_parts(rng, part_count, bin_geometry, shapes, standing_fraction, pile, attempts: int = 30) -> list[Part]:
    """Drop parts one after another at random spots; a part overlapping others rests on the highest of them."""
    placed: list[tuple[Part, np.ndarray, float, float]] = []  # part, xy centre, footprint radius, top height
    for part_id in range(1, part_count + 1):
        shape = shapes[rng.integers(len(shapes))]
        extents, R_bin_part = _random_extents_and_orientation(rng, shape, standing_fraction)
        half_size = 0.5 * np.abs(R_bin_part) @ np.asarray(extents)  # bin-axis-aligned half extents
        footprint = float(np.hypot(half_size[0], half_size[1]))
        limit = np.array([bin_geometry.inner_length, bin_geometry.inner_width]) / 2 - half_size[:2] - 0.002
        if (limit <= 0).any():
            continue
        xy, support = None, 0.0
        for _ in range(attempts):
            candidate = rng.uniform(-limit, limit)
            below = [top for _, c, r, top in placed if np.linalg.norm(candidate - c) < r + footprint]
            if not below:
                xy, support = candidate, 0.0
                break
            if pile and xy is None:
                xy, support = candidate, max(below)  # keep the first stacked spot in case no free one turns up
        if xy is None:
            continue
        z = support + half_size[2]
        part = Part(part_id, shape, tuple(float(e) for e in extents), Transform(R_bin_part, [xy[0], xy[1], z]))
        placed.append((part, xy, footprint, z + half_size[2]))
    return [entry[0] for entry in placed]


def _random_extents_and_orientation(rng, shape: PartShape, standing_fraction: float):
    yaw = rotation_about_axis((0.0, 0.0, 1.0), rng.uniform(0.0, 2.0 * np.pi))
    lying = rotation_about_axis((1.0, 0.0, 0.0), np.pi / 2)  # part z axis horizontal
    if shape is PartShape.CYLINDER:
        d, length = rng.uniform(*CYLINDER_DIAMETER), rng.uniform(*CYLINDER_LENGTH)
        extents = (d, d, length)
    elif shape is PartShape.CAPSULE:
        d, length = rng.uniform(*CAPSULE_DIAMETER), rng.uniform(*CAPSULE_LENGTH)
        extents = (d, d, length)
    elif shape is PartShape.SPHERE:
        d = rng.uniform(*SPHERE_DIAMETER)
        return (d, d, d), yaw
    else:
        return tuple(rng.uniform(*BOX_EDGE, size=3)), yaw  # rests on its local z face
    standing = rng.random() < standing_fraction
    return extents, yaw if standing else yaw @ lying


def render_scene(
    parts: list[Part],
    intrinsics: CameraIntrinsics,
    T_cam_bin: Transform,
    bin_geometry: BinGeometry | None = None,
) -> SyntheticScene:
    """Ray-cast the bin, the table and the parts; each pixel keeps the nearest hit (a z-buffer)."""
    bin_geometry = bin_geometry or BinGeometry()
    height, width = intrinsics.height, intrinsics.width
    v, u = np.mgrid[0:height, 0:width]
    # rays with unit z, so a hit's ray parameter is its depth
    rays = np.stack([(u - intrinsics.cx) / intrinsics.fx, (v - intrinsics.cy) / intrinsics.fy, np.ones(u.shape)], -1)
    depth = np.full((height, width), np.inf)
    part_id = np.full((height, width), TABLE_ID, dtype=np.int16)

    # table: the plane under the bin
    table_point = T_cam_bin.apply([0.0, 0.0, -bin_geometry.floor_thickness])
    table_normal = T_cam_bin.rotation[:, 2]
    with np.errstate(divide="ignore"):
        t = (table_normal @ table_point) / (rays @ table_normal)
    depth = np.where(t > 0, t, np.inf)

    def draw(hit_depth, window, ident):
        rows, cols = window
        region = depth[rows, cols]
        closer = hit_depth < region
        region[closer] = hit_depth[closer]
        part_id[rows, cols][closer] = ident

    for extents, T_bin_box, ident in _bin_boxes(bin_geometry):
        T_cam_box = T_cam_bin * T_bin_box
        window = _image_window(intrinsics, T_cam_box, extents)
        if window is not None:
            draw(_intersect(PartShape.BOX, extents, T_cam_box, rays[window]), window, ident)
    for part in parts:
        T_cam_part = T_cam_bin * part.T_bin_part
        window = _image_window(intrinsics, T_cam_part, part.extents)
        if window is not None:
            draw(_intersect(part.shape, part.extents, T_cam_part, rays[window]), window, part.part_id)

    depth = np.where(np.isfinite(depth), depth, np.nan).astype(np.float32)
    roi = _floor_roi(intrinsics, T_cam_bin, bin_geometry)
    return SyntheticScene(depth, part_id, tuple(parts), intrinsics, T_cam_bin, roi, bin_geometry)


def _bin_boxes(bin_geometry: BinGeometry):
    """(extents, T_bin_box, id) of the floor slab and the four walls."""
    g = bin_geometry
    outer_x, outer_y = g.inner_length + 2 * g.wall_thickness, g.inner_width + 2 * g.wall_thickness
    yield (outer_x, outer_y, g.floor_thickness), Transform(translation=[0, 0, -g.floor_thickness / 2]), FLOOR_ID
    z = g.wall_height / 2
    for sign in (-1.0, 1.0):
        x = sign * (g.inner_length + g.wall_thickness) / 2
        y = sign * (g.inner_width + g.wall_thickness) / 2
        yield (g.wall_thickness, outer_y, g.wall_height), Transform(translation=[x, 0, z]), WALL_ID
        yield (outer_x, g.wall_thickness, g.wall_height), Transform(translation=[0, y, z]), WALL_ID


def _floor_roi(intrinsics, T_cam_bin, g: BinGeometry) -> tuple[int, int, int, int]:
    corners = np.array([[sx * g.inner_length / 2, sy * g.inner_width / 2, 0.0] for sx in (-1, 1) for sy in (-1, 1)])
    uv = intrinsics.project(T_cam_bin.apply(corners))
    u_min, v_min = np.ceil(uv.min(axis=0)).astype(int)
    u_max, v_max = np.floor(uv.max(axis=0)).astype(int) + 1
    return (
        int(max(u_min, 0)),
        int(max(v_min, 0)),
        int(min(u_max, intrinsics.width)),
        int(min(v_max, intrinsics.height)),
    )


def _image_window(intrinsics: CameraIntrinsics, T_cam_shape: Transform, extents):
    """Row and column slices covering the projection of the shape's bounding box, or None if not in view."""
    half = 0.5 * np.asarray(extents)
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * half
    points = T_cam_shape.apply(corners)
    if (points[:, 2] <= 1e-3).any():
        return None
    uv = intrinsics.project(points)
    u_lo, v_lo = np.floor(uv.min(axis=0)).astype(int) - 1
    u_hi, v_hi = np.ceil(uv.max(axis=0)).astype(int) + 2
    u_lo, v_lo = max(u_lo, 0), max(v_lo, 0)
    u_hi, v_hi = min(u_hi, intrinsics.width), min(v_hi, intrinsics.height)
    if u_lo >= u_hi or v_lo >= v_hi:
        return None
    return slice(v_lo, v_hi), slice(u_lo, u_hi)


def _intersect(shape: PartShape, extents, T_cam_shape: Transform, rays: np.ndarray) -> np.ndarray:
    """Depth of the first hit of camera rays (..., 3) with unit z on the shape; inf where they miss."""
    # rays in the shape frame: origin o (the camera centre), directions d
    origin = T_cam_shape.inverse().translation
    directions = rays @ T_cam_shape.rotation  # R^T d for each ray
    half = 0.5 * np.asarray(extents, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if shape is PartShape.BOX:
            return _hit_box(origin, directions, half)
        if shape is PartShape.SPHERE:
            return _hit_sphere(origin, directions, half[0], np.zeros(3))
        radius, half_length = half[0], half[2]
        side = _hit_cylinder_side(origin, directions, radius, half_length)
        if shape is PartShape.CYLINDER:
            caps = [_hit_disc(origin, directions, radius, z) for z in (-half_length, half_length)]
        else:
            caps = [_hit_sphere(origin, directions, radius, np.array([0, 0, z])) for z in (-half_length, half_length)]
        return np.minimum(side, np.minimum(*caps))


def _hit_box(origin, directions, half):
    t1 = (-half - origin) / directions
    t2 = (half - origin) / directions
    t_near = np.nanmax(np.minimum(t1, t2), axis=-1)
    t_far = np.nanmin(np.maximum(t1, t2), axis=-1)
    hit = (t_near <= t_far) & (t_near > 0)
    return np.where(hit, t_near, np.inf)


def _hit_sphere(origin, directions, radius, centre):
    offset = origin - centre
    a = np.einsum("...i,...i->...", directions, directions)
    b = 2.0 * directions @ offset
    c = offset @ offset - radius * radius
    disc = b * b - 4 * a * c
    t = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2 * a)
    return np.where((disc >= 0) & (t > 0), t, np.inf)


def _hit_cylinder_side(origin, directions, radius, half_length):
    dx, dy, dz = directions[..., 0], directions[..., 1], directions[..., 2]
    a = dx * dx + dy * dy
    b = 2.0 * (origin[0] * dx + origin[1] * dy)
    c = origin[0] ** 2 + origin[1] ** 2 - radius * radius
    disc = b * b - 4 * a * c
    t = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2 * a)
    z = origin[2] + t * dz
    return np.where((disc >= 0) & (a > 1e-12) & (t > 0) & (np.abs(z) <= half_length), t, np.inf)


def _hit_disc(origin, directions, radius, z_plane):
    t = (z_plane - origin[2]) / directions[..., 2]
    x = origin[0] + t * directions[..., 0]
    y = origin[1] + t * directions[..., 1]
    return np.where((t > 0) & (x * x + y * y <= radius * radius), t, np.inf)


def add_sensor_noise(
    depth: np.ndarray,
    rng: np.random.Generator,
    noise_std: float = 0.0005,  # [m] Gaussian noise on every pixel
    edge_dropout: float = 0.5,  # chance that a pixel next to a depth jump > 10 mm is missing
    hole_count: int = 5,  # round holes of missing data (specular spots)
    hole_radius: tuple[int, int] = (2, 6),  # [px]
) -> np.ndarray:
    """A copy of ``depth`` with the kinds of defects structured-light cameras show."""
    noisy = depth + rng.normal(0.0, noise_std, depth.shape).astype(np.float32)
    jump = np.zeros(depth.shape, dtype=bool)
    jump[:, 1:] |= np.abs(np.diff(depth, axis=1)) > 0.01
    jump[1:, :] |= np.abs(np.diff(depth, axis=0)) > 0.01
    noisy[jump & (rng.random(depth.shape) < edge_dropout)] = np.nan
    height, width = depth.shape
    v, u = np.ogrid[0:height, 0:width]
    for _ in range(hole_count):
        cu, cv = rng.integers(width), rng.integers(height)
        radius = rng.integers(hole_radius[0], hole_radius[1] + 1)
        noisy[(u - cu) ** 2 + (v - cv) ** 2 <= radius * radius] = np.nan
    return noisy
