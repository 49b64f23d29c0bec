"""Train seed 004's mix-in CNN on the hand grasp data (``grasp_cell.learn.hand_data``).

    python -m grasp_cell.learn.train_hand_quality --data data/hand --rotation 6d --epochs 20
    python -m grasp_cell.learn.train_hand_quality --data data/hand --rotation 6d --model-free

Labels: robust 1, failed 0 (loose grasps are left out, seed IV-A); ``--model-free`` adds the colliding
poses as negatives (the seed's last paragraph), so an optimiser can run without the object's model. The
classes are balanced by leaving out examples of the larger one. Splits (seed IV-A): unseen objects
(index ending in 9) are never trained on; of the seen objects' images, the last ``TEST_IMAGES`` of each
are kept for the seen test. Every draw pairs a grasp with one of its object's training images, the pose
carried into that image's frame (the seed's orientation augmentation).

Writes ``<out>/hand_quality_<rotation>[_free].pt`` and a model card ``.yaml`` beside it, and a run folder
with ``history.csv`` (loss and balanced accuracy per epoch on both test sets).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from grasp_cell.core.transform import quat_xyzw_to_matrix
from grasp_cell.eval.attempt_log import git_commit
from grasp_cell.learn.hand_data import IMAGE_CELL, LABELS, is_unseen
from grasp_cell.learn.shards import list_shards
from grasp_cell.learn.training import save_atomic, write_history_csv
from grasp_cell.models.hand_quality_net import FRAMES, HandQualityNet

TEST_IMAGES = 2  # of each seen object's images (seed: 100 of 1 000)
ROBUST, FAILED, COLLIDING = (LABELS.index(name) for name in ("robust", "failed", "colliding"))


def _matrices(rows: np.ndarray) -> np.ndarray:
    """(N, 7) position + quaternion rows -> (N, 4, 4) homogeneous matrices."""
    out = np.tile(np.eye(4), (len(rows), 1, 1))
    out[:, :3, :3] = [quat_xyzw_to_matrix(q) for q in rows[:, 3:]]
    out[:, :3, 3] = rows[:, :3]
    return out


@dataclass
class HandGrasps:
    """Every object's images and every grasp of a hand dataset, in memory."""

    images: np.ndarray  # (objects, K, P, P) float32 heights [m]
    T_img_obj: np.ndarray  # (objects, K, 4, 4)
    objects: np.ndarray  # (objects,) index in the object set
    T_obj_tcp: np.ndarray  # (N, 4, 4)
    slot: np.ndarray  # (N,) row of ``images`` the grasp's object is
    image: np.ndarray  # (N,) the image it was paired with
    label: np.ndarray  # (N,) LABELS codes

    @classmethod
    def load(cls, folders: "Path | list[Path]") -> "HandGrasps":
        """One data set, or several (each object's shard of each set is one slot)."""
        folders = [folders] if isinstance(folders, (str, Path)) else list(folders)
        shards = [np.load(path) for folder in folders for path in list_shards(folder, ("images", "label"))]
        if not shards:
            raise ValueError(f"{', '.join(map(str, folders))}: no hand grasp shards; make them with "
                             "grasp_cell.learn.hand_data")
        counts = [len(s["label"]) for s in shards]
        return cls(
            images=np.stack([s["images"].astype(np.float32) for s in shards]),
            T_img_obj=np.stack([_matrices(s["T_img_obj"]) for s in shards]),
            objects=np.array([int(s["object"]) for s in shards]),
            T_obj_tcp=np.concatenate([_matrices(s["T_obj_tcp"]) for s in shards]),
            slot=np.repeat(np.arange(len(shards)), counts),
            image=np.concatenate([s["image"].astype(np.int64) for s in shards]),
            label=np.concatenate([s["label"].astype(np.int64) for s in shards]),
        )

    def unseen(self) -> np.ndarray:
        """(N,) whether each grasp's object is unseen."""
        return np.array([is_unseen(int(i)) for i in self.objects])[self.slot]

    def batch(self, rows: np.ndarray, images: np.ndarray):
        """Heights (B, 1, P, P), tcp positions (B, 3) and rotations (B, 3, 3) in the image frame, and labels of
        grasps ``rows`` seen in ``images`` of their objects."""
        slots = self.slot[rows]
        T = self.T_img_obj[slots, images] @ self.T_obj_tcp[rows]
        heights = torch.from_numpy(self.images[slots, images][:, None])
        positions, rotations = torch.from_numpy(T[:, :3, 3]).float(), torch.from_numpy(T[:, :3, :3]).float()
        return heights, positions, rotations, torch.from_numpy((self.label[rows] == ROBUST).astype(np.float32))


