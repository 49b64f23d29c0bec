"""Seed 004's grasp lab (section III-A): the three-finger hand floating free, one object, no gravity.

- Qualified grasps: a random hand orientation and a random direction; the hand slides along that
  direction through the object with its orientation fixed, and every position where the open hand does
  not touch the object but the closed hand would is qualified (a necessary condition for a grasp).
- Labels: the hand closes on the object, which floats free at rest, until fingers and object are still (at
  most ``CLOSE_TIME``). FAILED as ``failure_rule`` says (``FAILURE_RULES``): ``still_moving`` (the seed's
  "knocked away"): the object is still moving after closing, or the closed hand does not touch it;
  ``not_held`` (the cell's rule): fewer than two fingers touch it or its centre is further than
  ``HOLD_RADIUS`` from the tcp, so an object still turning between the fingers counts as held. LOOSE when
  its centre of mass leaves the hand during ``SHAKES`` random shakes of the hand (x, y, z, each up to
  ``SHAKE_AMPLITUDE``); ROBUST otherwise.

Poses are those of the hand's tcp (the grasp frame: z the approach, origin between the fingers) in the
object's frame, ``T_obj_tcp``. The hand is a free body held by a fixed constraint whose target moves with
the shakes; the fingers are driven as in ``grasp_cell.sim.hand`` (one command per finger).
"""

from __future__ import annotations

import enum
import math
import tempfile
from dataclasses import dataclass

import numpy as np
import pybullet

from grasp_cell.core.transform import Transform, rotation_about_axis
from grasp_cell.sim.config import PartsConfig
from grasp_cell.sim.hand import (
    CLOSE_TIME,
    CLOSING_SPEED,
    FINGERS,
    HAND_FRICTION,
    HELD_BY,
    HOLD_RADIUS,
    PHALANGES,
    HandGeometry,
    drive_fingers,
    fingers_still,
    fingers_touching,
    joint_name,
    write_hand_urdf,
)
from grasp_cell.sim.parts import PartSpec, ShapeCache, create_part_body
from grasp_cell.sim.pick import smoothstep

TIME_STEP = 1.0 / 240.0  # [s]
SOLVER_ITERATIONS = 50  # fingers squeezing a light object: fewer lets phalanges sink into it
MOVING_SPEED = 0.02  # [m/s] an object faster than this after closing is still moving (and closing goes on)
FAILURE_RULES = ("still_moving", "not_held")  # see the module docstring
SHAKES = 10  # seed 004: 10 random shakes
SHAKE_AMPLITUDE = 0.03  # [m] per axis
SHAKE_TIME = 0.15  # [s] out, and as long back: about 0.8 g peak at full amplitude
MAX_TILT = math.radians(30.0)  # poses from above: the approach within this of straight down
DOWN = np.diag([1.0, -1.0, -1.0])  # the tcp's z (the approach) straight down
MAX_PUSH_FORCE = 500.0  # [N] the constraint that carries the hand
CHECK_EVERY = 6  # physics steps between checks while closing
SLIDE_STEP = 0.005  # [m] between positions along a slide
CLEARANCE_SEARCH = 0.05  # [m] poses further than this from the object are not kept for learning its distance
NEAR_SURFACE = 3  # slide steps: colliding poses from slides lie at most this far inside (15 mm)


class GraspLabel(str, enum.Enum):
    FAILED = "failed"
    LOOSE = "loose"
    ROBUST = "robust"


