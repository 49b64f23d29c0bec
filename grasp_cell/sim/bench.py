"""Wall-time benchmark of the simulated cell: capture, drop-and-settle, and picks per arm.

    python -m grasp_cell.sim.bench [--picks 10] [--parts 30] [--arms ur5 iiwa kinova]

Picks take ground-truth top-down grasps (grasp_cell.sim.oracle), so they measure the cell, not a model.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from pathlib import Path

from grasp_cell.core.grasp import GripperKind
from grasp_cell.drivers.base import PickRequest
from grasp_cell.drivers.sim_arm import SimArm
from grasp_cell.drivers.sim_camera import SimCamera
from grasp_cell.sim.config import CellConfig
from grasp_cell.sim.oracle import top_grasps
from grasp_cell.sim.robots import ARMS
from grasp_cell.sim.world import SimWorld


def _median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1e3:7.1f} ms" if samples else "    n/a"


def bench_world(config: CellConfig, parts: int, repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"settle": [], "capture": []}
    with SimWorld(config) as world:
        arm = SimArm(world)  # the capture renders the parked arm's meshes too
        camera = SimCamera(world)
        for _ in range(repeats):
            start = time.perf_counter()
            world.reset(parts)
            times["settle"].append(time.perf_counter() - start)
            for _ in range(3):
                start = time.perf_counter()
                camera.capture()
                times["capture"].append(time.perf_counter() - start)
        arm.close()
    return times


def bench_picks(config: CellConfig, arm_name: str, gripper: GripperKind, parts: int, picks: int):
    durations, outcomes = [], Counter()
    with SimWorld(config) as world:
        arm = SimArm(world, arm_name, gripper)
        world.reset(parts)
        failed = set()  # parts not to try again, as the same grasp would fail the same way
        while len(durations) < picks:
            grasps = [grasp for grasp in top_grasps(world, gripper) if grasp.part_id not in failed]
            if not grasps:
                world.reset(parts)
                failed.clear()
                continue
            grasp = grasps[0]
            request = PickRequest(arm.T_world_base.inverse() * grasp.T_world_grasp, gripper, grasp.width)
            start = time.perf_counter()
            result = arm.pick(request)
            durations.append(time.perf_counter() - start)
            outcomes[result.outcome.value] += 1
            if not result.outcome.is_success:
                failed.add(grasp.part_id)
    return durations, outcomes


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None, help="cell YAML (default: built-in defaults)")
    parser.add_argument("--parts", type=int, default=30)
    parser.add_argument("--resets", type=int, default=5)
    parser.add_argument("--picks", type=int, default=10, help="per arm and gripper")
    parser.add_argument("--arms", nargs="+", choices=sorted(ARMS), default=list(ARMS))
    parser.add_argument("--grippers", nargs="+", choices=["suction", "parallel"], default=["suction", "parallel"])
    args = parser.parse_args(argv)
    config = CellConfig.from_yaml(args.config) if args.config else CellConfig()

    camera = config.camera
    world_times = bench_world(config, args.parts, args.resets)
    print(f"capture {camera.width}x{camera.height}      median {_median_ms(world_times['capture'])}")
    print(f"drop + settle {args.parts} parts   median {_median_ms(world_times['settle'])}")
    capture = statistics.median(world_times["capture"])
    for arm_name in args.arms:
        for gripper in args.grippers:
            durations, outcomes = bench_picks(config, arm_name, GripperKind(gripper), args.parts, args.picks)
            summary = ", ".join(f"{name} {count}" for name, count in sorted(outcomes.items()))
            per_hour = 3600.0 / (capture + statistics.median(durations))
            print(
                f"pick {arm_name:6s} {gripper:8s}     median {_median_ms(durations)}"
                f"   ({summary}; capture + pick alone: {per_hour:.0f} attempts/h)"
            )


if __name__ == "__main__":
    main()
