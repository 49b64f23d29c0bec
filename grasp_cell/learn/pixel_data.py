"""PDG datasets (seed 003 section III) for the pixel-level grasp net: shards, scene split, labels, augmentation.

A dataset folder holds ``meta.json`` and ``shard_00000.npz``, ``shard_00001.npz``, ... Each shard has N views:
``depth`` (N, H, W) float32 [m] (NaN = missing), ``color`` (N, H, W, 3) uint8, ``intrinsics`` (N, 4) fx, fy,
cx, cy, ``scene`` (N,) int32, and the labelled grasps of view i in rows ``grasp_offsets[i]:grasp_offsets[i + 1]``
of ``grasps`` (M, 4): v, u, angle class k, opening width [m].

Training samples follow seed 003 IV-B: a 160x160 crop around the centre, shifted up to ±24 pixels, rotated and
flipped; the dense targets are built after that from the moved sparse labels, with each label copied to its
8-neighbourhood at 0.9 ("enhancement").
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import Dataset

from grasp_cell.core.depth import fill_missing
from grasp_cell.core.jaw import JawGeometry
from grasp_cell.learn import shards
from grasp_cell.models.pixel_grasp import MODALITY_CHANNELS, network_input

PDG_ARRAYS = ("depth", "intrinsics", "grasps", "grasp_offsets", "scene")
ENHANCED_VALUE = 0.9  # seed 003: the copies of a label in its 8-neighbourhood
NEIGHBOURS = [(dv, du) for dv in (-1, 0, 1) for du in (-1, 0, 1) if (dv, du) != (0, 0)]


@dataclass(frozen=True)
class PdgMeta:
    """``meta.json`` of a dataset: what the labels mean."""

    angle_classes: int
    jaw: JawGeometry
    downsample: int  # the views are the camera images reduced by this factor
    raw: dict  # the whole file, for model cards

    @classmethod
    def from_folder(cls, folder: Path) -> "PdgMeta":
        raw = json.loads((Path(folder) / "meta.json").read_text(encoding="utf-8"))
        jaw = {key: float(value) for key, value in raw["jaw"].items() if key in JawGeometry.__annotations__}
        return cls(int(raw["angle_classes"]), JawGeometry(**jaw), int(raw["downsample"]), raw)


def list_shards(folder: Path) -> list[Path]:
    """The complete shards of a PDG dataset, in order (``grasp_cell.learn.shards.list_shards``)."""
    return shards.list_shards(folder, PDG_ARRAYS)


@dataclass(frozen=True)
class PdgViews:
    """All views of a dataset in memory (colour only if asked for)."""

    depth: np.ndarray  # (N, H, W) float32 [m], NaN = missing
    color: np.ndarray | None  # (N, H, W, 3) uint8
    intrinsics: np.ndarray  # (N, 4) fx, fy, cx, cy
    scene: np.ndarray  # (N,) scene index
    grasps: np.ndarray  # (M, 4) v, u, k, width [m]
    grasp_offsets: np.ndarray  # (N + 1,)
    shard_count: int

    @classmethod
    def load(cls, folder: Path, with_color: bool = True) -> "PdgViews":
        shards = list_shards(folder)
        if not shards:
            raise FileNotFoundError(f"no complete shards in {folder}")
        parts = {key: [] for key in ("depth", "color", "intrinsics", "scene", "grasps", "counts")}
        for path in shards:
            with np.load(path) as shard:
                parts["depth"].append(shard["depth"].astype(np.float32, copy=False))
                if with_color:
                    parts["color"].append(shard["color"])
                parts["intrinsics"].append(shard["intrinsics"].astype(np.float32))
                parts["scene"].append(shard["scene"].astype(np.int64))
                parts["grasps"].append(shard["grasps"].astype(np.float32).reshape(-1, 4))
                parts["counts"].append(np.diff(shard["grasp_offsets"]))
        counts = np.concatenate(parts["counts"])
        return cls(
            depth=np.concatenate(parts["depth"]),
            color=np.concatenate(parts["color"]) if with_color else None,
            intrinsics=np.concatenate(parts["intrinsics"]),
            scene=np.concatenate(parts["scene"]),
            grasps=np.concatenate(parts["grasps"]),
            grasp_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            shard_count=len(shards),
        )

    def __len__(self) -> int:
        return self.depth.shape[0]

    def grasps_of(self, index: int) -> np.ndarray:
        return self.grasps[self.grasp_offsets[index] : self.grasp_offsets[index + 1]]


def scene_fraction(scene: int) -> float:
    """A fixed pseudo-random number in [0, 1) per scene index: the same split whatever shards exist."""
    return zlib.crc32(f"scene-{int(scene)}".encode()) / 2**32


def split_by_scene(scene: np.ndarray, validation_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """View indices (train, validation), all views of a scene on one side. With two or more scenes the
    validation side gets at least one (the scene of lowest ``scene_fraction``)."""
    scenes = np.unique(scene)
    fractions = np.array([scene_fraction(s) for s in scenes])
    held_out = scenes[fractions < validation_fraction]
    if held_out.size == 0 and scenes.size > 1 and validation_fraction > 0:
        held_out = scenes[[np.argmin(fractions)]]
    validation = np.isin(scene, held_out)
    return np.nonzero(~validation)[0], np.nonzero(validation)[0]


@dataclass(frozen=True)
class CropTransform:
    """Where a crop of a view comes from: output pixel p' = centre_out + F R (p - centre_in), in (u, v).

    R rotates by ``rotation_steps`` angle classes counter-clockwise as displayed (the direction in which the
    grasp angle grows), F mirrors u when ``flip``.
    """

    centre_in: tuple[float, float]  # (u, v) in the view
    size: int  # the crop is size x size
    rotation_steps: int  # in angle classes, pi / K each
    flip: bool
    angle_classes: int

    @property
    def matrix(self) -> np.ndarray:
        """F R, acting on (u, v) column vectors."""
        phi = self.rotation_steps * math.pi / self.angle_classes
        rotation = np.array([[math.cos(phi), math.sin(phi)], [-math.sin(phi), math.cos(phi)]])
        return np.diag([-1.0 if self.flip else 1.0, 1.0]) @ rotation

    def forward(self, u, v) -> tuple[np.ndarray, np.ndarray]:
        """View pixel coordinates to crop pixel coordinates (floats)."""
        centre_out = (self.size - 1) / 2.0
        du, dv = np.asarray(u, float) - self.centre_in[0], np.asarray(v, float) - self.centre_in[1]
        m = self.matrix
        return centre_out + m[0, 0] * du + m[0, 1] * dv, centre_out + m[1, 0] * du + m[1, 1] * dv

    def angle_class(self, k) -> np.ndarray:
        """Angle class after the transform: rotating adds the steps, mirroring u negates the angle."""
        shifted = np.asarray(k, dtype=np.int64) + self.rotation_steps
        return (-shifted if self.flip else shifted) % self.angle_classes

    def warp(self, image: np.ndarray) -> np.ndarray:
        """Resample an (H, W) image into the crop, bilinear; beyond the view's border the edge repeats."""
        inverse_uv = self.matrix.T  # F R is orthogonal: its inverse is its transpose
        inverse_vu = inverse_uv[::-1, ::-1]  # ndimage indexes (row, column) = (v, u)
        centre_out = np.full(2, (self.size - 1) / 2.0)
        offset = np.array(self.centre_in[::-1]) - inverse_vu @ centre_out
        return ndimage.affine_transform(
            image, inverse_vu, offset, output_shape=(self.size, self.size), order=1, mode="nearest", prefilter=False
        )


