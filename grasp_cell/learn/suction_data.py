"""Seed 000's synthetic suction-grasp data (section III-C/D), made in our cell: one command, resumable.

    python -m grasp_cell.learn.suction_data --out data/suction --scenes 600 --workers 2

Per scene (steps 1-5 of III-C): 1 to 30 reflective steel cylinders of the seed's three types are dropped
into the bin; each type has 21 preset suction grasps (``preset_grasps``). Per view a randomly moved and
rolled camera renders depth and an intensity image; for every part each preset grasp is tested, and
one valid grasp is kept: visible to the camera, at most ``MAX_TILT_DEG`` from straight down, the suction
tool clear of the bin and the other parts, and of those the one closest to the world z axis and to the
camera's viewing ray. Depth is stored clean, with the intensity, so the reflective masking of eq. 5
(m1, m2 drawn per sample) and the noise happen when patches are drawn (``grasp_cell.learn.suction_patches``).

Layout: ``meta.json`` and shards ``shard_00000.npz`` ... of ``--scenes-per-shard`` scenes: ``depth`` (N, H, W)
uint16 in 0.1 mm (0 = nothing seen); ``intensity`` (N, H, W) uint8, cos^2 of the angle between surface
normal and viewing ray x 250 on parts and ``NOT_A_PART`` elsewhere (diffuse surfaces are always measured);
``grasp_offsets`` (N + 1,) and ``grasps`` (M, 6) rows [u, v, pz m, ax, ay, az]: the grasp pixel, the camera
z of the grasp point and the approach direction, camera frame; ``parts`` (N,) parts in the bin; ``scene``.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pybullet

from grasp_cell.core.camera import CameraIntrinsics
from grasp_cell.core.grasp import GripperKind
from grasp_cell.core.transform import Transform, frame_from_z_axis
from grasp_cell.eval.attempt_log import git_commit
from grasp_cell.learn.shards import make_shards, missing_shards, open_dataset, save_shard, shard_path
from grasp_cell.sim.camera import render, specular_intensity
from grasp_cell.sim.config import CellConfig
from grasp_cell.sim.parts import PartSpec
from grasp_cell.sim.robots import GRIPPER_URDFS
from grasp_cell.sim.world import SimWorld

# seed 000 IV-D: diameters 19-30.7 mm, lengths 25.7-31.7 mm; three types spanning that range
PART_TYPES = {"small": (0.019, 0.0257), "medium": (0.025, 0.0287), "large": (0.0307, 0.0317)}
STEEL_DENSITY = 7850.0  # [kg/m^3]
STEEL_COLOR = (0.62, 0.63, 0.66, 1.0)
MAX_PARTS = 30
VIEWS_PER_SCENE = 3  # camera poses per dropped scene (dropping is the slow part)
EYE_JITTER = (0.04, 0.04, 0.05)  # [m] camera translation, uniform +-, around the cell camera
TARGET_JITTER = 0.03  # [m] where it looks, uniform +- in x and y around the bin centre
MAX_TILT_DEG = 60.0  # approach from straight down: further tilted the UR5's wrist meets the bin walls
VISIBLE_TOLERANCE = 0.002  # [m] the rendered depth at the grasp pixel vs the grasp point's camera z
TOOL_CLEARANCE = 0.001  # [m] the tool is checked this far back from touching
DEPTH_UNIT = 1e-4  # [m] of the stored uint16 depth
INTENSITY_SCALE = 250.0
NOT_A_PART = 255  # intensity code of pixels that are not a reflective part


def part_spec(kind: str) -> PartSpec:
    diameter, length = PART_TYPES[kind]
    mass = STEEL_DENSITY * math.pi * (diameter / 2) ** 2 * length
    return PartSpec("cylinder", (diameter, length), mass, STEEL_COLOR, name=kind)


def preset_grasps(diameter: float, length: float) -> tuple[np.ndarray, np.ndarray]:
    """21 suction grasps in the part frame (cylinder axis z): points (21, 3) on the surface and approach
    directions (21, 3) into it. Each flat face: its centre and 6 points at half the radius; the round side:
    7 points around its middle."""
    radius = diameter / 2
    points, approaches = [], []
    ring = [(0.5 * radius * math.cos(a), 0.5 * radius * math.sin(a)) for a in np.arange(6) * math.pi / 3]
    for side in (1.0, -1.0):
        for x, y in [(0.0, 0.0), *ring]:
            points.append((x, y, side * length / 2))
            approaches.append((0.0, 0.0, -side))
    for angle in np.arange(7) * 2 * math.pi / 7:
        points.append((radius * math.cos(angle), radius * math.sin(angle), 0.0))
        approaches.append((-math.cos(angle), -math.sin(angle), 0.0))
    return np.array(points), np.array(approaches)


@dataclass(frozen=True)
class ViewLabels:
    depth: np.ndarray  # (H, W) uint16, DEPTH_UNIT
    intensity: np.ndarray  # (H, W) uint8
    grasps: np.ndarray  # (n, 6) [u, v, pz, ax, ay, az]
    parts: int


def random_camera_pose(world: SimWorld, rng: np.random.Generator) -> Transform:
    """The cell camera moved by up to EYE_JITTER, looking near the bin centre, rolled at random."""
    eye = np.asarray(world.config.camera.eye, float) + rng.uniform(-1.0, 1.0, 3) * EYE_JITTER
    target = np.array([*rng.uniform(-TARGET_JITTER, TARGET_JITTER, 2), world.bin_floor_z])
    roll = rng.uniform(0.0, 2 * math.pi)
    up = (math.cos(roll), math.sin(roll), 0.0)  # the image's "up" turns with the roll
    return Transform.look_at(eye, target, up)


class SuctionTool:
    """The cell's suction tool as a static body, for clearance checks against the bin and other parts."""

    def __init__(self, world: SimWorld):
        self.world = world
        self.body = pybullet.loadURDF(
            str(GRIPPER_URDFS[GripperKind.SUCTION]), basePosition=(0, 0, 5), useFixedBase=True,
            physicsClientId=world.client,
        )
        kwargs = {"physicsClientId": world.client}
        links = [pybullet.getJointInfo(self.body, i, **kwargs)[12].decode()
                 for i in range(pybullet.getNumJoints(self.body, **kwargs))]
        tcp = links.index("suction_tcp")
        # the tcp (cup face) in the base frame
        base_position, base_quat = pybullet.getBasePositionAndOrientation(self.body, **kwargs)
        tcp_position, tcp_quat = pybullet.getLinkState(self.body, tcp, **kwargs)[4:6]
        inverse = pybullet.invertTransform(base_position, base_quat)
        self.T_base_tcp = Transform.from_pos_quat(*pybullet.multiplyTransforms(*inverse, tcp_position, tcp_quat))
        self.links = [-1, *range(len(links))]

    def collides(self, point: np.ndarray, approach: np.ndarray, target: int) -> bool:
        """Whether the tool, its cup face ``TOOL_CLEARANCE`` short of ``point`` [m, world] and pointing
        along ``approach``, overlaps the bin or a part other than ``target``."""
        client = self.world.client
        rotation = frame_from_z_axis(approach)  # the tool is round: any turn about its axis will do
        T_world_tcp = Transform(rotation, point - TOOL_CLEARANCE * rotation[:, 2])
        T_world_base = T_world_tcp * self.T_base_tcp.inverse()
        pybullet.resetBasePositionAndOrientation(
            self.body, T_world_base.translation.tolist(), T_world_base.quat_xyzw.tolist(), physicsClientId=client
        )
        lower, upper = np.full(3, np.inf), np.full(3, -np.inf)
        for link in self.links:
            low, high = pybullet.getAABB(self.body, link, physicsClientId=client)
            lower, upper = np.minimum(lower, low), np.maximum(upper, high)
        nearby = pybullet.getOverlappingObjects(lower.tolist(), upper.tolist(), physicsClientId=client) or []
        others = {body for body, _ in nearby if body not in (self.body, target)}
        return any(pybullet.getClosestPoints(self.body, other, 0.0, physicsClientId=client) for other in others)

    def park(self) -> None:
        pybullet.resetBasePositionAndOrientation(self.body, (0, 0, 5), (0, 0, 0, 1), physicsClientId=self.world.client)