def balanced(rows: np.ndarray, positive: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``rows`` with the larger class cut to the size of the smaller (seed IV-A), shuffled."""
    pos, neg = rows[positive[rows]], rows[~positive[rows]]
    size = min(len(pos), len(neg))
    return rng.permutation(np.concatenate([rng.permutation(pos)[:size], rng.permutation(neg)[:size]]))


@dataclass(frozen=True)
class Splits:
    train: np.ndarray
    seen_test: np.ndarray  # seen objects' grasps, paired with their held-out images
    unseen_test: np.ndarray

    @classmethod
    def of(cls, data: HandGrasps, model_free: bool, rng: np.random.Generator) -> "Splits":
        negatives = (FAILED, COLLIDING) if model_free else (FAILED,)
        used = np.flatnonzero(np.isin(data.label, (ROBUST, *negatives)))
        positive = data.label == ROBUST
        unseen = data.unseen()
        seen_rows = used[~unseen[used]]
        return cls(balanced(seen_rows, positive, rng), balanced(seen_rows, positive, rng),
                   balanced(used[unseen[used]], positive, rng))


def test_images(data: HandGrasps, rows: np.ndarray, held_out: bool) -> np.ndarray:
    """Fixed images for a test set: the held-out ones (cycled) or each grasp's own paired image."""
    count = data.images.shape[1]
    if held_out:
        return count - TEST_IMAGES + rows % TEST_IMAGES
    return data.image[rows]


def accuracy(net: HandQualityNet, data: HandGrasps, rows: np.ndarray, images: np.ndarray, batch: int = 512):
    """(mean loss, accuracy) of ``net`` on grasps ``rows`` in ``images``."""
    net.eval()
    losses, correct = [], 0
    with torch.no_grad():
        for start in range(0, len(rows), batch):
            *inputs, labels = data.batch(rows[start:start + batch], images[start:start + batch])
            logits = net(*inputs)
            losses.append(float(torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="sum")))
            correct += int(((logits > 0).float() == labels).sum())
    return sum(losses) / max(len(rows), 1), correct / max(len(rows), 1)


@dataclass(frozen=True)
class TrainSettings:
    rotation: str = "6d"
    frame: str = "image"  # how image and pose are presented (grasp_cell.models.hand_quality_net.FRAMES)
    model_free: bool = False
    epochs: int = 20
    batch: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    channels: int = 32
    seed: int = 0


def split(data: HandGrasps, settings: TrainSettings) -> tuple[Splits, np.random.Generator]:
    """The run's splits, and its generator after drawing them (training draws on from there)."""
    rng = np.random.default_rng(settings.seed)
    return Splits.of(data, settings.model_free, rng), rng