@dataclass(frozen=True)
class Augmentation:
    """Random crop placement of seed 003 IV-B (seed: 320x320 crops shifted up to 30 px on 640x480 views; ours
    are the same share of the half-resolution views)."""

    crop: int = 160
    max_shift: int = 24  # [px] of the crop centre, in u and v
    max_rotation_deg: float = 30.0
    flip: bool = True

    def sample(self, rng: np.random.Generator, view_size: tuple[int, int], angle_classes: int) -> CropTransform:
        # rotation by whole angle classes only (10 deg for K = 18), where the seed rotates by any angle up to
        # 30 deg: the moved labels then keep an exact angle class instead of being rounded to one
        max_steps = int(math.floor(self.max_rotation_deg / (180.0 / angle_classes) + 1e-9))
        height, width = view_size
        shift = rng.integers(-self.max_shift, self.max_shift + 1, size=2)
        return CropTransform(
            centre_in=((width - 1) / 2.0 + shift[0], (height - 1) / 2.0 + shift[1]),
            size=self.crop,
            rotation_steps=int(rng.integers(-max_steps, max_steps + 1)),
            flip=bool(self.flip and rng.random() < 0.5),
            angle_classes=angle_classes,
        )

    def centre(self, view_size: tuple[int, int], angle_classes: int) -> CropTransform:
        """The validation crop: centred, no rotation, no flip."""
        height, width = view_size
        return CropTransform(((width - 1) / 2.0, (height - 1) / 2.0), self.crop, 0, False, angle_classes)


