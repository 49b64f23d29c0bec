"""Train seed 003's pixel-level grasp net on a PDG dataset.

    python -m grasp_cell.learn.train_pixel --data data/pdg/<name> --backbone unet --modality depth \\
        --epochs 100 --batch-size 8 --lr 1e-3 --out models/

Adam, learning rate x0.1 at 70 % of the epochs (seed: 100 epochs, decay at 70). Each epoch writes
``runs/train_pixel/<run>/last.pt`` (``--resume`` continues from it), ``history.csv`` and ``learning_curve.png``.
The weights of the best validation epoch go to ``<out>/pixel_<backbone>_<modality>.pt`` with a model card
``<out>/pixel_<backbone>_<modality>.yaml``.
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

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader
from tqdm import tqdm

from grasp_cell.eval.attempt_log import git_commit
from grasp_cell.learn.pixel_data import Augmentation, PdgMeta, PdgViews, PixelGraspDataset, seed_worker, split_by_scene
from grasp_cell.learn.training import card_number, pick_device, pyplot, save_atomic, write_history_csv
from grasp_cell.models.base import models_dir
from grasp_cell.models.pixel_grasp import MODALITY_CHANNELS, weights_path
from grasp_cell.models.pixel_net import BACKBONES, SIZE_MULTIPLE, PixelGraspNet, grasp_map_loss, parameter_count

LR_DECAY_AT = 0.7  # share of the epochs after which the learning rate drops
LR_DECAY = 0.1
HISTORY_FIELDS = ("epoch", "train_loss", "val_loss", "val_grasp_accuracy", "lr", "seconds")


@dataclass
class TrainConfig:
    data: Path
    backbone: str = "unet"
    modality: str = "depth"
    epochs: int = 100
    batch_size: int = 8
    lr: float = 1e-3
    out: Path | None = None  # default: the package's models/ folder (or $GRASP_CELL_MODELS_DIR)
    runs: Path = Path("runs/train_pixel")
    run: str = ""  # default: <dataset>-<backbone>-<modality>
    resume: bool = False
    init: Path | None = None  # start from these weights (a models/*.pt file) instead of random ones
    device: str = "auto"
    max_steps: int = 0  # stop after this many optimiser steps in all (0: no cap)
    validation_fraction: float = 0.1
    crop: int = 160
    workers: int = 0
    threads: int = 1  # 2 is faster on an idle machine, 2x slower when other processes share its 2 cores
    seed: int = 0
    command: list[str] = field(default_factory=list)

    @property
    def run_dir(self) -> Path:
        return self.runs / (self.run or f"{self.data.name}-{self.backbone}-{self.modality}")


def grasp_accuracy(output, angle_target: torch.Tensor) -> torch.Tensor:
    """Per image: whether the top Qp pixel with its best angle class is a labelled grasp or one of its
    8-neighbourhood copies (a cheap stand-in for trying the grasp)."""
    images = torch.arange(angle_target.shape[0], device=angle_target.device)
    top = output.quality.flatten(1).argmax(dim=1)  # sigmoid is monotonic: logits rank the same
    best = output.angle.flatten(2)[images, :, top].argmax(dim=1)
    return (angle_target.flatten(2)[images, best, top] > 0).float()


def evaluate(net, loader, device) -> tuple[float, float]:
    """Mean loss and grasp accuracy over a loader (NaN for an empty one)."""
    net.eval()
    losses, hits = [], []
    with torch.inference_mode():
        for batch in loader:
            batch = {key: value.to(device) for key, value in batch.items()}
            output = net(batch["image"])
            loss = grasp_map_loss(output, batch["quality"], batch["angle"], batch["width"])
            losses.append(loss.item() * batch["image"].shape[0])
            hits.append(grasp_accuracy(output, batch["angle"]).cpu())
    if not hits:
        return math.nan, math.nan
    count = sum(len(h) for h in hits)
    return float(sum(losses) / count), float(torch.cat(hits).mean())


def write_history(run_dir: Path, history: list[dict]) -> None:
    write_history_csv(run_dir, HISTORY_FIELDS, history)
    plt = pyplot()

    epochs = [row["epoch"] for row in history]
    figure, loss_axis = plt.subplots(figsize=(7, 4))
    loss_axis.plot(epochs, [row["train_loss"] for row in history], label="train loss")
    loss_axis.plot(epochs, [row["val_loss"] for row in history], label="validation loss")
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("loss (eq. 16)")
    accuracy_axis = loss_axis.twinx()
    accuracy_axis.plot(epochs, [row["val_grasp_accuracy"] for row in history], "g--", label="val grasp accuracy")
    accuracy_axis.set_ylim(0.0, 1.0)
    accuracy_axis.set_ylabel("validation grasp accuracy")
    lines = loss_axis.get_legend_handles_labels()
    more = accuracy_axis.get_legend_handles_labels()
    loss_axis.legend(lines[0] + more[0], lines[1] + more[1], loc="upper right")
    figure.tight_layout()
    figure.savefig(run_dir / "learning_curve.png", dpi=100)
    plt.close(figure)


def train(config: TrainConfig) -> Path:
    """Train (or resume), export the best weights and their model card; returns the weights file."""
    if config.backbone not in BACKBONES:
        raise ValueError(f"unknown backbone '{config.backbone}'; expected one of {', '.join(BACKBONES)}")
    if config.modality not in MODALITY_CHANNELS:
        raise ValueError(f"unknown modality '{config.modality}'; expected one of {', '.join(MODALITY_CHANNELS)}")
    if config.crop % SIZE_MULTIPLE:
        raise ValueError(f"--crop must be a multiple of {SIZE_MULTIPLE}, got {config.crop}")
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    run_dir = config.run_dir
    checkpoint_path = run_dir / "last.pt"
    if checkpoint_path.exists() and not config.resume:
        raise FileExistsError(f"{checkpoint_path} exists: pass --resume to continue it, or --run to start another")
    run_dir.mkdir(parents=True, exist_ok=True)

    meta = PdgMeta.from_folder(config.data)
    views = PdgViews.load(config.data, with_color=config.modality != "depth")
    train_index, val_index = split_by_scene(views.scene, config.validation_fraction)
    augmentation = Augmentation(crop=config.crop)
    train_set = PixelGraspDataset(views, train_index, meta, config.modality, augmentation, True, config.seed)
    val_set = PixelGraspDataset(views, val_index, meta, config.modality, augmentation, False)
    loader_options = dict(batch_size=config.batch_size, num_workers=config.workers)
    if config.workers:
        loader_options["worker_init_fn"] = seed_worker
    generator = torch.Generator().manual_seed(config.seed)
    drop_last = len(train_set) > config.batch_size  # a last batch of 1 upsets batch norm
    train_loader = DataLoader(train_set, shuffle=True, drop_last=drop_last, generator=generator, **loader_options)
    val_loader = DataLoader(val_set, shuffle=False, **loader_options)

    net = PixelGraspNet(config.backbone, MODALITY_CHANNELS[config.modality], meta.angle_classes).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    decay_epoch = max(1, round(LR_DECAY_AT * config.epochs))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=decay_epoch, gamma=LR_DECAY)
    state = {"epoch": 0, "step": 0, "history": [], "best": None, "seconds": 0.0}
    if config.init is not None and not config.resume:
        initial = torch.load(config.init, map_location=device, weights_only=True)
        if (initial["backbone"], initial["modality"]) != (config.backbone, config.modality):
            raise ValueError(
                f"{config.init} holds a {initial['backbone']}/{initial['modality']} net, not "
                f"{config.backbone}/{config.modality}"
            )
        net.load_state_dict(initial["state_dict"])
        print(f"starting from the weights in {config.init}")
    if config.resume and checkpoint_path.exists():
        saved = torch.load(checkpoint_path, map_location=device, weights_only=False)
        net.load_state_dict(saved["state_dict"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        train_set.rng = saved["rng"]
        generator.set_state(saved["generator"])
        state = saved["state"]
        print(f"resuming {run_dir} after epoch {state['epoch']}")

    out = config.out or models_dir()
    weights_file = weights_path(config.backbone, config.modality, out)
    split_info = {
        "folder": str(config.data),
        "shards": views.shard_count,
        "views_train": int(train_index.size),
        "views_val": int(val_index.size),
        "scenes_train": int(np.unique(views.scene[train_index]).size),
        "scenes_val": int(np.unique(views.scene[val_index]).size),
        "meta": meta.raw,
    }
    print(
        f"{config.backbone}/{config.modality}: {parameter_count(net):,} parameters on {device}; "
        f"{split_info['views_train']} train / {split_info['views_val']} validation views"
    )

    while state["epoch"] < config.epochs and not (config.max_steps and state["step"] >= config.max_steps):
        tic = time.perf_counter()
        net.train()
        total, seen = 0.0, 0
        progress = tqdm(train_loader, desc=f"epoch {state['epoch'] + 1}/{config.epochs}", leave=False)
        for batch in progress:
            batch = {key: value.to(device) for key, value in batch.items()}
            loss = grasp_map_loss(net(batch["image"]), batch["quality"], batch["angle"], batch["width"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * batch["image"].shape[0]
            seen += batch["image"].shape[0]
            state["step"] += 1
            progress.set_postfix(loss=f"{loss.item():.4f}")
            if config.max_steps and state["step"] >= config.max_steps:
                break
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        val_loss, val_accuracy = evaluate(net, val_loader, device)
        state["epoch"] += 1
        state["seconds"] += time.perf_counter() - tic
        row = {
            "epoch": state["epoch"],
            "train_loss": total / max(seen, 1),
            "val_loss": val_loss,
            "val_grasp_accuracy": val_accuracy,
            "lr": lr,
            "seconds": round(time.perf_counter() - tic, 2),
        }
        state["history"].append(row)
        print(
            f"epoch {row['epoch']}: train {row['train_loss']:.4f}, validation {val_loss:.4f}, "
            f"grasp accuracy {val_accuracy:.3f}, {row['seconds']:.0f} s"
        )

        # best by validation loss (train loss when there is no validation scene)
        score = val_loss if not math.isnan(val_loss) else row["train_loss"]
        if state["best"] is None or score < state["best"]["score"]:
            state["best"] = {"score": score, **row}
            export = {
                "state_dict": {key: value.detach().cpu() for key, value in net.state_dict().items()},
                "backbone": config.backbone,
                "modality": config.modality,
                "angle_classes": meta.angle_classes,
                "jaw": meta.raw["jaw"],
                "downsample": meta.downsample,
                "training": {
                    "epoch": row["epoch"],
                    "val_loss": val_loss,
                    "val_grasp_accuracy": val_accuracy,
                    "data": str(config.data),
                    "run": str(run_dir),
                },
            }
            save_atomic(export, run_dir / "best.pt")
        save_atomic(
            {
                "state_dict": net.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": train_set.rng,
                "generator": generator.get_state(),
                "state": state,
            },
            checkpoint_path,
        )
        write_history(run_dir, state["history"])

    out.mkdir(parents=True, exist_ok=True)
    best = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=True)
    save_atomic(best, weights_file)
    write_model_card(weights_file.with_suffix(".yaml"), config, split_info, state, parameter_count(net), device)
    print(f"wrote {weights_file} ({weights_file.stat().st_size / 1e6:.1f} MB) from epoch {state['best']['epoch']}")
    return weights_file


def write_model_card(path: Path, config: TrainConfig, data: dict, state: dict, parameters: int, device) -> None:
    best, last = state["best"], state["history"][-1]

    card = {
        "model": path.stem,
        "method": "seed 003 pixel-level grasp net (Qp, Qθ, W maps; binary focal loss eq. 15-16)",
        "gripper": "parallel",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": data,
        "settings": {
            "backbone": config.backbone,
            "modality": config.modality,
            "parameters": parameters,
            "epochs": config.epochs,
            "epochs_run": state["epoch"],
            "steps": state["step"],
            "batch_size": config.batch_size,
            "lr": config.lr,
            "lr_decay": {"factor": LR_DECAY, "at_epoch": max(1, round(LR_DECAY_AT * config.epochs))},
            "crop": config.crop,
            "validation_fraction": config.validation_fraction,
            "seed": config.seed,
            "init": str(config.init) if config.init else None,
            "device": str(device),
        },
        "metrics": {
            "best_epoch": best["epoch"],
            "val_loss": card_number(best["val_loss"]),
            "val_grasp_accuracy": card_number(best["val_grasp_accuracy"]),
            "train_loss": card_number(best["train_loss"]),
            "last_epoch": {
                "train_loss": card_number(last["train_loss"]),
                "val_loss": card_number(last["val_loss"]),
                "val_grasp_accuracy": card_number(last["val_grasp_accuracy"]),
            },
        },
        "training_time_s": round(state["seconds"], 1),
        "run_dir": str(config.run_dir),
        "command": shlex.join(config.command),
        "git_commit": git_commit(),
    }
    path.write_text(yaml.safe_dump(card, sort_keys=False, allow_unicode=True), encoding="utf-8")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="dataset folder with meta.json and shards")
    parser.add_argument("--backbone", choices=BACKBONES, default="unet")
    parser.add_argument("--modality", choices=sorted(MODALITY_CHANNELS), default="depth")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", type=Path, default=None, help="where the best weights and card go (default: models/)")
    parser.add_argument("--runs", type=Path, default=Path("runs/train_pixel"), help="folder of run folders")
    parser.add_argument("--run", default="", help="run name (default <dataset>-<backbone>-<modality>)")
    parser.add_argument("--resume", action="store_true", help="continue the run from its last.pt")
    parser.add_argument("--init", type=Path, default=None, help="start from these weights (fine-tuning, more epochs)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1, ...")
    parser.add_argument("--max-steps", type=int, default=0, help="stop after this many steps in all (0: no cap)")
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--crop", type=int, default=160, help="training crop [px], a multiple of 16")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (2: faster on an idle machine)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    config = TrainConfig(
        command=["python", "-m", "grasp_cell.learn.train_pixel", *(sys.argv[1:] if argv is None else argv)],
        **{key: value for key, value in vars(args).items()},
    )
    train(config)


if __name__ == "__main__":
    main()
