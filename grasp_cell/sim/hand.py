"""Our three-finger underactuated hand, shaped after a Robotiq 3-finger gripper (seed 004's hand).

Layout (hand frame ``hand_mount`` on the arm flange, z the approach direction, like the other grippers):
a palm, finger ``a`` on the -y side of it and fingers ``b`` and ``c`` side by side on the +y side, each of
three phalanges (proximal, medial, distal) on revolute joints about x. Closing curls a and b, c towards each
other across the palm's y axis; a passes between b and c. ``hand_tcp`` lies on the palm's axis
``tcp_beyond_palm`` past its face: the centre of the grasp (the grasp frame's origin).

Underactuation: one command per finger. Each phalanx's joint closes at its share of the finger's speed
until something stops it, with a torque limit that falls from the proximal to the distal phalanx, so a
finger that meets an object with its proximal phalanx goes on curling its outer phalanges around it, as
the Robotiq linkage does. The URDF is written from ``HandGeometry``, so dimensions live in one place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pybullet

FINGERS = ("a", "b", "c")
PHALANGES = ("proximal", "medial", "distal")
HAND_FRICTION = 0.8  # rubber-padded phalanges on plastic or wood
CLOSING_SPEED = 0.5  # [rad/s] a finger's proximal joint: about 60 mm/s at the fingertip, inside the Robotiq
# 3-finger's 22-110 mm/s (at 2 rad/s, 240 mm/s, 33 of 56 failures relabelled this way held)
CLOSE_TIME = 4.0  # [s] the most closing and settling may take
SETTLED_SPEED = 0.05  # [rad/s] fingers slower than this have closed (on the object or fully)
HELD_BY = 2  # fingers touching a part: held (the jaw: both)
CLOSING_FRACTIONS = (0.25, 0.5, 0.75)  # of the way closed: where the closing fingers pass
HOLD_RADIUS = 0.08  # [m] an object whose centre lies within this of the tcp is in the hand (the palm face lies
# 60 mm behind the tcp): an enveloping grasp lets it settle deeper into the hand, unlike a jaw's pinch


@dataclass(frozen=True)
class HandGeometry:
    palm: tuple[float, float, float] = (0.09, 0.10, 0.06)  # [m] x, y, z (z along the approach)
    knuckle_y: float = 0.04  # [m] knuckles at y = -knuckle_y (a) and +knuckle_y (b, c)
    knuckle_x: float = 0.035  # [m] b and c at x = +-knuckle_x
    phalanges: tuple[float, float, float] = (0.055, 0.038, 0.030)  # [m] lengths, proximal to distal
    finger_width: float = 0.022  # [m] along x
    finger_thickness: float = 0.016  # [m] along the closing direction
    open: tuple[float, float, float] = (-0.25, 0.0, 0.0)  # [rad] joint angles, open: splayed 14 deg outwards
    closed: tuple[float, float, float] = (1.25, 1.57, 1.2)  # [rad] joint upper limits, fully closed
    speed_shares: tuple[float, float, float] = (1.0, 0.8, 0.6)  # of the finger's closing speed, per phalanx
    torques: tuple[float, float, float] = (6.0, 3.0, 1.5)  # [N m] the most each phalanx's joint closes with
    tcp_beyond_palm: float = 0.06  # [m] hand_tcp past the palm face
    palm_mass: float = 1.2  # [kg]
    phalanx_mass: float = 0.05  # [kg]

    @property
    def palm_face(self) -> float:
        """z of the palm's face in the hand frame [m]."""
        return self.palm[2]

    @property
    def tcp(self) -> float:
        """z of hand_tcp in the hand frame [m]."""
        return self.palm_face + self.tcp_beyond_palm

    def knuckle(self, finger: str) -> tuple[float, float, float]:
        x = {"a": 0.0, "b": self.knuckle_x, "c": -self.knuckle_x}[finger]
        y = -self.knuckle_y if finger == "a" else self.knuckle_y
        return (x, y, self.palm_face)

    def closing_axis(self, finger: str) -> tuple[float, float, float]:
        """Joint axis: a positive angle curls the finger towards the palm's y = 0 plane."""
        return (-1.0, 0.0, 0.0) if finger == "a" else (1.0, 0.0, 0.0)

    def open_points(self, spacing: float | None = None) -> np.ndarray:
        """(M, 3) points [m] in the tcp frame on the open hand's outline: the palm face (corners, edge middles and
        centre), and on each finger its joints and tip at the corners of its cross-section, both splayed open
        and straight (the fingertips pass their lowest, most advanced point while closing from open through
        straight). ``spacing`` [m]: also points at most that far apart over the palm's whole surface and along
        the fingers' edges, so that nothing as wide as ``spacing`` slips between them."""
        half_x, half_y = self.palm[0] / 2, self.palm[1] / 2
        points = [(sx * half_x, sy * half_y, self.palm_face) for sx in (-1, 0, 1) for sy in (-1, 0, 1)]
        if spacing is not None:
            points += list(_box_surface(self.palm, spacing) + (0.0, 0.0, self.palm[2] / 2))
        palm = np.array(points) - (0.0, 0.0, self.tcp)
        straight = (0.0,) * len(self.phalanges)
        return np.concatenate([palm, self.finger_points(self.open, spacing), self.finger_points(straight, spacing)])

    def finger_points(self, angles, spacing: float | None = None) -> np.ndarray:
        """(M, 3) points [m] in the tcp frame on the three fingers with their joints at ``angles`` (proximal,
        medial, distal [rad]; positive curls towards the palm's middle): the corners of each finger's
        cross-section at its joints and tip, and with ``spacing`` [m] also at most that far apart along it."""
        ends = np.cumsum(self.phalanges)
        reach = ends if spacing is None else np.union1d(ends, np.arange(0.0, ends[-1], spacing))
        phalanx = np.minimum(np.searchsorted(ends, reach, side="right"), len(ends) - 1)  # the one each lies on
        starts = np.concatenate([[0.0], ends[:-1]])
        bend = np.cumsum(angles)  # each phalanx's angle from the approach
        # each phalanx's start along the chain, in the finger's plane: (inwards, along the approach)
        joints = np.concatenate([[[0.0, 0.0]], np.cumsum(
            np.stack([np.sin(bend), np.cos(bend)], axis=1) * np.array(self.phalanges)[:, None], axis=0)[:-1]])
        along = joints[phalanx] + (reach - starts[phalanx])[:, None] * np.stack(
            [np.sin(bend[phalanx]), np.cos(bend[phalanx])], axis=1)
        across = np.stack([np.cos(bend[phalanx]), -np.sin(bend[phalanx])], axis=1)  # the finger's thickness
        points = []
        for finger in FINGERS:
            inwards = 1.0 if finger == "a" else -1.0  # along y, towards the palm's middle
            for side in (-0.5, 0.5):
                for face in (-0.5, 0.5):
                    planar = along + face * self.finger_thickness * across
                    points.append(np.stack([np.full(len(reach), side * self.finger_width),
                                            inwards * planar[:, 0], planar[:, 1]], axis=1) + self.knuckle(finger))
        return np.concatenate(points) - (0.0, 0.0, self.tcp)

    def closing_points(self, fractions=CLOSING_FRACTIONS, spacing: float | None = None) -> np.ndarray:
        """(M, 3) points [m] in the tcp frame on the fingers on their way closed: at each of ``fractions``
        between open (0) and closed (1), every joint that share of its way (as the grasp lab places them)."""
        return np.concatenate([
            self.finger_points([a + f * (b - a) for a, b in zip(self.open, self.closed)], spacing)
            for f in fractions])


