"""Train seed 000's suction net (dual resolution, or the single-resolution ablation) on suction data.

    python -m grasp_cell.learn.train_suction --data data/suction --epochs 12            # suction_dual
    python -m grasp_cell.learn.train_suction --data data/suction --epochs 12 --single   # suction_single

Adam (seed III-B), loss of eqs. 1-4. Views are split into training and validation by scene. Each epoch
draws new negatives and new eq. 5 masks, and writes ``runs/train_suction/<run>/last.pt`` (``--resume``
continues it), ``history.csv`` and ``learning_curve.png``. The best validation epoch's weights go to
``<out>/suction_<dual|single>.pt`` with the model card ``.yaml`` beside them.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
import yaml
from torch.utils.data import DataLoader
from tqdm import tqdm

from grasp_cell.eval.attempt_log import git_commit
from grasp_cell.learn.pixel_data import split_by_scene
from grasp_cell.learn.suction_patches import SuctionPatches, SuctionViews
from grasp_cell.learn.training import card_number, pick_device, pyplot, save_atomic, write_history_csv
from grasp_cell.models.base import models_dir
from grasp_cell.models.suction_net import SuctionNet, suction_loss

HISTORY_FIELDS = ("epoch", "train_loss", "val_loss", "val_accuracy", "val_pz_mm", "val_v_deg", "lr", "seconds")


@dataclass
class SuctionTrainConfig:
    data: Path
    context: bool = True
    epochs: int = 12
    batch_size: int = 64
    lr: float = 1e-3
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0)  # alpha, beta, gamma of eq. 1
    out: Path | None = None
    runs: Path = Path("runs/train_suction")
    run: str = ""
    resume: bool = False
    device: str = "auto"
    max_steps: int = 0
    validation_fraction: float = 0.1
    threads: int = 1
    seed: int = 0
    command: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return "suction_dual" if self.context else "suction_single"

    @property
    def run_dir(self) -> Path:
        return self.runs / (self.run or f"{self.data.name}-{self.name}")


def evaluate(net: SuctionNet, loader: DataLoader, device, weights) -> dict[str, float]:
    """Validation loss, detection accuracy (d > 0.5 against the label), and on positives the median pz error
    [mm] and approach angle error [deg]."""
    net.eval()
    losses, hits, pz_errors, angles, count = [], [], [], [], 0
    with torch.inference_mode():
        for batch in loader:
            batch = {key: value.to(device) for key, value in batch.items()}
            d, v, pz = net(batch["image"])
            loss, _ = suction_loss(d, v, pz, batch["d"], batch["v"], batch["pz"], weights)
            size = batch["image"].shape[0]
            losses.append(loss.item() * size)
            count += size
            hits.append(((d > 0) == (batch["d"] > 0.5)).float().cpu())
            positive = batch["d"] > 0.5
            pz_errors.append(1000 * (pz - batch["pz"])[positive].abs().cpu())
            unit = torch.nn.functional.normalize(v[positive], dim=1)
            cosine = (unit * batch["v"][positive]).sum(dim=1).clamp(-1, 1)
            angles.append(torch.rad2deg(torch.acos(cosine)).cpu())
    if not count:
        return {"val_loss": math.nan, "val_accuracy": math.nan, "val_pz_mm": math.nan, "val_v_deg": math.nan}
    pz_all, angle_all = torch.cat(pz_errors), torch.cat(angles)
    return {
        "val_loss": sum(losses) / count,
        "val_accuracy": float(torch.cat(hits).mean()),
        "val_pz_mm": float(pz_all.median()) if pz_all.numel() else math.nan,
        "val_v_deg": float(angle_all.median()) if angle_all.numel() else math.nan,
    }


def write_history(run_dir: Path, history: list[dict]) -> None:
    write_history_csv(run_dir, HISTORY_FIELDS, history)
    plt = pyplot()

    epochs = [row["epoch"] for row in history]
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axis.plot(epochs, [row["train_loss"] for row in history], label="train")
    loss_axis.plot(epochs, [row["val_loss"] for row in history], label="validation")
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("loss (eq. 1)")
    loss_axis.legend()
    accuracy_axis.plot(epochs, [row["val_accuracy"] for row in history], "g", label="detection accuracy")
    accuracy_axis.set_ylim(0.5, 1.0)
    accuracy_axis.set_xlabel("epoch")
    accuracy_axis.set_ylabel("validation detection accuracy")
    error_axis = accuracy_axis.twinx()
    error_axis.plot(epochs, [row["val_pz_mm"] for row in history], "r--", label="median pz error [mm]")
    error_axis.plot(epochs, [row["val_v_deg"] for row in history], "m:", label="median v error [deg]")
    error_axis.set_ylabel("mm / deg")
    lines = accuracy_axis.get_legend_handles_labels()
    more = error_axis.get_legend_handles_labels()
    accuracy_axis.legend(lines[0] + more[0], lines[1] + more[1], loc="center right")
    figure.tight_layout()
    figure.savefig(run_dir / "learning_curve.png", dpi=100)
    plt.close(figure)


def train(config: SuctionTrainConfig) -> Path:
    """Train (or resume), export the best weights and their model card; returns the weights file."""
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    run_dir = config.run_dir
    checkpoint_path = run_dir / "last.pt"
    if checkpoint_path.exists() and not config.resume:
        raise FileExistsError(f"{checkpoint_path} exists: pass --resume to continue it, or --run to start another")
    run_dir.mkdir(parents=True, exist_ok=True)

    views = SuctionViews.load(config.data)
    train_views, val_views = split_by_scene(views.scene, config.validation_fraction)
    train_set = SuctionPatches(views, train_views, seed=config.seed)
    val_set = SuctionPatches(views, val_views, seed=config.seed + 1)
    generator = torch.Generator().manual_seed(config.seed)
    drop_last = len(train_set) > config.batch_size
    train_loader = DataLoader(
        train_set, batch_size=config.batch_size, shuffle=True, drop_last=drop_last, generator=generator
    )
    val_loader = DataLoader(val_set, batch_size=256, shuffle=False)

    net = SuctionNet(context=config.context).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    state = {"epoch": 0, "step": 0, "history": [], "best": None, "seconds": 0.0}
    if config.resume and checkpoint_path.exists():
        saved = torch.load(checkpoint_path, map_location=device, weights_only=False)
        net.load_state_dict(saved["state_dict"])
        optimizer.load_state_dict(saved["optimizer"])
        generator.set_state(saved["generator"])
        state = saved["state"]
        train_set.epoch = state["epoch"]
        train_set.new_epoch()
        print(f"resuming {run_dir} after epoch {state['epoch']}")
    parameters = sum(p.numel() for p in net.parameters())
    data_info = {
        "folder": str(config.data),
        "shards": views.shard_count,
        "views_train": int(train_views.size),
        "views_val": int(val_views.size),
        "positives_train": int(train_set.positives.size),
        "positives_val": int(val_set.positives.size),
        "meta": views.meta,
    }
    print(
        f"{config.name}: {parameters:,} parameters on {device}; {len(train_set)} training patches "
        f"({train_views.size} views), {len(val_set)} validation patches ({val_views.size} views)"
    )

    while state["epoch"] < config.epochs and not (config.max_steps and state["step"] >= config.max_steps):
        tic = time.perf_counter()
        net.train()
        total, seen = 0.0, 0
        for batch in tqdm(train_loader, desc=f"epoch {state['epoch'] + 1}/{config.epochs}", leave=False):
            batch = {key: value.to(device) for key, value in batch.items()}
            d, v, pz = net(batch["image"])
            loss, _ = suction_loss(d, v, pz, batch["d"], batch["v"], batch["pz"], config.weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * batch["image"].shape[0]
            seen += batch["image"].shape[0]
            state["step"] += 1
            if config.max_steps and state["step"] >= config.max_steps:
                break
        train_set.new_epoch()
        metrics = evaluate(net, val_loader, device, config.weights)
        state["epoch"] += 1
        seconds = time.perf_counter() - tic
        state["seconds"] += seconds
        row = {
            "epoch": state["epoch"],
            "train_loss": total / max(seen, 1),
            **metrics,
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": round(seconds, 1),
        }
        state["history"].append(row)
        print(
            f"epoch {row['epoch']}: train {row['train_loss']:.4f}, validation {row['val_loss']:.4f}, "
            f"accuracy {row['val_accuracy']:.3f}, pz {row['val_pz_mm']:.1f} mm, v {row['val_v_deg']:.1f} deg, "
            f"{seconds:.0f} s"
        )
        score = row["val_loss"] if not math.isnan(row["val_loss"]) else row["train_loss"]
        if state["best"] is None or score < state["best"]["score"]:
            state["best"] = {"score": score, **row}
            export = {
                "state_dict": {key: value.detach().cpu() for key, value in net.state_dict().items()},
                "context": config.context,
                "training": {"epoch": row["epoch"], **metrics, "data": str(config.data), "run": str(run_dir)},
            }
            save_atomic(export, run_dir / "best.pt")
        save_atomic(
            {
                "state_dict": net.state_dict(),
                "optimizer": optimizer.state_dict(),
                "generator": generator.get_state(),
                "state": state,
            },
            checkpoint_path,
        )
        write_history(run_dir, state["history"])

    out = config.out or models_dir()
    out.mkdir(parents=True, exist_ok=True)
    weights_file = out / f"{config.name}.pt"
    save_atomic(torch.load(run_dir / "best.pt", map_location="cpu", weights_only=True), weights_file)
    write_model_card(weights_file.with_suffix(".yaml"), config, data_info, state, parameters, device)
    print(f"wrote {weights_file} ({weights_file.stat().st_size / 1e6:.2f} MB) from epoch {state['best']['epoch']}")
    return weights_file


def write_model_card(path: Path, config: SuctionTrainConfig, data: dict, state: dict, parameters: int, device) -> None:
    best = state["best"]
    card = {
        "model": path.stem,
        "method": "seed 000 dual-resolution suction CNN (focus + context nets, heads d / v / pz; eqs. 1-4)"
        if config.context
        else "seed 000 single-resolution ablation (focus net and heads, no context net; eqs. 1-4)",
        "gripper": "suction",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": data,
        "settings": {
            "context": config.context,
            "parameters": parameters,
            "epochs": config.epochs,
            "epochs_run": state["epoch"],
            "steps": state["step"],
            "batch_size": config.batch_size,
            "lr": config.lr,
            "loss_weights": list(config.weights),
            "validation_fraction": config.validation_fraction,
            "seed": config.seed,
            "device": str(device),
        },
        "metrics": {
            "best_epoch": best["epoch"],
            **{key: card_number(best[key], 4) for key in HISTORY_FIELDS[1:6]},
        },
        "training_time_s": round(state["seconds"], 1),
        "run_dir": str(config.run_dir),
        "command": shlex.join(config.command),
        "git_commit": git_commit(),
    }
    path.write_text(yaml.safe_dump(card, sort_keys=False, allow_unicode=True), encoding="utf-8")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a grasp_cell.learn.suction_data folder")
    parser.add_argument("--single", action="store_true", help="the single-resolution ablation (no context net)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", type=Path, default=None, help="where weights and card go (default: models/)")
    parser.add_argument("--runs", type=Path, default=Path("runs/train_suction"))
    parser.add_argument("--run", default="", help="run name (default <dataset>-suction_<dual|single>)")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-steps", type=int, default=0)
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = vars(parser.parse_args(argv))
    config = SuctionTrainConfig(
        context=not args.pop("single"),
        command=["python", "-m", "grasp_cell.learn.train_suction", *(sys.argv[1:] if argv is None else argv)],
        **args,
    )
    train(config)


if __name__ == "__main__":
    main()
