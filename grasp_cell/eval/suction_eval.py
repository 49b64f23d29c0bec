"""Seed 000's evaluation (IV-A/B/C) in the simulated arm cell: success and failure cause against the parts
left in the bin, per model, with the reflective masking of eq. 5 on the camera.

    python -m grasp_cell.eval.suction_eval --models suction_dual suction_single --successes 300 --workers 2

Procedure (IV-A): drop 1-30 seed-000 steel cylinders; note the parts in the bin, capture, execute the
model's best grasp with the UR5 twin and its suction cup. A success removes the part and the next grasp
follows (a fresh bin once the last part is out); any failure logs its cause and starts a fresh bin. A
model is done after ``--successes`` successful picks. Causes: "collision" (the tool or arm hit the bin or
another part), "poor grasp" (no seal, or the part was lost: outside the seed's tolerance), "other"
(unreachable, no grasp returned). Placement success ignores collisions: successes / (attempts - collisions).

Raw records go to ``attempts.jsonl`` as they happen; ``summary.json``, ``fig6_success_vs_parts.png`` and
``fig7_failures_vs_parts.png`` are computed from them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from grasp_cell.core.grasp import GripperKind
from grasp_cell.core.outcome import Outcome
from grasp_cell.drivers.sim_arm import SimArm
from grasp_cell.eval.attempt_log import (
    append_line,
    git_commit,
    grasp_to_dict,
    new_run_dir,
    record_in_model_card,
    write_json,
)
from grasp_cell.eval.sim_bins import LocalSimCell
from grasp_cell.graph import package_share
from grasp_cell.learn.suction_data import MAX_PARTS, PART_TYPES, part_spec
from grasp_cell.models import create_model
from grasp_cell.sim.config import CellConfig
from grasp_cell.sim.world import SimWorld

CAUSES = {
    Outcome.COLLISION.value: "collision",
    Outcome.MISSED.value: "poor grasp",
    Outcome.DROPPED.value: "poor grasp",
}
OTHER = "other"
BIN_SIZES = ((1, 5), (6, 10), (11, 15), (16, 20), (21, 25), (26, 30))  # parts in the bin, for the plots


@dataclasses.dataclass(frozen=True)
class EvalRecord:
    model: str
    worker: int
    bin: int  # fresh bins counted per model and worker
    parts: int  # in the bin before the attempt
    outcome: str
    cause: str  # "" for a success
    message: str = ""
    plan_ms: float = 0.0
    attempt_s: float = 0.0
    grasp: dict | None = None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


def masked_cell_config(path: Path, seed: int) -> CellConfig:
    """The cell of ``path`` with the UR5 and suction cup, eq. 5 masking on, and ``seed``."""
    return CellConfig.from_yaml(path).with_cell("ur5", GripperKind.SUCTION, seed).with_reflective_parts(True)


def fresh_bin(world: SimWorld, rng: np.random.Generator) -> None:
    count = int(rng.integers(1, MAX_PARTS + 1))
    world.reset(specs=[part_spec(kind) for kind in rng.choice(sorted(PART_TYPES), size=count)])


def run_worker(task: tuple) -> int:
    """One model's share of the successes in one process; returns the attempts made."""
    model_name, worker, successes, max_attempts, seed, sim_config, attempts_path = task
    config = masked_cell_config(Path(sim_config), seed)
    rng = np.random.default_rng([seed, 7])
    model = create_model(model_name, gripper="suction")
    attempts = done = bins = 0
    with SimWorld(config) as world:
        cell = LocalSimCell(world, SimArm(world), model)
        while done < successes and attempts < max_attempts:
            fresh_bin(world, rng)
            bins += 1
            while world.parts_in_bin() > 0 and done < successes and attempts < max_attempts:
                parts = world.parts_in_bin()
                capture = cell.capture()
                tic = time.perf_counter()
                grasps = cell.plan(capture)
                plan_ms = 1000 * (time.perf_counter() - tic)
                if not grasps:
                    record = EvalRecord(model_name, worker, bins, parts, Outcome.NO_GRASP.value, OTHER, plan_ms=plan_ms)
                    result = None
                else:
                    tic = time.perf_counter()
                    result = cell.pick(grasps[0])
                    outcome = result.outcome.value
                    record = EvalRecord(
                        model_name, worker, bins, parts, outcome,
                        "" if result.outcome.is_success else CAUSES.get(outcome, OTHER),
                        result.message, plan_ms, time.perf_counter() - tic, grasp_to_dict(grasps[0]),
                    )
                append_line(Path(attempts_path), record.to_json())
                attempts += 1
                if result is None or not result.outcome.is_success:
                    break  # seed IV-A step 4: a failure starts a fresh bin
                done += 1
    return attempts


