"""One pick in the simulated cell, classified from what physically happened.

The arm moves kinematically along planned joint paths: at every physics step its joints are set to the
next path point with matching velocities and held there by stiff position motors while the physics
steps, so it pushes parts and meets the bin like a stiff industrial arm.

Sequence: plan (IK for pre-grasp, a straight approach, a straight lift and the place pose) -> approach
(home -> pre-grasp in joint space, then along the approach axis to the grasp; suction presses on by
``gripper.press_depth``) -> grip -> lift straight up -> place (move over the out-tray, release) -> home.

Outcome rules (thresholds in ``OutcomeConfig``), checked in this order:

- UNREACHABLE: no IK solution inside the joint limits (verified by forward kinematics within
  ``motion.ik_*_tolerance``) for the pre-grasp, any approach or lift waypoint, or the place pose, for
  every allowed rotation about the approach axis (suction: 4 x 90 deg, jaw: 2 x 180 deg), or no transit
  from home to the pre-grasp that keeps clear of the bin (``RobotTwin.path_clear``).
- COLLISION: while moving from home to the grasp (checked at 60 Hz), any arm or gripper link touches the
  bin, the table or the tray with a normal force above ``collision_force`` or a penetration deeper than
  ``collision_penetration`` (the arm stops there; being stiff, any real contact exceeds 10 N), or, at the
  end of the approach, any part other than the target moved more than ``disturb_distance`` from where it
  lay before the pick. The target is the first part on the approach ray through the grasp point.
- MISSED: suction: no part touches the cup face with its surface normal within ``seal_angle_deg`` of the
  cup axis (no seal); jaw: no part touches both fingers once they stopped closing; three-finger hand: no
  part touches two of its fingers once every finger stopped (closed on something or fully).
- DROPPED: held at the grip, but lost before the release over the tray: suction loses the seal when the
  part is pulled further than ``hold_distance`` from the cup (the seal's force, vacuum x cup area, is the
  constraint's limit) or when gravity's moment about the cup rim exceeds seal force x cup radius (a heavy
  part held off-centre peels off); a jaw grasp is lost when the part drifts more than ``hold_distance``
  from where it was gripped, a hand grasp when its centre gets further than the hand's ``HOLD_RADIUS``
  from the tcp (as in the hand's grasp data), and either when the part stops touching two fingers for 3
  checks in a row. Also DROPPED: released over the
  tray but at rest in the bin after all.
- SUCCESS: held until the release and the gripped part came to rest outside the bin.

``parts_removed`` is the number of parts in the bin before minus after (a double pick counts 2, a part
knocked out of the bin counts too); parts that left the bin are then taken out of the world.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pybullet

from grasp_cell.core.grasp import GripperKind
from grasp_cell.core.outcome import Outcome
from grasp_cell.core.pick import PickResult
from grasp_cell.core.transform import Transform, rotation_about_axis
from grasp_cell.sim.hand import CLOSE_TIME, HELD_BY, HOLD_RADIUS, fingers_still, fingers_touching
from grasp_cell.sim.robots import CUP_RADIUS, MAX_OPENING, RobotTwin
from grasp_cell.sim.world import SimWorld

WAYPOINT_SPACING = 0.01  # [m] between IK points on straight segments
MAX_JOINT_JUMP = 0.35  # [rad] between neighbouring waypoints; more means the IK flipped branches
RELEASE_TIME = 0.3  # [s] for a released part to fall into the tray
SETTLE_AFTER_PICK = 0.5  # [s] at most, for disturbed parts to come to rest before the next capture
MONITOR_PERIOD = 1.0 / 60.0  # [s] between contact and hold checks while moving
JAW_CONTACT_CHECKS = 3  # hold checks in a row without finger contact before a jaw grasp counts as lost


@dataclass(frozen=True)
class PickPlan:
    q_pregrasp: np.ndarray
    approach: list[np.ndarray]  # pre-grasp ... grasp (+ press for suction)
    lift: list[np.ndarray]  # grasp ... lifted
    q_place: np.ndarray
    T_world_grasp: Transform  # with the rotation about the approach axis that was planned


class _Abort(Exception):
    """Ends the pick early with an outcome."""

    def __init__(self, outcome: Outcome, message: str):
        super().__init__(message)
        self.outcome = outcome
        self.message = message


@dataclass
class _Phases:
    on_phase: Callable[[str], None] | None
    durations: dict[str, float] = field(default_factory=dict)
    _name: str | None = None
    _start: float = 0.0

    def start(self, name: str) -> None:
        self.stop()
        self._name, self._start = name, time.perf_counter()
        if self.on_phase is not None:
            self.on_phase(name)

    def stop(self) -> None:
        if self._name is not None:
            self.durations[self._name] = self.durations.get(self._name, 0.0) + time.perf_counter() - self._start
            self._name = None


def execute_pick(
    world: SimWorld,
    T_world_grasp: Transform,
    width: float = 0.0,
    T_world_place: Transform | None = None,
    on_phase: Callable[[str], None] | None = None,
) -> PickResult:
    """Run one pick with the world's arm; the arm ends parked at home. Never raises for physical failures."""
    robot = world.robot
    if robot is None:
        raise RuntimeError("no arm in the world: load_robot() first")
    phases = _Phases(on_phase)
    in_bin_before = set(world.part_ids_in_bin())
    outcome, message = Outcome.SUCCESS, ""
    try:
        phases.start("approach")
        _Pick(world, robot, phases).run(T_world_grasp, width, T_world_place or world.T_world_place())
    except _Abort as abort:
        outcome, message = abort.outcome, abort.message
    finally:
        # back home, let disturbed parts settle, count, clear what left the bin
        robot.park()
        world.settle(SETTLE_AFTER_PICK)
        in_bin_after = set(world.part_ids_in_bin())
        world.remove_parts_outside_bin()
        world.sleep_parts()
        phases.stop()
    removed = len(in_bin_before - in_bin_after)
    return PickResult(outcome, dict(phases.durations), message, removed)


