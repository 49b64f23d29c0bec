"""Training patches for seed 000's suction net from a ``grasp_cell.learn.suction_data`` folder.

Section III-C: positives are 128 x 128 patches centred on each labelled grasp, negatives as many patches
at random places of the same views. Section III-D: each patch's depth is masked with eq. 5 when drawn,
I = depth * 1(m1 <= intensity <= m2) + eps, with m1 and m2 uniform per patch over the cell camera's ranges
(``DepthNoiseConfig``) and eps uniform in +-``NOISE`` [m]; only reflective part pixels can go missing, and
missing depth is 0 as on the camera (``grasp_cell.models.suction_grasp.network_image``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from grasp_cell.learn.shards import list_shards
from grasp_cell.learn.suction_data import DEPTH_UNIT, INTENSITY_SCALE, NOT_A_PART
from grasp_cell.models.suction_grasp import window
from grasp_cell.models.suction_net import PATCH
from grasp_cell.sim.config import DepthNoiseConfig

NOISE = 0.001  # [m] eps of eq. 5: the seed's +-1 (in its depth unit, taken as mm)
SHARD_ARRAYS = ("depth", "intensity", "grasp_offsets", "grasps", "parts", "scene")


@dataclass(frozen=True)
class SuctionViews:
    """All views of a dataset in memory, as stored (uint16 depth, uint8 intensity)."""

    depth: np.ndarray  # (N, H, W) uint16, DEPTH_UNIT; 0 = nothing seen
    intensity: np.ndarray  # (N, H, W) uint8
    grasps: np.ndarray  # (M, 6) u, v, pz, ax, ay, az
    grasp_view: np.ndarray  # (M,) the view of each grasp
    scene: np.ndarray  # (N,)
    parts: np.ndarray  # (N,) parts in the bin
    shard_count: int
    meta: dict

    @classmethod
    def load(cls, folder: Path) -> "SuctionViews":
        shards = list_shards(folder, SHARD_ARRAYS)
        if not shards:
            raise FileNotFoundError(f"no complete shards in {folder}")
        arrays = {key: [] for key in ("depth", "intensity", "grasps", "scene", "parts", "counts")}
        for path in shards:
            with np.load(path) as shard:
                for key in ("depth", "intensity", "grasps", "scene", "parts"):
                    arrays[key].append(shard[key])
                arrays["counts"].append(np.diff(shard["grasp_offsets"]))
        counts = np.concatenate(arrays["counts"])
        return cls(
            depth=np.concatenate(arrays["depth"]),
            intensity=np.concatenate(arrays["intensity"]),
            grasps=np.concatenate(arrays["grasps"]).astype(np.float32).reshape(-1, 6),
            grasp_view=np.repeat(np.arange(counts.size), counts),
            scene=np.concatenate(arrays["scene"]).astype(np.int64),
            parts=np.concatenate(arrays["parts"]).astype(np.int64),
            shard_count=len(shards),
            meta=json.loads((Path(folder) / "meta.json").read_text()),
        )

    def __len__(self) -> int:
        return self.depth.shape[0]


def crop(image: np.ndarray, u: int, v: int, fill) -> np.ndarray:
    """The PATCH x PATCH window of ``image`` centred on pixel (u, v) as the model cuts it, ``fill`` outside."""
    return window(image, u - PATCH // 2, v - PATCH // 2, PATCH, PATCH, fill)


def masked_patch(
    depth: np.ndarray, intensity: np.ndarray, rng: np.random.Generator, noise: DepthNoiseConfig = DepthNoiseConfig()
) -> np.ndarray:
    """Eq. 5 on a stored patch: depth [m] kept where the pixel is not a reflective part or its intensity lies
    in [m1, m2], else 0; plus uniform noise in +-NOISE everywhere."""
    m1, m2 = rng.uniform(*noise.m1_range), rng.uniform(*noise.m2_range)
    level = intensity.astype(np.float32) / INTENSITY_SCALE
    measured = (intensity == NOT_A_PART) | ((level >= m1) & (level <= m2))
    image = np.where(measured, depth.astype(np.float32) * DEPTH_UNIT, 0.0)
    return (image + rng.uniform(-NOISE, NOISE, image.shape)).astype(np.float32)


class SuctionPatches(Dataset):
    """Positives (one per labelled grasp of ``views``) then as many negatives; negatives move every epoch
    (``new_epoch``); validation sets keep theirs fixed by ``seed``."""

    def __init__(self, data: SuctionViews, view_index: np.ndarray, seed: int = 0, masking: bool = True):
        self.data = data
        self.views = np.asarray(view_index)
        self.positives = np.nonzero(np.isin(data.grasp_view, self.views))[0]
        self.masking = masking
        self.seed = seed
        self.epoch = 0
        self._draw_negatives()

    def _draw_negatives(self) -> None:
        rng = np.random.default_rng([self.seed, self.epoch])
        count = self.positives.size
        height, width = self.data.depth.shape[1:]
        self.negative_views = rng.choice(self.views, size=count) if self.views.size else np.zeros(0, int)
        self.negative_pixels = np.stack([rng.integers(0, width, count), rng.integers(0, height, count)], axis=1)

    def new_epoch(self) -> None:
        self.epoch += 1
        self._draw_negatives()

    def __len__(self) -> int:
        return 2 * self.positives.size

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, index, 1])
        positive = index < self.positives.size
        if positive:
            row = self.data.grasps[self.positives[index]]
            view = int(self.data.grasp_view[self.positives[index]])
            u, v = int(row[0]), int(row[1])
            approach, pz = row[3:6], row[2]
        else:
            n = index - self.positives.size
            view = int(self.negative_views[n])
            u, v = (int(x) for x in self.negative_pixels[n])
            approach, pz = np.ones(3, np.float32), np.float32(1.0)  # seed III-B: y = [0 1 1 1 1], masked out
        depth = crop(self.data.depth[view], u, v, 0)
        intensity = crop(self.data.intensity[view], u, v, NOT_A_PART)
        if self.masking:
            image = masked_patch(depth, intensity, rng)
        else:
            image = depth.astype(np.float32) * DEPTH_UNIT
        return {
            "image": torch.from_numpy(image[None]),
            "d": torch.tensor(float(positive)),
            "v": torch.from_numpy(np.asarray(approach, np.float32)),
            "pz": torch.tensor(float(pz)),
        }
