"""Pick-until-empty over several seeded simulated bins, in one process (no ROS): the same loop, model
and drivers the ROS cell runs, for quick measurement of SR / PC / PPH per model, arm and gripper.

    python -m grasp_cell.eval.sim_bins --model baseline --robot ur5 --gripper suction --seeds 0 1 2 3 4
    python -m grasp_cell.eval.sim_bins --model hand_quality --gripper three_finger --parts 6 --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from grasp_cell.core.depth import DepthError
from grasp_cell.core.grasp import Grasp
from grasp_cell.core.pick import PickResult
from grasp_cell.drivers.base import Capture, PickRequest
from grasp_cell.drivers.sim_arm import SimArm
from grasp_cell.drivers.sim_camera import SimCamera
from grasp_cell.eval.attempt_log import RUN_FILE, SUMMARY_FILE, AttemptLog, git_commit, new_run_dir, write_json
from grasp_cell.eval.metrics import RunSummary, summarize
from grasp_cell.eval.pick_loop import PickUntilEmpty, PlanningError, StopRules
from grasp_cell.graph import package_share, sim_config_path
from grasp_cell.models import GraspModel, Observation, create_model
from grasp_cell.sim.config import CellConfig
from grasp_cell.sim.world import SimWorld


class LocalSimCell:
    """The pick loop's Cell on in-process drivers: camera and arm share one SimWorld."""

    def __init__(self, world: SimWorld, arm: SimArm, model: GraspModel):
        self.camera = SimCamera(world)
        self.arm = arm
        self.model = model

    def capture(self) -> Capture:
        return self.camera.capture()

    def plan(self, capture: Capture) -> list[Grasp]:
        try:
            observation = Observation(capture.depth, capture.intrinsics, capture.color, capture.roi)
        except DepthError as error:
            raise PlanningError(str(error)) from error
        return self.model.plan(observation)

    def pick(self, grasp: Grasp) -> PickResult:
        request = PickRequest(self.arm.T_base_cam * grasp.T_cam_grasp, grasp.gripper, grasp.width)
        return self.arm.pick(request)


def run_bin(config: CellConfig, model: GraspModel, parts: int, run_dir: Path, rules: StopRules) -> RunSummary:
    with SimWorld(config) as world:  # one generator, from config.seed
        arm = SimArm(world)
        world.reset(parts)
        with AttemptLog(run_dir) as log:
            loop = PickUntilEmpty(LocalSimCell(world, arm, model), log, rules, model.name)
            reason = loop.run()
        summary = summarize(loop.records, reason)
    write_json(run_dir / SUMMARY_FILE, summary.to_dict())
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="baseline")
    parser.add_argument("--robot", default="ur5", choices=["ur5", "iiwa", "kinova"])
    parser.add_argument("--gripper", default="suction", choices=["suction", "parallel", "three_finger"])
    parser.add_argument("--parts", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--max-attempts", type=int, default=0, help="per bin; 0 = until empty or 5 failures")
    parser.add_argument("--sim-config", default="", help="as the launch argument sim_config (default: the "
                        "gripper's cell, config/sim_cell.yaml or config/sim_hand_cell.yaml)")
    parser.add_argument("--log-dir", type=Path, default=Path("runs"))
    options = parser.parse_args(argv)

    base = CellConfig.from_yaml(sim_config_path(options.sim_config, options.gripper, package_share()))
    model = create_model(options.model, gripper=options.gripper)
    rules = StopRules(max_attempts=options.max_attempts)
    summaries = []
    print(f"{options.model} / {options.robot} / {options.gripper}, {options.parts} parts per bin")
    print(f"{'seed':>4} {'attempts':>8} {'SR %':>6} {'PC %':>6} {'PPH':>6}  failures")
    for seed in options.seeds:
        config = base.with_cell(options.robot, options.gripper, seed)
        name = f"bins_{options.robot}_{options.gripper}_{options.model}_seed{seed}"
        run_dir = new_run_dir(options.log_dir, name)
        write_json(run_dir / RUN_FILE, {"options": {k: str(v) for k, v in vars(options).items()}, "seed": seed,
                                        "git_commit": git_commit(), "started_at": time.time()})
        summary = run_bin(config, model, options.parts, run_dir, rules)
        summaries.append(summary)
        rates = f"{100 * summary.success_rate:>6.1f} {100 * summary.percent_cleared:>6.1f}"
        print(f"{seed:>4} {summary.attempts:>8} {rates} "
              f"{summary.picks_per_hour:>6.0f}  {json.dumps(summary.failures_by_cause)}", flush=True)
    attempts = sum(s.attempts for s in summaries)
    successes = sum(s.successes for s in summaries)
    removed = sum(s.parts_removed for s in summaries)
    cell_time = sum(s.cell_time for s in summaries)
    print(f" all {attempts:>8} {100 * successes / max(attempts, 1):>6.1f} "
          f"{100 * removed / (options.parts * len(summaries)):>6.1f} {3600 * successes / max(cell_time, 1e-9):>6.0f}"
          f"  ({3600 * attempts / max(cell_time, 1e-9):.0f} attempts/h without ROS)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
