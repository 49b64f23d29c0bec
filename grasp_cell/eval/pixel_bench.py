"""The seed-003 bin-picking benchmark (III-E, Table IV): SR, PC and AP of parallel-jaw grasp models on fixed
seeded bins, judged by a simulated free-floating jaw (``grasp_cell.sim.floating_jaw``).

    python -m grasp_cell.eval.pixel_bench --models baseline random --scenes 2 --workers 2

Scenes: for each object set ("seen", "novel"), object count and scene index, a fixed seed draws the objects
and drops them into the bin; the settled poses are the scene, put back before each run and each AP grasp.

For each friction coefficient mu every part's lateral friction is set to mu. Bullet combines the friction
of two touching bodies by product, and the finger pads keep ``gripper.jaw_friction`` (1.0 by default), so
mu is the effective pad-part coefficient only while the pads' friction is 1.0.

- SR / PC: capture (640 x 480 overhead camera), plan one grasp, execute it; repeat until the bin is empty,
  5 failures in a row, or the model returns no grasp (a static scene would give the same nothing again:
  that ends the run and is not an attempt). SR = successes / attempts; PC = parts lifted / parts at start.
- AP: one capture of the initial scene, the model's top-k grasps (k = 50); each is executed on the scene
  put back to its initial state. AP = successes / grasps returned.

Every value is computed per (scene, mu) and averaged over mu and scenes (seed 003 averages over mu), leaving
out the cells where it is undefined (SR without attempts, AP without grasps). Raw records go to
``attempts.jsonl`` as they happen; ``results.json`` and ``table.md`` are computed from them afterwards.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import time
import zlib
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pybullet
from tqdm import tqdm

from grasp_cell.core.grasp import Grasp, GripperKind
from grasp_cell.core.outcome import Outcome
from grasp_cell.core.transform import Transform
from grasp_cell.drivers.sim_camera import SimCamera
from grasp_cell.eval.attempt_log import (
    ATTEMPTS_FILE,
    RUN_FILE,
    append_line,
    git_commit,
    grasp_to_dict,
    new_run_dir,
    record_in_model_card,
    write_json,
)
from grasp_cell.graph import package_share
from grasp_cell.models import GraspModel, Observation, available_models, create_model
from grasp_cell.sim import objects
from grasp_cell.sim.config import CellConfig
from grasp_cell.sim.floating_jaw import FloatingJaw
from grasp_cell.sim.parts import PartSpec
from grasp_cell.sim.world import SimWorld

MU_VALUES = (0.2, 0.4, 0.6, 0.8, 1.0)  # seed 003: 0.2 to 1.0 in steps of 0.2
MAX_FAILURES = 5  # consecutive failed grasps that end an SR / PC run
SETTLE_AFTER_ATTEMPT = 0.5  # [s] simulated, at most, for pushed parts to come to rest before the next capture
RESTORE_STEPS = 12  # physics steps for a restored scene's contacts to come to rest
RESULTS_FILE = "results.json"
TABLE_FILE = "table.md"
# models that plan for more than one gripper: the options that make them plan parallel grasps
PARALLEL_OPTIONS = {"baseline": {"gripper": "parallel"}, "random": {"gripper": "parallel"}}
INPUT_LABELS = {"depth": "Depth", "rgb": "RGB", "rgbd": "RGB-D"}
SEEDED_MODELS = ("random",)  # take a seed option, given per scene so any worker reproduces them


# --- scenes ------------------------------------------------------------------------------------------------
def scene_seed(object_set: str, count: int, scene: int) -> int:
    """The fixed seed of one benchmark scene; every model sees the same scenes."""
    entropy = [zlib.crc32(object_set.encode()), int(count), int(scene)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def scene_specs(object_set: str, count: int, seed: int) -> tuple[PartSpec, ...]:
    """``count`` distinct objects of the named set (``grasp_cell.sim.objects``), drawn by ``seed``."""
    return tuple(objects.scene_specs(object_set, count, np.random.default_rng(seed)))


def scene_world(config: CellConfig, object_set: str, count: int, seed: int) -> SimWorld:
    """A new world with the scene's objects dropped into the bin and settled. Drop positions come from a
    stream apart from the object choice, so the two are not correlated."""
    world = SimWorld(config, np.random.default_rng([seed, 1]))
    world.reset(specs=list(scene_specs(object_set, count, seed)))
    return world


Scene = tuple[tuple[PartSpec, Transform], ...]


def save_scene(world: SimWorld) -> Scene:
    return tuple((part.spec, world.part_pose(body)) for body, part in world.parts.items())


def restore_scene(world: SimWorld, scene: Scene, mu: float) -> None:
    """Put the saved parts back, at rest and asleep, with lateral friction ``mu``."""
    world.clear_parts()
    for spec, pose in scene:
        body = world.add_part(spec, pose, settle=False)
        pybullet.changeDynamics(body, -1, lateralFriction=mu, physicsClientId=world.client)
    # new bodies start without contact history: their first steps push resting contacts apart a little,
    # and until that has died down they do not sleep (5x slower steps)
    world.step(RESTORE_STEPS)
    world.sleep_parts()


# --- models ------------------------------------------------------------------------------------------------
def create_parallel_model(name: str, seed: int = 0) -> GraspModel:
    """The model ``name`` planning parallel-jaw grasps; ValueError if it cannot."""
    options = dict(PARALLEL_OPTIONS.get(name, {}))
    if name in SEEDED_MODELS:
        options["seed"] = seed
    model = create_model(name, **options)
    if model.gripper is not GripperKind.PARALLEL:
        raise ValueError(f"model '{name}' plans {model.gripper.value} grasps, not parallel-jaw ones")
    return model


def parallel_models() -> list[str]:
    """Every registered model that plans parallel-jaw grasps."""
    names = []
    for name in available_models():
        try:
            create_parallel_model(name)
        except ValueError:  # plans for another gripper
            continue
        names.append(name)
    return names


def model_input(model: GraspModel) -> str:
    """The table's Input column: a pixel model's ``settings.modality``; the geometric models see depth."""
    modality = getattr(getattr(model, "settings", None), "modality", "depth")
    return INPUT_LABELS.get(modality, modality)


# --- raw records -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchRecord:
    """One raw event of the benchmark, one JSON line.

    ``event``: "attempt" (one executed grasp), "sr_end" (an SR / PC run stopped: ``outcome`` says why,
    "empty", "failures" or "no_grasp"; ``parts_before`` the parts at its start, ``parts_after`` those left,
    ``index`` its attempts) or "ap_plan" (the grasps for AP: ``grasps`` returned).
    """

    event: str
    model: str
    object_set: str
    count: int
    scene: int
    mu: float
    phase: str  # "sr" or "ap"
    index: int = 0  # sr: attempt number from 0; ap: rank from 0
    outcome: str = ""
    parts_before: int = 0  # in the bin
    parts_after: int = 0
    lifted: int = 0  # parts lifted by this attempt (a double pick lifts 2)
    grasps: int = 0
    plan_ms: float = 0.0
    attempt_ms: float = 0.0  # wall time of the simulated grasp
    message: str = ""
    grasp: dict | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> "BenchRecord":
        return cls(**json.loads(line))


def append_record(path: Path, record: BenchRecord) -> None:
    append_line(path, record.to_json())


def read_records(path: Path) -> list[BenchRecord]:
    with open(path, encoding="utf-8") as lines:
        return [BenchRecord.from_json(line) for line in lines if line.strip()]


# --- one task: all of one model's runs on one scene ---------------------------------------------------------
@dataclass(frozen=True)
class BenchTask:
    model: str
    object_set: str
    count: int
    scene: int
    mus: tuple[float, ...]
    top_k: int
    attempts_path: Path
    config: CellConfig = field(default_factory=CellConfig)


class _SceneRunner:
    def __init__(self, task: BenchTask):
        self.task = task
        self.seed = scene_seed(task.object_set, task.count, task.scene)
        self.world = scene_world(task.config, task.object_set, task.count, self.seed)
        self.scene = save_scene(self.world)
        self.jaw = FloatingJaw(self.world)
        self.camera = SimCamera(self.world)
        self.model = create_parallel_model(task.model, self.seed)
        self.attempts = 0

    def run(self) -> int:
        """All SR / PC runs and AP grasps of the task; returns the number of attempts."""
        task = self.task
        restore_scene(self.world, self.scene, task.config.parts.lateral_friction)
        ap_grasps, ap_plan_ms = self._plan(task.top_k)  # the image does not depend on mu
        for mu in task.mus:
            self._clear_bin(mu)
            self._log("ap_plan", mu, "ap", grasps=len(ap_grasps), plan_ms=ap_plan_ms)
            for rank, grasp in enumerate(ap_grasps):
                restore_scene(self.world, self.scene, mu)
                self._attempt(grasp, mu, "ap", rank, ap_plan_ms)
        return self.attempts

    def _plan(self, max_grasps: int) -> tuple[list[Grasp], float]:
        capture = self.camera.capture()
        observation = Observation(capture.depth, capture.intrinsics, capture.color, capture.roi)
        tic = time.perf_counter()
        grasps = self.model.plan(observation, max_grasps=max_grasps)
        return grasps[:max_grasps], 1000 * (time.perf_counter() - tic)

    def _clear_bin(self, mu: float) -> None:
        """SR / PC: first-ranked grasps until the bin is empty, MAX_FAILURES in a row, or no grasp."""
        restore_scene(self.world, self.scene, mu)
        at_start = self.world.parts_in_bin()
        failures, index, reason = 0, 0, "empty"
        while self.world.parts_in_bin() > 0:
            if failures >= MAX_FAILURES:
                reason = "failures"
                break
            grasps, plan_ms = self._plan(1)
            if not grasps:
                reason = "no_grasp"
                break
            success = self._attempt(grasps[0], mu, "sr", index, plan_ms, settle=True)
            failures = 0 if success else failures + 1
            index += 1
        self._log(
            "sr_end",
            mu,
            "sr",
            index=index,
            outcome=reason,
            parts_before=at_start,
            parts_after=self.world.parts_in_bin(),
        )

    def _attempt(self, grasp: Grasp, mu: float, phase: str, index: int, plan_ms: float, settle=False) -> bool:
        parts_before = self.world.parts_in_bin()
        result = self.jaw.attempt(self.world.T_world_cam * grasp.T_cam_grasp, grasp.width)
        if settle:  # pushed parts come to rest before the next capture; parts knocked out leave
            self.world.settle(SETTLE_AFTER_ATTEMPT)
            self.world.remove_parts_outside_bin()
            self.world.sleep_parts()
        self.attempts += 1
        self._log(
            "attempt",
            mu,
            phase,
            index=index,
            outcome=result.outcome.value,
            parts_before=parts_before,
            parts_after=self.world.parts_in_bin(),
            lifted=len(result.lifted),
            plan_ms=plan_ms,
            attempt_ms=1000 * result.timings["total"],
            message=result.message,
            grasp=grasp_to_dict(grasp),
        )
        return result.success

    def _log(self, event: str, mu: float, phase: str, **values) -> None:
        task = self.task
        record = BenchRecord(event, task.model, task.object_set, task.count, task.scene, mu, phase, **values)
        append_record(task.attempts_path, record)


def run_task(task: BenchTask) -> int:
    runner = _SceneRunner(task)
    try:
        return runner.run()
    finally:
        runner.world.close()


# --- metrics, from the raw records --------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchMetrics:
    """Means over mu and scenes of one (model, object set, count); fractions in [0, 1], NaN if never defined."""

    success_rate: float  # SR
    percent_cleared: float  # PC
    average_precision: float  # AP
    grasps_returned: float  # mean grasps the model returned for AP (at most top-k)
    sr_attempts: int
    ap_attempts: int
    no_grasp_ends: int  # SR / PC runs ended because the model returned nothing


def compute_metrics(records: list[BenchRecord]) -> dict[tuple[str, str, int], BenchMetrics]:
    """Per (model, object_set, count): SR, PC, AP per (scene, mu), then their mean."""
    cells: dict[tuple, dict[tuple, list[BenchRecord]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        cells[(record.model, record.object_set, record.count)][(record.scene, record.mu)].append(record)
    metrics = {}
    for key, by_cell in sorted(cells.items()):
        sr, pc, ap, returned = [], [], [], []
        sr_attempts = ap_attempts = no_grasp = 0
        for cell in by_cell.values():
            sr_tries = [r for r in cell if r.event == "attempt" and r.phase == "sr"]
            ap_tries = [r for r in cell if r.event == "attempt" and r.phase == "ap"]
            sr_attempts += len(sr_tries)
            ap_attempts += len(ap_tries)
            if sr_tries:
                sr.append(sum(r.outcome == Outcome.SUCCESS.value for r in sr_tries) / len(sr_tries))
            for end in (r for r in cell if r.event == "sr_end"):
                no_grasp += end.outcome == "no_grasp"
                if end.parts_before > 0:
                    pc.append(sum(r.lifted for r in sr_tries if r.outcome == Outcome.SUCCESS.value) / end.parts_before)
            for plan in (r for r in cell if r.event == "ap_plan"):
                returned.append(plan.grasps)
                if plan.grasps > 0:
                    ap.append(sum(r.outcome == Outcome.SUCCESS.value for r in ap_tries) / plan.grasps)
        metrics[key] = BenchMetrics(
            _mean(sr), _mean(pc), _mean(ap), _mean(returned), sr_attempts, ap_attempts, no_grasp
        )
    return metrics


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def format_table(metrics: dict[tuple[str, str, int], BenchMetrics], inputs: dict[str, str]) -> str:
    """Seed 003 Table IV per object set: rows method / input, SR PC AP (%) per object count."""
    sections = []
    for object_set in sorted({key[1] for key in metrics}, key=lambda name: (name != "seen", name)):
        counts = sorted({key[2] for key in metrics if key[1] == object_set})
        header = "| Method | Input | " + " | ".join(f"{c} obj. SR (%) | PC (%) | AP (%)" for c in counts) + " |"
        lines = [f"**{object_set} objects**", "", header, "|---|---|" + "---:|" * (3 * len(counts))]
        for model in sorted({key[0] for key in metrics if key[1] == object_set}):
            values = []
            for count in counts:
                m = metrics.get((model, object_set, count))
                numbers = (m.success_rate, m.percent_cleared, m.average_precision) if m else (math.nan,) * 3
                values += ["n/a" if math.isnan(v) else f"{100 * v:.2f}" for v in numbers]
            lines.append(f"| {model} | {inputs.get(model, 'Depth')} | " + " | ".join(values) + " |")
        sections.append("\n".join(lines))
    return "\n\n".join(sections) + "\n"


def format_totals(metrics: dict[tuple[str, str, int], BenchMetrics], attempts: int, wall: float, workers: int) -> str:
    """Per model: attempts, grasps returned for AP, runs ended by no grasp; then the run's size and time."""
    lines = [""]
    for model in sorted({key[0] for key in metrics}):
        rows = [m for key, m in metrics.items() if key[0] == model]
        returned = _mean([m.grasps_returned for m in rows if not math.isnan(m.grasps_returned)])
        lines.append(
            f"- {model}: {sum(m.sr_attempts for m in rows)} SR/PC and {sum(m.ap_attempts for m in rows)} AP "
            f"attempts, {returned:.1f} grasps returned for AP on average, "
            f"{sum(m.no_grasp_ends for m in rows)} SR/PC runs ended with no grasp"
        )
    lines.append(f"- total: {attempts} attempts in {wall:.1f} s wall with {workers} worker(s)")
    return "\n".join(lines) + "\n"


