"""Learning inside the running cell: the simulated cell grasps, every attempt becomes training data, a
trainer retrains in the background and the model picks up each new weights version before its next plan.

    python -m grasp_cell.learn.online run --model planar_fcn --attempts 3000 --out runs/learn/planar_fcn
    python -m grasp_cell.learn.online evaluate --out runs/learn/planar_fcn --bins 10
    python -m grasp_cell.learn.online evaluate --out runs/learn/planar_fcn --bins 10 --ship

``run`` starts from random weights (or resumes the folder: run the same command again) and stops after
``--attempts`` recorded attempts. The folder holds ``experience/`` (the attempts: input, grasp, reward;
``grasp_cell.learn.experience``), ``snapshots/`` (weights versions; ``grasp_cell.models.snapshots``),
``training.jsonl`` (one line per training round: examples, test loss / accuracy / F1),
``learning_curve.csv`` and ``learning_curve.png`` (success over the last 100 attempts, seed 001 eq. 5,
computed from the records). ``evaluate`` runs pick-until-empty bins with exploration off (the best grasp;
max(5) after a repeat) and ``--ship`` copies the weights into ``models/`` with a model card.

The reward is what the gripper reports (the part was lifted and placed, or not); the trainer never sees
the simulator's state. The same records, trainer and snapshot-following model serve a real cell.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from grasp_cell.core.depth import DepthError
from grasp_cell.core.outcome import Outcome
from grasp_cell.drivers.base import PickRequest
from grasp_cell.eval.attempt_log import append_line, git_commit, read_attempts, write_json
from grasp_cell.learn.experience import ExperienceFeed, ExperienceStore, read_records
from grasp_cell.models.base import Observation
from grasp_cell.models.snapshots import SnapshotFolder, snapshot_file

EXPERIENCE_DIR = "experience"
SNAPSHOTS_DIR = "snapshots"
TRAINING_FILE = "training.jsonl"
CURVE_CSV = "learning_curve.csv"
CURVE_PNG = "learning_curve.png"
CURVE_WINDOW = 100  # seed 001 eq. 5: success rate over the latest hundred attempts


@dataclass(frozen=True)
class LearningSetup:
    """What a learning run learns, with which arm and gripper, and how its trainer paces itself."""

    model: str = "planar_fcn"
    robot: str = "iiwa"  # seed 002's arm
    gripper: str = "parallel"
    encoder: str = ""  # suction_region: pretrained | random | trained (grasp_cell.learn.region_learner)
    parts: int = 20  # per bin
    seed: int = 0
    retrain_every: int = 20  # new attempts between training rounds
    reset_after_failures: int = 20  # a bin that fails this often in a row is dropped again (stuck parts)


PRETRAINED_ENCODER = "pretrained_encoder.pt"


def _planar_learner(setup: LearningSetup, run_dir: Path):
    from grasp_cell.learn.planar_learner import PlanarLearner

    return PlanarLearner(seed=setup.seed)


def _region_learner(setup: LearningSetup, run_dir: Path):
    from grasp_cell.learn.region_learner import RegionLearner, RegionTrainSettings

    encoder = _pretrained_encoder(run_dir) if setup.encoder == "pretrained" else None
    return RegionLearner(RegionTrainSettings(encoder=setup.encoder), setup.seed, encoder)


def _planar_model(*args, **options):
    from grasp_cell.models.planar_grasp import PlanarGraspModel

    return PlanarGraspModel(*args, **options)


def _region_model(*args, **options):
    from grasp_cell.models.suction_region import SuctionRegionModel

    return SuctionRegionModel(*args, **options)


@dataclass(frozen=True)
class LearningModel:
    """A model that learns in the cell: the seed's arm and gripper, its learner, and the model itself (built
    with a checkpoint or None, and the model's options)."""

    robot: str
    gripper: str
    learner: Callable
    model: Callable


LEARNING_MODELS = {
    "planar_fcn": LearningModel("iiwa", "parallel", _planar_learner, _planar_model),  # seed 002's cell
    "suction_region": LearningModel("ur5", "suction", _region_learner, _region_model),  # seed 001's cell
}