def label_view(
    world: SimWorld, tool: SuctionTool, intrinsics: CameraIntrinsics, T_world_cam: Transform
) -> ViewLabels:
    """Render one view and pick each part's grasp (steps 3-5 of III-C)."""
    rendering = render(world.client, intrinsics, T_world_cam)
    depth = rendering.depth
    T_cam_world = T_world_cam.inverse()
    down = np.array([0.0, 0.0, -1.0])
    cos_tilt = math.cos(math.radians(MAX_TILT_DEG))
    rows = []
    for body, part in world.parts.items():
        T_world_part = world.part_pose(body)
        points, approaches = preset_grasps(*part.spec.size)
        points = T_world_part.apply(points)
        approaches = approaches @ T_world_part.rotation.T
        best, best_score = None, -np.inf
        for point, approach in zip(points, approaches):
            if approach @ down < cos_tilt:
                continue
            p_cam = T_cam_world.apply(point)
            u, v = np.rint(intrinsics.project(p_cam)).astype(int)
            if not (0 <= u < intrinsics.width and 0 <= v < intrinsics.height):
                continue
            if rendering.segmentation[v, u] != body or abs(depth[v, u] - p_cam[2]) > VISIBLE_TOLERANCE:
                continue  # hidden by something, or seen at the part's edge
            ray = (point - T_world_cam.translation) / np.linalg.norm(point - T_world_cam.translation)
            score = approach @ down + approach @ ray  # close to world z, and facing the camera
            if score > best_score and not tool.collides(point, approach, body):
                a_cam = T_cam_world.rotation @ approach
                best, best_score = (u, v, p_cam[2], *a_cam), score
        if best is not None:
            rows.append(best)
    tool.park()
    on_part = np.isin(rendering.segmentation, np.fromiter(world.parts, dtype=np.int32))
    intensity = np.nan_to_num(specular_intensity(depth, intrinsics), nan=0.0)
    intensity = np.where(on_part, np.rint(np.clip(intensity, 0.0, 1.0) * INTENSITY_SCALE), NOT_A_PART)
    stored = np.rint(np.nan_to_num(depth, nan=0.0) / DEPTH_UNIT)
    return ViewLabels(
        np.clip(stored, 0, 65535).astype(np.uint16),
        intensity.astype(np.uint8),
        np.array(rows, np.float32).reshape(-1, 6),
        len(world.parts),
    )


