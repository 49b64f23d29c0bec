"""Configuration of the simulated cell: frozen dataclasses parsed from a plain dict (YAML, node parameters).

World frame: origin on the table top under the bin centre, z up. The bin floor's top face is at
``bin.floor_thickness``; the robot stands on the table beside the bin's long side (-y), the out-tray
lies beside the robot, outside the camera's view. Lengths in metres, angles in degrees, masses in kg.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from grasp_cell.core.camera import CameraIntrinsics
from grasp_cell.core.grasp import GripperKind
from grasp_cell.core.transform import Transform
from grasp_cell.sim.hand import CLOSING_SPEED


class ConfigError(ValueError):
    """A cell configuration that cannot be used; the message names the offending key."""


@dataclass(frozen=True)
class DepthNoiseConfig:
    """Optional depth degradation; everything off by default."""

    gaussian_std: float = 0.0  # [m] per-pixel Gaussian noise on valid depth
    missing: bool = False  # seed 000 eq. 5: part pixels whose intensity is outside [m1, m2] go missing
    m1_range: tuple[float, float] = (0.05, 0.25)  # lower intensity bound, drawn uniformly per capture
    m2_range: tuple[float, float] = (0.75, 0.95)  # upper intensity bound (saturation), per capture


@dataclass(frozen=True)
class CameraConfig:
    """Fixed overhead camera; intrinsics from ``fov_deg`` unless fx/fy/cx/cy are all given."""

    width: int = 640
    height: int = 480
    fov_deg: float = 60.0  # vertical field of view (seed 003 eq. 1)
    fx: float | None = None  # [px]
    fy: float | None = None
    cx: float | None = None
    cy: float | None = None
    eye: tuple[float, float, float] = (0.0, 0.0, 0.61)  # optical centre [m]: 0.6 m above the bin floor
    target: tuple[float, float, float] = (0.0, 0.0, 0.0)  # point the optical axis goes through
    up: tuple[float, float, float] = (0.0, 1.0, 0.0)  # world direction that appears up (-y) in the image
    near: float = 0.1  # [m] OpenGL clip planes; depth outside reads as missing
    far: float = 2.0
    noise: DepthNoiseConfig = field(default_factory=DepthNoiseConfig)

    @property
    def intrinsics(self) -> CameraIntrinsics:
        explicit = (self.fx, self.fy, self.cx, self.cy)
        if all(value is not None for value in explicit):
            return CameraIntrinsics(self.width, self.height, *explicit)
        if any(value is not None for value in explicit):
            raise ConfigError("camera: give all of fx, fy, cx, cy or none of them (then fov_deg is used)")
        return CameraIntrinsics.from_vertical_fov(self.width, self.height, self.fov_deg)

    @property
    def T_world_cam(self) -> Transform:
        return Transform.look_at(self.eye, self.target, self.up)


@dataclass(frozen=True)
class BinConfig:
    inner_size: tuple[float, float] = (0.35, 0.25)  # inner x, y [m]
    wall_height: float = 0.10  # above the floor's top face [m]
    wall_thickness: float = 0.01
    floor_thickness: float = 0.01
    friction: float = 0.5
    tray_position: tuple[float, float] = (0.42, -0.50)  # out-tray centre on the table (x, y) [m]
    tray_size: tuple[float, float] = (0.20, 0.20)


@dataclass(frozen=True)
class PartsConfig:
    """Primitive parts dropped into the bin; sizes are full extents [m] drawn uniformly per part."""

    count: int = 20
    object_set: str = ""  # draw the bin's parts from this set of grasp_cell.sim.objects instead of the ranges below
    shape_weights: dict[str, float] = field(
        default_factory=lambda: {"cylinder": 0.55, "box": 0.15, "sphere": 0.15, "capsule": 0.15}
    )
    cylinder_diameter: tuple[float, float] = (0.019, 0.0307)  # seed 000
    cylinder_length: tuple[float, float] = (0.0257, 0.0317)
    box_size: tuple[float, float] = (0.015, 0.035)  # each edge independently
    sphere_diameter: tuple[float, float] = (0.02, 0.03)
    capsule_diameter: tuple[float, float] = (0.015, 0.022)
    capsule_length: tuple[float, float] = (0.02, 0.035)  # of the cylindrical middle
    density: float = 7850.0  # [kg/m^3] steel: a seed-000 cylinder weighs 57-184 g
    lateral_friction: float = 0.5
    rolling_friction: float = 0.0005  # without rolling/spinning friction cylinders never settle
    spinning_friction: float = 0.001
    drop_height: tuple[float, float] = (0.10, 0.16)  # above the bin floor [m]
    batch_size: int = 10  # parts released together
    batch_time: float = 0.3  # simulated seconds between batches [s]
    settle_time_max: float = 3.0  # simulated seconds to wait for rest after the last batch [s]
    settle_speed: float = 0.005  # [m/s] a part slower than this is at rest


@dataclass(frozen=True)
class PhysicsConfig:
    time_step: float = 1.0 / 240.0  # [s]
    solver_iterations: int = 10
    # while a parallel jaw grips: at 10 (and 30) a finger squeezing a light part against the other finger
    # passes through it; measured on seed-003 benchmark grasps, success stopped changing from 50 to 150
    grip_solver_iterations: int = 80


@dataclass(frozen=True)
class GripperConfig:
    """Gripper forces and tolerances; the geometry (10 mm cup, 0-85 mm jaw) is in grasp_cell/sim/assets."""

    # suction
    vacuum: float = 80e3  # [Pa] below ambient; seal force = vacuum * cup area (6.3 N for the 10 mm cup)
    seal_angle_deg: float = 20.0  # cup axis vs surface normal for a seal
    press_depth: float = 0.004  # [m] travel past the grasp point to compress the bellows
    # parallel jaw
    jaw_force: float = 20.0  # [N] per finger
    jaw_speed: float = 0.15  # [m/s] per finger
    jaw_friction: float = 1.0
    # three-finger hand (geometry and torques in grasp_cell.sim.hand)
    hand_speed: float = CLOSING_SPEED  # [rad/s] of each finger's proximal joint, as in the hand's grasp data


@dataclass(frozen=True)
class MotionConfig:
    joint_speed: float = 2.5  # [rad/s] transits in joint space
    approach_speed: float = 0.25  # [m/s] straight-line approach to the grasp
    lift_speed: float = 0.5  # [m/s]
    pregrasp_distance: float = 0.08  # [m] back along the approach
    lift_height: float = 0.15  # [m] straight up after the grip
    ik_position_tolerance: float = 0.002  # [m]
    ik_angle_tolerance_deg: float = 2.0


@dataclass(frozen=True)
class OutcomeConfig:
    """Thresholds of the outcome rules (see grasp_cell.sim.pick)."""

    collision_force: float = 10.0  # [N] arm/gripper vs bin or table normal force
    collision_penetration: float = 0.003  # [m] arm/gripper into bin or table
    disturb_distance: float = 0.010  # [m] a non-target part pushed further than this
    hold_distance: float = 0.015  # [m] held part drifting further than this from the tool is lost


@dataclass(frozen=True)
class RobotConfig:
    name: str = "ur5"  # ur5 | iiwa | kinova
    gripper: GripperKind = GripperKind.SUCTION
    base_position: tuple[float, float, float] | None = None  # [m]; None: (0, -the arm's mount distance, 0)
    base_yaw_deg: float = 90.0  # base x axis towards the bin
    home_position: tuple[float, float, float] | None = None  # tool centre [m], out of view; None: the arm's
    place_height: float = 0.15  # above the tray [m]


@dataclass(frozen=True)
class CellConfig:
    seed: int = 0
    camera: CameraConfig = field(default_factory=CameraConfig)
    bin: BinConfig = field(default_factory=BinConfig)
    parts: PartsConfig = field(default_factory=PartsConfig)
    physics: PhysicsConfig = field(default_factory=PhysicsConfig)
    robot: RobotConfig = field(default_factory=RobotConfig)
    gripper: GripperConfig = field(default_factory=GripperConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    outcome: OutcomeConfig = field(default_factory=OutcomeConfig)

    def __post_init__(self):
        _check(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> "CellConfig":
        """Parse a plain nested dict; unknown keys and wrong types raise ConfigError naming the key."""
        return _parse(cls, data or {}, "")

    @classmethod
    def from_parameters(cls, parameters: dict) -> "CellConfig":
        """From flat dotted keys as ROS 2 node parameters come (``{"camera.width": 640, ...}``)."""
        nested: dict = {}
        for key, value in parameters.items():
            *sections, leaf = key.split(".")
            node = nested
            for section in sections:
                node = node.setdefault(section, {})
                if not isinstance(node, dict):
                    raise ConfigError(f"{key}: '{section}' is a value, not a section")
            node[leaf] = value
        return cls.from_dict(nested)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "CellConfig":
        """A YAML file; its optional ``base: <file>`` (beside it) is read first and overridden key by key."""
        return cls.from_dict(_read_yaml(Path(path)))

    def to_dict(self) -> dict:
        return _to_plain(self)

    def with_cell(self, robot: str, gripper: "GripperKind | str", seed: int) -> "CellConfig":
        """This configuration with the arm, gripper and seed a launch (or a benchmark) chose."""
        arm = dataclasses.replace(self.robot, name=robot, gripper=GripperKind.parse(gripper))
        return dataclasses.replace(self, robot=arm, seed=int(seed))

    def with_reflective_parts(self, on: bool) -> "CellConfig":
        """This configuration with the camera's seed-000 eq. 5 masking of shiny part pixels on or off."""
        noise = dataclasses.replace(self.camera.noise, missing=bool(on))
        return dataclasses.replace(self, camera=dataclasses.replace(self.camera, noise=noise))


