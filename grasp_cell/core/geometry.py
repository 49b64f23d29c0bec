"""Local surface geometry of depth images: block downsampling, box means, local plane fits, floor planes, and
the parallel (top-down) depth image.

numpy only, vectorised over pixels: box sums add shifted slices (small windows) or use an integral image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def downsample_depth(depth: np.ndarray, factor: int, reduce: str = "mean") -> np.ndarray:
    """Reduce ``factor`` x ``factor`` blocks to one pixel; rows and columns that do not fill a block are dropped.

    ``reduce="mean"``: the block mean, missing (NaN) if any pixel of the block is missing (for surface fits).
    ``reduce="nearest"``: the smallest depth of the block's valid pixels, missing only if all are (for
    collision checks: the highest point of a block stands for all of it).
    Reduced pixel (i, j) is centred on original pixel (factor * i + (factor - 1) / 2, factor * j + (factor - 1) / 2).
    """
    if factor < 1:
        raise ValueError(f"downsample factor must be >= 1, got {factor}")
    if reduce not in ("mean", "nearest"):
        raise ValueError(f"unknown reduction '{reduce}'; expected 'mean' or 'nearest'")
    if factor == 1:
        return depth.astype(np.float32, copy=True)
    rows, cols = depth.shape[0] // factor, depth.shape[1] // factor
    # one strided view per position inside the block: cheaper than reducing a reshaped array
    views = [
        depth[i : rows * factor : factor, j : cols * factor : factor] for i in range(factor) for j in range(factor)
    ]
    if reduce == "nearest":
        reduced = views[0].astype(np.float32, copy=True)
        for view in views[1:]:
            np.fmin(reduced, view, out=reduced)  # fmin skips NaN
        return reduced
    reduced = views[0].astype(np.float32, copy=True)
    for view in views[1:]:
        reduced += view  # NaN propagates, which is what "any pixel missing" asks for
    reduced *= 1.0 / (factor * factor)
    return reduced


def box_sum(image: np.ndarray, size: int) -> np.ndarray:
    """Sum over a ``size`` x ``size`` window centred on each pixel (odd size); pixels beyond the border count 0.

    ``image`` is (H, W) or has leading channel axes, (..., H, W): each channel is summed on its own. Small
    windows add shifted slices (fast, and exact enough in float32); large ones use a float64 integral image.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"box size must be odd and positive, got {size}")
    half = size // 2
    height, width = image.shape[-2:]
    lead = [(0, 0)] * (image.ndim - 2)
    if size <= _SHIFTED_SUM_MAX_SIZE:
        padded = np.pad(image, lead + [(half, half), (half, half)])
        rows = padded[..., 0:height, :].copy()
        for k in range(1, size):
            rows += padded[..., k : k + height, :]
        total = rows[..., 0:width].copy()
        for k in range(1, size):
            total += rows[..., k : k + width]
        return total
    integral = np.pad(image.astype(np.float64), lead + [(half + 1, half), (half + 1, half)])
    np.cumsum(integral, axis=-2, out=integral)
    np.cumsum(integral, axis=-1, out=integral)
    return (
        integral[..., size:, size:]
        - integral[..., :-size, size:]
        - integral[..., size:, :-size]
        + integral[..., :-size, :-size]
    )


def window_pixel_count(shape: tuple[int, int], size: int) -> np.ndarray:
    """Pixels inside the image in each ``size`` x ``size`` window (fewer at the border), shape ``shape``."""
    half = size // 2

    def counts(length):
        index = np.arange(length)
        return np.minimum(index + half, length - 1) - np.maximum(index - half, 0) + 1

    return np.outer(counts(shape[0]), counts(shape[1])).astype(np.float32)


_SHIFTED_SUM_MAX_SIZE = 11  # beyond this, the integral image's fixed cost is lower


@dataclass(frozen=True)
class LocalPlanes:
    """A plane z = a x + b y + c fitted by least squares to the valid points in a window around each pixel."""

    normal: np.ndarray  # (H, W, 3) unit normals facing the camera (z < 0); NaN where no fit
    depth: np.ndarray  # (H, W) [m] depth of the fitted plane along each pixel's ray; NaN where the pixel is missing
    rms: np.ndarray  # (H, W) [m] RMS residual of the fit along the optical axis (a flatness measure)
    valid_fraction: np.ndarray  # (H, W) share of the window's pixels that had depth