def metrics_to_json(metrics: dict[tuple[str, str, int], BenchMetrics]) -> list[dict]:
    rows = []
    for (model, object_set, count), m in metrics.items():
        values = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(m).items()}
        rows.append({"model": model, "object_set": object_set, "count": count, **values})
    return rows


# --- the command -------------------------------------------------------------------------------------------
def run_benchmark(
    models: list[str],
    object_sets: list[str],
    counts: list[int],
    scenes: int,
    mus: list[float],
    top_k: int,
    workers: int,
    out_dir: Path,
    config: CellConfig | None = None,
    progress: bool = True,
) -> dict:
    """Run every task, then compute the metrics from ``attempts.jsonl``; returns the results dict."""
    config = config if config is not None else CellConfig()
    out_dir.mkdir(parents=True, exist_ok=True)
    attempts_path = out_dir / ATTEMPTS_FILE
    options = {
        "models": models,
        "object_sets": object_sets,
        "counts": counts,
        "scenes": scenes,
        "mus": mus,
        "top_k": top_k,
        "workers": workers,
    }
    write_json(
        out_dir / RUN_FILE,
        {"options": options, "config": config.to_dict(), "git_commit": git_commit(), "started_at": time.time()},
    )
    inputs = {name: model_input(create_parallel_model(name)) for name in models}
    # the longest tasks (most objects) first, so the workers finish together
    tasks = [
        BenchTask(model, object_set, count, scene, tuple(mus), top_k, attempts_path, config)
        for count in sorted(counts, reverse=True)
        for model in models
        for object_set in object_sets
        for scene in range(scenes)
    ]
    started = time.perf_counter()
    bar = tqdm(total=len(tasks), unit="scene", disable=not progress)
    if workers <= 1:
        for task in tasks:
            run_task(task)
            bar.update()
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for _ in pool.imap_unordered(run_task, tasks):
                bar.update()
    bar.close()
    wall = time.perf_counter() - started

    records = read_records(attempts_path)
    metrics = compute_metrics(records)
    attempts = [r for r in records if r.event == "attempt"]
    table = format_table(metrics, inputs) + format_totals(metrics, len(attempts), wall, workers)
    results = {
        "options": options,
        "metrics": metrics_to_json(metrics),
        "inputs": inputs,
        "attempts": len(attempts),
        "attempt_ms_median": float(np.median([r.attempt_ms for r in attempts])) if attempts else None,
        "wall_s": wall,
    }
    write_json(out_dir / RESULTS_FILE, results)
    (out_dir / TABLE_FILE).write_text(table, encoding="utf-8")
    return {**results, "table": table}


