"""Rendering the world through a pinhole camera with an optical frame (z forward, x right, y down).

The OpenGL matrices are built from ``CameraIntrinsics`` and ``T_world_cam`` so that a pixel (u, v) with
depth d deprojects (``CameraIntrinsics.deproject``) onto the rendered surface; pixel centres sit at
integer coordinates (the ROS convention), which is where the rasteriser samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet

from grasp_cell.core.camera import CameraIntrinsics
from grasp_cell.core.transform import Transform
from grasp_cell.sim.config import DepthNoiseConfig

# optical frame (z forward, y down) to OpenGL camera frame (z backward, y up)
_T_OPTICAL_GL = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclass(frozen=True)
class Rendering:
    depth: np.ndarray  # (H, W) float32 [m] along the optical axis, NaN where nothing was hit
    color: np.ndarray  # (H, W, 3) uint8 RGB
    segmentation: np.ndarray  # (H, W) int32 PyBullet body id, -1 for background


def view_matrix(T_world_cam: Transform) -> list[float]:
    """Column-major OpenGL view matrix (world to GL camera) of an optical frame pose."""
    T_cam_world = T_world_cam.inverse().as_matrix()
    return (_T_OPTICAL_GL @ T_cam_world).T.reshape(-1).tolist()


def projection_matrix(intrinsics: CameraIntrinsics, near: float, far: float) -> list[float]:
    """Column-major OpenGL projection matching the pinhole model, pixel centres at integers."""
    w, h = intrinsics.width, intrinsics.height
    projection = np.zeros((4, 4))
    projection[0, 0] = 2.0 * intrinsics.fx / w
    projection[0, 2] = 1.0 - (2.0 * intrinsics.cx + 1.0) / w
    projection[1, 1] = 2.0 * intrinsics.fy / h
    projection[1, 2] = (2.0 * intrinsics.cy + 1.0) / h - 1.0
    projection[2, 2] = -(far + near) / (far - near)
    projection[2, 3] = -2.0 * far * near / (far - near)
    projection[3, 2] = -1.0
    return projection.T.reshape(-1).tolist()


def render(
    client: int,
    intrinsics: CameraIntrinsics,
    T_world_cam: Transform,
    near: float = 0.1,
    far: float = 2.0,
) -> Rendering:
    """Render depth, color and segmentation with PyBullet's CPU renderer (works headless)."""
    light = T_world_cam.translation + np.array([0.0, 0.0, 0.5])  # a projector-like light near the camera
    _, _, rgba, depth_buffer, segmentation = pybullet.getCameraImage(
        intrinsics.width,
        intrinsics.height,
        viewMatrix=view_matrix(T_world_cam),
        projectionMatrix=projection_matrix(intrinsics, near, far),
        renderer=pybullet.ER_TINY_RENDERER,
        lightDirection=light.tolist(),
        shadow=0,
        physicsClientId=client,
    )
    shape = (intrinsics.height, intrinsics.width)
    buffer = np.asarray(depth_buffer, dtype=np.float32).reshape(shape)
    # OpenGL depth buffer [0, 1] back to metres along the optical axis
    depth = np.float32(far * near) / (np.float32(far) - np.float32(far - near) * buffer)
    depth[buffer >= 1.0] = np.nan
    color = np.ascontiguousarray(np.asarray(rgba, dtype=np.uint8).reshape(shape + (4,))[..., :3])
    return Rendering(depth, color, np.asarray(segmentation, dtype=np.int32).reshape(shape))


def degrade_depth(
    rendering: Rendering,
    noise: DepthNoiseConfig,
    part_ids,
    rng: np.random.Generator,
    intrinsics: CameraIntrinsics,
) -> np.ndarray:
    """Optional depth degradation (a new array): missing data on parts after seed 000 eq. 5, then noise.

    Eq. 5 keeps a pixel's depth only where its intensity lies in [m1, m2] (below m1: too little light
    comes back to measure, above m2: saturated by a specular reflection); m1 and m2 are drawn per capture.
    The intensity is that of shiny metal lit by a projector beside the camera, cos^2 of the angle between
    the surface normal (from the depth image) and the viewing ray: faces turned to the camera saturate,
    steep flanks go dark. Only part pixels (reflective metal) can go missing.
    """
    depth = rendering.depth.copy()
    if noise.missing:
        m1 = rng.uniform(*noise.m1_range)
        m2 = rng.uniform(*noise.m2_range)
        intensity = specular_intensity(depth, intrinsics)
        on_part = np.isin(rendering.segmentation, np.fromiter(part_ids, dtype=np.int32))
        depth[on_part & ~((intensity >= m1) & (intensity <= m2))] = np.nan
    if noise.gaussian_std > 0.0:
        depth += rng.normal(0.0, noise.gaussian_std, size=depth.shape).astype(np.float32)
    return depth


def specular_intensity(depth: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    """cos^2 of the angle between the surface normal and the viewing ray, per pixel (NaN where unknown)."""
    points = intrinsics.point_map(depth)
    d_du = np.gradient(points, axis=1)
    d_dv = np.gradient(points, axis=0)
    normals = np.cross(d_du, d_dv)
    cos_angle = np.abs(np.sum(normals * points, axis=-1)) / (
        np.linalg.norm(normals, axis=-1) * np.linalg.norm(points, axis=-1) + 1e-12
    )
    return cos_angle**2


def realistic_depth_noise(
    depth: np.ndarray,
    rng: np.random.Generator,
    gaussian_std: tuple[float, float] = (0.0005, 0.002),
    downsample: tuple[int, int] = (1, 3),
) -> np.ndarray:
    """Seed 003 section III-B, a new array: (1) pixels go missing with a probability that grows linearly
    with the local depth gradient (min-max scaled over the image to [0, 1]); (2) zero-mean Gaussian noise,
    its std drawn per image from ``gaussian_std`` [m]; (3) the image scaled down n times (n drawn from
    ``downsample``, block mean over valid pixels) and back up (nearest), which removes small depth
    variations a real camera does not resolve. Missing pixels are NaN (the seed's 0)."""
    noisy = depth.astype(np.float32, copy=True)
    grad_v, grad_u = np.gradient(np.nan_to_num(noisy, nan=np.nanmax(noisy) if np.isfinite(noisy).any() else 0.0))
    gradient = np.hypot(grad_u, grad_v)
    scaled = (gradient - gradient.min()) / max(float(gradient.max() - gradient.min()), 1e-9)
    noisy[rng.random(noisy.shape) < scaled] = np.nan
    noisy += rng.normal(0.0, rng.uniform(*gaussian_std), size=noisy.shape).astype(np.float32)
    n = int(rng.integers(downsample[0], downsample[1] + 1))
    if n > 1:
        height, width = noisy.shape
        rows, cols = -(-height // n), -(-width // n)
        padded = np.full((rows * n, cols * n), np.nan, np.float32)
        padded[:height, :width] = noisy
        blocks = padded.reshape(rows, n, cols, n)
        valid = np.isfinite(blocks)
        total = np.where(valid, blocks, 0.0).sum(axis=(1, 3))
        count = valid.sum(axis=(1, 3))
        small = np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(np.float32)
        noisy = np.repeat(np.repeat(small, n, axis=0), n, axis=1)[:height, :width]
    return noisy
