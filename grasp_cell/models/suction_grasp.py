"""Seed 000's dual-resolution suction model: depth image in, ranked suction grasps out.

The net (``grasp_cell.models.suction_net``) scores every 128 x 128 patch on an 8-pixel grid over the bin's
region of interest in one dense pass. The best cells (spaced apart) are refined: the patches around each,
2 pixels apart, are scored and the most confident one wins. A grasp is the patch centre's pixel at the
predicted camera z, pz, through the camera model, approaching along the predicted v (seed III-A). Its
quality is the detector confidence d.

Served by name per weights file in the models folder: ``suction_dual`` (with the context net) and
``suction_single`` (the seed's single-resolution ablation).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from grasp_cell.core.grasp import Grasp, GripperKind
from grasp_cell.models.base import GraspModel, Observation, models_dir, register_weights_files, weights_file_factory
from grasp_cell.models.suction_net import PATCH, STRIDE

WEIGHTS_NAME = re.compile(r"^suction_(dual|single)$")
REFINE_OFFSETS = (-4, -2, 0, 2, 4)  # [px] around a grid cell's centre, per axis
MIN_APPROACH_Z = 0.2  # an approach must point away from the camera at least this much (unit vector z)


def network_image(depth: np.ndarray) -> np.ndarray:
    """The net's input from a depth image [m]: missing (NaN or <= 0) is 0, as eq. 5 makes it."""
    depth = np.asarray(depth, dtype=np.float32)
    return np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)


class SuctionGraspModel(GraspModel):
    """Seed 000's network as a grasp model (see the module docstring)."""

    gripper = GripperKind.SUCTION

    def __init__(
        self,
        checkpoint: dict,
        name: str = "suction_dual",
        min_quality: float = 0.05,  # patches less confident than this are not grasps
        refine: int = 2,  # best grid cells refined at 2 px (0: grid centres only); each costs ~16 ms on this CPU
        spacing: int = 3,  # [grid cells] ranked grasps lie this many cells apart (Chebyshev) or more
        threads: int = 1,
    ):
        import torch

        from grasp_cell.models.suction_net import SuctionNet

        if not 0.0 <= min_quality <= 1.0:
            raise ValueError(f"min_quality must lie in [0, 1], got {min_quality}")
        self.name = name
        self.min_quality, self.refine, self.spacing, self.threads = min_quality, refine, spacing, threads
        self.net = SuctionNet(context=bool(checkpoint["context"]))
        self.net.load_state_dict(checkpoint["state_dict"])
        self.net.eval()
        self._torch = torch

    @classmethod
    def untrained(cls, context: bool = True, **options) -> "SuctionGraspModel":
        from grasp_cell.models.suction_net import SuctionNet

        checkpoint = {"state_dict": SuctionNet(context).state_dict(), "context": context}
        options.setdefault("name", "suction_dual" if context else "suction_single")
        return cls(checkpoint, **options)

    @classmethod
    def from_file(cls, path: Path | str, **options) -> "SuctionGraspModel":
        import torch

        checkpoint = torch.load(Path(path), map_location="cpu", weights_only=True)
        options.setdefault("name", Path(path).stem)
        return cls(checkpoint, **options)

    def plan(self, observation: Observation, max_grasps: int = 10) -> list[Grasp]:
        torch = self._torch
        torch.set_num_threads(self.threads)
        intrinsics = observation.intrinsics
        u_min, v_min, u_max, v_max = observation.roi or (0, 0, intrinsics.width, intrinsics.height)
        if u_max - u_min < 1 or v_max - v_min < 1 or max_grasps < 1:
            return []
        image = network_image(observation.depth)
        # the patches centred on the roi's grid: the padded image's top-left patch is centred on (u0, v0)
        half = PATCH // 2
        u0, v0 = int(u_min), int(v_min)
        columns = -(-(int(u_max) - u0) // STRIDE)
        rows = -(-(int(v_max) - v0) // STRIDE)
        padded = window(image, u0 - half, v0 - half, STRIDE * (columns - 1) + PATCH, STRIDE * (rows - 1) + PATCH)
        with torch.inference_mode():
            d, v, pz = self.net.dense(torch.from_numpy(padded)[None, None])
        confidence = torch.sigmoid(d[0, 0]).numpy()
        approach = v[0].numpy()  # (3, rows, cols)
        depth_z = pz[0, 0].numpy()
        # grid cells best first, spaced, then each refined around its centre
        order = np.argsort(-confidence, axis=None, kind="stable")
        cells: list[tuple[int, int]] = []
        for flat in order:
            if confidence.flat[flat] < self.min_quality or len(cells) == max_grasps:
                break
            row, col = divmod(int(flat), confidence.shape[1])
            if all(max(abs(row - r), abs(col - c)) >= self.spacing for r, c in cells):
                cells.append((row, col))
        candidates = []
        for rank, (row, col) in enumerate(cells):
            u, vv = u0 + STRIDE * col, v0 + STRIDE * row
            best = (float(confidence[row, col]), u, vv, approach[:, row, col], float(depth_z[row, col]))
            if rank < self.refine:
                best = max(best, self._refined(image, u, vv), key=lambda item: item[0])
            candidates.append(best)
        grasps = []
        for quality, u, vv, direction, z in sorted(candidates, key=lambda item: -item[0]):
            norm = float(np.linalg.norm(direction))
            if norm < 1e-6 or not np.isfinite(z) or z <= 0:
                continue
            direction = direction / norm
            if direction[2] < MIN_APPROACH_Z:  # would approach from behind the part
                continue
            position = intrinsics.deproject(u, vv, z)
            quality = min(max(quality, 0.0), 1.0)
            grasps.append(
                Grasp.from_approach(position, direction, GripperKind.SUCTION, quality, pixel=(u, vv), model=self.name)
            )
        return grasps

    def _refined(self, image: np.ndarray, u: int, v: int) -> tuple:
        """The most confident patch centred within REFINE_OFFSETS of (u, v): (d, u, v, approach, pz)."""
        torch = self._torch
        half = PATCH // 2
        centres = [(u + du, v + dv) for dv in REFINE_OFFSETS for du in REFINE_OFFSETS]
        patches = np.stack([window(image, cu - half, cv - half, PATCH, PATCH) for cu, cv in centres])
        with torch.inference_mode():
            d, direction, z = self.net(torch.from_numpy(patches)[:, None])
        best = int(torch.argmax(d))
        cu, cv = centres[best]
        return float(torch.sigmoid(d[best])), cu, cv, direction[best].numpy(), float(z[best])


def window(image: np.ndarray, left: int, top: int, width: int, height: int, fill=0.0) -> np.ndarray:
    """``image[top:top + height, left:left + width]`` (trailing axes kept), ``fill`` where that leaves the image
    (0: missing depth)."""
    out = np.full((height, width, *image.shape[2:]), fill, image.dtype)
    rows = slice(max(top, 0), min(top + height, image.shape[0]))
    cols = slice(max(left, 0), min(left + width, image.shape[1]))
    if rows.start < rows.stop and cols.start < cols.stop:
        out[rows.start - top : rows.stop - top, cols.start - left : cols.stop - left] = image[rows, cols]
    return out


def register_suction_models(folder: Path | None = None) -> list[str]:
    """Make the registry list ``suction_dual`` / ``suction_single`` for the weights files in ``folder``."""
    return register_weights_files(folder or models_dir(), WEIGHTS_NAME, _factory, _registered)


_registered: set[str] = set()  # the names register_suction_models added


def _factory(name: str):
    return weights_file_factory(name, GripperKind.SUCTION, SuctionGraspModel)