@dataclass(frozen=True)
class GraspTrial:
    """A simulated grasp: the pose tried, its label and why."""

    T_obj_tcp: Transform
    label: GraspLabel
    detail: str = ""


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation matrix uniform over SO(3) (from a uniform unit quaternion)."""
    q = rng.normal(size=4)
    return Transform.from_pos_quat((0.0, 0.0, 0.0), q / np.linalg.norm(q)).rotation


def random_direction(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


class FloatingHand:
    """A PyBullet client of its own (no gravity) with the hand and at most one object at the origin."""

    def __init__(self, geometry: HandGeometry = HandGeometry(), failure_rule: str = "still_moving"):
        if failure_rule not in FAILURE_RULES:
            raise ValueError(f"unknown failure rule '{failure_rule}'; expected one of {', '.join(FAILURE_RULES)}")
        self.geometry = geometry
        self.failure_rule = failure_rule
        self.client = pybullet.connect(pybullet.DIRECT)
        kwargs = {"physicsClientId": self.client}
        pybullet.setGravity(0, 0, 0, **kwargs)
        pybullet.setPhysicsEngineParameter(fixedTimeStep=TIME_STEP, numSolverIterations=SOLVER_ITERATIONS,
                                           deterministicOverlappingPairs=1, **kwargs)
        with tempfile.TemporaryDirectory(prefix="grasp_cell_hand_") as folder:
            self.hand = pybullet.loadURDF(str(write_hand_urdf(folder, geometry)), **kwargs)
        names = {pybullet.getJointInfo(self.hand, j, **kwargs)[1].decode(): j
                 for j in range(pybullet.getNumJoints(self.hand, **kwargs))}
        self.finger_joints = [[names[joint_name(f, p)] for p in PHALANGES] for f in FINGERS]
        for link in range(-1, pybullet.getNumJoints(self.hand, **kwargs)):
            pybullet.changeDynamics(self.hand, link, lateralFriction=HAND_FRICTION, **kwargs)
        self.T_tcp_mount = Transform(translation=(0.0, 0.0, -geometry.tcp))
        self.carrier = pybullet.createConstraint(self.hand, -1, -1, -1, pybullet.JOINT_FIXED, [0, 0, 0],
                                                 [0, 0, 0], [0, 0, 0], **kwargs)
        self._shapes = ShapeCache(self.client)
        self.object: int | None = None
        self.spec: PartSpec | None = None

    def close(self) -> None:
        if self.client >= 0:
            pybullet.disconnect(self.client)
            self.client = -1

    def __enter__(self) -> "FloatingHand":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- the object ---------------------------------------------------------------------------------------
    def set_object(self, spec: PartSpec) -> None:
        """Put ``spec`` at the origin, at rest (replacing the last object)."""
        kwargs = {"physicsClientId": self.client}
        if self.object is not None:
            pybullet.removeBody(self.object, **kwargs)
        parts = PartsConfig(lateral_friction=HAND_FRICTION)
        self.object = create_part_body(self._shapes, spec, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0), parts)
        pybullet.changeDynamics(self.object, -1, activationState=pybullet.ACTIVATION_STATE_DISABLE_SLEEPING,
                                linearDamping=0.0, angularDamping=0.0, **kwargs)
        self.spec = spec

    def _reset_object(self) -> None:
        if self.object is None:
            return
        kwargs = {"physicsClientId": self.client}
        pybullet.resetBasePositionAndOrientation(self.object, (0, 0, 0), (0, 0, 0, 1), **kwargs)
        pybullet.resetBaseVelocity(self.object, (0, 0, 0), (0, 0, 0), **kwargs)

    def object_pose(self) -> Transform:
        position, orientation = pybullet.getBasePositionAndOrientation(self.object, physicsClientId=self.client)
        return Transform.from_pos_quat(position, orientation)

    # --- placing the hand ---------------------------------------------------------------------------------
    def place(self, T_obj_tcp: Transform, closed: float = 0.0) -> None:
        """Teleport the hand to ``T_obj_tcp`` open (``closed`` 0), fully closed (1) or between, the object back
        to the origin."""
        kwargs = {"physicsClientId": self.client}
        self._reset_object()
        T_world_mount = T_obj_tcp * self.T_tcp_mount
        pybullet.resetBasePositionAndOrientation(self.hand, T_world_mount.translation.tolist(),
                                                 T_world_mount.quat_xyzw.tolist(), **kwargs)
        pybullet.resetBaseVelocity(self.hand, (0, 0, 0), (0, 0, 0), **kwargs)
        angles = [a + float(closed) * (b - a) for a, b in zip(self.geometry.open, self.geometry.closed)]
        for joints in self.finger_joints:
            for joint, angle in zip(joints, angles):
                pybullet.resetJointState(self.hand, joint, angle, 0.0, **kwargs)
        self._carry(T_world_mount)

    def _carry(self, T_world_mount: Transform) -> None:
        pybullet.changeConstraint(self.carrier, T_world_mount.translation.tolist(),
                                  jointChildFrameOrientation=T_world_mount.quat_xyzw.tolist(),
                                  maxForce=MAX_PUSH_FORCE, physicsClientId=self.client)

    def distance(self, T_obj_tcp: Transform, search: float = 0.05) -> float:
        """Closest distance [m] between the open hand at ``T_obj_tcp`` and the object, negative when they
        overlap (the deepest penetration), ``search`` when nothing lies within ``search``."""
        self.place(T_obj_tcp)
        points = pybullet.getClosestPoints(self.hand, self.object, search, physicsClientId=self.client)
        return min((p[8] for p in points), default=search)

    def qualified(self, T_obj_tcp: Transform, sweep: bool = False) -> bool:
        """Open: clear of the object; closed: it would overlap it (seed 004 III-A). ``sweep``: or the fingers
        would on their way (a quarter, half or three quarters closed): a hand over an object resting on a floor
        closes its fingertips under its sides, and curled fully they end above a low object."""
        if self._overlaps(T_obj_tcp, closed=0.0):
            return False
        return any(self._overlaps(T_obj_tcp, closed) for closed in ((1.0, 0.75, 0.5, 0.25) if sweep else (1.0,)))

    def _overlaps(self, T_obj_tcp: Transform, closed: float) -> bool:
        self.place(T_obj_tcp, closed)
        points = pybullet.getClosestPoints(self.hand, self.object, 0.0, physicsClientId=self.client)
        return any(p[8] < 0.0 for p in points)

    def slide(self, rotation: np.ndarray, direction: np.ndarray, through: np.ndarray,
              colliding: bool = False, sweep: bool = False, near: int | None = None) -> list[Transform]:
        """Qualified tcp poses with ``rotation`` along the line through ``through`` (object frame) along
        ``direction``, ``SLIDE_STEP`` apart, over the object and the hand's reach on both sides
        (``colliding``: those where the open hand overlaps the object instead, with ``near`` only those up to
        ``near`` steps in; ``sweep``: see ``qualified``)."""
        poses = self._along(rotation, direction, through)
        if colliding:
            inside = np.array([self._overlaps(pose, closed=0.0) for pose in poses])
            if near is None:
                return [pose for pose, overlaps in zip(poses, inside) if overlaps]
            # only those at most ``near`` steps from a clear pose: where an optimiser would cross in
            clear = np.flatnonzero(~inside)
            return [poses[i] for i in np.flatnonzero(inside) if clear.size and np.min(np.abs(clear - i)) <= near]
        return [pose for pose in poses if self.qualified(pose, sweep)]

    def sample_qualified(self, rng: np.random.Generator, slides: int, colliding: bool = False) -> list[Transform]:
        """Qualified poses (``colliding``: poses up to NEAR_SURFACE steps inside the object) from ``slides``
        random slides, each through a point within half the object's bounding radius of its centre."""
        found = []
        for _ in range(slides):
            found.extend(self.slide(*self._random_line(rng), colliding, near=NEAR_SURFACE if colliding else None))
        return found

    def _random_line(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A random slide: (rotation, direction, a point within half the bounding radius of the centre)."""
        through = random_direction(rng) * rng.uniform(0.0, 0.5 * self.spec.bounding_radius)
        return random_rotation(rng), random_direction(rng), through

    def _along(self, rotation: np.ndarray, direction: np.ndarray, through: np.ndarray) -> list[Transform]:
        """Poses with ``rotation`` along the line, SLIDE_STEP apart, over the object and the hand's reach."""
        reach = self.spec.bounding_radius + self.geometry.tcp + max(self.geometry.palm)
        steps = np.arange(-reach, reach + 1e-9, SLIDE_STEP)
        return [Transform(rotation, np.asarray(through) + s * np.asarray(direction)) for s in steps]

    def sample_clearance(self, rng: np.random.Generator, slides: int,
                         search: float = CLEARANCE_SEARCH) -> list[tuple[Transform, float]]:
        """Poses along ``slides`` random slides (drawn as ``sample_qualified``'s), each with the open hand's
        distance to the object (``distance``: negative inside), those within ``search`` of it: the poses an
        optimiser passes through on its way onto or into the object, for learning that distance."""
        found = []
        for _ in range(slides):
            for pose in self._along(*self._random_line(rng)):
                distance = self.distance(pose, search)
                if distance < search:
                    found.append((pose, distance))
        return found

    def sample_from_above(self, rng: np.random.Generator, T_img_obj: Transform, slides: int,
                          max_tilt: float = MAX_TILT, colliding: bool = False) -> list[Transform]:
        """Poses a bin-picking hand can reach when the object rests as in image frame ``T_img_obj`` (its
        lowest point at z = 0, the floor): approach within ``max_tilt`` of straight down at any yaw, every
        point of the open hand's outline (``HandGeometry.open_points``) above the floor. Each slide moves the
        hand down its approach axis through a random point over the object's footprint and keeps the poses
        qualified with the closing sweep (``qualified``), or with ``colliding`` the poses where the open hand
        overlaps the object instead. The image's origin lies over the middle of the object's box
        (``top_down_heights``)."""
        outline = self.geometry.open_points()
        T_obj_img = T_img_obj.inverse()
        middle = 0.5 * self.spec.bounding_radius  # slides pass within this of the image origin (box centre)
        found = []
        for _ in range(slides):
            tilt = rotation_about_axis((*random_direction(rng)[:2], 0.0), rng.uniform(0.0, max_tilt)) \
                if max_tilt > 0 else np.eye(3)
            R_img_tcp = tilt @ rotation_about_axis((0.0, 0.0, 1.0), rng.uniform(0, 2 * math.pi)) @ DOWN
            through = np.array([*rng.uniform(-middle, middle, 2), 0.0])
            for pose in self.slide(T_obj_img.rotation @ R_img_tcp, T_obj_img.rotation @ R_img_tcp[:, 2],
                                   T_obj_img.apply(through), colliding, sweep=True):
                T_img_tcp = T_img_obj * pose
                if np.min(T_img_tcp.apply(outline)[:, 2]) >= 0.0:
                    found.append(pose)
        return found

    def sample_colliding(self, rng: np.random.Generator, count: int, tries: int = 50) -> list[Transform]:
        """Up to ``count`` random poses (tcp within the object's bounding radius of its centre, any
        orientation) where the open hand overlaps the object: seed 004's "explicit colliding poses"."""
        found = []
        for _ in range(count * tries):
            if len(found) == count:
                break
            position = random_direction(rng) * rng.uniform(0.0, self.spec.bounding_radius)
            pose = Transform(random_rotation(rng), position)
            if self._overlaps(pose, closed=0.0):
                found.append(pose)
        return found

    # --- seeing the object -------------------------------------------------------------------------------
    def top_down_heights(self, rotation: np.ndarray, pixels: int, cell: float) -> tuple[np.ndarray, Transform]:
        """The object turned by ``rotation``, seen straight down (-z) on a ``pixels`` x ``pixels`` grid
        ``cell`` [m] apart centred on its bounding box: (heights [m] above its lowest point, 0 where the
        rays miss it; rows along y, columns along x) and ``T_img_obj``, the object in the image's frame
        (origin at the grid's centre on the level of the lowest point, axes as the object frame's)."""
        kwargs = {"physicsClientId": self.client}
        self.place(Transform(translation=(10.0, 10.0, 10.0)))  # the hand out of the way
        pybullet.resetBasePositionAndOrientation(self.object, (0, 0, 0),
                                                 Transform(rotation).quat_xyzw.tolist(), **kwargs)
        low, high = (np.asarray(corner) for corner in pybullet.getAABB(self.object, **kwargs))
        centre = 0.5 * (low + high)
        steps = (np.arange(pixels) - 0.5 * (pixels - 1)) * cell
        x, y = np.meshgrid(centre[0] + steps, centre[1] + steps)
        top, bottom = high[2] + 0.01, low[2] - 0.01
        starts = np.stack([x.ravel(), y.ravel(), np.full(x.size, top)], axis=1)
        ends = starts.copy()
        ends[:, 2] = bottom
        hits = pybullet.rayTestBatch(starts.tolist(), ends.tolist(), **kwargs)
        fraction = np.array([hit[2] if hit[0] == self.object else 1.0 for hit in hits])
        surface = top - fraction * (top - bottom)
        heights = np.where(fraction < 1.0, surface - low[2], 0.0).reshape(pixels, pixels)
        self._reset_object()
        return heights.astype(np.float32), Transform(rotation, (-centre[0], -centre[1], -low[2]))

    # --- simulating a grasp -------------------------------------------------------------------------------
    def trial(self, T_obj_tcp: Transform, rng: np.random.Generator) -> GraspTrial:
        """Close the hand at ``T_obj_tcp`` on the free object, then shake it (see the module docstring)."""
        self.place(T_obj_tcp)
        self._drive_fingers(CLOSING_SPEED)
        kwargs = {"physicsClientId": self.client}
        for _ in range(round(CLOSE_TIME / TIME_STEP / CHECK_EVERY)):
            self._step(CHECK_EVERY)
            speed = float(np.linalg.norm(pybullet.getBaseVelocity(self.object, **kwargs)[0]))
            if speed <= MOVING_SPEED and fingers_still(self.client, self.hand, self.finger_joints):
                break  # (judged now: nothing will change)
        if self.failure_rule == "not_held":
            touching = fingers_touching(self.client, self.hand, self.finger_joints).get(self.object, 0)
            if touching < HELD_BY or not self._holds():
                return GraspTrial(T_obj_tcp, GraspLabel.FAILED, f"not held after closing ({touching} fingers "
                                  f"touch, {speed:.2f} m/s)")
        elif speed > MOVING_SPEED:
            return GraspTrial(T_obj_tcp, GraspLabel.FAILED, f"knocked away ({speed:.2f} m/s)")
        elif not pybullet.getContactPoints(self.hand, self.object, **kwargs):
            return GraspTrial(T_obj_tcp, GraspLabel.FAILED, "the closed hand does not touch the object")
        T_world_mount = T_obj_tcp * self.T_tcp_mount
        for shake in range(1, SHAKES + 1):
            offset = rng.uniform(-SHAKE_AMPLITUDE, SHAKE_AMPLITUDE, 3)
            for start, end in ((np.zeros(3), offset), (offset, np.zeros(3))):
                self._move(T_world_mount, start, end)
                if not self._holds():
                    return GraspTrial(T_obj_tcp, GraspLabel.LOOSE, f"left the hand in shake {shake}")
        return GraspTrial(T_obj_tcp, GraspLabel.ROBUST)

    def _drive_fingers(self, speed: float) -> None:
        drive_fingers(self.client, self.hand, self.finger_joints, self.geometry, speed)

    def _move(self, T_world_mount: Transform, start: np.ndarray, end: np.ndarray) -> None:
        """Carry the hand from mount + ``start`` to mount + ``end`` (world offsets) with a smooth profile."""
        ticks = max(1, round(SHAKE_TIME / TIME_STEP))
        for tick in range(1, ticks + 1):
            s, _ = smoothstep(tick / ticks)
            self._carry(Transform(T_world_mount.rotation, T_world_mount.translation + start + s * (end - start)))
            self._step()

    def _holds(self) -> bool:
        """The object's centre of mass lies within HOLD_RADIUS of the tcp."""
        kwargs = {"physicsClientId": self.client}
        com = np.asarray(pybullet.getBasePositionAndOrientation(self.object, **kwargs)[0])
        position, orientation = pybullet.getBasePositionAndOrientation(self.hand, **kwargs)
        T_world_tcp = Transform.from_pos_quat(position, orientation) * self.T_tcp_mount.inverse()
        return float(np.linalg.norm(com - T_world_tcp.translation)) <= HOLD_RADIUS

    def _step(self, count: int = 1) -> None:
        for _ in range(count):
            pybullet.stepSimulation(physicsClientId=self.client)