def _kind(setup: LearningSetup) -> LearningModel:
    try:
        return LEARNING_MODELS[setup.model]
    except KeyError:
        names = ", ".join(LEARNING_MODELS)
        raise ValueError(f"no learner for model '{setup.model}'; expected one of {names}") from None


def _pretrained_encoder(run_dir: Path) -> dict:
    """The run's own pretrained encoder, else the one shipped inside ``models/suction_region.pt`` (a cell
    without a simulator, e.g. on hardware, starts from that, as the seed starts from ImageNet's)."""
    import torch

    from grasp_cell.models.base import models_dir

    if (run_dir / PRETRAINED_ENCODER).exists():
        return torch.load(run_dir / PRETRAINED_ENCODER, weights_only=True)["state_dict"]
    shipped = models_dir() / "suction_region.pt"
    if not shipped.exists():
        raise ValueError(f"no pretrained encoder in {run_dir} and no {shipped}")
    state = torch.load(shipped, map_location="cpu", weights_only=True)["state_dict"]
    return {key.removeprefix("encoder."): value for key, value in state.items() if key.startswith("encoder.")}


def unlabelled_images(setup: LearningSetup, sim_config: Path, bins: int) -> list[Observation]:
    """Captures of ``bins`` bins of 5-30 parts (seeds the learning run never draws): images only."""
    from grasp_cell.drivers.sim_camera import SimCamera
    from grasp_cell.sim.config import CellConfig
    from grasp_cell.sim.world import SimWorld

    config = CellConfig.from_yaml(sim_config).with_cell(setup.robot, setup.gripper, setup.seed + 500_000)
    images = []
    with SimWorld(config) as world:
        camera = SimCamera(world)
        for _ in range(bins):
            world.reset(int(world.rng.integers(5, 31)))
            capture = camera.capture()
            images.append(Observation(capture.depth, capture.intrinsics, capture.color, capture.roi))
    return images


def pretrain(run_dir: Path, setup: LearningSetup, sim_config: Path, bins: int = 40, steps: int = 400) -> None:
    """Seed 001's frozen encoder without ImageNet: pretrain it on the cell's own unlabelled images."""
    import torch

    from grasp_cell.learn.region_learner import pretrain_encoder

    path = run_dir / PRETRAINED_ENCODER
    if path.exists():
        return
    tic = time.perf_counter()
    images = unlabelled_images(setup, sim_config, bins)
    state, losses = pretrain_encoder(images, steps, seed=setup.seed, log=tqdm.write)
    torch.save({"state_dict": state, "losses": losses, "bins": bins, "steps": steps,
                "seconds": round(time.perf_counter() - tic, 1)}, path)


# --- the trainer ----------------------------------------------------------------------------------------
def train_in_background(run_dir: Path, setup: LearningSetup, stop, threads: int = 1) -> None:
    """Retrain whenever ``retrain_every`` new attempts are recorded, publishing each round as a new weights
    version, until ``stop`` (a multiprocessing Event) is set. Restarted on the same folder it resumes from
    the newest snapshot and rebuilds its examples from the records."""
    import torch

    torch.set_num_threads(threads)
    run_dir = Path(run_dir)
    snapshots = SnapshotFolder(run_dir / SNAPSHOTS_DIR)
    learner = _kind(setup).learner(setup, run_dir)
    latest = snapshots.latest()
    trained_on = 0
    if latest is None:
        snapshots.publish(learner.checkpoint(), {"attempts": 0, "round": 0, "time": time.time()})
    else:
        learner.restore(snapshots.load(latest))
        trained_on = int(latest.get("attempts", 0))
    feed = ExperienceFeed(run_dir / EXPERIENCE_DIR)
    parent = multiprocessing.parent_process()  # None when run in a thread (the trainer node)
    while not stop.is_set():
        if parent is not None and not parent.is_alive():
            return  # the learning run was killed: an orphan would keep publishing into its folder
        for record in feed.new_records():
            learner.add(record, feed.load(record))
        if len(learner) - trained_on < setup.retrain_every:
            stop.wait(0.2)
            continue
        tic = time.perf_counter()
        metrics = learner.train_round()
        trained_on = len(learner)
        metrics.update(attempts=trained_on, seconds=round(time.perf_counter() - tic, 2), time=time.time())
        version = snapshots.publish(learner.checkpoint(), metrics)
        append_line(run_dir / TRAINING_FILE, json.dumps({**metrics, "version": version}, sort_keys=True))


