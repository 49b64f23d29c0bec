"""The one interface every grasp model implements, and the registry that finds models by name."""

from __future__ import annotations

import abc
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from grasp_cell.core.camera import CameraIntrinsics
from grasp_cell.core.depth import DepthError, validate_depth
from grasp_cell.core.grasp import Grasp, GripperKind


@dataclass(frozen=True)
class Observation:
    """What a model sees: depth in metres (NaN = missing), optional RGB, and the camera that took them."""

    depth: np.ndarray  # (H, W) float32 [m]
    intrinsics: CameraIntrinsics
    color: np.ndarray | None = None  # (H, W, 3) uint8 RGB
    roi: tuple[int, int, int, int] | None = None  # (u_min, v_min, u_max, v_max) pixels of the bin; None = whole image

    def __post_init__(self):
        validate_depth(self.depth)
        size = (self.intrinsics.height, self.intrinsics.width)
        if self.depth.shape != size:
            raise DepthError(
                f"depth is {self.depth.shape[1]}x{self.depth.shape[0]} but CameraInfo says "
                f"{self.intrinsics.width}x{self.intrinsics.height}"
            )
        if self.color is not None and self.color.shape[:2] != size:
            raise DepthError(f"color is {self.color.shape[1]}x{self.color.shape[0]}, depth is {size[1]}x{size[0]}")


def bin_floor(observation: Observation) -> float:
    """Camera z [m] of the bin floor: the deep end (95th percentile) of the depths inside the roi; ValueError
    when the roi shows no depth."""
    intrinsics = observation.intrinsics
    u_min, v_min, u_max, v_max = observation.roi or (0, 0, intrinsics.width, intrinsics.height)
    region = observation.depth[int(v_min) : int(v_max), int(u_min) : int(u_max)]
    with np.errstate(invalid="ignore"):
        seen = region[region > 0]
    if seen.size == 0:
        raise ValueError("no depth inside the bin's region of interest")
    return float(np.percentile(seen, 95))


def floor_box(observation: Observation, floor: float) -> tuple[float, float, float, float]:
    """Camera-frame x_min, x_max, y_min, y_max [m] of the bin floor: its roi's corners carried down to the
    floor's depth ``floor`` (the whole image without a roi)."""
    intrinsics = observation.intrinsics
    u_min, v_min, u_max, v_max = observation.roi or (0, 0, intrinsics.width, intrinsics.height)
    corners = intrinsics.deproject(np.array([u_min, u_max]), np.array([v_min, v_max]), floor)
    return (float(corners[0, 0]), float(corners[1, 0]), float(corners[0, 1]), float(corners[1, 1]))


class GraspModel(abc.ABC):
    """Image in, ranked grasps (camera frame, best first) out."""

    name: str = ""
    gripper: GripperKind = GripperKind.SUCTION

    @abc.abstractmethod
    def plan(self, observation: Observation, max_grasps: int = 10) -> list[Grasp]:
        """Return up to ``max_grasps`` grasps, best first; an empty list means no grasp was found."""


_REGISTRY: dict[str, Callable[..., GraspModel]] = {}


def register(name: str):
    """Class decorator: make a model constructible by ``create_model(name)``."""

    def decorator(factory):
        if name in _REGISTRY:
            raise ValueError(f"model '{name}' is registered twice")
        _REGISTRY[name] = factory
        return factory

    return decorator


def available_models() -> list[str]:
    _load_builtin_models()
    return sorted(_REGISTRY)


def create_model(name: str, **options) -> GraspModel:
    _load_builtin_models()
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model '{name}'; available: {', '.join(sorted(_REGISTRY))}") from None
    return factory(**options)


MODELS_DIR_ENV = "GRASP_CELL_MODELS_DIR"  # overrides where weights files are looked for


def models_dir() -> Path:
    """Where weights files live: $GRASP_CELL_MODELS_DIR, else the package's ``models/`` folder."""
    override = os.environ.get(MODELS_DIR_ENV)
    if override:
        return Path(override)
    from grasp_cell.graph import package_share

    return package_share() / "models"


def weights_file_factory(name: str, kind: GripperKind, model_class, follows_snapshots: bool = False):
    """The registry factory of a model served from ``<models_dir>/<name>.pt`` by ``model_class.from_file``,
    for grippers of ``kind`` only. ``follows_snapshots``: with a ``snapshots=<folder>`` option the model
    follows a learning run's weights instead (``grasp_cell.models.snapshots``) and needs no file."""

    def create(gripper: str | GripperKind = kind, **options) -> GraspModel:
        if GripperKind.parse(gripper) is not kind:
            raise ValueError(f"model '{name}' plans for a {kind.value} gripper, not '{gripper}'")
        if follows_snapshots and options.get("snapshots"):
            return model_class(name=name, **options)
        path = models_dir() / f"{name}.pt"
        if not path.exists():
            raise ValueError(f"model '{name}': no weights file {path}")
        return model_class.from_file(path, name=name, **options)

    return create


def register_weights_files(
    folder, pattern: "re.Pattern[str]", factory: Callable[[str], Callable[..., GraspModel]], registered: set[str]
) -> list[str]:
    """Keep one registry name per weights file ``<name>.pt`` in ``folder`` whose name matches ``pattern``:
    names whose file appeared are registered with ``factory(name)``, names in ``registered`` whose file is
    gone are dropped. ``registered`` is the caller's set of the names it added; returns the names found."""
    names = sorted(path.stem for path in Path(folder).glob("*.pt") if pattern.match(path.stem))
    for name in registered - set(names):
        del _REGISTRY[name]
        registered.discard(name)
    for name in names:
        if name not in _REGISTRY:
            register(name)(factory(name))
            registered.add(name)
    return names


def _load_builtin_models() -> None:
    # importing the modules runs their @register decorators
    from grasp_cell.models import baseline  # noqa: F401
    from grasp_cell.models.hand_grasp import register_hand_models
    from grasp_cell.models.pixel_grasp import register_pixel_models
    from grasp_cell.models.planar_grasp import register_planar_models
    from grasp_cell.models.suction_grasp import register_suction_models
    from grasp_cell.models.suction_region import register_region_models

    register_pixel_models()  # one name per weights file present (cheap: no torch until a model is built)
    register_suction_models()
    register_planar_models()
    register_region_models()
    register_hand_models()