def _box_surface(size, spacing: float) -> np.ndarray:
    """(M, 3) points at most ``spacing`` apart over the surface of a box of ``size`` centred on the origin."""
    axes = [np.linspace(-s / 2, s / 2, int(math.ceil(s / spacing)) + 1) for s in size]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    on_face = np.any(np.isclose(np.abs(grid), np.array(size) / 2), axis=1)
    return grid[on_face]


def joint_name(finger: str, phalanx: str) -> str:
    return f"finger_{finger}_{phalanx}_joint"


def _box_link(name: str, size, origin, mass: float, color: str, inertial_origin=None) -> str:
    sx, sy, sz = size
    ox, oy, oz = origin
    ix, iy, iz = origin if inertial_origin is None else inertial_origin
    ixx = mass * (sy * sy + sz * sz) / 12
    iyy = mass * (sx * sx + sz * sz) / 12
    izz = mass * (sx * sx + sy * sy) / 12
    box = f'<origin xyz="{ox:g} {oy:g} {oz:g}"/><geometry><box size="{sx:g} {sy:g} {sz:g}"/></geometry>'
    return (
        f'  <link name="{name}">\n'
        f'    <inertial><origin xyz="{ix:g} {iy:g} {iz:g}"/><mass value="{mass:g}"/>'
        f'<inertia ixx="{ixx:.3g}" ixy="0" ixz="0" iyy="{iyy:.3g}" iyz="0" izz="{izz:.3g}"/></inertial>\n'
        f'    <visual>{box}<material name="{color}"/></visual>\n'
        f"    <collision>{box}</collision>\n"
        f"  </link>\n"
    )