class SceneMaker:
    """One worker's world and tool."""

    def __init__(self):
        self.config = CellConfig()
        self.world = SimWorld(self.config)
        self.tool = SuctionTool(self.world)
        self.intrinsics = self.config.camera.intrinsics

    def scene(self, rng: np.random.Generator) -> list[ViewLabels]:
        count = int(rng.integers(1, MAX_PARTS + 1))
        kinds = rng.choice(sorted(PART_TYPES), size=count)
        self.world.reset(specs=[part_spec(kind) for kind in kinds])
        return [
            label_view(self.world, self.tool, self.intrinsics, random_camera_pose(self.world, rng))
            for _ in range(VIEWS_PER_SCENE)
        ]


_MAKER: SceneMaker | None = None


def make_shard(task: tuple) -> tuple[int, int, int]:
    """Write one shard; returns (shard index, views, grasps)."""
    out, shard, scenes_per_shard, base_seed = task
    global _MAKER
    if _MAKER is None:
        _MAKER = SceneMaker()
    rng = np.random.default_rng([base_seed, shard])
    views, scenes = [], []
    for offset in range(scenes_per_shard):
        made = _MAKER.scene(rng)
        views += made
        scenes += [shard * scenes_per_shard + offset] * len(made)
    counts = [len(view.grasps) for view in views]
    save_shard(
        shard_path(Path(out), shard),
        {
            "depth": np.stack([view.depth for view in views]),
            "intensity": np.stack([view.intensity for view in views]),
            "grasp_offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            "grasps": np.concatenate([view.grasps for view in views]),
            "parts": np.array([view.parts for view in views], np.int32),
            "scene": np.array(scenes, np.int32),
        },
    )
    return shard, len(views), int(sum(counts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("data/suction"))
    parser.add_argument("--scenes", type=int, default=600, help=f"total scenes ({VIEWS_PER_SCENE} views each)")
    parser.add_argument("--scenes-per-shard", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    intrinsics = CellConfig().camera.intrinsics
    meta = {
        "seed": args.seed,
        "scenes_per_shard": args.scenes_per_shard,
        "views_per_scene": VIEWS_PER_SCENE,
        "part_types": {kind: list(size) for kind, size in PART_TYPES.items()},
        "max_parts": MAX_PARTS,
        "intrinsics": [intrinsics.width, intrinsics.height, intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy],
        "eye_jitter": list(EYE_JITTER),
        "target_jitter": TARGET_JITTER,
        "max_tilt_deg": MAX_TILT_DEG,
        "depth_unit": DEPTH_UNIT,
        "intensity_scale": INTENSITY_SCALE,
        "git_commit": git_commit(),
    }
    try:
        open_dataset(args.out, meta, ("seed", "scenes_per_shard", "part_types", "intrinsics", "max_tilt_deg"))
    except ValueError as error:
        parser.error(str(error))
    shards = -(-args.scenes // args.scenes_per_shard)
    todo = missing_shards(args.out, shards)
    print(f"{args.out}: {shards - len(todo)} of {shards} shards exist, making {len(todo)} with {args.workers} workers")
    start = time.monotonic()
    tasks = [(str(args.out), shard, args.scenes_per_shard, args.seed) for shard in todo]
    results = make_shards(make_shard, tasks, args.workers)
    views, grasps = sum(r[1] for r in results), sum(r[2] for r in results)
    elapsed = time.monotonic() - start
    if views:
        print(f"made {views} views, {grasps} grasps ({grasps / views:.1f} per view) in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
