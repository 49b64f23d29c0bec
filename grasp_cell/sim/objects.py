"""Procedurally generated graspable objects for the pixel-level grasp data and benchmark (seed 003).

Seed 003 draws 4,555 meshes from ShapeNet, YCB and EGAD scaled to fit the gripper; none of those can be
downloaded here, so objects are made from PyBullet primitives: single boxes, cylinders, capsules and
spheres, and compounds of them (L, T and U profiles, crosses, frames with a hole, dumbbells, bottles,
mallets, stacked and mushroom shapes), several of them non-convex. Every object has at least one way
to fit between the 85 mm jaws. Sizes, densities and colours are drawn from one generator per set.

Two fixed sets: ``seen`` (used to generate training data) and ``novel`` (never in training data),
made by different seeds; ``novel`` also holds two families absent from ``seen`` (frames and mallets),
so the benchmark tests shapes the network has not met.

A third set, ``hand`` (200 objects of every family), is seed 004's: the three-finger hand's grasp data
splits it into seen and unseen objects by index (``grasp_cell.learn.hand_data``). Its objects are used at
the size the families are drawn (11-90 mm bounding radius), comparable with the hand's 140 mm open span,
as the seed scaled its objects to the hand.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from grasp_cell.sim.parts import Component, PartSpec, volume

SET_SEEDS = {"seen": 3003, "novel": 3004, "hand": 4004}
SET_SIZES = {"seen": 120, "novel": 60, "hand": 200}  # "hand": seed 004's objects, every family, split by index
HELD_OUT_FAMILIES = ("frame", "mallet")  # not in the seen set
DENSITY = (400.0, 1400.0)  # [kg/m^3] plastics, wood, food; a 20 N jaw holds them at mu = 0.2


def _quat_about(axis: str, angle: float) -> tuple[float, float, float, float]:
    half = angle / 2
    s = math.sin(half)
    x, y, z = {"x": (s, 0.0, 0.0), "y": (0.0, s, 0.0), "z": (0.0, 0.0, s)}[axis]
    return (x, y, z, math.cos(half))


_ALONG_X = _quat_about("y", math.pi / 2)  # a cylinder's axis (z) turned onto x


def _box(size, position=(0.0, 0.0, 0.0)) -> Component:
    return Component("box", tuple(float(s) for s in size), tuple(float(p) for p in position))


def _rod(shape: str, diameter: float, length: float, position=(0.0, 0.0, 0.0), along: str = "z") -> Component:
    quat = {"z": (0.0, 0.0, 0.0, 1.0), "x": _ALONG_X, "y": _quat_about("x", math.pi / 2)}[along]
    return Component(shape, (float(diameter), float(length)), tuple(float(p) for p in position), quat)


def _family_box(rng):
    return [_box(rng.uniform(0.015, 0.06, size=3))]


def _family_cylinder(rng):
    return [_rod("cylinder", rng.uniform(0.015, 0.06), rng.uniform(0.02, 0.09))]


def _family_capsule(rng):
    return [_rod("capsule", rng.uniform(0.015, 0.04), rng.uniform(0.015, 0.06))]


def _family_sphere(rng):
    return [Component("sphere", (float(rng.uniform(0.02, 0.055)),))]


def _family_l(rng):
    a, b = rng.uniform(0.04, 0.08, size=2)
    t, h = rng.uniform(0.012, 0.025), rng.uniform(0.015, 0.04)
    return [_box((a, t, h), (a / 2, t / 2, 0)), _box((t, b, h), (t / 2, b / 2, 0))]


def _family_t(rng):
    a, b = rng.uniform(0.04, 0.08, size=2)
    t, h = rng.uniform(0.012, 0.025), rng.uniform(0.015, 0.04)
    return [_box((a, t, h), (0, b, 0)), _box((t, b, h), (0, b / 2, 0))]


def _family_u(rng):
    a, b = rng.uniform(0.04, 0.07), rng.uniform(0.03, 0.06)
    t, h = rng.uniform(0.01, 0.02), rng.uniform(0.015, 0.04)
    return [
        _box((a, t, h), (0, 0, 0)),
        _box((t, b, h), (-a / 2 + t / 2, b / 2, 0)),
        _box((t, b, h), (a / 2 - t / 2, b / 2, 0)),
    ]


def _family_cross(rng):
    a, b = rng.uniform(0.045, 0.08, size=2)
    t, h = rng.uniform(0.012, 0.025), rng.uniform(0.015, 0.035)
    return [_box((a, t, h)), _box((t, b, h))]


def _family_dumbbell(rng):
    length, bar = rng.uniform(0.05, 0.09), rng.uniform(0.012, 0.02)
    end = rng.uniform(bar + 0.01, 0.045)
    end_shape = "sphere" if rng.random() < 0.5 else "cylinder"
    ends = [
        Component("sphere", (float(end),), (float(x), 0.0, 0.0))
        if end_shape == "sphere"
        else _rod("cylinder", end, rng.uniform(0.015, 0.03), (x, 0, 0), along="x")
        for x in (-length / 2, length / 2)
    ]
    return [_rod("cylinder", bar, length, along="x"), *ends]


def _family_bottle(rng):
    diameter, length = rng.uniform(0.03, 0.06), rng.uniform(0.04, 0.08)
    neck_d, neck_l = rng.uniform(0.012, diameter * 0.6), rng.uniform(0.015, 0.03)
    return [_rod("cylinder", diameter, length), _rod("cylinder", neck_d, neck_l, (0, 0, (length + neck_l) / 2))]


def _family_stack(rng):
    lower = rng.uniform(0.03, 0.06, size=3)
    d, h = rng.uniform(0.02, 0.045), rng.uniform(0.015, 0.04)
    return [_box(lower), _rod("cylinder", d, h, (0, 0, (lower[2] + h) / 2))]


def _family_mushroom(rng):
    stem_d, stem_l = rng.uniform(0.012, 0.025), rng.uniform(0.03, 0.06)
    cap_d, cap_t = rng.uniform(stem_d + 0.015, 0.06), rng.uniform(0.01, 0.02)
    return [_rod("cylinder", stem_d, stem_l), _rod("cylinder", cap_d, cap_t, (0, 0, (stem_l + cap_t) / 2))]


def _family_frame(rng):
    a, b = rng.uniform(0.045, 0.075, size=2)
    t, h = rng.uniform(0.008, 0.015), rng.uniform(0.012, 0.03)
    return [
        _box((a, t, h), (0, -b / 2 + t / 2, 0)),
        _box((a, t, h), (0, b / 2 - t / 2, 0)),
        _box((t, b, h), (-a / 2 + t / 2, 0, 0)),
        _box((t, b, h), (a / 2 - t / 2, 0, 0)),
    ]


def _family_mallet(rng):
    handle_d, handle_l = rng.uniform(0.012, 0.02), rng.uniform(0.05, 0.09)
    head = (rng.uniform(0.02, 0.035), rng.uniform(0.04, 0.07), rng.uniform(0.02, 0.035))
    return [_rod("cylinder", handle_d, handle_l, along="x"), _box(head, (handle_l / 2 + head[0] / 2, 0, 0))]


FAMILIES = {
    "box": (_family_box, 3.0),
    "cylinder": (_family_cylinder, 3.0),
    "capsule": (_family_capsule, 1.5),
    "sphere": (_family_sphere, 0.7),
    "l_profile": (_family_l, 1.0),
    "t_profile": (_family_t, 1.0),
    "u_profile": (_family_u, 1.0),
    "cross": (_family_cross, 1.0),
    "dumbbell": (_family_dumbbell, 1.0),
    "bottle": (_family_bottle, 1.0),
    "stack": (_family_stack, 1.0),
    "mushroom": (_family_mushroom, 1.0),
    "frame": (_family_frame, 1.0),
    "mallet": (_family_mallet, 1.0),
}


def make_object(family: str, rng: np.random.Generator, name: str = "") -> PartSpec:
    """One object of a family; a compound's components are re-centred on their volume-weighted centre."""
    make, _ = FAMILIES[family]
    components = make(rng)
    grey = rng.uniform(0.25, 0.9)
    color = tuple(float(c) for c in np.clip(grey + rng.uniform(-0.25, 0.25, size=3), 0, 1)) + (1.0,)
    density = rng.uniform(*DENSITY)
    if len(components) == 1 and components[0].quat_xyzw == (0.0, 0.0, 0.0, 1.0):
        c = components[0]
        size = tuple(round(float(s), 4) for s in c.size)
        return PartSpec(c.shape, size, float(density * volume(c.shape, size)), color, name=name)
    volumes = np.array([volume(c.shape, c.size) for c in components])
    centre = (volumes[:, None] * np.array([c.position for c in components])).sum(axis=0) / volumes.sum()
    centred = tuple(
        Component(
            c.shape,
            tuple(round(float(s), 4) for s in c.size),
            tuple(float(p) for p in np.subtract(c.position, centre)),
            c.quat_xyzw,
        )
        for c in components
    )
    return PartSpec("compound", (), float(density * volumes.sum()), color, centred, name=name)