def _parse(cls, data, where: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(where + k for k in unknown)}; expected one of {', '.join(sorted(names))}"
        )
    values = {name: _convert(hints[name], value, f"{where}{name}") for name, value in data.items()}
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where.rstrip('.') or 'config'}: {error}") from None


def _convert(hint, value, where: str):
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _parse(hint, value, where + ".")
    if hint is GripperKind:
        try:
            return GripperKind.parse(value)
        except ValueError as error:
            raise ConfigError(f"{where}: {error}") from None
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(arg for arg in args if arg is not type(None))
        return _convert(hint, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} numbers, got {value!r}")
        return tuple(_convert(arg, item, where) for arg, item in zip(args, value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {str(k): _convert(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _to_plain(value):
    if dataclasses.is_dataclass(value):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, GripperKind):
        return value.value
    if isinstance(value, tuple):
        return [_to_plain(item) for item in value]
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    return value


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    import yaml

    if path.resolve() in seen:
        raise ConfigError(f"{path}: 'base' files form a loop")
    with open(path, encoding="utf-8") as stream:
        data = yaml.safe_load(stream) or {}
    base = data.pop("base", None)
    if base is None:
        return data
    return _merged(_read_yaml(path.parent / base, (*seen, path.resolve())), data)


def _merged(base: dict, override: dict) -> dict:
    """``base`` with ``override`` laid over it, sections merged key by key."""
    out = dict(base)
    for key, value in override.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _check(config: CellConfig) -> None:
    """Cross-field checks the dataclasses alone cannot express."""
    from grasp_cell.sim.objects import SET_SIZES  # local: objects and parts import this module
    from grasp_cell.sim.parts import SHAPES
    from grasp_cell.sim.robots import ARMS

    parts = config.parts
    if parts.count < 0:
        raise ConfigError(f"parts.count must be >= 0, got {parts.count}")
    unknown = sorted(set(parts.shape_weights) - set(SHAPES))
    if unknown:
        raise ConfigError(f"parts.shape_weights: unknown shape(s) {unknown}; expected some of {sorted(SHAPES)}")
    if not parts.shape_weights or min(parts.shape_weights.values()) < 0 or sum(parts.shape_weights.values()) <= 0:
        raise ConfigError("parts.shape_weights: need non-negative weights with a positive sum")
    if parts.batch_size < 1:
        raise ConfigError(f"parts.batch_size must be >= 1, got {parts.batch_size}")
    for name in ("cylinder_diameter", "cylinder_length", "box_size", "sphere_diameter", "capsule_diameter"):
        low, high = getattr(parts, name)
        if not 0 < low <= high:
            raise ConfigError(f"parts.{name}: need 0 < low <= high, got {low}, {high}")
    if config.robot.name not in ARMS:
        raise ConfigError(f"robot.name: unknown robot '{config.robot.name}'; expected one of {', '.join(ARMS)}")
    if parts.object_set and parts.object_set not in SET_SIZES:
        raise ConfigError(f"parts.object_set: unknown set '{parts.object_set}'; expected one of {sorted(SET_SIZES)}")
    if not 0 < config.physics.time_step <= 0.02:
        raise ConfigError(f"physics.time_step must lie in (0, 0.02] s, got {config.physics.time_step}")
    for name in ("solver_iterations", "grip_solver_iterations"):
        if getattr(config.physics, name) < 1:
            raise ConfigError(f"physics.{name} must be >= 1, got {getattr(config.physics, name)}")
    if not 0 < config.camera.near < config.camera.far:
        raise ConfigError("camera: need 0 < near < far")
    for name in ("joint_speed", "approach_speed", "lift_speed"):
        if getattr(config.motion, name) <= 0:
            raise ConfigError(f"motion.{name} must be > 0")
    config.camera.intrinsics  # raises on a half-given K