class _Pick:
    def __init__(self, world: SimWorld, robot: RobotTwin, phases: _Phases):
        self.world = world
        self.robot = robot
        self.phases = phases
        self.cfg = world.config
        self.client = world.client
        self.dt = world.time_step  # [s] one physics step, one joint set-point
        self.held: int | None = None
        self.p_tcp_held = np.zeros(3)  # held part centre in the TCP frame [m]
        self.jaw_contact_lost = 0  # consecutive hold checks without the part between both fingers

    # --- the sequence ----------------------------------------------------------------------------------
    def run(self, T_world_grasp: Transform, width: float, T_world_place: Transform) -> None:
        plan = plan_pick(self.robot, T_world_grasp, T_world_place, self.world.config, (self.world.bin_id,))
        if isinstance(plan, str):
            raise _Abort(Outcome.UNREACHABLE, plan)
        target = self._target_part(plan)
        positions_before = self.world.part_positions()
        suction = self.robot.gripper is GripperKind.SUCTION
        if self.robot.gripper is GripperKind.PARALLEL:
            opening = MAX_OPENING if width <= 0 else min(width, MAX_OPENING)  # the request's opening
            self.robot.set_opening(opening)
            self.robot.drive_fingers(opening, self.cfg.gripper.jaw_force, self.cfg.gripper.jaw_speed)

        motion = self.cfg.motion
        self._move_joints(self.robot.home_q, plan.q_pregrasp, self._check_contacts)
        approach_length = motion.pregrasp_distance + (self.cfg.gripper.press_depth if suction else 0.0)
        self._follow(plan.approach, _duration(approach_length, motion.approach_speed), self._check_contacts)
        self._check_disturbance(positions_before, target)

        # a jaw holding a part needs more solver iterations, or a finger passes through a light part
        physics = self.cfg.physics
        with self.world.solver_iterations(physics.solver_iterations if suction else physics.grip_solver_iterations):
            self.phases.start("grip")
            {GripperKind.SUCTION: self._grip_suction, GripperKind.PARALLEL: self._grip_jaw,
             GripperKind.THREE_FINGER: self._grip_hand}[self.robot.gripper]()

            self.phases.start("lift")
            self._follow(plan.lift, _duration(motion.lift_height, motion.lift_speed), self._check_hold)

            self.phases.start("place")
            self._move_joints(plan.lift[-1], plan.q_place, self._check_hold)
            held = self.held
            self.robot.release()
            self._step_for(RELEASE_TIME)
        if self.world.is_in_bin(self.world.part_position(held)):
            raise _Abort(Outcome.DROPPED, "released over the tray but the part ended in the bin")

    # --- motion ----------------------------------------------------------------------------------------
    def _move_joints(self, q_from, q_to, monitor: Callable[[], None]) -> None:
        """Straight line in joint space, the slowest joint at ``motion.joint_speed`` at its peak."""
        duration = _duration(float(np.max(np.abs(np.asarray(q_to) - q_from))), self.cfg.motion.joint_speed)
        self._follow([q_from, q_to], duration, monitor)

    def _follow(self, path: list[np.ndarray], duration: float, monitor: Callable[[], None]) -> None:
        """Move through joint ``path`` (evenly spaced) in ``duration`` [s] with a smooth time scaling."""
        path = np.asarray(path, dtype=float)
        ticks = max(1, math.ceil(duration / self.dt))
        monitor_every = max(1, round(MONITOR_PERIOD / self.dt))
        for tick in range(1, ticks + 1):
            s, ds = smoothstep(tick / ticks)
            q, dq_ds = _along(path, s)
            velocities = dq_ds * ds / duration
            self.robot.set_joints(q, velocities)
            self.robot.hold(q, velocities)
            self.world.step()
            if tick % monitor_every == 0 or tick == ticks:
                monitor()

    def _step_for(self, seconds: float) -> None:
        self.world.step(max(1, round(seconds / self.world.time_step)))

    # --- checks ----------------------------------------------------------------------------------------
    def _check_contacts(self) -> None:
        limits = self.cfg.outcome
        obstacles = ((self.world.bin_id, "bin"), (self.world.table_id, "table"), (self.world.tray_id, "tray"))
        for obstacle, name in obstacles:
            for contact in pybullet.getContactPoints(self.robot.body, obstacle, physicsClientId=self.client):
                force, distance = contact[9], contact[8]
                if force > limits.collision_force or -distance > limits.collision_penetration:
                    link = _link_name(self.robot, contact[3])
                    raise _Abort(
                        Outcome.COLLISION,
                        f"{link} hit the {name} ({force:.0f} N, {max(0.0, -distance) * 1e3:.1f} mm deep)",
                    )

    def _check_disturbance(self, positions_before: dict[int, np.ndarray], target: int | None) -> None:
        limit = self.cfg.outcome.disturb_distance
        for body, before in positions_before.items():
            if body == target or body not in self.world.parts:
                continue
            moved = float(np.linalg.norm(self.world.part_position(body) - before))
            if moved > limit:
                raise _Abort(Outcome.COLLISION, f"the approach pushed a neighbouring part {moved * 1e3:.0f} mm")

    def _target_part(self, plan: PickPlan) -> int | None:
        """First part on the approach ray from the pre-grasp through the grasp point (5 cm beyond)."""
        T = plan.T_world_grasp
        approach = T.rotation[:, 2]
        start = T.translation - approach * self.cfg.motion.pregrasp_distance
        end = T.translation + 0.05 * approach
        hit = pybullet.rayTest(start.tolist(), end.tolist(), physicsClientId=self.client)[0]
        return hit[0] if hit[0] in self.world.parts else None

    # --- gripping --------------------------------------------------------------------------------------
    def _grip_suction(self) -> None:
        self._step_for(0.05)  # bellows settles on the surface
        cup = self.robot.cup_link
        T_world_cup = self.robot.link_pose(cup)
        axis = T_world_cup.rotation[:, 2]
        face_centre = T_world_cup.apply([0.0, 0.0, 0.012])
        cos_limit = math.cos(math.radians(self.cfg.gripper.seal_angle_deg))
        best, best_force, best_cos = None, 0.0, -1.0
        touching = {}
        for contact in pybullet.getContactPoints(self.robot.body, linkIndexA=cup, physicsClientId=self.client):
            body = contact[2]
            if body not in self.world.parts:
                continue
            on_face = float(np.dot(np.array(contact[5]) - face_centre, axis)) > -0.002
            if not on_face:
                continue
            normal_sum, force_sum = touching.get(body, (np.zeros(3), 0.0))
            weight = max(contact[9], 1e-6)
            touching[body] = (normal_sum + weight * np.array(contact[7]), force_sum + contact[9])
        for body, (normal_sum, force_sum) in touching.items():
            normal = normal_sum / (np.linalg.norm(normal_sum) + 1e-12)
            cos_angle = float(np.dot(normal, -axis))  # part surface normal vs the cup pointing at it
            if cos_angle > best_cos or (math.isclose(cos_angle, best_cos) and force_sum > best_force):
                best, best_force, best_cos = body, force_sum, cos_angle
        if best is None:
            raise _Abort(Outcome.MISSED, "the suction cup touched no part")
        if best_cos < cos_limit:
            angle = math.degrees(math.acos(float(np.clip(best_cos, -1, 1))))
            raise _Abort(Outcome.MISSED, f"no seal: surface tilted {angle:.0f} deg from the cup axis")
        self.seal_force = self.cfg.gripper.vacuum * math.pi * CUP_RADIUS**2
        self.robot.attach(best, self.seal_force)
        self._hold(best)

    def _grip_jaw(self) -> None:
        gripper = self.cfg.gripper
        self.robot.drive_fingers(0.0, gripper.jaw_force, gripper.jaw_speed)
        steps_per_check = max(1, round(MONITOR_PERIOD / self.dt))
        checks = math.ceil((MAX_OPENING / 2 / gripper.jaw_speed + 0.1) / (steps_per_check * self.dt))
        previous = self.robot.opening()
        for _ in range(checks):
            self.world.step(steps_per_check)
            opening = self.robot.opening()
            if previous - opening < 0.1 * gripper.jaw_speed * steps_per_check * self.dt or opening < 0.0005:
                break  # fingers stalled on a part, or closed
            previous = opening
        self._step_for(0.05)  # let the squeeze build up
        pinched = self._parts_between_fingers()
        if not pinched or self.robot.opening() < 0.001:
            raise _Abort(Outcome.MISSED, "the jaw closed on nothing")
        self._hold(pinched[0])

    def _grip_hand(self) -> None:
        """Close every finger until all have stopped (on the part or fully closed), as in the hand's data."""
        self.robot.drive_hand(self.cfg.gripper.hand_speed)
        steps_per_check = max(1, round(MONITOR_PERIOD / self.dt))
        for _ in range(math.ceil(CLOSE_TIME / (steps_per_check * self.dt))):
            self.world.step(steps_per_check)
            if fingers_still(self.client, self.robot.body, self.robot.hand_joints):
                break
        pinched = self._parts_between_fingers()
        if not pinched:
            raise _Abort(Outcome.MISSED, "the hand closed on nothing")
        self._hold(pinched[0])

    def _parts_between_fingers(self) -> list[int]:
        """Parts touched by at least HELD_BY fingers, most-touched first."""
        touches = fingers_touching(self.client, self.robot.body, self.robot.finger_groups())
        held = (body for body, count in touches.items() if count >= HELD_BY and body in self.world.parts)
        return sorted(held, key=lambda body: (-touches[body], body))

    def _hold(self, body: int) -> None:
        self.held = body
        tcp_position, R_world_tcp = self._tcp()
        self.p_tcp_held = R_world_tcp.T @ (self.world.part_position(body) - tcp_position)

    def _tcp(self) -> tuple[np.ndarray, np.ndarray]:
        """TCP position and rotation matrix, without building a Transform (this runs at 60 Hz)."""
        state = pybullet.getLinkState(
            self.robot.body, self.robot.tcp_link, computeForwardKinematics=True, physicsClientId=self.client
        )
        rotation = np.array(pybullet.getMatrixFromQuaternion(state[5])).reshape(3, 3)
        return np.array(state[4]), rotation

    def _check_hold(self) -> None:
        if self.held is None:
            return
        tcp_position, R_world_tcp = self._tcp()
        actual = self.world.part_position(self.held)
        if self.robot.gripper is GripperKind.THREE_FINGER:
            # the hand's own measure, as in its grasp data (grasp_cell.sim.floating_hand)
            away = float(np.linalg.norm(actual - tcp_position))
            if away > HOLD_RADIUS:
                raise _Abort(Outcome.DROPPED, f"the part left the hand ({away * 1e3:.0f} mm from the tcp)")
        else:
            drift = float(np.linalg.norm(actual - (tcp_position + R_world_tcp @ self.p_tcp_held)))
            if drift > self.cfg.outcome.hold_distance:
                raise _Abort(Outcome.DROPPED, f"the part slipped {drift * 1e3:.0f} mm from the gripper and was lost")
        if self.robot.gripper is GripperKind.SUCTION:
            # gravity's moment about the cup face centre against what the seal can take at its rim
            cup_centre = tcp_position - R_world_tcp[:, 2] * self.robot.bellows_compression()
            weight = 9.81 * self.world.parts[self.held].spec.mass
            lever = actual - cup_centre
            moment = weight * math.hypot(lever[0], lever[1])  # |lever x (0, 0, -weight)|
            if moment > self.seal_force * CUP_RADIUS:
                raise _Abort(Outcome.DROPPED, f"the seal peeled off: {moment * 1e3:.0f} mNm off-centre load")
        elif self.held in self._parts_between_fingers():
            self.jaw_contact_lost = 0
        else:
            # contact points flicker from step to step: lost only if they stay lost for a few checks
            self.jaw_contact_lost += 1
            if self.jaw_contact_lost >= JAW_CONTACT_CHECKS:
                raise _Abort(Outcome.DROPPED, "the part slipped out of the fingers")


