"""Parts: primitives (cylinders, boxes, spheres, capsules) and compounds of them; sampling and PyBullet bodies."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pybullet

from grasp_cell.sim.config import PartsConfig

SHAPES = ("cylinder", "box", "sphere", "capsule")  # primitives; "compound" parts are made of them
SIZE_STEP = 0.0005  # [m] part sizes are multiples of this, so shapes can be shared (see ShapeCache)


@dataclass(frozen=True)
class Component:
    """One primitive of a compound part, placed in the part's frame (metres, quaternion x, y, z, w)."""

    shape: str
    size: tuple[float, ...]
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    quat_xyzw: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class PartSpec:
    """One part: ``size`` is (diameter, length) for cylinders and capsules, (x, y, z) for boxes, (diameter,)
    for spheres, full extents in metres; a capsule's length is its cylindrical middle. A ``compound`` part
    is the union of its ``components`` (which may overlap) and its ``size`` is unused."""

    shape: str
    size: tuple[float, ...]
    mass: float  # [kg]
    color: tuple[float, float, float, float] = (0.6, 0.6, 0.62, 1.0)
    components: tuple[Component, ...] = ()
    name: str = ""

    @property
    def bounding_radius(self) -> float:
        """Radius of a sphere around the part's centre that contains it [m]."""
        if self.shape == "compound":
            return max(
                float(np.linalg.norm(c.position)) + PartSpec(c.shape, c.size, 0.0).bounding_radius
                for c in self.components
            )
        if self.shape == "box":
            return 0.5 * math.sqrt(sum(s * s for s in self.size))
        if self.shape == "sphere":
            return 0.5 * self.size[0]
        if self.shape == "capsule":
            return 0.5 * (self.size[0] + self.size[1])
        return 0.5 * math.hypot(*self.size)


def volume(shape: str, size, components: tuple[Component, ...] = ()) -> float:
    """Volume [m^3]; a compound's is the sum of its components' (overlaps counted twice: an estimate)."""
    if shape == "compound":
        return sum(volume(c.shape, c.size) for c in components)
    if shape == "cylinder":
        return math.pi * (size[0] / 2) ** 2 * size[1]
    if shape == "box":
        return float(np.prod(size))
    if shape == "sphere":
        return 4.0 / 3.0 * math.pi * (size[0] / 2) ** 3
    if shape == "capsule":
        radius = size[0] / 2
        return math.pi * radius**2 * size[1] + 4.0 / 3.0 * math.pi * radius**3
    raise ValueError(f"unknown part shape '{shape}'; expected one of {', '.join(SHAPES)}")


def sample_part(config: PartsConfig, rng: np.random.Generator) -> PartSpec:
    names = sorted(config.shape_weights)
    weights = np.array([config.shape_weights[name] for name in names], dtype=float)
    shape = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    if shape == "cylinder":
        size = (rng.uniform(*config.cylinder_diameter), rng.uniform(*config.cylinder_length))
    elif shape == "box":
        size = tuple(rng.uniform(*config.box_size, size=3))
    elif shape == "sphere":
        size = (rng.uniform(*config.sphere_diameter),)
    else:
        size = (rng.uniform(*config.capsule_diameter), rng.uniform(*config.capsule_length))
    size = tuple(round(float(s) / SIZE_STEP) * SIZE_STEP for s in size)
    # machined-metal greys with a slight tint so parts differ in the color image
    grey = rng.uniform(0.45, 0.8)
    tint = rng.uniform(-0.06, 0.06, size=3)
    color = tuple(float(np.clip(grey + t, 0, 1)) for t in tint) + (1.0,)
    return PartSpec(shape, size, config.density * volume(shape, size), color)