def read_records(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def summarize(records: list[dict]) -> dict:
    """Per model: overall success, placement success (collisions ignored), failures by cause, and both per
    parts-in-bin group; with two models, the collision reduction of the first against the second."""
    by_model: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_model[record["model"]].append(record)
    summary = {}
    for model, rows in by_model.items():
        attempts = len(rows)
        successes = sum(row["outcome"] == Outcome.SUCCESS.value for row in rows)
        causes = defaultdict(int)
        for row in rows:
            if row["cause"]:
                causes[row["cause"]] += 1
        groups = {}
        for low, high in BIN_SIZES:
            group = [row for row in rows if low <= row["parts"] <= high]
            group_causes = defaultdict(int)
            for row in group:
                if row["cause"]:
                    group_causes[row["cause"]] += 1
            groups[f"{low}-{high}"] = {
                "attempts": len(group),
                "success_rate": _ratio(sum(row["outcome"] == Outcome.SUCCESS.value for row in group), len(group)),
                "failures": dict(group_causes),
            }
        summary[model] = {
            "attempts": attempts,
            "successes": successes,
            "success_rate": _ratio(successes, attempts),
            "placement_success_rate": _ratio(successes, attempts - causes["collision"]),
            "failures": dict(causes),
            "collision_rate": _ratio(causes["collision"], attempts),
            "by_parts": groups,
        }
    return summary


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def plot(summary: dict, out: Path) -> list[Path]:
    """Fig. 6 (success rate against parts in the bin) and Fig. 7 (failures by cause against parts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{low}-{high}" for low, high in BIN_SIZES]
    x = np.arange(len(labels))
    figure, axis = plt.subplots(figsize=(7, 4))
    for model, values in summary.items():
        rates = [values["by_parts"][label]["success_rate"] for label in labels]
        axis.plot(x, [np.nan if r is None else 100 * r for r in rates], "o-", label=model)
    axis.set_xticks(x, labels)
    axis.set_xlabel("parts in the bin before the attempt")
    axis.set_ylabel("success rate [%]")
    axis.set_ylim(0, 100)
    axis.legend()
    axis.set_title("Success rate against parts left (seed 000 Fig. 6)")
    figure.tight_layout()
    fig6 = out / "fig6_success_vs_parts.png"
    figure.savefig(fig6, dpi=100)
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(8, 4))
    models = list(summary)
    width = 0.8 / max(len(models), 1)
    for index, model in enumerate(models):
        bottom = np.zeros(len(labels))
        for cause, hatch in (("collision", ""), ("poor grasp", "//"), (OTHER, "..")):
            counts = np.array([summary[model]["by_parts"][label]["failures"].get(cause, 0) for label in labels])
            axis.bar(x + (index - (len(models) - 1) / 2) * width, counts, width, bottom=bottom, hatch=hatch,
                     color=f"C{index}", edgecolor="black", label=f"{model}: {cause}")
            bottom += counts
    axis.set_xticks(x, labels)
    axis.set_xlabel("parts in the bin before the attempt")
    axis.set_ylabel("failed picks")
    axis.legend(fontsize=8)
    axis.set_title("Failures by cause against parts left (seed 000 Fig. 7)")
    figure.tight_layout()
    fig7 = out / "fig7_failures_vs_parts.png"
    figure.savefig(fig7, dpi=100)
    plt.close(figure)
    return [fig6, fig7]


def format_summary(summary: dict) -> str:
    lines = [
        "| model | attempts | success % | placement % | collisions | poor grasps | other |",
        "|---|---|---|---|---|---|---|",
    ]
    for model, values in summary.items():
        failures = values["failures"]
        lines.append(
            f"| {model} | {values['attempts']} | {100 * (values['success_rate'] or 0):.1f} | "
            f"{100 * (values['placement_success_rate'] or 0):.1f} | {failures.get('collision', 0)} | "
            f"{failures.get('poor grasp', 0)} | {failures.get(OTHER, 0)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["suction_dual", "suction_single"])
    parser.add_argument("--successes", type=int, default=300, help="successful picks per model")
    parser.add_argument("--max-attempts", type=int, default=0, help="per model, a stop for a model that rarely succeeds"
                        " (default: 5 x --successes)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sim-config", type=Path, default=package_share() / "config" / "sim_cell.yaml")
    parser.add_argument("--out", type=Path, help="default: runs/suction_eval/<stamp>")
    parser.add_argument("--record-cards", action="store_true", help="write the results into the models' cards")
    args = parser.parse_args(argv)

    out = args.out or new_run_dir(Path("runs/suction_eval"), "suction_eval")
    out.mkdir(parents=True, exist_ok=True)
    attempts_path = out / "attempts.jsonl"
    write_json(out / "run.json", {"options": {k: str(v) for k, v in vars(args).items()}, "git_commit": git_commit()})
    # each model's successes split over the workers, each worker with its own seed
    tasks = []
    for model in args.models:
        shares = [args.successes // args.workers + (w < args.successes % args.workers) for w in range(args.workers)]
        cap = -(-(args.max_attempts or 5 * args.successes) // args.workers)
        tasks += [
            (model, w, share, cap, args.seed * 1000 + w, str(args.sim_config), str(attempts_path))
            for w, share in enumerate(shares)
            if share
        ]
    start = time.monotonic()
    if args.workers > 1:
        with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
            attempts = sum(pool.imap_unordered(run_worker, tasks))
    else:
        attempts = sum(run_worker(task) for task in tasks)
    summary = summarize(read_records(attempts_path))
    write_json(out / "summary.json", summary)
    plot(summary, out)
    table = format_summary(summary)
    (out / "table.md").write_text(table + "\n", encoding="utf-8")
    print(table)
    if len(args.models) == 2 and all(m in summary for m in args.models):
        first, second = (summary[m]["collision_rate"] or 0 for m in args.models)
        if second:
            print(
                f"collisions per attempt: {args.models[0]} {100 * first:.1f} %, {args.models[1]} "
                f"{100 * second:.1f} % ({100 * (1 - first / second):.0f} % fewer with {args.models[0]})"
            )
    print(f"{attempts} attempts in {time.monotonic() - start:.0f} s; results in {out}")
    for model, values in summary.items() if args.record_cards else ():
        evaluation = {"run": str(out), "options": {k: str(v) for k, v in vars(args).items()}, **values}
        card = record_in_model_card(model, "evaluation", evaluation)
        if card is not None:
            print(f"recorded in {card}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