def plan_pick(robot: RobotTwin, T_world_grasp: Transform, T_world_place: Transform, config,
              obstacles: tuple[int, ...] = ()) -> PickPlan | str:
    """Joint paths for the pick, or a sentence saying why it is unreachable. The transit from home to the
    pre-grasp is a straight line in joint space that must keep clear of ``obstacles`` (the bin: a wrist
    turning half a revolution on the way swings the gripper through a wall)."""
    motion = config.motion
    # the symmetries of the grasp about its approach axis (the hand has none: finger a faces fingers b and c)
    yaws = {GripperKind.SUCTION: (0.0, math.pi / 2, -math.pi / 2, math.pi), GripperKind.PARALLEL: (0.0, math.pi),
            GripperKind.THREE_FINGER: (0.0,)}[robot.gripper]
    press = config.gripper.press_depth if robot.gripper is GripperKind.SUCTION else 0.0
    reasons = []

    def ik(T_world_tcp: Transform, seed) -> np.ndarray | None:
        return robot.solve_ik(T_world_tcp, seed, motion.ik_position_tolerance, motion.ik_angle_tolerance_deg)

    for yaw in yaws:
        T_grasp = T_world_grasp * Transform(rotation_about_axis([0, 0, 1], yaw))
        approach = T_grasp.rotation[:, 2]
        T_pre = Transform(T_grasp.rotation, T_grasp.translation - approach * motion.pregrasp_distance)
        q_pre = ik(T_pre, robot.home_q)
        if q_pre is None:
            reasons.append("pre-grasp")
            continue
        approach_path = _straight(ik, q_pre, T_pre, approach, motion.pregrasp_distance + press)
        if approach_path is None:
            reasons.append("approach")
            continue
        T_pressed = Transform(T_grasp.rotation, T_grasp.translation + approach * press)
        lift_path = _straight(ik, approach_path[-1], T_pressed, np.array([0.0, 0.0, 1.0]), motion.lift_height)
        if lift_path is None:
            reasons.append("lift")
            continue
        # any rotation about the vertical will do for the drop: take the shortest move
        places = [
            ik(T_world_place * Transform(rotation_about_axis([0, 0, 1], place_yaw)), lift_path[-1])
            for place_yaw in (0.0, math.pi / 2, -math.pi / 2, math.pi)
        ]
        places = [q for q in places if q is not None]
        q_place = min(places, key=lambda q: float(np.max(np.abs(q - lift_path[-1]))), default=None)
        if q_place is None:
            reasons.append("place")
            continue
        if not robot.path_clear(robot.home_q, q_pre, obstacles):  # last: the dearest check
            reasons.append("transit")
            continue
        return PickPlan(q_pre, approach_path, lift_path, q_place, T_grasp)
    where = ", ".join(sorted(set(reasons)))
    return f"no IK solution inside the joint limits or clear path ({where}) at " \
           f"{np.round(T_world_grasp.translation, 3).tolist()}"


