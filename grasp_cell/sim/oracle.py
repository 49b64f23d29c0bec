"""Ground-truth grasps from the simulator's own state, for tests, benchmarks and smoke runs of the loop.

Not a grasp model: it reads part poses the camera cannot see. It picks the highest part whose top is
exposed (a vertical ray from above hits it first) and grasps it top-down; for the jaw, across the part
in a direction where vertical rays find the fingers' and the palm's paths clear.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet

from grasp_cell.core.grasp import GripperKind
from grasp_cell.core.transform import Transform, frame_from_z_axis
from grasp_cell.sim.robots import MAX_OPENING
from grasp_cell.sim.world import SimWorld

# parallel_jaw.urdf: fingertips 10 mm past the TCP, fingers 10 mm thick and 20 mm wide, palm 120 x 40 mm
# ending 50 mm before the TCP
FINGERTIP_BELOW_TCP = 0.010  # [m]
JAW_CLEARANCE = 0.010  # [m] opening beyond the part's width
FINGER_THICKNESS, FINGER_WIDTH = 0.010, 0.020
PALM_HALF_SIZE, PALM_ABOVE_TCP = (0.06, 0.02), 0.05


@dataclass(frozen=True)
class OracleGrasp:
    part_id: int
    T_world_grasp: Transform  # z = approach (down), x = jaw closing direction
    width: float  # jaw opening [m]: the part's width plus JAW_CLEARANCE; 0 for suction


def top_grasps(world: SimWorld, gripper: GripperKind, min_normal_z: float = 0.95) -> list[OracleGrasp]:
    """Top-down grasps on exposed parts, highest first."""
    gripper = GripperKind.parse(gripper)
    candidates = []
    for body in world.part_ids_in_bin():
        position = world.part_position(body)
        hit = pybullet.rayTest(
            [position[0], position[1], world.bin_top_z + 0.3],
            [position[0], position[1], world.bin_floor_z - 0.01],
            physicsClientId=world.client,
        )[0]
        if hit[0] != body:
            continue  # covered by another part
        surface, normal = np.array(hit[3]), np.array(hit[4])
        if gripper is GripperKind.SUCTION:
            if normal[2] < min_normal_z:
                continue
            grasp = OracleGrasp(body, Transform(frame_from_z_axis(-normal), surface), 0.0)
        else:
            # TCP at the part's centre height, fingertips kept off the floor
            z = max(position[2], world.bin_floor_z + FINGERTIP_BELOW_TCP + 0.002)
            grasp = None
            for closing, width in _jaw_closings(world, body):
                rotation = frame_from_z_axis([0.0, 0.0, -1.0], x_hint=closing)
                T_world_grasp = Transform(rotation, [position[0], position[1], z])
                opening = width + JAW_CLEARANCE
                if opening <= MAX_OPENING and _jaw_path_clear(world, T_world_grasp, opening, body):
                    grasp = OracleGrasp(body, T_world_grasp, opening)
                    break
            if grasp is None:
                continue
        candidates.append((surface[2], grasp))
    return [grasp for _, grasp in sorted(candidates, key=lambda item: -item[0])]


def _jaw_closings(world: SimWorld, body: int) -> list[tuple[np.ndarray, float]]:
    """Horizontal closing directions across the part with the part's width along each, narrowest first."""
    part = world.parts[body]
    R_world_part = world.part_pose(body).rotation
    size = part.spec.size
    if part.spec.shape in ("cylinder", "capsule"):
        axis = R_world_part[:, 2]
        across = np.cross(axis, [0.0, 0.0, 1.0])
        if np.linalg.norm(across) < 0.3:  # standing up: any horizontal direction crosses it
            return [(np.array([1.0, 0.0, 0.0]), size[0]), (np.array([0.0, 1.0, 0.0]), size[0])]
        along = axis * [1.0, 1.0, 0.0]
        length = size[1] + (size[0] if part.spec.shape == "capsule" else 0.0)
        return [(across / np.linalg.norm(across), size[0]), (along / np.linalg.norm(along), length)]
    if part.spec.shape == "box":
        # the two box edges lying flattest
        closings = []
        for axis in np.argsort(np.abs(R_world_part[2, :]))[:2]:
            closing = R_world_part[:, axis] * [1.0, 1.0, 0.0]
            closings.append((closing / np.linalg.norm(closing), size[axis]))
        return sorted(closings, key=lambda item: item[1])
    return [(np.array([1.0, 0.0, 0.0]), size[0]), (np.array([0.0, 1.0, 0.0]), size[0])]


def _jaw_path_clear(world: SimWorld, T_world_grasp: Transform, opening: float, target: int) -> bool:
    """Vertical rays down the fingers' and the palm's outlines meet nothing but the target above them."""
    starts, ends = [], []
    top = world.bin_top_z + 0.3
    fingertip_z = T_world_grasp.translation[2] - FINGERTIP_BELOW_TCP
    palm_z = T_world_grasp.translation[2] + PALM_ABOVE_TCP
    for side in (-1.0, 1.0):
        for x in (opening / 2, opening / 2 + FINGER_THICKNESS):
            for y in (-FINGER_WIDTH / 2, 0.0, FINGER_WIDTH / 2):
                point = T_world_grasp.apply([side * x, y, 0.0])
                starts.append([point[0], point[1], top])
                ends.append([point[0], point[1], fingertip_z])
        for y in (-PALM_HALF_SIZE[1], PALM_HALF_SIZE[1]):
            point = T_world_grasp.apply([side * PALM_HALF_SIZE[0], y, 0.0])
            starts.append([point[0], point[1], top])
            ends.append([point[0], point[1], palm_z])
    hits = pybullet.rayTestBatch(starts, ends, physicsClientId=world.client)
    return all(hit[0] in (-1, target) for hit in hits)