# --- the learning run -----------------------------------------------------------------------------------
def learning_run(run_dir: Path, setup: LearningSetup, attempts: int, sim_config: Path) -> dict:
    """Grasp in the simulated cell until ``attempts`` attempts are recorded (resuming the folder's)."""
    from grasp_cell.drivers.sim_arm import SimArm
    from grasp_cell.drivers.sim_camera import SimCamera
    from grasp_cell.sim.config import CellConfig
    from grasp_cell.sim.world import SimWorld

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_setup(run_dir, setup)
    store = ExperienceStore(run_dir / EXPERIENCE_DIR)
    if setup.encoder == "pretrained":
        pretrain(run_dir, setup, sim_config)  # once per run folder; not counted in the attempt rate
    start_count, started = len(store), time.time()
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    trainer = context.Process(target=train_in_background, args=(run_dir, setup, stop), daemon=True)
    trainer.start()
    snapshots = SnapshotFolder(run_dir / SNAPSHOTS_DIR)
    while snapshots.latest() is None:  # the trainer publishes version 0 (or has one to resume from)
        if not trainer.is_alive():
            raise RuntimeError("the trainer process died before publishing weights")
        time.sleep(0.1)
    # a resumed run draws other bins and other explorations than the attempts it already made
    seed = setup.seed + len(store)
    model = _kind(setup).model(None, selection="schedule", snapshots=run_dir / SNAPSHOTS_DIR, seed=seed)
    config = CellConfig.from_yaml(sim_config).with_cell(setup.robot, setup.gripper, seed)
    failures_in_row = 0
    try:
        with SimWorld(config) as world, tqdm(total=attempts, initial=len(store), unit="attempt") as bar:
            arm, camera = SimArm(world), SimCamera(world)
            world.reset(setup.parts)
            while len(store) < attempts:
                capture = camera.capture()
                if capture.parts_in_bin == 0 or failures_in_row >= setup.reset_after_failures:
                    world.reset(setup.parts)  # seed 001: a new bin when one is empty
                    failures_in_row = 0
                    continue
                try:
                    observation = Observation(capture.depth, capture.intrinsics, capture.color, capture.roi)
                except DepthError as error:
                    tqdm.write(f"[learn] capture skipped: {error}")
                    continue
                grasps = model.plan(observation, max_grasps=1)
                if not grasps:
                    world.reset(setup.parts)
                    continue
                grasp = grasps[0]
                result = arm.pick(PickRequest(arm.T_base_cam * grasp.T_cam_grasp, grasp.gripper, grasp.width))
                if result.outcome is Outcome.DRIVER_ERROR:
                    tqdm.write(f"[learn] arm fault, not a lesson: {result.message}")
                    continue
                record = store.add(observation, grasp, result.outcome, capture.stamp or time.time())
                failures_in_row = 0 if record.reward > 0 else failures_in_row + 1
                bar.update()
                if len(store) % 25 == 0:
                    rewards = [r.reward for r in store.records[-CURVE_WINDOW:]]
                    bar.set_postfix(success=f"{100 * np.mean(rewards):.0f}%", version=model.version)
                if len(store) % 250 == 0:
                    write_learning_curve(run_dir, store.records)
    finally:
        stop.set()
        trainer.join(timeout=60)
        if trainer.is_alive():
            trainer.terminate()
    wall = time.time() - started
    made = len(store) - start_count
    summary = {
        "attempts": len(store),
        "attempts_this_session": made,
        "wall_seconds": round(wall, 1),
        "attempts_per_hour": round(3600.0 * made / max(wall, 1e-9), 1),
        "final_success_last_100": write_learning_curve(run_dir, store.records),
        "weights_version": (snapshots.latest() or {}).get("version"),
    }
    append_line(run_dir / "sessions.jsonl", json.dumps({**summary, "ended": time.time()}, sort_keys=True))
    return summary