def fit_local_planes(points: np.ndarray, size: int) -> LocalPlanes:
    """Fit a plane to the ``size`` x ``size`` neighbourhood of every pixel of an organised point map (H, W, 3).

    Missing points are NaN and are left out of the fits. A fit is NaN where its window has fewer than 3 points
    or they are (nearly) collinear. Solved in closed form from box-filtered moments, so it is vectorised.
    """
    valid = np.isfinite(points).all(axis=-1)
    # centre the coordinates so that the moments do not lose precision by cancellation (float32 is then enough);
    # any point near the data will do, so take the mean of a sparse grid
    sparse = points[::4, ::4][valid[::4, ::4]]
    reference = sparse.mean(axis=0) if sparse.size else np.zeros(3)
    x, y, z = (np.where(valid, points[..., i] - reference[i], 0.0).astype(np.float32) for i in range(3))
    channels = np.stack([valid, x, y, z, x * x, x * y, y * y, x * z, y * z, z * z], dtype=np.float32)
    count, *sums = box_sum(channels, size).astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        inverse = 1.0 / count
        mx, my, mz, mxx, mxy, myy, mxz, myz, mzz = (value * inverse for value in sums)
        sxx, sxy, syy = mxx - mx * mx, mxy - mx * my, myy - my * my
        sxz, syz, szz = mxz - mx * mz, myz - my * mz, mzz - mz * mz
        det = sxx * syy - sxy * sxy
        # a degenerate window (a line of points, or < 3 points) has no plane
        scale = (sxx + syy) ** 2
        det[~((count >= 3) & (det > 1e-6 * scale) & (scale > 0))] = np.nan
        slope_x = (sxz * syy - syz * sxy) / det
        slope_y = (syz * sxx - sxz * sxy) / det
        residual = np.maximum(szz - slope_x * sxz - slope_y * syz, 0.0)
        norm = np.sqrt(slope_x * slope_x + slope_y * slope_y + 1.0)
        normal = np.stack([slope_x / norm, slope_y / norm, -1.0 / norm], axis=-1)
        # the plane z = a x + b y + c in camera coordinates, met by the pixel's ray p = t (x/z, y/z, 1)
        offset = mz + reference[2] - slope_x * (mx + reference[0]) - slope_y * (my + reference[1])
        ray_x, ray_y = points[..., 0] / points[..., 2], points[..., 1] / points[..., 2]
        plane_depth = offset / (1.0 - slope_x * ray_x - slope_y * ray_y)
    return LocalPlanes(
        normal=normal.astype(np.float32),
        depth=plane_depth.astype(np.float32),
        rms=np.sqrt(residual).astype(np.float32),
        valid_fraction=(count / window_pixel_count(valid.shape, size)).astype(np.float32),
    )


def fit_floor_plane(
    depth: np.ndarray,
    mask: np.ndarray | None = None,
    inlier_tolerance: float = 0.003,  # [m]
    iterations: int = 4,
    sample_step: int = 4,  # [px] fit on every n-th pixel in both directions
) -> np.ndarray:
    """Depth [m] of the lowest extended plane (the bin floor) at every pixel, shape (H, W).

    A plane n.p = d seen by a pinhole camera has 1/depth affine in (u, v), so the fit is linear (and holds for
    any crop of the image, so no intrinsics are needed).
    It starts from the deeper half of the valid pixels and then refits on the pixels within
    ``inlier_tolerance`` of the plane or below it, as parts only ever lie above the floor.
    """
    valid = np.isfinite(depth) & (depth > 0)
    if mask is not None:
        valid &= mask
    v, u = np.nonzero(valid[::sample_step, ::sample_step])
    v, u = v * sample_step, u * sample_step
    if u.size < 3:
        raise ValueError("too few valid pixels to fit a floor plane")
    z = depth[v, u].astype(np.float64)
    design = np.column_stack([u, v, np.ones_like(u)]).astype(np.float64)
    inliers = z >= np.median(z)
    coefficients = np.array([0.0, 0.0, 1.0 / np.median(z)])
    for _ in range(iterations):
        if inliers.sum() < 3:
            break
        coefficients, *_ = np.linalg.lstsq(design[inliers], 1.0 / z[inliers], rcond=None)
        floor = 1.0 / (design @ coefficients)
        inliers = z >= floor - inlier_tolerance
    rows, cols = np.arange(depth.shape[0])[:, None], np.arange(depth.shape[1])[None, :]
    return (1.0 / (coefficients[0] * cols + coefficients[1] * rows + coefficients[2])).astype(np.float32)


