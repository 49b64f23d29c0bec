"""PDG-Generation (seed 003, section III): dense pixel-level parallel-jaw grasp labels from depth images.

For one camera view of a cluttered bin:

1. the camera depth image I_c (pinhole, the seed's eq. 1 camera) and a parallel depth image I_p (eq. 11:
   every scene point projected along the camera z axis onto the camera's x-y plane, ``eta`` pixels per
   metre), with the body id of every pixel;
2. each object pixel p of the label grid (the network's resolution, half the camera's) is deprojected
   with I_c (eq. 12) and aligned to I_p (eq. 13);
3. around the aligned point, for every angle class k (K = 18) and approach depth d (2 mm steps below
   the surface, up to the finger length L3), the jaw's closing line is read from I_p at ``eta`` resolution
   over the finger width L2 (``PROFILE_ROWS`` lines); width = the opening where the closing fingers first
   touch the object + 5 mm; then the checks: collision (no other body, bin wall or floor under the open
   fingers or between them, the object narrower than L4), flatness of the contact area (eq. 14) and
   force closure (each contact normal within the friction cone of mu = 0.2).

Deviations from the seed, and why:

- Of the depths that pass, the deepest collision-free one is checked and labelled: it is the depth the
  network's inference picks ("d is calculated from the depth image so that the gripper does not
  collide"), so the labels describe the grasps that will be executed (on-policy); a pixel/angle whose
  deepest depth fails the checks is negative even if a shallower one would pass.
- Only the target body may lie between the fingers (the seed's first real-world failure cause is
  picking two touching objects at once).
- Heights are taken as solid columns under the visible surface (what a depth image can know); the
  vertical tilt of a contact normal comes from the surface slope across the contact edge in I_p.
- I_p is made by ray casting: PyBullet's TinyRenderer does not honour an orthographic projection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pybullet

from grasp_cell.core.camera import CameraIntrinsics
from grasp_cell.core.jaw import ANGLE_CLASSES, JawGeometry, angle_of_class, closing_direction
from grasp_cell.core.transform import Transform

RAY_BATCH = 8192  # rays per pybullet.rayTestBatch call (its limit is just under 16 k)


@dataclass(frozen=True)
class PdgSettings:
    eta: float = 800.0  # I_p pixels per metre (seed: 5,000 for smaller objects; 1.25 mm here)
    depth_step: float = 0.002  # seed: g = 2 mm
    width_tolerance: float = 0.005  # seed: + 5 mm on the contact width
    friction: float = 0.2  # seed: mu for the friction cone
    flatness_max: float = 1.5e-3  # [m] std of the contact points about their fitted line (eq. 14)
    min_grip_depth: float = 0.006  # [m] the fingers reach at least this far below the grasped surface
    profile_rows: int = 5  # closing lines read across the finger width L2
    angle_classes: int = ANGLE_CLASSES
    margin: float = 0.01  # [m] I_p covers the bin's inner walls plus this


@dataclass(frozen=True)
class ParallelImage:
    """I_p: depth along the camera z axis [m] (NaN: nothing hit) and body ids (-1) on a metric grid.

    Pixel (r, c) looks along +z from camera-frame point (x0 + c / eta, y0 + r / eta)."""

    depth: np.ndarray  # (H, W) float32
    body: np.ndarray  # (H, W) int32
    eta: float
    x0: float
    y0: float

    def to_pixel(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Camera-frame (x, y) to fractional (row, col) of I_p (eq. 11/13)."""
        return (np.asarray(y) - self.y0) * self.eta, (np.asarray(x) - self.x0) * self.eta