def load_setup(run_dir: Path) -> LearningSetup:
    return LearningSetup(**json.loads((Path(run_dir) / "run.json").read_text())["setup"])


def training_round(run_dir: Path, version: int) -> dict:
    """The ``training.jsonl`` line of the round that published ``version`` ({} for version 0, the random
    start, or a run without rounds)."""
    path = Path(run_dir) / TRAINING_FILE
    rounds = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return next((r for r in rounds if r.get("version") == version), {})


def _check_setup(run_dir: Path, setup: LearningSetup) -> None:
    """A resumed folder must be the same kind of run; a new one records its setup."""
    path = run_dir / "run.json"
    if path.exists():
        old = {**asdict(LearningSetup()), **json.loads(path.read_text())["setup"]}
        if old != asdict(setup):
            changed = sorted(key for key in old if old[key] != asdict(setup).get(key))
            raise ValueError(f"{run_dir} was started with other settings ({', '.join(changed)}); use another --out")
        return
    write_json(path, {"setup": asdict(setup), "git_commit": git_commit(), "started_at": time.time()})


def learning_curve(rewards: list[float], window: int = CURVE_WINDOW) -> np.ndarray:
    """Seed 001 eq. 5 at every attempt: successes among the latest ``window`` attempts / ``window`` (over the
    attempts so far while fewer than ``window`` were made)."""
    rewards = np.asarray(rewards, dtype=np.float64)
    total = np.cumsum(rewards)
    before = np.concatenate([np.zeros(window), total])[: len(total)]
    counts = np.minimum(np.arange(1, len(total) + 1), window)
    return (total - before) / counts


def write_learning_curve(run_dir: Path, records: list | None = None) -> float | None:
    """``learning_curve.csv`` and ``.png`` from the records (read from the folder unless given); returns
    the last value."""
    records = read_records(Path(run_dir) / EXPERIENCE_DIR) if records is None else records
    if not records:
        return None
    curve = learning_curve([r.reward for r in records])
    lines = ["attempt,reward,success_last_100,version,selection"]
    lines += [f"{r.attempt},{r.reward:.0f},{c:.4f},{r.version},{r.selection}" for r, c in zip(records, curve)]
    (Path(run_dir) / CURVE_CSV).write_text("\n".join(lines) + "\n", encoding="utf-8")
    plot_curves({"": curve}, Path(run_dir) / CURVE_PNG, f"{Path(run_dir).name}: learning in the simulated cell")
    return float(curve[-1])


def run_curves(run_dirs: list[Path]) -> dict[str, np.ndarray]:
    """The learning curves of several runs, labelled by model (and encoder)."""
    curves = {}
    for run_dir in run_dirs:
        setup = load_setup(run_dir)
        label = setup.model + (f", {setup.encoder} encoder" if setup.encoder else "")
        curves[label] = learning_curve([r.reward for r in read_records(Path(run_dir) / EXPERIENCE_DIR)])
    return curves


def plot_curves(curves: dict[str, np.ndarray], out: Path, title: str = "") -> None:
    """Success over the last 100 attempts against attempts, one line per curve (a legend when labelled)."""
    from grasp_cell.learn.training import pyplot

    plt = pyplot()
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for label, curve in curves.items():
        axis.plot(np.arange(1, len(curve) + 1), 100 * curve, lw=1.2, label=label or None)
    axis.set_xlabel("attempt")
    axis.set_ylabel(f"success over the last {CURVE_WINDOW} attempts [%]")
    axis.set_ylim(0, 100)
    axis.grid(alpha=0.3)
    if title:
        axis.set_title(title)
    if any(curves):
        axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)