def enhanced_targets(
    rows: np.ndarray,
    cols: np.ndarray,
    classes: np.ndarray,
    widths: np.ndarray,
    size: tuple[int, int],
    angle_classes: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense targets Qp (1, h, w), Qθ (K, h, w), W (K, h, w) of labelled grasps at integer (row, col) with angle
    class k and opening ``widths`` as a fraction of L4.

    Labels get 1 in Qp and Qθ; copies in their 8-neighbourhood get 0.9 where no label is (seed 003 IV-B); W
    holds the width wherever Qθ is set.
    """
    height, width = size
    quality = np.zeros((1, height, width), np.float32)
    angle = np.zeros((angle_classes, height, width), np.float32)
    width_map = np.zeros((angle_classes, height, width), np.float32)
    rows, cols, classes = (np.asarray(a, dtype=np.int64) for a in (rows, cols, classes))
    widths = np.clip(np.asarray(widths, dtype=np.float32), 0.0, 1.0)
    # the copies first, then the labels over them: a label's 1 is never lowered to 0.9
    for dv, du in NEIGHBOURS:
        r, c = rows + dv, cols + du
        inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
        r, c, k = r[inside], c[inside], classes[inside]
        quality[0, r, c] = ENHANCED_VALUE
        angle[k, r, c] = ENHANCED_VALUE
        width_map[k, r, c] = widths[inside]
    quality[0, rows, cols] = 1.0
    angle[classes, rows, cols] = 1.0
    width_map[classes, rows, cols] = widths
    return quality, angle, width_map


class PixelGraspDataset(Dataset):
    """Training samples of some views: ``image`` (C, S, S), targets ``quality`` (1, S, S), ``angle`` and
    ``width`` (K, S, S). ``augment`` draws a random crop per sample; else the centre crop."""

    def __init__(
        self,
        views: PdgViews,
        indices: np.ndarray,
        meta: PdgMeta,
        modality: str = "depth",
        augmentation: Augmentation = Augmentation(),
        augment: bool = True,
        seed: int = 0,
    ):
        if modality not in MODALITY_CHANNELS:
            raise ValueError(f"unknown modality '{modality}'; expected one of {', '.join(MODALITY_CHANNELS)}")
        if modality != "depth" and views.color is None:
            raise ValueError(f"the '{modality}' input needs the views' colour images")
        self.views, self.indices, self.meta = views, np.asarray(indices, dtype=np.int64), meta
        self.modality, self.augmentation, self.augment = modality, augmentation, augment
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.indices.size

    def reseed(self, seed: int) -> None:
        """Give this copy of the dataset its own random stream (DataLoader workers copy the generator)."""
        self.rng = np.random.default_rng(seed)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        index = int(self.indices[item])
        view_size = self.views.depth.shape[1:]
        classes = self.meta.angle_classes
        if self.augment:
            transform = self.augmentation.sample(self.rng, view_size, classes)
        else:
            transform = self.augmentation.centre(view_size, classes)

        depth = transform.warp(fill_missing(self.views.depth[index]))
        color = None
        if self.modality != "depth":
            source = self.views.color[index].astype(np.float32)
            color = np.stack([transform.warp(source[..., c]) for c in range(3)], axis=-1)
        image = network_input(depth, color, self.modality)

        labels = self.views.grasps_of(index)
        u, v = transform.forward(labels[:, 1], labels[:, 0])
        rows, cols = np.rint(v).astype(np.int64), np.rint(u).astype(np.int64)
        inside = (rows >= 0) & (rows < transform.size) & (cols >= 0) & (cols < transform.size)
        quality, angle, width = enhanced_targets(
            rows[inside],
            cols[inside],
            transform.angle_class(labels[inside, 2].astype(np.int64)),
            labels[inside, 3] / self.meta.jaw.max_opening,
            (transform.size, transform.size),
            classes,
        )
        return {
            "image": torch.from_numpy(image),
            "quality": torch.from_numpy(quality),
            "angle": torch.from_numpy(angle),
            "width": torch.from_numpy(width),
        }


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: each worker (and each epoch's workers) draws its own augmentations."""
    info = torch.utils.data.get_worker_info()
    info.dataset.reseed(info.seed % 2**32)