@cache
def object_set(name: str) -> tuple[PartSpec, ...]:
    """The fixed ``seen`` or ``novel`` object set (deterministic)."""
    if name not in SET_SEEDS:
        raise ValueError(f"unknown object set '{name}'; expected one of {', '.join(SET_SEEDS)}")
    rng = np.random.default_rng(SET_SEEDS[name])
    families = [f for f in FAMILIES if name != "seen" or f not in HELD_OUT_FAMILIES]
    weights = np.array([FAMILIES[f][1] for f in families])
    if name == "novel":  # the held-out families make up a fair share of the novel set
        weights = np.where(np.isin(families, HELD_OUT_FAMILIES), 2.0, weights)
    picks = rng.choice(len(families), size=SET_SIZES[name], p=weights / weights.sum())
    return tuple(make_object(families[i], rng, f"{name}_{n:03d}_{families[i]}") for n, i in enumerate(picks))


def scene_specs(set_name: str, count: int, rng: np.random.Generator) -> list[PartSpec]:
    """``count`` distinct objects of a set for one cluttered scene."""
    objects = object_set(set_name)
    if count > len(objects):
        raise ValueError(f"a scene of {count} objects needs more than the {len(objects)} in set '{set_name}'")
    return [objects[i] for i in rng.choice(len(objects), size=count, replace=False)]