# --- evaluation -----------------------------------------------------------------------------------------
def evaluate(run_dir: Path, bins: int, sim_config: Path, version: int | None = None) -> dict:
    """Pick-until-empty on ``bins`` fresh bins with exploration off: SR, PC and failures over them, and seed
    002's grasp rate over the first half of each bin's parts."""
    from grasp_cell.eval.metrics import grasp_rate_first, summarize
    from grasp_cell.eval.pick_loop import StopRules
    from grasp_cell.eval.sim_bins import run_bin
    from grasp_cell.sim.config import CellConfig

    run_dir = Path(run_dir)
    setup = load_setup(run_dir)
    snapshots = SnapshotFolder(run_dir / SNAPSHOTS_DIR)
    info = snapshots.latest()
    if info is None:
        raise ValueError(f"{run_dir} has no weights yet")
    if version is not None:
        info = {"version": version, "file": snapshot_file(version)}
    model = _kind(setup).model(snapshots.load(info), selection="max")
    base = CellConfig.from_yaml(sim_config)
    records, first_half = [], []
    out = run_dir / "evaluations" / f"snapshot_{info['version']:05d}"
    for index in range(bins):
        seed = 1_000_000 + index  # bins the learning run never drew
        config = base.with_cell(setup.robot, setup.gripper, seed)
        bin_dir = out / f"bin_{index:02d}"
        shutil.rmtree(bin_dir, ignore_errors=True)
        summary = run_bin(config, model, setup.parts, bin_dir, StopRules())
        attempts = read_attempts(bin_dir)
        records.extend(attempts)
        first_half.append(grasp_rate_first(attempts, setup.parts // 2))
        print(f"bin {index}: {summary.attempts} attempts, SR {100 * summary.success_rate:.1f} %, "
              f"PC {100 * summary.percent_cleared:.1f} %", flush=True)
    total = summarize(records)
    result = {
        "version": info["version"],
        "trained_attempts": int(training_round(run_dir, info["version"]).get("attempts", 0)),
        "bins": bins,
        "parts_per_bin": setup.parts,
        "attempts": total.attempts,
        "successes": total.successes,
        "success_rate": round(total.success_rate, 4),
        "percent_cleared": round(total.parts_removed / (bins * setup.parts), 4),
        "failures_by_cause": total.failures_by_cause,
        # seed 002's measure: attempts to take the first half of each bin's parts ("10 out of 20")
        f"grasp_rate_{setup.parts // 2}_of_{setup.parts}": round(
            sum(s for s, _ in first_half) / max(sum(n for _, n in first_half), 1), 4),
    }
    write_json(out / "summary.json", result)
    return result


def curve_milestones(run_dir: Path, at=(250, 500, 1000, 1500, 2000, 2500, 3000)) -> dict[int, float]:
    """Success over the last 100 attempts (eq. 5) at a few attempt counts of the run and at its end, in %."""
    records = read_records(Path(run_dir) / EXPERIENCE_DIR)
    curve = learning_curve([r.reward for r in records])
    counts = sorted({n for n in at if n <= len(curve)} | ({len(curve)} if len(curve) else set()))
    return {n: round(100.0 * float(curve[n - 1]), 1) for n in counts}


def ship(run_dir: Path, evaluation: dict, models: Path) -> Path:
    """Copy the evaluated weights into ``models/<model>.pt`` with a model card beside them."""
    import torch
    import yaml

    run_dir = Path(run_dir)
    setup = load_setup(run_dir)
    version = evaluation["version"]
    checkpoint = SnapshotFolder(run_dir / SNAPSHOTS_DIR).load({"file": snapshot_file(version)})
    trained = training_round(run_dir, version)
    sessions = [json.loads(line) for line in (run_dir / "sessions.jsonl").read_text().splitlines()]
    models.mkdir(parents=True, exist_ok=True)
    weights = models / f"{setup.model}.pt"
    torch.save({"state_dict": checkpoint["state_dict"], "attempts": trained.get("attempts", 0)}, weights)
    card = {
        "model": setup.model,
        "run": str(run_dir),
        "trained_by": f"python -m grasp_cell.learn.online run --model {setup.model} (self-supervised, in the "
        f"simulated cell: {setup.robot} with the {setup.gripper} gripper, {setup.parts}-part bins)",
        "data": {"attempts": trained.get("attempts"), "train_examples": trained.get("train_examples"),
                 "test_examples": trained.get("test_examples")},
        "settings": {**asdict(setup), "weights_version": version, "training_rounds": trained.get("round")},
        "learning": {"wall_seconds": sum(s["wall_seconds"] for s in sessions),
                     "attempts_per_hour": [s["attempts_per_hour"] for s in sessions]},
        "test_set": {key: trained[key] for key in ("test_loss", "test_accuracy", "test_f1") if key in trained},
        "learning_curve": curve_milestones(run_dir),
        "evaluation": evaluation,
    }
    if (run_dir / PRETRAINED_ENCODER).exists():
        pretraining = torch.load(run_dir / PRETRAINED_ENCODER, weights_only=True)
        card["encoder_pretraining"] = {
            "images": pretraining["bins"], "steps": pretraining["steps"], "seconds": pretraining["seconds"],
            "loss_first_50": round(float(np.mean(pretraining["losses"][:50])), 4),
            "loss_last_50": round(float(np.mean(pretraining["losses"][-50:])), 4),
        }
    (models / f"{setup.model}.yaml").write_text(yaml.safe_dump(card, sort_keys=False), encoding="utf-8")
    return weights


def main(argv: list[str] | None = None) -> int:
    from grasp_cell.graph import package_share
    from grasp_cell.models.base import models_dir

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="learn in the simulated cell (resumes --out)")
    run.add_argument("--model", default="planar_fcn", choices=list(LEARNING_MODELS))
    run.add_argument("--attempts", type=int, default=3000, help="stop when the folder holds this many attempts")
    run.add_argument("--parts", type=int, default=20)
    run.add_argument("--robot", default=None, help="default: the model's seed arm (see LEARNING_MODELS)")
    run.add_argument("--encoder", default="pretrained", choices=("pretrained", "random", "trained"),
                     help="suction_region: what stands in for the seed's frozen ImageNet encoder")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--retrain-every", type=int, default=LearningSetup.retrain_every)
    check = commands.add_parser("evaluate", help="pick-until-empty bins with exploration off")
    check.add_argument("--bins", type=int, default=10)
    check.add_argument("--version", type=int, default=None, help="default: the newest")
    check.add_argument("--ship", action="store_true", help="copy the weights and a model card into models/")
    curves = commands.add_parser("curves", help="plot the learning curves of several runs together")
    curves.add_argument("runs", type=Path, nargs="+")
    curves.add_argument("--png", type=Path, required=True)
    for command in (run, check):
        command.add_argument("--out", type=Path, required=True, help="the learning run's folder")
        command.add_argument("--sim-config", type=Path, default=package_share() / "config" / "sim_cell.yaml")
    options = parser.parse_args(argv)

    if options.command == "run":
        kind = LEARNING_MODELS[options.model]
        setup = LearningSetup(model=options.model, robot=options.robot or kind.robot, gripper=kind.gripper,
                              encoder=options.encoder if options.model == "suction_region" else "",
                              parts=options.parts, seed=options.seed, retrain_every=options.retrain_every)
        summary = learning_run(options.out, setup, options.attempts, options.sim_config)
        print(json.dumps(summary, indent=2))
        print(f"learning curve: {options.out / CURVE_PNG}")
        return 0
    if options.command == "curves":
        plot_curves(run_curves(options.runs), options.png)
        print(f"wrote {options.png}")
        return 0
    result = evaluate(options.out, options.bins, options.sim_config, options.version)
    print(json.dumps(result, indent=2))
    if options.ship:
        print(f"shipped {ship(options.out, result, models_dir())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