class ShapeCache:
    """Collision and visual shapes shared by parts of the same size.

    PyBullet cannot free a shape once a body used it, so a new shape per part would grow memory by
    every reset; sizes are quantised (``SIZE_STEP``) so the number of distinct shapes stays bounded.
    """

    def __init__(self, client: int):
        self.client = client
        self._shapes: dict[tuple, tuple[int, int]] = {}

    def get(self, spec: PartSpec) -> tuple[int, int]:
        key = (spec.shape, spec.size, spec.components)
        if key not in self._shapes:
            if spec.shape == "compound":
                self._shapes[key] = self._create_compound(spec.components)
            else:
                self._shapes[key] = self._create(spec.shape, spec.size)
        return self._shapes[key]

    def _create_compound(self, components: tuple[Component, ...]) -> tuple[int, int]:
        kwargs = {"physicsClientId": self.client}
        types = {
            "box": pybullet.GEOM_BOX,
            "cylinder": pybullet.GEOM_CYLINDER,
            "capsule": pybullet.GEOM_CAPSULE,
            "sphere": pybullet.GEOM_SPHERE,
        }
        shape_types, radii, half_extents, lengths = [], [], [], []
        for c in components:
            if c.shape not in types:
                raise ValueError(f"unknown component shape '{c.shape}'; expected one of {', '.join(SHAPES)}")
            shape_types.append(types[c.shape])
            radii.append(c.size[0] / 2 if c.shape != "box" else 0.0)
            half_extents.append([s / 2 for s in c.size] if c.shape == "box" else [0.0, 0.0, 0.0])
            lengths.append(c.size[1] if c.shape in ("cylinder", "capsule") else 0.0)
        geometry = {"radii": radii, "halfExtents": half_extents, "lengths": lengths, **kwargs}
        positions = [list(c.position) for c in components]
        orientations = [list(c.quat_xyzw) for c in components]
        # the same frames under the two functions' own keyword names
        collision = pybullet.createCollisionShapeArray(
            shape_types, collisionFramePositions=positions, collisionFrameOrientations=orientations, **geometry
        )
        visual = pybullet.createVisualShapeArray(
            shape_types, visualFramePositions=positions, visualFrameOrientations=orientations, **geometry
        )
        return collision, visual

    def _create(self, shape: str, size: tuple[float, ...]) -> tuple[int, int]:
        kwargs = {"physicsClientId": self.client}
        if shape in ("cylinder", "capsule"):
            geometry = {
                "shapeType": pybullet.GEOM_CYLINDER if shape == "cylinder" else pybullet.GEOM_CAPSULE,
                "radius": size[0] / 2,
            }
            collision = pybullet.createCollisionShape(height=size[1], **geometry, **kwargs)
            visual = pybullet.createVisualShape(length=size[1], **geometry, **kwargs)
        elif shape == "box":
            half = [s / 2 for s in size]
            collision = pybullet.createCollisionShape(pybullet.GEOM_BOX, halfExtents=half, **kwargs)
            visual = pybullet.createVisualShape(pybullet.GEOM_BOX, halfExtents=half, **kwargs)
        elif shape == "sphere":
            collision = pybullet.createCollisionShape(pybullet.GEOM_SPHERE, radius=size[0] / 2, **kwargs)
            visual = pybullet.createVisualShape(pybullet.GEOM_SPHERE, radius=size[0] / 2, **kwargs)
        else:
            raise ValueError(f"unknown part shape '{shape}'; expected one of {', '.join(SHAPES)}")
        return collision, visual


def create_part_body(shapes: ShapeCache, spec: PartSpec, position, quat_xyzw, config: PartsConfig) -> int:
    """Create the part's body and return its id."""
    kwargs = {"physicsClientId": shapes.client}
    collision, visual = shapes.get(spec)
    body = pybullet.createMultiBody(spec.mass, collision, visual, list(position), list(quat_xyzw), **kwargs)
    pybullet.changeVisualShape(body, -1, rgbaColor=spec.color, **kwargs)
    pybullet.changeDynamics(
        body,
        -1,
        lateralFriction=config.lateral_friction,
        rollingFriction=config.rolling_friction,
        spinningFriction=config.spinning_friction,
        restitution=0.0,
        activationState=pybullet.ACTIVATION_STATE_ENABLE_SLEEPING,
        **kwargs,
    )
    return body
