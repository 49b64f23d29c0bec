"""Planning latency per model: image in, ranked grasps out, on synthetic 640x480 bin scenes.

    python -m grasp_cell.eval.latency [--models NAME ...] [--grippers suction parallel three_finger] [--repeats 30]

Every registered model by default, each for the grippers it plans for.

Prints the median and 90th percentile plan time [ms] and the mean number of grasps returned per model.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

from grasp_cell.core.camera import CameraIntrinsics
from grasp_cell.eval.synthetic import PartShape, add_sensor_noise, random_scene
from grasp_cell.models import GraspModel, Observation, available_models, create_model


@dataclass(frozen=True)
class LatencyResult:
    model: str
    gripper: str
    median_ms: float
    p90_ms: float
    mean_grasp_count: float
    plan_count: int


def make_observations(
    rng: np.random.Generator,
    scene_count: int = 5,
    part_count: int = 30,
    intrinsics: CameraIntrinsics | None = None,
    use_roi: bool = True,
) -> list[Observation]:
    """Noisy synthetic bin scenes with all part shapes, as the planner would receive them."""
    intrinsics = intrinsics or CameraIntrinsics.default()
    observations = []
    for _ in range(scene_count):
        scene = random_scene(rng, part_count, intrinsics, shapes=tuple(PartShape))
        depth = add_sensor_noise(scene.depth, rng)
        observations.append(Observation(depth, intrinsics, roi=scene.roi if use_roi else None))
    return observations


def measure_latency(
    model: GraspModel, observations: list[Observation], repeats: int = 30, max_grasps: int = 10
) -> LatencyResult:
    """Time ``repeats`` plans cycling over ``observations``, after one untimed warm-up plan."""
    if not observations or repeats < 1:
        raise ValueError("need at least one observation and one repeat")
    model.plan(observations[0], max_grasps)
    times, counts = [], []
    for n in range(repeats):
        observation = observations[n % len(observations)]
        tic = time.perf_counter()
        grasps = model.plan(observation, max_grasps)
        times.append(time.perf_counter() - tic)
        counts.append(len(grasps))
    times_ms = 1e3 * np.asarray(times)
    return LatencyResult(
        model=model.name,
        gripper=model.gripper.value,
        median_ms=float(np.median(times_ms)),
        p90_ms=float(np.percentile(times_ms, 90)),
        mean_grasp_count=float(np.mean(counts)),
        plan_count=repeats,
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None, help="default: every registered model")
    parser.add_argument("--grippers", nargs="+", default=["suction", "parallel", "three_finger"],
                        choices=["suction", "parallel", "three_finger"])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--scenes", type=int, default=5)
    parser.add_argument("--parts", type=int, default=30)
    parser.add_argument("--max-grasps", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-roi", action="store_true", help="plan on the whole image instead of the bin's roi")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    observations = make_observations(rng, args.scenes, args.parts, use_roi=not args.no_roi)
    region = "whole image" if args.no_roi else "bin roi"
    print(f"{args.scenes} scenes, 640x480, {args.parts} parts, {region}, {args.repeats} plans each")
    print(f"{'model':<18} {'gripper':<9} {'median ms':>10} {'p90 ms':>8} {'grasps':>7}")
    for name in args.models or available_models():
        for gripper in args.grippers:
            try:
                model = create_model(name, gripper=gripper)
            except ValueError as error:  # e.g. a model for parallel jaws only (the pixel nets)
                print(f"{name:<18} {gripper:<9} skipped: {error}")
                continue
            result = measure_latency(model, observations, args.repeats, args.max_grasps)
            print(
                f"{result.model:<18} {result.gripper:<9} {result.median_ms:>10.1f} {result.p90_ms:>8.1f} "
                f"{result.mean_grasp_count:>7.1f}"
            )


if __name__ == "__main__":
    main()
