"""The pixel-level grasp dataset (seed 003's PLGP-Dataset, made in our cell): one command, resumable.

    python -m grasp_cell.learn.pdg_dataset --out data/pdg/seen --scenes 300 --workers 2

Scenes alternate 5 and 15 objects of the ``seen`` set dropped into the bin; each is seen from 5 camera
poses (eqs. 2-4) by the cell's camera (640x480, eq. 1 intrinsics). Per view the network input is the
depth with realistic noise (section III-B) and the colour, both at half resolution (320x240, what the
network sees), and the labels come from PDG-Generation on the perfect depth rendered at that resolution
(``grasp_cell.learn.pdg``).

Layout: ``meta.json`` (settings) and shards ``shard_00000.npz`` ... of ``--scenes-per-shard`` scenes:
``depth`` (N, 240, 320) float32 m, NaN = missing; ``color`` (N, 240, 320, 3) uint8; ``intrinsics`` (N, 4)
fx, fy, cx, cy; ``grasp_offsets`` (N + 1,) and ``grasps`` (M, 4) rows [v, u, k, width m], view i's rows
grasp_offsets[i]:grasp_offsets[i + 1]; ``scene`` (N,) int32; ``object_count`` (N,) int32. Shard i is made
from seed (base seed, i) alone, so an interrupted run resumes where it stopped and gives the same data.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from grasp_cell.core.geometry import downsample_depth
from grasp_cell.core.jaw import JawGeometry
from grasp_cell.core.transform import Transform
from grasp_cell.eval.attempt_log import git_commit
from grasp_cell.learn.pdg import PdgSettings, label_view, offset_camera_pose, render_parallel
from grasp_cell.learn.shards import make_shards, missing_shards, open_dataset, save_shard, shard_path
from grasp_cell.sim.camera import realistic_depth_noise, render
from grasp_cell.sim.config import CellConfig
from grasp_cell.sim.objects import scene_specs
from grasp_cell.sim.world import SimWorld

DOWNSAMPLE = 2  # network input = camera image / 2 (320 x 240)
VIEWS_PER_SCENE = 5  # seed 003
OBJECT_COUNTS = (5, 15)  # seed 003: two sets of scenes
CAMERA_HEIGHT = 0.6  # [m] above the bin floor, as the cell's camera
MAX_CAMERA_OFFSET = 0.08  # [m] l of eq. 3


class ViewMaker:
    """One worker's world: drops scenes and renders and labels their views."""

    def __init__(self, object_set: str, settings: PdgSettings, jaw: JawGeometry):
        self.config = CellConfig()
        self.world = SimWorld(self.config)
        self.object_set = object_set
        self.settings = settings
        self.jaw = jaw
        camera = self.config.camera.intrinsics
        self.camera = camera
        self.label_camera = camera.scaled(camera.width // DOWNSAMPLE, camera.height // DOWNSAMPLE)
        world = self.world
        inner_x, inner_y = self.config.bin.inner_size
        self.bin_corners = np.array(
            [
                [sx * inner_x / 2, sy * inner_y / 2, z]
                for sx in (-1, 1)
                for sy in (-1, 1)
                for z in (world.bin_floor_z, world.bin_top_z)
            ]
        )
        self.T_world_center = Transform(np.eye(3), [0.0, 0.0, world.bin_floor_z])

    def scene(self, scene: int, count: int, rng: np.random.Generator) -> list[dict]:
        world = self.world
        world.reset(specs=scene_specs(self.object_set, count, rng))
        views = []
        for _ in range(VIEWS_PER_SCENE):
            T_world_cam = offset_camera_pose(self.T_world_center, CAMERA_HEIGHT, MAX_CAMERA_OFFSET, rng)
            camera_view = render(world.client, self.camera, T_world_cam)
            noisy = realistic_depth_noise(camera_view.depth, rng)
            label_view_render = render(world.client, self.label_camera, T_world_cam)
            parallel = render_parallel(world.client, T_world_cam, self.bin_corners, self.settings)
            grasps = label_view(
                label_view_render.depth,
                label_view_render.segmentation,
                self.label_camera,
                parallel,
                world.parts,
                self.jaw,
                self.settings,
            )
            color = camera_view.color.reshape(
                self.label_camera.height, DOWNSAMPLE, self.label_camera.width, DOWNSAMPLE, 3
            ).mean(axis=(1, 3))
            views.append(
                {
                    "depth": downsample_depth(noisy, DOWNSAMPLE, reduce="mean"),
                    "color": np.rint(color).astype(np.uint8),
                    "grasps": grasps,
                    "scene": scene,
                    "object_count": count,
                }
            )
        return views


def make_shard(task: tuple) -> tuple[int, int, int]:
    """Write one shard; returns (shard index, views, labelled grasps)."""
    out, shard, scenes_per_shard, base_seed, object_set = task
    maker = _worker_maker(object_set)
    rng = np.random.default_rng([base_seed, shard])
    views = []
    for offset in range(scenes_per_shard):
        scene = shard * scenes_per_shard + offset
        views += maker.scene(scene, OBJECT_COUNTS[scene % len(OBJECT_COUNTS)], rng)
    counts = [len(view["grasps"]) for view in views]
    intrinsics = maker.label_camera
    arrays = {
        "depth": np.stack([view["depth"] for view in views]),
        "color": np.stack([view["color"] for view in views]),
        "intrinsics": np.tile(
            np.array([intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy], np.float32), (len(views), 1)
        ),
        "grasp_offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        "grasps": np.concatenate([view["grasps"] for view in views]).astype(np.float32),
        "scene": np.array([view["scene"] for view in views], np.int32),
        "object_count": np.array([view["object_count"] for view in views], np.int32),
    }
    save_shard(shard_path(Path(out), shard), arrays)
    return shard, len(views), int(sum(counts))


_MAKER: ViewMaker | None = None


def _worker_maker(object_set: str) -> ViewMaker:
    global _MAKER
    if _MAKER is None:
        _MAKER = ViewMaker(object_set, PdgSettings(), JawGeometry())
    return _MAKER


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("data/pdg/seen"))
    parser.add_argument("--scenes", type=int, default=300, help="total scenes (5 views each)")
    parser.add_argument("--scenes-per-shard", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--object-set", default="seen")
    args = parser.parse_args(argv)

    meta = {
        "object_set": args.object_set,
        "seed": args.seed,
        "scenes_per_shard": args.scenes_per_shard,
        "views_per_scene": VIEWS_PER_SCENE,
        "object_counts": list(OBJECT_COUNTS),
        "downsample": DOWNSAMPLE,
        "camera_height": CAMERA_HEIGHT,
        "max_camera_offset": MAX_CAMERA_OFFSET,
        "pdg": asdict(PdgSettings()),
        "angle_classes": PdgSettings().angle_classes,
        "jaw": asdict(JawGeometry()),
        "git_commit": git_commit(),
    }
    try:
        open_dataset(args.out, meta, ("object_set", "seed", "scenes_per_shard", "pdg", "jaw"))
    except ValueError as error:
        parser.error(str(error))

    shards = -(-args.scenes // args.scenes_per_shard)
    todo = missing_shards(args.out, shards)
    print(
        f"{args.out}: {shards - len(todo)} of {shards} shards exist, making {len(todo)} "
        f"({len(todo) * args.scenes_per_shard * VIEWS_PER_SCENE} views) with {args.workers} workers"
    )
    tasks = [(str(args.out), i, args.scenes_per_shard, args.seed, args.object_set) for i in todo]
    start = time.monotonic()
    results = make_shards(make_shard, tasks, args.workers)
    views, grasps = sum(result[1] for result in results), sum(result[2] for result in results)
    elapsed = time.monotonic() - start
    if views:
        print(
            f"made {views} views, {grasps} labelled grasps ({grasps / views:.0f} per view) in {elapsed:.0f} s "
            f"({elapsed / views:.2f} s per view)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