def render_parallel(
    client: int,
    T_world_cam: Transform,
    corners_world: np.ndarray,
    settings: PdgSettings,
    near: float = 0.05,
    far: float = 2.0,
) -> ParallelImage:
    """Cast rays along the camera z axis over the camera-frame bounding box of ``corners_world`` (N, 3)."""
    corners_cam = T_world_cam.inverse().apply(corners_world)
    lo = corners_cam[:, :2].min(axis=0) - settings.margin
    hi = corners_cam[:, :2].max(axis=0) + settings.margin
    cols = int(math.ceil((hi[0] - lo[0]) * settings.eta)) + 1
    rows = int(math.ceil((hi[1] - lo[1]) * settings.eta)) + 1
    x = lo[0] + np.arange(cols) / settings.eta
    y = lo[1] + np.arange(rows) / settings.eta
    xx, yy = np.meshgrid(x, y)
    start = np.stack([xx, yy, np.full_like(xx, near)], axis=-1).reshape(-1, 3)
    end = start.copy()
    end[:, 2] = far
    start_w = T_world_cam.apply(start)
    end_w = T_world_cam.apply(end)
    hits = []
    for i in range(0, len(start_w), RAY_BATCH):
        hits += pybullet.rayTestBatch(
            start_w[i : i + RAY_BATCH].tolist(),
            end_w[i : i + RAY_BATCH].tolist(),
            numThreads=1,
            physicsClientId=client,
        )
    body = np.fromiter((hit[0] for hit in hits), dtype=np.int32, count=len(hits)).reshape(rows, cols)
    fraction = np.fromiter((hit[2] for hit in hits), dtype=np.float32, count=len(hits)).reshape(rows, cols)
    depth = np.where(body >= 0, near + fraction * (far - near), np.nan).astype(np.float32)
    return ParallelImage(depth, body, settings.eta, float(lo[0]), float(lo[1]))


def offset_camera_pose(
    T_world_center: Transform, height: float, max_offset: float, rng: np.random.Generator
) -> Transform:
    """Seed 003 eqs. 2-4: the camera ``height`` above the tray centre, shifted by up to ``max_offset`` (l)
    in x and y and turned so its z axis still points at the tray centre (the seed's R_o writes tan where
    the angle that keeps the centre in view is arctan; look-at gives that exactly)."""
    alpha = rng.uniform(0.0, 1.0, size=2)
    shift = 2 * max_offset * alpha - max_offset
    eye = T_world_center.apply([shift[0], shift[1], height])
    up = T_world_center.rotation @ np.array([0.0, 1.0, 0.0])
    return Transform.look_at(eye, T_world_center.translation, up=up)


@dataclass(frozen=True)
class _PaddedImage:
    """I_p flattened with a border of nothing-hit wide enough for the jaw, so stencils never leave it."""

    depth: np.ndarray  # flat float32
    body: np.ndarray  # flat int32
    stride: int
    pad: int
    half_steps: int
    eta: float

    @classmethod
    def of(cls, parallel: ParallelImage, jaw: JawGeometry) -> "_PaddedImage":
        reach = jaw.max_opening / 2 + jaw.finger_thickness  # the open fingers' outer faces
        half_steps = int(math.ceil(reach * parallel.eta))
        pad = half_steps + int(math.ceil(jaw.finger_width * parallel.eta)) + 1
        depth = np.pad(parallel.depth, pad, constant_values=np.nan)
        body = np.pad(parallel.body, pad, constant_values=-1)
        return cls(depth.ravel(), body.ravel(), depth.shape[1], pad, half_steps, parallel.eta)