def train(data: HandGrasps, settings: TrainSettings, threads: int = 2, log=print, cell: float = IMAGE_CELL,
          drawn: tuple[Splits, np.random.Generator] | None = None) -> tuple[HandQualityNet, list[dict]]:
    """Train a net; ``drawn``: ``split(data, settings)`` when the caller needs the splits too."""
    torch.manual_seed(settings.seed)
    torch.set_num_threads(threads)
    splits, rng = drawn or split(data, settings)
    net = HandQualityNet(settings.rotation, data.images.shape[-1], settings.channels, frame=settings.frame,
                         cell=cell)
    optimiser = torch.optim.Adam(net.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    train_images = data.images.shape[1] - TEST_IMAGES
    seen_images = test_images(data, splits.seen_test, held_out=True)
    unseen_images = test_images(data, splits.unseen_test, held_out=False)
    history = []
    for epoch in range(1, settings.epochs + 1):
        start, net_losses = time.monotonic(), []
        net.train()
        order = rng.permutation(splits.train)
        for first in range(0, len(order), settings.batch):
            rows = order[first:first + settings.batch]
            *inputs, labels = data.batch(rows, rng.integers(0, train_images, len(rows)))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(*inputs), labels)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            net_losses.append(loss.item())
        seen_loss, seen_accuracy = accuracy(net, data, splits.seen_test, seen_images)
        unseen_loss, unseen_accuracy = accuracy(net, data, splits.unseen_test, unseen_images)
        history.append({"epoch": epoch, "train_loss": round(float(np.mean(net_losses)), 4),
                        "seen_loss": round(seen_loss, 4), "seen_accuracy": round(seen_accuracy, 4),
                        "unseen_loss": round(unseen_loss, 4), "unseen_accuracy": round(unseen_accuracy, 4),
                        "seconds": round(time.monotonic() - start, 1)})
        log(", ".join(f"{key} {value}" for key, value in history[-1].items()))
    return net, history


def weights_name(settings: TrainSettings) -> str:
    frame = "" if settings.frame == "image" else f"_{settings.frame}"
    return f"hand_quality_{settings.rotation}{frame}" + ("_free" if settings.model_free else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, nargs="+", default=[Path("data/hand")], help="one or more data sets")
    parser.add_argument("--rotation", default="6d", choices=("6d", "rpy"))
    parser.add_argument("--frame", default="image", choices=FRAMES, help="image and pose as the seed's, or "
                        "the image resampled about the grasp")
    parser.add_argument("--model-free", action="store_true", help="colliding poses as negatives too")
    parser.add_argument("--epochs", type=int, default=TrainSettings.epochs)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("models"))
    parser.add_argument("--name", default="", help="weights file name (default hand_quality_<rotation>[_<frame>]"
                        "[_free]); the cell serves models/hand_quality.pt")
    parser.add_argument("--runs", type=Path, default=Path("runs/hand_quality"))
    args = parser.parse_args(argv)

    settings = TrainSettings(rotation=args.rotation, frame=args.frame, model_free=args.model_free,
                             epochs=args.epochs, seed=args.seed)
    data = HandGrasps.load(args.data)
    name = args.name or weights_name(settings)
    run_dir = args.runs / name
    run_dir.mkdir(parents=True, exist_ok=True)
    counts = {label: int((data.label == code).sum()) for code, label in enumerate(LABELS)}
    print(f"{' '.join(map(str, args.data))}: {len(data.objects)} object shards, grasps {counts}; training {name}")
    start = time.monotonic()
    drawn = split(data, settings)
    splits = drawn[0]
    net, history = train(data, settings, args.threads, drawn=drawn)
    write_history_csv(run_dir, tuple(history[0]), history)
    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / f"{name}.pt"
    save_atomic({"state_dict": net.state_dict(), "settings": asdict(settings), "pixels": data.images.shape[-1],
                 "cell": IMAGE_CELL}, weights)
    card = {
        "model": name,
        "trained_by": f"python -m grasp_cell.learn.train_hand_quality --data {' '.join(map(str, args.data))} "
        f"--rotation {args.rotation} --frame {args.frame}" + (" --model-free" if args.model_free else "")
        + f" --epochs {args.epochs}" + (f" --name {args.name}" if args.name else ""),
        "data": {"folders": [str(folder) for folder in args.data], "object_shards": int(len(data.objects)),
                 "grasps": counts,
                 "train_examples": int(len(splits.train)), "seen_test": int(len(splits.seen_test)),
                 "unseen_test": int(len(splits.unseen_test))},
        "settings": asdict(settings),
        "parameters": int(sum(p.numel() for p in net.parameters())),
        "training_minutes": round((time.monotonic() - start) / 60, 1),
        "final": history[-1],
        "git_commit": git_commit(),
    }
    weights.with_suffix(".yaml").write_text(yaml.safe_dump(card, sort_keys=False), encoding="utf-8")
    print(f"wrote {weights}: seen accuracy {history[-1]['seen_accuracy']:.3f}, "
          f"unseen {history[-1]['unseen_accuracy']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