def record_in_model_cards(run_dir: Path, cards_dir: Path | None = None) -> list[Path]:
    """Add a run's SR / PC / AP per object set and count to the model card (``<name>.yaml`` in ``models/``) of
    every benchmarked model that has one; returns the cards written."""
    results = json.loads((Path(run_dir) / RESULTS_FILE).read_text())
    written = []
    for name in sorted({row["model"] for row in results["metrics"]}):
        benchmark = {
            "options": results["options"],  # of python -m grasp_cell.eval.pixel_bench
            "run": str(run_dir),
            "results": [
                {
                    "objects": f"{row['object_set']} {row['count']}",
                    "SR": round(100 * row["success_rate"], 2),
                    "PC": round(100 * row["percent_cleared"], 2),
                    "AP": round(100 * row["average_precision"], 2),
                }
                for row in results["metrics"]
                if row["model"] == name
            ],
        }
        card_path = record_in_model_card(name, "benchmark", benchmark, cards_dir)
        if card_path is not None:
            written.append(card_path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", help="default: every registered model that plans parallel grasps")
    parser.add_argument("--sets", nargs="+", default=["seen", "novel"])
    parser.add_argument("--counts", type=int, nargs="+", default=[5, 15])
    parser.add_argument("--scenes", type=int, default=5, help="per object set and count")
    parser.add_argument("--mu", type=float, nargs="+", default=list(MU_VALUES))
    parser.add_argument("--top-k", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, help="default: runs/pixel_bench/<stamp>")
    parser.add_argument("--sim-config", type=Path, default=package_share() / "config" / "sim_cell.yaml")
    parser.add_argument(
        "--record-cards",
        type=Path,
        metavar="RUN_DIR",
        help="run nothing: copy the results of RUN_DIR into the model cards of the learned models",
    )
    options = parser.parse_args(argv)
    if options.record_cards is not None:
        for card in record_in_model_cards(options.record_cards):
            print(f"recorded in {card}")
        return 0

    models = options.models or parallel_models()
    for name in models:
        create_parallel_model(name)  # fail before the run on a model that cannot plan parallel grasps
    out_dir = options.out if options.out is not None else new_run_dir(Path("runs") / "pixel_bench", "pixel_bench")
    config = CellConfig.from_yaml(options.sim_config)
    results = run_benchmark(
        models,
        options.sets,
        options.counts,
        options.scenes,
        options.mu,
        options.top_k,
        options.workers,
        out_dir,
        config,
    )
    print(results["table"])
    median = results["attempt_ms_median"]
    each = f" (median {median:.0f} ms each)" if median is not None else ""
    print(
        f"{results['attempts']} attempts{each} in {results['wall_s']:.1f} s wall with {options.workers} "
        f"worker(s); written to {out_dir}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