def label_view(
    depth: np.ndarray,
    body: np.ndarray,
    intrinsics: CameraIntrinsics,
    parallel: ParallelImage,
    target_ids,
    jaw: JawGeometry = JawGeometry(),
    settings: PdgSettings = PdgSettings(),
) -> np.ndarray:
    """Labelled grasps of one view: rows [v, u, k, width] for every pixel of ``depth`` (the label grid, with
    its ``intrinsics``; perfect depth, not the noisy one) on a body in ``target_ids`` and every angle class k
    whose grasp passes the checks. ``body`` is the body id per pixel of ``depth``."""
    candidates = np.isin(body, np.fromiter(target_ids, dtype=np.int32)) & np.isfinite(depth)
    v, u = np.nonzero(candidates)
    if v.size == 0:
        return np.zeros((0, 4), np.float32)
    points = intrinsics.deproject(u, v, depth[v, u])  # eq. 12
    row, col = parallel.to_pixel(points[:, 0], points[:, 1])  # eq. 13
    r0, c0 = np.rint(row).astype(int), np.rint(col).astype(int)
    inside = (r0 >= 0) & (r0 < parallel.depth.shape[0]) & (c0 >= 0) & (c0 < parallel.depth.shape[1])
    keep = inside.copy()
    keep[inside] = parallel.body[r0[inside], c0[inside]] == body[v[inside], u[inside]]  # same surface in I_p
    v, u, r0, c0 = v[keep], u[keep], r0[keep], c0[keep]
    target = body[v, u]
    surface = parallel.depth[r0, c0]
    padded = _PaddedImage.of(parallel, jaw)
    base = (r0 + padded.pad) * padded.stride + (c0 + padded.pad)
    rows_out = []
    for k in range(settings.angle_classes):
        theta = float(angle_of_class(k, settings.angle_classes))
        ok, width = _check_angle(padded, base, surface, target, theta, jaw, settings)
        n = int(ok.sum())
        if n:
            rows_out.append(np.column_stack([v[ok], u[ok], np.full(n, k), width[ok]]))
    if not rows_out:
        return np.zeros((0, 4), np.float32)
    return np.concatenate(rows_out).astype(np.float32)