def _straight(ik, q_start, T_start: Transform, direction, length: float) -> list[np.ndarray] | None:
    """IK waypoints every WAYPOINT_SPACING along a straight line from T_start, keeping the orientation."""
    count = max(1, math.ceil(length / WAYPOINT_SPACING))
    path = [np.asarray(q_start, dtype=float)]
    for i in range(1, count + 1):
        T = Transform(T_start.rotation, T_start.translation + direction * (length * i / count))
        q = ik(T, path[-1])
        if q is None or np.max(np.abs(q - path[-1])) > MAX_JOINT_JUMP:
            return None
        path.append(q)
    return path


def _duration(distance: float, speed: float) -> float:
    """Time [s] to cover ``distance`` with a smoothstep profile peaking at ``speed`` (1.5x the mean)."""
    return max(0.05, 1.5 * distance / speed)


def smoothstep(x: float) -> tuple[float, float]:
    """s(x) = 3x^2 - 2x^3 and ds/dx."""
    return 3 * x * x - 2 * x**3, 6 * x - 6 * x * x


def _along(path: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    """Point at fraction s of an evenly spaced joint path, and its derivative d q / d s."""
    segments = len(path) - 1
    position = min(s * segments, segments - 1e-9)
    index = int(position)
    fraction = position - index
    q = path[index] + fraction * (path[index + 1] - path[index])
    return q, (path[index + 1] - path[index]) * segments


def _link_name(robot: RobotTwin, link: int) -> str:
    if link < 0:
        return f"{robot.spec.name} base"
    return pybullet.getJointInfo(robot.body, link, physicsClientId=robot.client)[12].decode()
