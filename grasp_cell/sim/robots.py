"""Arm twins (UR5, KUKA iiwa, Kinova Gen2) with our own gripper on the flange: URDF assembly, IK, motion.

The arm URDFs come from pybullet_data (iiwa) and example-robot-data (UR5, Kinova j2s6s200). We write one
combined URDF per (arm, gripper) into a temporary folder: mesh paths made absolute, arm visuals dropped
(the arm is parked out of the camera's view whenever it captures, and some .dae visuals do not load),
the Kinova's own two-finger hand replaced by its wrist ring, and the gripper joined to the flange.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pybullet
import pybullet_data

from grasp_cell.core.grasp import GripperKind
from grasp_cell.core.transform import Transform
from grasp_cell.sim.config import GripperConfig
from grasp_cell.sim.hand import (
    FINGERS,
    HAND_FRICTION,
    PHALANGES,
    HandGeometry,
    drive_fingers,
    joint_name,
    write_hand_urdf,
)

ASSETS = Path(__file__).resolve().parent / "assets"
GRIPPER_URDFS = {GripperKind.SUCTION: ASSETS / "suction_cup.urdf", GripperKind.PARALLEL: ASSETS / "parallel_jaw.urdf"}
GRIPPER_ROOT_LINKS = {GripperKind.SUCTION: "suction_mount", GripperKind.PARALLEL: "jaw_mount",
                      GripperKind.THREE_FINGER: "hand_mount"}
TCP_LINKS = {GripperKind.SUCTION: "suction_tcp", GripperKind.PARALLEL: "jaw_tcp", GripperKind.THREE_FINGER: "hand_tcp"}
HAND_JOINTS = {joint_name(finger, phalanx) for finger in FINGERS for phalanx in PHALANGES}
CUP_LINK = "suction_cup"
BELLOWS_JOINT = "suction_bellows_joint"
FINGER_JOINTS = ("jaw_left_joint", "jaw_right_joint")
FINGER_LINKS = ("jaw_left_finger", "jaw_right_finger")
CUP_RADIUS = 0.005  # [m] as in suction_cup.urdf
TRANSIT_CHECK_STEP = 0.05  # [rad] of the largest joint move between a transit's kinematic collision checks
TRANSIT_MARGIN = 0.01  # [m] a transit keeps the arm and gripper this far from the bin
MAX_OPENING = 0.085  # [m] between the pads, twice the finger joints' upper limit in parallel_jaw.urdf


def example_robot_data_dir() -> Path:
    """The ``robots`` folder of the installed example-robot-data package (pip/cmeel or an ament prefix)."""
    candidates = []
    try:
        distribution = importlib.metadata.distribution("example-robot-data")
        candidates.append(Path(distribution.locate_file("cmeel.prefix/share/example-robot-data/robots")))
        for file in distribution.files or ():
            parts = Path(file).parts
            if "robots" in parts and "example-robot-data" in parts:
                index = parts.index("robots")
                candidates.append(Path(distribution.locate_file(Path(*parts[: index + 1]))))
                break
    except importlib.metadata.PackageNotFoundError:
        pass
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / "share" / "example-robot-data" / "robots")
    for candidate in candidates:
        if (candidate / "ur_description").is_dir():
            return candidate
    raise FileNotFoundError("example-robot-data is not installed (pip install example-robot-data)")


@dataclass(frozen=True)
class ArmSpec:
    """How to build one arm twin: its URDF, where the gripper goes, and a comfortable posture."""

    name: str
    urdf: str  # "erd:<path>" inside example-robot-data/robots, "pybullet:<path>" inside pybullet_data
    flange_link: str
    flange_xyz: tuple[float, float, float]  # gripper mount in the flange link's frame [m]
    flange_rpy: tuple[float, float, float]  # [rad]
    rest_pose: tuple[float, ...]  # arm joints [rad]: tool down 0.12 m over the bin centre; IK seed
    mount_distance: float  # [m] from the bin centre to the base, so the whole bin lies in the workspace
    home_offset: tuple[float, float]  # tool centre at home: (ahead of the base, above the table) [m]
    drop_links: tuple[str, ...] = ()
    collision_cylinders: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # link: r, len, z

    def urdf_path(self) -> Path:
        source, _, relative = self.urdf.partition(":")
        root = example_robot_data_dir() if source == "erd" else Path(pybullet_data.getDataPath())
        return root / relative


ARMS = {
    "ur5": ArmSpec(
        name="ur5",
        urdf="erd:ur_description/urdf/ur5_joint_limited_robot.urdf",
        flange_link="tool0",
        flange_xyz=(0.0, 0.0, 0.0),
        flange_rpy=(0.0, 0.0, 0.0),
        rest_pose=(-0.22, -1.43, 1.99, -2.13, -1.57, -0.22),
        mount_distance=0.50,
        home_offset=(0.25, 0.40),
    ),
    "iiwa": ArmSpec(
        name="iiwa",
        urdf="pybullet:kuka_iiwa/model.urdf",
        flange_link="lbr_iiwa_link_7",
        flange_xyz=(0.0, 0.0, 0.045),  # the media flange face, 126 mm from the axis of joint 6
        flange_rpy=(0.0, 0.0, 0.0),
        rest_pose=(0.0, 0.87, 0.0, -1.5, 0.0, 0.77, -1.57),
        mount_distance=0.60,  # closer, the near bin edge needs joint 4 beyond its 120 deg limit
        home_offset=(0.30, 0.45),
    ),
    "kinova": ArmSpec(
        name="kinova",
        urdf="erd:kinova_description/robots/kinova.urdf",
        flange_link="j2s6s200_link_6",
        flange_xyz=(0.0, 0.0, -0.012),  # the wrist ring's face; the tool points along -z of link 6
        flange_rpy=(math.pi, 0.0, 0.0),
        rest_pose=(-1.55, 3.85, 1.34, 3.14, 2.51, -1.55),  # continuous joints mid-range
        mount_distance=0.45,  # further, the far bin edge is at the limit of its reach
        home_offset=(0.20, 0.40),
        drop_links=(
            "j2s6s200_end_effector",
            "j2s6s200_link_finger_1",
            "j2s6s200_link_finger_tip_1",
            "j2s6s200_link_finger_2",
            "j2s6s200_link_finger_tip_2",
        ),
        collision_cylinders={"j2s6s200_link_6": (0.036, 0.024, 0.0)},
    ),
}


def assemble_urdf(spec: ArmSpec, gripper: GripperKind, out_dir: Path) -> Path:
    """Write the combined arm + gripper URDF into ``out_dir`` and return its path."""
    urdf_path = spec.urdf_path()
    arm = ET.parse(urdf_path).getroot()
    robots_dir = example_robot_data_dir() if spec.urdf.startswith("erd:") else None
    for mesh in arm.iter("mesh"):
        mesh.set("filename", _resolve_mesh(mesh.get("filename", ""), urdf_path.parent, robots_dir))
    for tag in ("transmission", "gazebo"):
        for element in arm.findall(tag):
            arm.remove(element)
    for link in arm.findall("link"):
        name = link.get("name")
        if name in spec.drop_links:
            arm.remove(link)
            continue
        for visual in link.findall("visual"):
            link.remove(visual)
        if name in spec.collision_cylinders:
            radius, length, z = spec.collision_cylinders[name]
            for collision in link.findall("collision"):
                link.remove(collision)
            collision = ET.SubElement(link, "collision")
            ET.SubElement(collision, "origin", xyz=f"0 0 {z}")
            geometry = ET.SubElement(collision, "geometry")
            ET.SubElement(geometry, "cylinder", radius=str(radius), length=str(length))
    for joint in arm.findall("joint"):
        if joint.find("child").get("link") in spec.drop_links:
            arm.remove(joint)
    link_names = {link.get("name") for link in arm.findall("link")}
    if spec.flange_link not in link_names:
        raise ValueError(f"{spec.name}: flange link '{spec.flange_link}' not in {urdf_path}")

    out_dir.mkdir(parents=True, exist_ok=True)
    # the hand's URDF is written from its geometry (grasp_cell.sim.hand), the others are assets
    tool_urdf = write_hand_urdf(out_dir) if gripper is GripperKind.THREE_FINGER else GRIPPER_URDFS[gripper]
    tool = ET.parse(tool_urdf).getroot()
    for element in tool:
        if element.tag in ("link", "joint"):
            arm.append(element)
    mount = ET.SubElement(arm, "joint", name="gripper_mount_joint", type="fixed")
    ET.SubElement(mount, "parent", link=spec.flange_link)
    ET.SubElement(mount, "child", link=GRIPPER_ROOT_LINKS[gripper])
    ET.SubElement(mount, "origin", xyz=" ".join(map(str, spec.flange_xyz)), rpy=" ".join(map(str, spec.flange_rpy)))

    out_path = out_dir / f"{spec.name}_{gripper.value}.urdf"
    ET.ElementTree(arm).write(out_path, encoding="unicode")
    return out_path


def _resolve_mesh(filename: str, urdf_dir: Path, robots_dir: Path | None) -> str:
    if filename.startswith("package://"):
        package, _, relative = filename[len("package://") :].partition("/")
        if package == "example-robot-data" and relative.startswith("robots/") and robots_dir is not None:
            return str(robots_dir / relative[len("robots/") :])
        if robots_dir is not None and (robots_dir / package).is_dir():
            return str(robots_dir / package / relative)
        raise FileNotFoundError(f"cannot resolve mesh '{filename}'")
    path = Path(filename)
    return str(path if path.is_absolute() else urdf_dir / path)


@dataclass(frozen=True)
class JointLimits:
    lower: np.ndarray
    upper: np.ndarray

    def contains(self, q, tolerance: float = 1e-6) -> bool:
        q = np.asarray(q)
        return bool(np.all(q >= self.lower - tolerance) and np.all(q <= self.upper + tolerance))


class RobotTwin:
    """One arm with its gripper in a PyBullet world: joint bookkeeping, IK with limits, FK, teleporting.

    Motion with physics (paths, contacts) lives in grasp_cell.sim.pick; this class never steps the world.
    """

    def __init__(
        self,
        client: int,
        spec: ArmSpec,
        gripper: GripperKind,
        urdf_path: Path,
        T_world_base: Transform,
        gripper_config: GripperConfig | None = None,
    ):
        self.client = client
        self.gripper_config = gripper_config if gripper_config is not None else GripperConfig()
        self.suction_constraint: int | None = None
        self.spec = spec
        self.gripper = GripperKind.parse(gripper)
        self.T_world_base = T_world_base
        self.body = pybullet.loadURDF(
            str(urdf_path),
            basePosition=T_world_base.translation.tolist(),
            baseOrientation=T_world_base.quat_xyzw.tolist(),
            useFixedBase=True,
            flags=pybullet.URDF_USE_INERTIA_FROM_FILE,
            physicsClientId=client,
        )
        self.link_index: dict[str, int] = {}
        self.joint_index: dict[str, int] = {}
        movable = []  # every non-fixed joint, in PyBullet's DoF order
        for index in range(pybullet.getNumJoints(self.body, physicsClientId=client)):
            info = pybullet.getJointInfo(self.body, index, physicsClientId=client)
            self.link_index[info[12].decode()] = index
            self.joint_index[info[1].decode()] = index
            if info[2] != pybullet.JOINT_FIXED:
                movable.append((index, info[1].decode(), info[8], info[9]))
        tool_joints = {BELLOWS_JOINT, *FINGER_JOINTS, *HAND_JOINTS}
        self.arm_joints = [index for index, name, _, _ in movable if name not in tool_joints]
        self.dof_joints = [index for index, _, _, _ in movable]
        self._arm_dofs = [self.dof_joints.index(index) for index in self.arm_joints]
        self.limits = JointLimits(
            np.array([lower for index, name, lower, _ in movable if index in self.arm_joints]),
            np.array([upper for index, name, _, upper in movable if index in self.arm_joints]),
        )
        if len(self.arm_joints) != len(spec.rest_pose):
            raise ValueError(f"{spec.name}: {len(self.arm_joints)} arm joints, {len(spec.rest_pose)} in the rest pose")
        self._dof_lower = np.array([lower for _, _, lower, _ in movable])
        self._dof_upper = np.array([upper for _, _, _, upper in movable])
        self.tcp_link = self.link_index[TCP_LINKS[self.gripper]]
        self.cup_link = self.link_index.get(CUP_LINK, -2)
        self.finger_links = tuple(self.link_index[name] for name in FINGER_LINKS if name in self.link_index)
        self.finger_joints = tuple(self.joint_index[name] for name in FINGER_JOINTS if name in self.joint_index)
        self.bellows_joint = self.joint_index.get(BELLOWS_JOINT, -1)
        self.hand = HandGeometry()
        # per finger, its (proximal, medial, distal) joints; the phalanx links share the joints' indices
        self.hand_joints = [[self.joint_index[joint_name(f, p)] for p in PHALANGES] for f in FINGERS] \
            if self.gripper is GripperKind.THREE_FINGER else []
        for link in [self.link_index["hand_mount"]] + [j for finger in self.hand_joints for j in finger] \
                if self.hand_joints else []:
            pybullet.changeDynamics(self.body, link, lateralFriction=HAND_FRICTION, physicsClientId=client)
        for finger in self.finger_links:
            # rubber-like pads; spinning friction stands in for the pad area that stops a part pivoting
            pybullet.changeDynamics(
                self.body,
                finger,
                lateralFriction=self.gripper_config.jaw_friction,
                spinningFriction=0.02,
                rollingFriction=0.001,
                frictionAnchor=True,
                physicsClientId=client,
            )
        if self.finger_links:
            # the fingers move together, as through the gripper's linkage (URDF mimic joints do not load):
            # without it the squeezed part and both fingers drift sideways as one
            coupling = pybullet.createConstraint(
                self.body,
                self.finger_links[0],
                self.body,
                self.finger_links[1],
                pybullet.JOINT_GEAR,
                [1, 0, 0],
                [0, 0, 0],
                [0, 0, 0],
                physicsClientId=client,
            )
            pybullet.changeConstraint(coupling, gearRatio=-1, erp=1.0, maxForce=10000, physicsClientId=client)
        if self.cup_link >= 0:
            pybullet.changeDynamics(self.body, self.cup_link, lateralFriction=1.0, physicsClientId=client)
        self.rest_pose = np.array(spec.rest_pose, dtype=float)
        self.home_q = self.rest_pose.copy()
        self.set_joints(self.rest_pose)
        self._rest_tcp_position = self.T_world_tcp().translation
        # IK seeds over one turn of each joint, the same for every world (not drawn from the world's generator)
        spread = np.random.default_rng(12345).uniform(size=(12, len(self.arm_joints)))
        lower = np.maximum(self.limits.lower, -math.pi)
        upper = np.minimum(self.limits.upper, lower + 2 * math.pi)
        self._fallback_seeds = lower + spread * (upper - lower)

    def set_up_home(self, T_world_home: Transform) -> None:
        """Solve the home posture (tool down, out of the camera's view) and park there."""
        home = self.solve_ik(T_world_home, seed=self.rest_pose)
        if home is None:
            raise ValueError(f"{self.spec.name}: no IK solution for the home pose at {T_world_home.translation}")
        self.home_q = home
        self.park()

    def park(self) -> None:
        """Release, then teleport home with the gripper open/extended and the motors holding it there."""
        self.release()
        self.set_joints(self.home_q)
        self.hold(self.home_q)
        self.hold_bellows()
        if self.bellows_joint >= 0:
            pybullet.resetJointState(self.body, self.bellows_joint, 0.0, 0.0, physicsClientId=self.client)
        if self.finger_joints:
            self.set_opening(MAX_OPENING)
        for finger in self.hand_joints:
            for joint, angle in zip(finger, self.hand.open):
                pybullet.resetJointState(self.body, joint, angle, 0.0, physicsClientId=self.client)

    def is_parked(self, tolerance: float = 1e-3) -> bool:
        """At the home posture (out of the camera's view)."""
        return bool(np.max(np.abs(self.joint_positions() - self.home_q)) <= tolerance)

    # --- state -----------------------------------------------------------------------------------------
    def joint_positions(self) -> np.ndarray:
        states = pybullet.getJointStates(self.body, self.arm_joints, physicsClientId=self.client)
        return np.array([state[0] for state in states])

    def path_clear(self, q_from, q_to, obstacles, step: float = TRANSIT_CHECK_STEP,
                   margin: float = TRANSIT_MARGIN) -> bool:
        """Whether the straight joint-space line from ``q_from`` to ``q_to`` keeps every link ``margin`` [m]
        from the bodies ``obstacles``: checked kinematically every ``step`` [rad] of the largest joint move,
        without a physics step; the arm is left at ``q_from``."""
        if not obstacles:
            return True
        q_from, q_to = np.asarray(q_from, dtype=float), np.asarray(q_to, dtype=float)
        count = max(1, math.ceil(float(np.max(np.abs(q_to - q_from))) / step))
        try:
            for s in np.linspace(0.0, 1.0, count + 1):
                self.set_joints(q_from + s * (q_to - q_from))
                for obstacle in obstacles:
                    if pybullet.getClosestPoints(self.body, obstacle, margin, physicsClientId=self.client):
                        return False
            return True
        finally:
            self.set_joints(q_from)

    def set_joints(self, q, velocities=None) -> None:
        """Teleport the arm joints (no physics step); velocities [rad/s] keep contacts consistent while moving."""
        velocities = np.zeros(len(self.arm_joints)) if velocities is None else velocities
        pybullet.resetJointStatesMultiDof(
            self.body,
            self.arm_joints,
            targetValues=[[float(v)] for v in q],
            targetVelocities=[[float(v)] for v in velocities],
            physicsClientId=self.client,
        )

    def hold(self, q, velocities=None, force: float = 500.0) -> None:
        """Position motors on the arm joints track ``q`` (moving at ``velocities``) between teleports."""
        velocities = np.zeros(len(self.arm_joints)) if velocities is None else velocities
        pybullet.setJointMotorControlArray(
            self.body,
            self.arm_joints,
            pybullet.POSITION_CONTROL,
            targetPositions=[float(v) for v in q],
            targetVelocities=[float(v) for v in velocities],
            forces=[force] * len(self.arm_joints),
            physicsClientId=self.client,
        )

    def link_pose(self, link: int) -> Transform:
        state = pybullet.getLinkState(self.body, link, computeForwardKinematics=True, physicsClientId=self.client)
        return Transform.from_pos_quat(state[4], state[5])

    def T_world_tcp(self) -> Transform:
        return self.link_pose(self.tcp_link)

    def forward_kinematics(self, q) -> Transform:
        """T_world_tcp at joint positions ``q``; restores the current joint state afterwards."""
        saved = self.joint_positions()
        self.set_joints(q)
        pose = self.T_world_tcp()
        self.set_joints(saved)
        return pose

    # --- inverse kinematics ----------------------------------------------------------------------------
    def solve_ik(
        self,
        T_world_tcp: Transform,
        seed=None,
        position_tolerance: float = 0.002,
        angle_tolerance_deg: float = 2.0,
    ) -> np.ndarray | None:
        """Arm joints reaching ``T_world_tcp`` inside the joint limits, or None; verified by forward kinematics.

        PyBullet's damped-least-squares IK starts from the current joint state: we try the given seed, the
        rest pose, the rest pose turned towards the target about the first joint, then a fixed set of seeds
        spread over the joint space (deterministic, independent of the world's generator), iterating each a
        few times. The current joint state is restored afterwards.
        """
        saved = self.joint_positions()
        seeds = [] if seed is None else [np.asarray(seed, dtype=float)]
        seeds += [self.rest_pose, self._rest_pose_towards(T_world_tcp.translation)]
        seeds += list(self._fallback_seeds)
        try:
            for start in seeds:
                solution = self._solve_from(start, T_world_tcp, position_tolerance, angle_tolerance_deg)
                if solution is not None:
                    return solution
            return None
        finally:
            self.set_joints(saved)

    def _solve_from(self, q, T_world_tcp, position_tolerance, angle_tolerance_deg, rounds: int = 5):
        """Null-space IK (limits, pulled towards the rest pose) first; plain damped least squares if it stalls."""
        rest = np.zeros(len(self.dof_joints))
        rest[self._arm_dofs] = self.rest_pose
        null_space = {
            "lowerLimits": self._dof_lower.tolist(),
            "upperLimits": self._dof_upper.tolist(),
            "jointRanges": np.maximum(self._dof_upper - self._dof_lower, 1e-3).tolist(),
            "restPoses": rest.tolist(),
        }
        start = np.asarray(q, dtype=float)
        for options in (null_space, {}):
            q = start
            for _ in range(rounds):
                self.set_joints(q)
                dofs = pybullet.calculateInverseKinematics(
                    self.body,
                    self.tcp_link,
                    T_world_tcp.translation.tolist(),
                    T_world_tcp.quat_xyzw.tolist(),
                    maxNumIterations=100,
                    residualThreshold=1e-5,
                    physicsClientId=self.client,
                    **options,
                )
                q = self._wrap_near(np.array(dofs)[self._arm_dofs], start)
                self.set_joints(q)
                if self._pose_error_ok(self.T_world_tcp(), T_world_tcp, position_tolerance, angle_tolerance_deg):
                    if self.limits.contains(q, tolerance=1e-4):
                        return np.clip(q, self.limits.lower, self.limits.upper)
                    break  # reached, but outside the limits: another seed may find another branch
        return None

    def _rest_pose_towards(self, position) -> np.ndarray:
        """The rest pose with the first joint turned so the tool is above ``position`` (same azimuth)."""
        q = self.rest_pose.copy()
        target = self.T_world_base.inverse().apply(position)
        rest = self.T_world_base.inverse().apply(self._rest_tcp_position)
        turn = math.atan2(target[1], target[0]) - math.atan2(rest[1], rest[0])
        q[0] = float(np.clip(self._wrap_into_limits(q[:1] + turn)[0], self.limits.lower[0], self.limits.upper[0]))
        return q

    def _wrap_into_limits(self, q: np.ndarray) -> np.ndarray:
        """Shift revolute joints by multiples of 2 pi towards their limits (IK answers are not normalised)."""
        q = q.copy()
        for i in range(len(q)):
            while q[i] > self.limits.upper[i] and q[i] - 2 * math.pi >= self.limits.lower[i] - 1e-9:
                q[i] -= 2 * math.pi
            while q[i] < self.limits.lower[i] and q[i] + 2 * math.pi <= self.limits.upper[i] + 1e-9:
                q[i] += 2 * math.pi
        return q

    def _wrap_near(self, q: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """Of the 2 pi-equivalent values of each joint inside its limits, the one nearest ``reference``."""
        q = self._wrap_into_limits(q)
        for i in range(len(q)):
            for shift in (-2 * math.pi, 2 * math.pi):
                candidate = q[i] + shift
                inside = self.limits.lower[i] - 1e-9 <= candidate <= self.limits.upper[i] + 1e-9
                if inside and abs(candidate - reference[i]) < abs(q[i] - reference[i]):
                    q[i] = candidate
        return q

    @staticmethod
    def _pose_error_ok(actual: Transform, target: Transform, position_tolerance: float, angle_deg: float) -> bool:
        position_error = float(np.linalg.norm(actual.translation - target.translation))
        cos_angle = (np.trace(actual.rotation.T @ target.rotation) - 1.0) / 2.0
        angle_error = math.degrees(math.acos(float(np.clip(cos_angle, -1.0, 1.0))))
        return position_error <= position_tolerance and angle_error <= angle_deg

    # --- gripper ---------------------------------------------------------------------------------------
    def set_opening(self, opening: float) -> None:
        """Teleport the jaw to ``opening`` [m] between the pads (no-op for suction)."""
        half = float(np.clip(opening, 0.0, MAX_OPENING)) / 2.0
        for joint in self.finger_joints:
            pybullet.resetJointState(self.body, joint, half, 0.0, physicsClientId=self.client)

    def opening(self) -> float:
        if not self.finger_joints:
            return 0.0
        states = pybullet.getJointStates(self.body, list(self.finger_joints), physicsClientId=self.client)
        return float(sum(state[0] for state in states))

    def drive_fingers(self, opening: float, force: float, speed: float) -> None:
        """Fingers move at ``speed`` [m/s] towards ``opening`` pushing with ``force`` [N] each.

        Closing is velocity control with a force limit, so a finger stalled on a part squeezes it with the
        full ``force`` (a position servo would push with a force proportional to its remaining error).
        """
        half = float(np.clip(opening, 0.0, MAX_OPENING)) / 2.0
        for joint in self.finger_joints:
            if half <= 0.0:
                pybullet.setJointMotorControl2(
                    self.body,
                    joint,
                    pybullet.VELOCITY_CONTROL,
                    targetVelocity=-speed,
                    force=force,
                    physicsClientId=self.client,
                )
            else:
                pybullet.setJointMotorControl2(
                    self.body,
                    joint,
                    pybullet.POSITION_CONTROL,
                    targetPosition=half,
                    force=force,
                    maxVelocity=speed,
                    physicsClientId=self.client,
                )

    def attach(self, part: int, force: float) -> None:
        """Suction seal: fix ``part`` to the cup where it is now; the seal gives way beyond ``force`` [N]."""
        self.release()
        # PyBullet constraint frames are relative to the links' centre-of-mass frames
        com_position, com_quat = pybullet.getLinkState(self.body, self.cup_link, physicsClientId=self.client)[:2]
        part_position, part_quat = pybullet.getBasePositionAndOrientation(part, physicsClientId=self.client)
        inv_position, inv_quat = pybullet.invertTransform(com_position, com_quat)
        local_position, local_quat = pybullet.multiplyTransforms(inv_position, inv_quat, part_position, part_quat)
        self.suction_constraint = pybullet.createConstraint(
            self.body,
            self.cup_link,
            part,
            -1,
            pybullet.JOINT_FIXED,
            [0, 0, 0],
            local_position,
            [0, 0, 0],
            parentFrameOrientation=local_quat,
            physicsClientId=self.client,
        )
        pybullet.changeConstraint(self.suction_constraint, maxForce=force, physicsClientId=self.client)

    def release(self) -> None:
        """Vacuum off, jaw opening."""
        if self.suction_constraint is not None:
            pybullet.removeConstraint(self.suction_constraint, physicsClientId=self.client)
            self.suction_constraint = None
        if self.finger_joints:
            self.drive_fingers(MAX_OPENING, self.gripper_config.jaw_force, self.gripper_config.jaw_speed)
        if self.hand_joints:
            self.drive_hand(-self.gripper_config.hand_speed)

    def drive_hand(self, speed: float) -> None:
        """Every finger of the three-finger hand closes (``speed`` > 0, [rad/s] at the proximal joint) or opens."""
        drive_fingers(self.client, self.body, self.hand_joints, self.hand, speed)

    def finger_groups(self) -> list[set[int]]:
        """The links of each finger (jaw: the two pads; hand: each finger's phalanges)."""
        if self.hand_joints:
            return [set(finger) for finger in self.hand_joints]
        return [{link} for link in self.finger_links]

    def bellows_compression(self) -> float:
        """How far [m] the cup face sits behind the TCP (the uncompressed face) along the tool axis."""
        if self.bellows_joint < 0:
            return 0.0
        return -pybullet.getJointState(self.body, self.bellows_joint, physicsClientId=self.client)[0]

    def hold_bellows(self, spring_force: float = 3.0) -> None:
        """The bellows extends with at most ``spring_force`` [N]: pressing harder compresses it."""
        if self.bellows_joint >= 0:
            pybullet.setJointMotorControl2(
                self.body,
                self.bellows_joint,
                pybullet.POSITION_CONTROL,
                targetPosition=0.0,
                force=spring_force,
                physicsClientId=self.client,
            )