def hand_urdf(geometry: HandGeometry = HandGeometry()) -> str:
    g = geometry
    parts = [
        '<?xml version="1.0"?>\n',
        "<!-- grasp_cell three-finger hand, written by grasp_cell.sim.hand from HandGeometry -->\n",
        '<robot name="three_finger_hand">\n',
        '  <material name="dark"><color rgba="0.2 0.2 0.22 1"/></material>\n',
        '  <material name="alu"><color rgba="0.75 0.75 0.78 1"/></material>\n',
        # the mount's inertial frame is its link frame: PyBullet places a free body by its inertial frame
        _box_link("hand_mount", g.palm, (0.0, 0.0, g.palm[2] / 2), g.palm_mass, "dark", (0.0, 0.0, 0.0)),
    ]
    for finger in FINGERS:
        parent, origin = "hand_mount", g.knuckle(finger)
        axis = " ".join(f"{a:g}" for a in g.closing_axis(finger))
        for k, (phalanx, length) in enumerate(zip(PHALANGES, g.phalanges)):
            link = f"finger_{finger}_{phalanx}"
            size = (g.finger_width, g.finger_thickness, length)
            parts.append(_box_link(link, size, (0.0, 0.0, length / 2), g.phalanx_mass, "alu"))
            parts.append(
                f'  <joint name="{joint_name(finger, phalanx)}" type="revolute">\n'
                f'    <parent link="{parent}"/><child link="{link}"/>\n'
                f'    <origin xyz="{origin[0]:g} {origin[1]:g} {origin[2]:g}"/><axis xyz="{axis}"/>\n'
                f'    <limit lower="{g.open[k]:g}" upper="{g.closed[k]:g}" effort="{g.torques[k]:g}" velocity="3"/>\n'
                f"  </joint>\n"
            )
            parent, origin = link, (0.0, 0.0, length)
    parts.append(
        '  <link name="hand_tcp"><inertial><mass value="0.001"/>'
        '<inertia ixx="1e-9" ixy="0" ixz="0" iyy="1e-9" iyz="0" izz="1e-9"/></inertial></link>\n'
        '  <joint name="hand_tcp_joint" type="fixed"><parent link="hand_mount"/><child link="hand_tcp"/>'
        f'<origin xyz="0 0 {g.tcp:g}"/></joint>\n'
        "</robot>\n"
    )
    return "".join(parts)


def write_hand_urdf(folder: Path, geometry: HandGeometry = HandGeometry()) -> Path:
    path = Path(folder) / "three_finger_hand.urdf"
    path.write_text(hand_urdf(geometry), encoding="utf-8")
    return path


def drive_fingers(client: int, body: int, finger_joints, geometry: HandGeometry, speed: float) -> None:
    """Command every finger closed (``speed`` > 0, the proximal joint's [rad/s]) or open (< 0): each phalanx
    moves towards its end at its share of the speed with its torque limit, and stops where it is blocked.
    ``finger_joints``: per finger, its (proximal, medial, distal) joint indices in ``body``."""
    target = geometry.closed if speed > 0 else geometry.open
    for joints in finger_joints:
        for joint, share, torque, end in zip(joints, geometry.speed_shares, geometry.torques, target):
            pybullet.setJointMotorControl2(body, joint, pybullet.POSITION_CONTROL, targetPosition=end,
                                           maxVelocity=abs(speed) * share, force=torque, positionGain=0.3,
                                           physicsClientId=client)


def fingers_touching(client: int, body: int, finger_links) -> dict[int, int]:
    """How many fingers of ``body`` touch each other body; ``finger_links``: one collection of link indices per
    finger. The one measure of holding the lab and the cell share (a part touched by ``HELD_BY`` is held)."""
    touches: dict[int, int] = {}
    for links in finger_links:
        touching = set()
        for link in links:
            touching |= {contact[2] for contact in pybullet.getContactPoints(body, linkIndexA=link,
                                                                             physicsClientId=client)}
        for other in touching:
            touches[other] = touches.get(other, 0) + 1
    return touches


def fingers_still(client: int, body: int, finger_joints) -> bool:
    """Every phalanx has stopped (closed on something or fully)."""
    joints = [joint for finger in finger_joints for joint in finger]
    states = pybullet.getJointStates(body, joints, physicsClientId=client)
    return all(abs(state[1]) < SETTLED_SPEED for state in states)