_CELLS_PER_PIXEL = 0.8  # a parallel-depth cell is a little wider than a pixel at the farthest point: no holes


@dataclass(frozen=True)
class ParallelDepth:
    """A depth image seen straight down the camera's z axis (seed 003's parallel depth image I_p, eq. 11), made
    from a camera's own points: the nearest camera z [m] of the points in each cell of a metric grid on the
    camera's x-y plane, NaN where no point fell (unseen: a shadow, a hole, off the image).

    A pinhole image shows a tall thing off the optical axis along a leaning ray, further out than where it
    stands (13 degrees at 13 cm off-axis from 0.6 m); this grid shows it where it stands, so whatever rises
    into a finger's column is read at the finger."""

    depth: np.ndarray  # (rows, cols) float32 [m]
    eta: float  # cells per metre
    x0: float  # camera-frame x, y [m] of the centre of cell (0, 0)
    y0: float

    @classmethod
    def from_depth(
        cls, depth: np.ndarray, intrinsics, box: tuple[int, int, int, int] | None = None, eta: float | None = None
    ) -> "ParallelDepth":
        """From the pixels of a depth image (H, W) [m] of camera ``intrinsics`` (NaN or 0 missing) inside ``box``
        (u_min, v_min, u_max, v_max; default the whole image). ``eta`` defaults to the pixel density at the
        farthest point, so a flat surface fills every cell it covers."""
        if depth.shape != (intrinsics.height, intrinsics.width):
            raise ValueError(
                f"depth is {depth.shape[1]}x{depth.shape[0]}, intrinsics are {intrinsics.width}x{intrinsics.height}"
            )
        u_min, v_min, u_max, v_max = box or (0, 0, intrinsics.width, intrinsics.height)
        u_min, v_min = max(int(u_min), 0), max(int(v_min), 0)
        u_max, v_max = min(int(u_max), intrinsics.width), min(int(v_max), intrinsics.height)
        z = np.asarray(depth[v_min:v_max, u_min:u_max], dtype=np.float32)
        with np.errstate(invalid="ignore"):
            seen = z > 0  # False for NaN too
        if not seen.any():
            return cls(np.full((1, 1), np.nan, np.float32), 1.0, 0.0, 0.0)
        ray_x = ((np.arange(u_min, u_max, dtype=np.float32) - intrinsics.cx) / intrinsics.fx)[None, :]
        ray_y = ((np.arange(v_min, v_max, dtype=np.float32) - intrinsics.cy) / intrinsics.fy)[:, None]
        z = z[seen]
        x = np.broadcast_to(ray_x, seen.shape)[seen] * z
        y = np.broadcast_to(ray_y, seen.shape)[seen] * z
        if eta is None:
            eta = _CELLS_PER_PIXEL * min(intrinsics.fx, intrinsics.fy) / float(z.max())
        x0, y0 = float(x.min()), float(y.min())
        cols = ((x - x0) * eta + 0.5).astype(np.int64)  # nearest cell (coordinates are >= 0 here)
        rows = ((y - y0) * eta + 0.5).astype(np.int64)
        shape = (int(rows.max()) + 1, int(cols.max()) + 1)
        nearest = np.full(shape[0] * shape[1], np.inf, np.float32)
        np.minimum.at(nearest, rows * shape[1] + cols, z)
        nearest[np.isinf(nearest)] = np.nan
        return cls(nearest.reshape(shape), float(eta), x0, y0)

    def at(self, x, y) -> np.ndarray:
        """Depth [m] at camera-frame (x, y) (arrays of one shape): the nearest cell's, NaN where unseen."""
        cols = np.rint((np.asarray(x) - self.x0) * self.eta).astype(np.int64)
        rows = np.rint((np.asarray(y) - self.y0) * self.eta).astype(np.int64)
        inside = (rows >= 0) & (rows < self.depth.shape[0]) & (cols >= 0) & (cols < self.depth.shape[1])
        values = self.depth[np.clip(rows, 0, self.depth.shape[0] - 1), np.clip(cols, 0, self.depth.shape[1] - 1)]
        return np.where(inside, values, np.nan)