def _check_angle(padded: "_PaddedImage", base, surface, target, theta, jaw: JawGeometry, settings: PdgSettings):
    """Checks of every candidate at one angle; returns (passes, width) per candidate."""
    step = 1.0 / padded.eta
    half_steps = padded.half_steps
    m = np.arange(half_steps + 1)  # distance index from the centre along the closing direction
    t = np.linspace(-jaw.finger_width / 2, jaw.finger_width / 2, settings.profile_rows)  # across it [m]
    close_x, close_y = closing_direction(theta)
    across_x, across_y = -close_y, close_x
    # one integer stencil (side, line t, distance m) of I_p pixels, shifted to every candidate's pixel
    s = np.stack([-m, m])[:, None, :] * step  # (2, 1, M) [m]
    offset_col = np.rint((s * close_x + t[None, :, None] * across_x) * padded.eta).astype(np.int64)
    offset_row = np.rint((s * close_y + t[None, :, None] * across_y) * padded.eta).astype(np.int64)
    index = base[:, None, None, None] + (offset_row * padded.stride + offset_col)[None]
    body = padded.body[index]  # (N, 2, T, M)
    # entry depth: how far below the grasped surface a sampled surface lies (the fingertips at depth d
    # pass beside it iff d <= entry); nothing hit is NaN (never in the way: fmin skips it)
    entry = padded.depth[index] - surface[:, None, None, None]
    is_target = body == target[:, None, None, None]
    entry_target = np.where(is_target, entry, np.nan)
    entry_other = np.where(is_target, np.nan, entry)

    # the finger width collapses onto the shallowest entry across it (any obstructed line obstructs it),
    # and both sides onto one: the coupled fingers open symmetrically
    target_m = np.fmin.reduce(np.fmin.reduce(entry_target, axis=2), axis=1)  # (N, M)
    other_m = np.fmin.reduce(np.fmin.reduce(entry_other, axis=2), axis=1)
    # target_reach(m): the shallowest target entry at distance m or further out
    target_reach = np.fmin.accumulate(target_m[:, ::-1], axis=1)[:, ::-1]
    other_near = np.fmin.accumulate(other_m, axis=1)  # the shallowest other entry within distance m

    depths = np.arange(1, int(jaw.finger_length / settings.depth_step) + 1) * settings.depth_step
    depths = depths[depths <= jaw.finger_length - jaw.tcp_above_tips]
    # outermost target distance index touched at each depth level i (depth d_i > entry): target_reach is
    # non-decreasing in m, so count per m the first level deep enough, then accumulate over levels
    first_level = np.ceil(np.nan_to_num(target_reach, nan=np.inf) / settings.depth_step - 1e-6)
    first_level = np.clip(first_level, 0, depths.size).astype(np.int64)  # level index i has depth (i+1)*step
    counts = np.zeros((len(base), depths.size + 1), np.int64)
    rows = np.arange(len(base))
    for column in range(half_steps + 1):
        counts[rows, first_level[:, column]] += 1
    outer = np.cumsum(counts[:, :-1], axis=1) - 1  # (N, D), -1: no target between the fingers
    width = 2 * (outer + 0.5) * step + settings.width_tolerance
    finger_outer = np.minimum(np.ceil((width / 2 + jaw.finger_thickness) / step).astype(np.int64), half_steps)
    blocked = np.take_along_axis(np.nan_to_num(other_near, nan=np.inf), finger_outer, axis=1) < depths[None, :]
    feasible = (outer >= 0) & (width <= jaw.max_opening) & ~blocked
    # the deepest depth reached without a collision on the way down (collisions only grow with depth)
    first_bad = np.where((~feasible) & (outer >= 0), np.arange(depths.size)[None, :], depths.size).min(axis=1)
    reached = first_bad - 1
    reached_c = np.maximum(reached, 0)
    grip_depth = depths[reached_c]
    ok = (reached >= 0) & feasible[rows, reached_c] & (grip_depth >= settings.min_grip_depth)
    grip_width = width[rows, reached_c]

    # contact geometry at the chosen depth, per side and closing line
    line_reach = np.fmin.accumulate(entry_target[..., ::-1], axis=3)[..., ::-1]
    line_outer = (line_reach < grip_depth[:, None, None, None]).sum(axis=3) - 1  # (N, 2, T)
    in_contact = line_outer >= 0
    contact_s = (line_outer + 0.5) * step  # [m] contact distance from the centre per side/line
    ok &= in_contact.any(axis=2).all(axis=1)

    # flatness (eq. 14) and the in-plane tilt of each side's contact, from a line fit s = a + b t
    weights = in_contact.astype(float)
    count = np.maximum(weights.sum(axis=2), 1)
    t_mean = (weights * t).sum(axis=2) / count
    s_mean = (weights * contact_s).sum(axis=2) / count
    dt = (t - t_mean[..., None]) * weights
    ds = (contact_s - s_mean[..., None]) * weights
    var_t = (dt * dt).sum(axis=2)
    slope = np.where(var_t > 0, (dt * ds).sum(axis=2) / np.maximum(var_t, 1e-12), 0.0)
    residual = ds - slope[..., None] * dt
    flat_std = np.sqrt((residual * residual * weights).sum(axis=2) / count)
    ok &= (flat_std <= settings.flatness_max).all(axis=1)

    # vertical tilt: slope of the surface across the contact edge on the middle closing line
    middle = settings.profile_rows // 2
    mid_lines = np.nan_to_num(entry[:, :, middle, :], nan=np.inf)  # (N, 2, M)
    edge = np.clip(line_outer[:, :, middle], 0, half_steps - 1)
    inner = np.take_along_axis(mid_lines, np.maximum(edge - 1, 0)[..., None], axis=2)[..., 0]
    outer_e = np.take_along_axis(mid_lines, np.minimum(edge + 1, half_steps)[..., None], axis=2)[..., 0]
    drop = np.minimum(outer_e, grip_depth[:, None] + 0.05) - inner  # deeper outside a steep edge; cap a void
    steepness = np.maximum(drop, 1e-6) / (2 * step)  # |dz/ds|
    # contact normal (1, -b, 1/steepness) against the closing axis: inside the friction cone?
    tan_total_sq = slope * slope + 1.0 / (steepness * steepness)
    middle_contact = in_contact[:, :, middle]
    tan_total_sq = np.where(middle_contact, tan_total_sq, slope * slope)
    ok &= (tan_total_sq <= settings.friction**2).all(axis=1)
    return ok, grip_width
