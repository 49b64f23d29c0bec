"""The one physics world of the simulated cell: table, bin, out-tray, parts and (at most) one arm.

The sim camera and the sim arm both act on a ``SimWorld``; it owns the PyBullet client (DIRECT mode)
and the random generator made from the configured seed. PyBullet is not thread-safe: ``reset``,
``SimCamera.capture`` and ``SimArm.pick`` hold ``world.lock``, so nodes may call them from any thread.

Layout (defaults, world frame on the table top, z up): bin centred at the origin, inner 0.35 x 0.25 m,
walls 0.10 m above a floor whose top face is at z = 0.01; camera 0.6 m above the bin floor looking straight
down; robot base on the table at y = -(its mount distance: UR5 0.50, iiwa 0.60, Kinova 0.45 m) facing +y;
out-tray centred at (0.42, -0.50), outside the camera's view.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pybullet

from grasp_cell.core.grasp import GripperKind
from grasp_cell.core.transform import Transform, rotation_about_axis
from grasp_cell.sim.config import CellConfig
from grasp_cell.sim.objects import scene_specs
from grasp_cell.sim.parts import PartSpec, ShapeCache, create_part_body, sample_part
from grasp_cell.sim.robots import ARMS, RobotTwin, assemble_urdf

BIN_COLOR = (0.25, 0.35, 0.55, 1.0)
TABLE_COLOR = (0.55, 0.5, 0.42, 1.0)


@dataclass(frozen=True)
class Part:
    body_id: int
    spec: PartSpec


class SimWorld:
    """PyBullet world with the bin, parts and an optional arm twin; see the module docstring for the layout."""

    def __init__(self, config: CellConfig | None = None, rng: np.random.Generator | None = None):
        self.config = config if config is not None else CellConfig()
        self.rng = rng if rng is not None else np.random.default_rng(self.config.seed)
        self.client = pybullet.connect(pybullet.DIRECT)
        self.lock = threading.RLock()
        self.T_world_cam = self.config.camera.T_world_cam
        self.parts: dict[int, Part] = {}
        self.robot: RobotTwin | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="grasp_cell_sim_")
        physics = self.config.physics
        pybullet.setGravity(0, 0, -9.81, physicsClientId=self.client)
        pybullet.setPhysicsEngineParameter(
            fixedTimeStep=physics.time_step,
            numSolverIterations=physics.solver_iterations,
            deterministicOverlappingPairs=1,
            physicsClientId=self.client,
        )
        self._shapes = ShapeCache(self.client)
        self._build_static()

    # --- geometry --------------------------------------------------------------------------------------
    @property
    def bin_floor_z(self) -> float:
        """Height of the bin floor's top face [m]."""
        return self.config.bin.floor_thickness

    @property
    def bin_top_z(self) -> float:
        return self.config.bin.floor_thickness + self.config.bin.wall_height

    @property
    def time_step(self) -> float:
        return self.config.physics.time_step

    def T_world_place(self) -> Transform:
        """Default place pose: tool pointing down, ``robot.place_height`` above the out-tray centre."""
        x, y = self.config.bin.tray_position
        return Transform(np.diag([1.0, -1.0, -1.0]), [x, y, self.config.robot.place_height])

    def _build_static(self) -> None:
        kwargs = {"physicsClientId": self.client}
        cfg = self.config.bin
        plane = pybullet.createCollisionShape(pybullet.GEOM_PLANE, **kwargs)
        # a plain slab as the table's look (a plane's visual is a checkerboard and warns)
        plane_visual = pybullet.createVisualShape(
            pybullet.GEOM_BOX,
            halfExtents=[3.0, 3.0, 0.001],
            visualFramePosition=[0, 0, -0.001],
            rgbaColor=TABLE_COLOR,
            **kwargs,
        )
        self.table_id = pybullet.createMultiBody(0, plane, plane_visual, **kwargs)
        pybullet.changeDynamics(self.table_id, -1, lateralFriction=0.5, **kwargs)

        # bin: floor and four walls as one compound static body
        (inner_x, inner_y), t = cfg.inner_size, cfg.wall_thickness
        wall_z = cfg.floor_thickness + cfg.wall_height / 2
        boxes = [
            ((inner_x / 2 + t, inner_y / 2 + t, cfg.floor_thickness / 2), (0, 0, cfg.floor_thickness / 2)),
            ((t / 2, inner_y / 2 + t, cfg.wall_height / 2), (inner_x / 2 + t / 2, 0, wall_z)),
            ((t / 2, inner_y / 2 + t, cfg.wall_height / 2), (-inner_x / 2 - t / 2, 0, wall_z)),
            ((inner_x / 2 + t, t / 2, cfg.wall_height / 2), (0, inner_y / 2 + t / 2, wall_z)),
            ((inner_x / 2 + t, t / 2, cfg.wall_height / 2), (0, -inner_y / 2 - t / 2, wall_z)),
        ]
        self.bin_id = self._compound(boxes, BIN_COLOR, cfg.friction)

        # out-tray: a plate with a low rim
        (tx, ty), (sx, sy) = cfg.tray_position, cfg.tray_size
        rim, plate = 0.03, 0.01
        tray = [
            ((sx / 2, sy / 2, plate / 2), (tx, ty, plate / 2)),
            ((0.005, sy / 2, rim / 2), (tx + sx / 2, ty, rim / 2)),
            ((0.005, sy / 2, rim / 2), (tx - sx / 2, ty, rim / 2)),
            ((sx / 2, 0.005, rim / 2), (tx, ty + sy / 2, rim / 2)),
            ((sx / 2, 0.005, rim / 2), (tx, ty - sy / 2, rim / 2)),
        ]
        self.tray_id = self._compound(tray, (0.3, 0.55, 0.3, 1.0), 0.5)

    def _compound(self, boxes, color, friction: float) -> int:
        kwargs = {"physicsClientId": self.client}
        half_extents = [list(half) for half, _ in boxes]
        positions = [list(position) for _, position in boxes]
        shape_types = [pybullet.GEOM_BOX] * len(boxes)
        collision = pybullet.createCollisionShapeArray(
            shape_types, halfExtents=half_extents, collisionFramePositions=positions, **kwargs
        )
        visual = pybullet.createVisualShapeArray(
            shape_types,
            halfExtents=half_extents,
            visualFramePositions=positions,
            rgbaColors=[color] * len(boxes),
            **kwargs,
        )
        body = pybullet.createMultiBody(0, collision, visual, **kwargs)
        pybullet.changeDynamics(body, -1, lateralFriction=friction, **kwargs)
        return body

    # --- parts -----------------------------------------------------------------------------------------
    def reset(self, part_count: int | None = None, specs: list[PartSpec] | None = None) -> None:
        """Empty the bin, park the arm and drop new parts, settled and asleep: the given ``specs``, or else
        ``part_count`` (default: config) parts sampled from the configured part ranges."""
        cfg = self.config.parts
        count = len(specs) if specs is not None else cfg.count if part_count is None else int(part_count)
        if count < 0:
            raise ValueError(f"part_count must be >= 0, got {count}")
        if specs is None and cfg.object_set:
            specs = scene_specs(cfg.object_set, count, self.rng)
        with self.lock:
            self._drop_parts(count, specs)

    def _drop_parts(self, count: int, specs: list[PartSpec] | None = None) -> None:
        cfg = self.config.parts
        self.clear_parts()
        if self.robot is not None:
            self.robot.park()
        (inner_x, inner_y) = self.config.bin.inner_size
        for start in range(0, count, cfg.batch_size):
            batch = range(start, min(count, start + cfg.batch_size))
            for slot, index in enumerate(batch):
                spec = specs[index] if specs is not None else sample_part(cfg, self.rng)
                margin = spec.bounding_radius
                x = self.rng.uniform(-inner_x / 2 + margin, inner_x / 2 - margin)
                y = self.rng.uniform(-inner_y / 2 + margin, inner_y / 2 - margin)
                # stacked release heights so a batch never starts interpenetrating
                spacing = 0.04 if specs is None else max(0.04, 2 * margin)
                z = self.bin_floor_z + self.rng.uniform(*cfg.drop_height) + spacing * slot
                quat = self.rng.normal(size=4)
                quat /= np.linalg.norm(quat)
                self._add_part(spec, (x, y, z), quat)
            self.step(max(1, round(cfg.batch_time / self.time_step)))
        self.settle(cfg.settle_time_max)
        self.remove_parts_outside_bin()
        self.sleep_parts()

    def _add_part(self, spec: PartSpec, position, quat_xyzw) -> int:
        body = create_part_body(self._shapes, spec, position, quat_xyzw, self.config.parts)
        self.parts[body] = Part(body, spec)
        return body

    def add_part(self, spec: PartSpec, T_world_part: Transform, settle: bool = True) -> int:
        """Place one part by hand (tests, scripted scenes); returns its body id."""
        body = self._add_part(spec, T_world_part.translation, T_world_part.quat_xyzw)
        if settle:
            self.settle(self.config.parts.settle_time_max)
            self.sleep_parts()
        return body

    def remove_part(self, body_id: int) -> None:
        pybullet.removeBody(body_id, physicsClientId=self.client)
        del self.parts[body_id]

    def clear_parts(self) -> None:
        for body in list(self.parts):
            self.remove_part(body)

    def part_position(self, body_id: int) -> np.ndarray:
        return np.array(pybullet.getBasePositionAndOrientation(body_id, physicsClientId=self.client)[0])

    def part_pose(self, body_id: int) -> Transform:
        position, quat = pybullet.getBasePositionAndOrientation(body_id, physicsClientId=self.client)
        return Transform.from_pos_quat(position, quat)

    def part_positions(self) -> dict[int, np.ndarray]:
        return {body: self.part_position(body) for body in self.parts}

    def is_in_bin(self, position) -> bool:
        """A part centre inside the bin's inner footprint, below the wall tops plus a few cm."""
        (inner_x, inner_y) = self.config.bin.inner_size
        x, y, z = position
        return abs(x) <= inner_x / 2 and abs(y) <= inner_y / 2 and self.bin_floor_z - 0.01 <= z <= self.bin_top_z + 0.03

    def part_ids_in_bin(self) -> list[int]:
        return [body for body in self.parts if self.is_in_bin(self.part_position(body))]

    def parts_in_bin(self) -> int:
        """Ground truth: how many parts lie in the bin now."""
        return len(self.part_ids_in_bin())

    def remove_parts_outside_bin(self) -> int:
        """Take parts that left the bin (tray, table) out of the world; returns how many."""
        outside = [body for body in self.parts if not self.is_in_bin(self.part_position(body))]
        for body in outside:
            self.remove_part(body)
        return len(outside)

    # --- stepping --------------------------------------------------------------------------------------
    def step(self, count: int = 1) -> None:
        for _ in range(count):
            pybullet.stepSimulation(physicsClientId=self.client)

    @contextlib.contextmanager
    def solver_iterations(self, count: int):
        """Step with ``count`` constraint-solver iterations inside the block, the configured number after."""
        pybullet.setPhysicsEngineParameter(numSolverIterations=int(count), physicsClientId=self.client)
        try:
            yield
        finally:
            pybullet.setPhysicsEngineParameter(
                numSolverIterations=self.config.physics.solver_iterations, physicsClientId=self.client
            )

    def max_part_speed(self) -> float:
        """Fastest part's linear speed plus its spin times its radius [m/s]."""
        speed = 0.0
        for body, part in self.parts.items():
            linear, angular = pybullet.getBaseVelocity(body, physicsClientId=self.client)
            speed = max(speed, float(np.linalg.norm(linear) + np.linalg.norm(angular) * part.spec.bounding_radius))
        return speed

    def settle(self, max_time: float, check_every: int = 12) -> bool:
        """Step until every part is slower than ``parts.settle_speed`` or ``max_time`` [s] passed."""
        steps = max(1, round(max_time / self.time_step))
        for done in range(0, steps, check_every):
            if self.max_part_speed() < self.config.parts.settle_speed:
                return True
            self.step(min(check_every, steps - done))
        return self.max_part_speed() < self.config.parts.settle_speed

    def sleep_parts(self) -> None:
        """Put resting parts to sleep (10x cheaper steps); contact with a moving body wakes them."""
        for body, part in self.parts.items():
            linear, angular = pybullet.getBaseVelocity(body, physicsClientId=self.client)
            if np.linalg.norm(linear) + np.linalg.norm(angular) * part.spec.bounding_radius < 0.02:
                pybullet.changeDynamics(
                    body, -1, activationState=pybullet.ACTIVATION_STATE_SLEEP, physicsClientId=self.client
                )

    # --- robot -----------------------------------------------------------------------------------------
    def load_robot(self, name: str | None = None, gripper: GripperKind | str | None = None) -> RobotTwin:
        """Mount an arm twin (default: the configured one) beside the bin and park it at home."""
        if self.robot is not None:
            raise RuntimeError(f"a {self.robot.spec.name} is already mounted; unload_robot() first")
        cfg = self.config.robot
        name = cfg.name if name is None else name
        if name not in ARMS:
            raise ValueError(f"unknown robot '{name}'; expected one of {', '.join(ARMS)}")
        gripper = cfg.gripper if gripper is None else GripperKind.parse(gripper)
        spec = ARMS[name]
        position = cfg.base_position if cfg.base_position is not None else (0.0, -spec.mount_distance, 0.0)
        T_world_base = Transform(rotation_about_axis([0, 0, 1], np.radians(cfg.base_yaw_deg)), position)
        urdf = assemble_urdf(spec, gripper, Path(self._tmp.name))
        robot = RobotTwin(self.client, spec, gripper, urdf, T_world_base, self.config.gripper)
        if cfg.home_position is not None:
            home = np.array(cfg.home_position)
        else:
            ahead, height = spec.home_offset
            home = T_world_base.apply([ahead, 0.0, 0.0]) + [0.0, 0.0, height]
        robot.set_up_home(Transform(np.diag([1.0, -1.0, -1.0]), home))
        # the links standing on the table at home (the base) never count as touching it
        for link in range(-1, pybullet.getNumJoints(robot.body, physicsClientId=self.client)):
            aabb_min, _ = pybullet.getAABB(robot.body, link, physicsClientId=self.client)
            if aabb_min[2] < 0.02:
                pybullet.setCollisionFilterPair(robot.body, self.table_id, link, -1, 0, physicsClientId=self.client)
        self.robot = robot
        return robot

    def unload_robot(self) -> None:
        if self.robot is not None:
            pybullet.removeBody(self.robot.body, physicsClientId=self.client)
            self.robot = None

    # --- lifetime --------------------------------------------------------------------------------------
    def close(self) -> None:
        if self.client is not None and pybullet.isConnected(self.client):
            pybullet.disconnect(self.client)
        self._tmp.cleanup()

    def __enter__(self) -> "SimWorld":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
