"""Train seed 004's mix-in CNN on the hand grasp data (``grasp_cell.learn.hand_data``).

    python -m grasp_cell.learn.train_hand_quality --data data/hand --rotation 6d --epochs 20
    python -m grasp_cell.learn.train_hand_quality --data data/hand --rotation 6d --model-free

Labels: robust 1, failed 0 (loose grasps are left out, seed IV-A); ``--model-free`` adds the colliding
poses as negatives (the seed's last paragraph), so an optimiser can run without the object's model. The
classes are balanced by leaving out examples of the larger one. Splits (seed IV-A): unseen objects (index
ending in 9) are never trained on; of the seen objects' images, the last ``TEST_IMAGES`` of each are kept
for the seen test. Every draw pairs a grasp with one of its object's training images, the pose carried into
that image's frame (the seed's orientation augmentation).

``--target clearance`` trains the same net to regress instead the open hand's distance to the object at
every pose that has one (``hand_data --clearance-per-object``): a collision barrier an optimiser can use
without the object's model.

Writes ``<out>/hand_quality_<rotation>[_free].pt`` (or ``hand_clearance_<rotation>.pt``) and a model card
``.yaml`` beside it, and a run folder with ``history.csv`` (loss and accuracy per epoch on both test sets).
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
from grasp_cell.models.hand_quality_net import (
    CLEARANCE_RANGE,
    CLEARANCE_SCALE,
    FRAMES,
    TARGETS,
    HandQualityNet,
)

SCHEDULES = ("constant", "cosine")
CLEARANCE_TEST = 20000  # poses in each clearance test set, at most
CLEARANCE_HUBER = 0.5  # in CLEARANCE_SCALE units: 5 mm
TEST_IMAGES = 2  # of each seen object's images (seed: 100 of 1 000)
SYMMETRIES = 8  # views of the same grasp: 4 quarter turns, each mirrored or not (symmetric_views)
HAND_CHANNELS = 48  # the hand frame's first convolution (then 96, 96), the width measured in docs/hand_grasps.md
ROBUST, FAILED, COLLIDING = (LABELS.index(name) for name in ("robust", "failed", "colliding"))


def symmetric_views(heights: torch.Tensor, positions: torch.Tensor, rotations: torch.Tensor,
                    quarter_turns: np.ndarray, mirrored: np.ndarray):
    """The same grasps seen mirrored (where ``mirrored``: x to -x in the image frame) then turned by
    ``quarter_turns`` x 90 degrees about the image's z: heights (B, 1, P, P), positions (B, 3), rotations
    (B, 3, 3). Both map the square image grid (centred between pixels) onto itself exactly, and a mirrored
    world holds the same grasp of the mirrored object, as the hand is its own mirror image across its y-z
    plane (finger a on it, b and c either side): the mirrored hand frame is turned back into a rotation by
    mirroring its x axis too."""
    heights, positions, rotations = heights.clone(), positions.clone(), rotations.clone()
    mirror = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))
    quarter = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # (x, y) -> (-y, x)
    for flip in (False, True):
        for turns in range(4):
            rows = torch.from_numpy(np.nonzero((mirrored == flip) & (quarter_turns % 4 == turns))[0])
            if not len(rows):
                continue
            image = heights[rows].flip(-1) if flip else heights[rows]  # row i is y_i, column j is x_j
            for _ in range(turns):
                image = image.transpose(-2, -1).flip(-1)  # new (i, j) = old (P - 1 - j, i)
            turn = torch.linalg.matrix_power(quarter, turns)
            G = turn @ mirror if flip else turn
            heights[rows] = image
            positions[rows] = positions[rows] @ G.T.to(positions.dtype)
            rotations[rows] = (G @ rotations[rows].to(G.dtype) @ (mirror if flip else torch.eye(3))).to(rotations.dtype)
    return heights, positions, rotations


def _matrices(rows: np.ndarray) -> np.ndarray:
    """(N, 7) position + quaternion rows -> (N, 4, 4) homogeneous matrices."""
    out = np.tile(np.eye(4), (len(rows), 1, 1))
    out[:, :3, :3] = [quat_xyzw_to_matrix(q) for q in rows[:, 3:]]
    out[:, :3, 3] = rows[:, :3]
    return out


@dataclass
class HandGrasps:
    """Every object's images and every grasp of a hand dataset, in memory."""

    images: np.ndarray  # (objects, K, P, P) float32 heights [m] seen from above
    T_img_obj: np.ndarray  # (objects, K, 4, 4)
    objects: np.ndarray  # (objects,) index in the object set
    T_obj_tcp: np.ndarray  # (N, 4, 4)
    slot: np.ndarray  # (N,) row of ``images`` the grasp's object is
    image: np.ndarray  # (N,) the image it was paired with
    label: np.ndarray  # (N,) LABELS codes
    distance: np.ndarray  # (N,) the open hand's distance to the object [m]; NaN where the data set lacks it

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
            distance=np.concatenate([s["distance"].astype(np.float32) if "distance" in s
                                     else np.full(len(s["label"]), np.nan, np.float32) for s in shards]),
        )

    def unseen(self) -> np.ndarray:
        """(N,) whether each grasp's object is unseen."""
        return np.array([is_unseen(int(i)) for i in self.objects])[self.slot]

    def batch(self, rows: np.ndarray, images: np.ndarray, target: str = "quality"):
        """Heights (B, 1, P, P), tcp positions (B, 3) and rotations (B, 3, 3) in the image frame, and targets of
        grasps ``rows`` seen in ``images`` of their objects: 1 for robust, else 0 (``quality``), or the
        distance clipped to CLEARANCE_RANGE in units of CLEARANCE_SCALE (``clearance``)."""
        slots = self.slot[rows]
        T = self.T_img_obj[slots, images] @ self.T_obj_tcp[rows]
        heights = torch.from_numpy(self.images[slots, images][:, None])
        positions, rotations = torch.from_numpy(T[:, :3, 3]).float(), torch.from_numpy(T[:, :3, :3]).float()
        if target == "clearance":
            targets = np.clip(self.distance[rows], *CLEARANCE_RANGE) / CLEARANCE_SCALE
        else:
            targets = (self.label[rows] == ROBUST).astype(np.float32)
        return heights, positions, rotations, torch.from_numpy(targets.astype(np.float32))


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
    def of(cls, data: HandGrasps, model_free: bool, rng: np.random.Generator, target: str = "quality") -> "Splits":
        if target == "clearance":  # every pose with a distance; the seen test draws its held-out images
            used = np.flatnonzero(np.isfinite(data.distance))
            unseen = data.unseen()[used]
            seen = rng.permutation(used[~unseen])
            return cls(seen, seen[:CLEARANCE_TEST], rng.permutation(used[unseen])[:CLEARANCE_TEST])
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


def loss_of(outputs: torch.Tensor, targets: torch.Tensor, target: str, reduction: str = "mean") -> torch.Tensor:
    if target == "clearance":  # Huber: a few deep overlaps must not dominate the error near the surface
        return torch.nn.functional.smooth_l1_loss(outputs, targets, beta=CLEARANCE_HUBER, reduction=reduction)
    return torch.nn.functional.binary_cross_entropy_with_logits(outputs, targets, reduction=reduction)


def evaluate(net: HandQualityNet, data: HandGrasps, rows: np.ndarray, images: np.ndarray, target: str = "quality",
             batch: int = 512, views: int = 1) -> dict[str, float]:
    """``net``'s mean loss on grasps ``rows`` in ``images``, and its ``accuracy``: of robust against not
    (``quality``), or of overlapping against clear (``clearance``, which also gives ``error_mm``, the mean
    absolute error of the distance within CLEARANCE_RANGE). ``views``: the output is the mean over the first
    that many of the SYMMETRIES views of each example (1: as given)."""
    net.eval()
    loss, correct, error = 0.0, 0, 0.0
    with torch.no_grad():
        for start in range(0, len(rows), batch):
            *inputs, targets = data.batch(rows[start:start + batch], images[start:start + batch], target)
            count = len(targets)
            outputs = net(*inputs)  # view 0 is the example as given
            for view in range(1, views):
                outputs = outputs + net(*symmetric_views(*inputs, np.full(count, view % 4), np.full(count, view >= 4)))
            outputs = outputs / views
            loss += float(loss_of(outputs, targets, target, reduction="sum"))
            if target == "clearance":
                correct += int(((outputs < 0) == (targets < 0)).sum())
                error += float((outputs - targets).abs().sum()) * CLEARANCE_SCALE * 1000
            else:
                correct += int(((outputs > 0).float() == targets).sum())
    count = max(len(rows), 1)
    metrics = {"loss": loss / count, "accuracy": correct / count}
    return {**metrics, "error_mm": error / count} if target == "clearance" else metrics


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
    target: str = "quality"  # what the net learns (grasp_cell.models.hand_quality_net.TARGETS)
    schedule: str = "constant"  # the learning rate over the run: constant, or cosine down to 0
    symmetries: bool = False  # each training example seen in a random one of the 8 symmetric views
    batch_norm: bool = False  # normalise the convolution stage's pooled maps (HandQualityNet)
    seed: int = 0


def split(data: HandGrasps, settings: TrainSettings) -> tuple[Splits, np.random.Generator]:
    """The run's splits, and its generator after drawing them (training draws on from there)."""
    rng = np.random.default_rng(settings.seed)
    return Splits.of(data, settings.model_free, rng, settings.target), rng


def train(data: HandGrasps, settings: TrainSettings, threads: int = 2, log=print, cell: float = IMAGE_CELL,
          drawn: tuple[Splits, np.random.Generator] | None = None) -> tuple[HandQualityNet, list[dict]]:
    """Train a net; ``drawn``: ``split(data, settings)`` when the caller needs the splits too."""
    torch.manual_seed(settings.seed)
    torch.set_num_threads(threads)
    splits, rng = drawn or split(data, settings)
    net = HandQualityNet.from_settings(asdict(settings), data.images.shape[-1], cell)
    optimiser = torch.optim.Adam(net.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    steps = settings.epochs * -(-len(splits.train) // settings.batch)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps) if settings.schedule == "cosine" else None
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
            *inputs, targets = data.batch(rows, rng.integers(0, train_images, len(rows)), settings.target)
            if settings.symmetries:
                inputs = symmetric_views(*inputs, rng.integers(0, 4, len(rows)), rng.random(len(rows)) < 0.5)
            loss = loss_of(net(*inputs), targets, settings.target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if scheduler is not None:
                scheduler.step()
            net_losses.append(loss.item())
        row = {"epoch": epoch, "train_loss": round(float(np.mean(net_losses)), 4)}
        for name, rows, images in (("seen", splits.seen_test, seen_images), ("unseen", splits.unseen_test,
                                                                            unseen_images)):
            row |= {f"{name}_{key}": round(value, 4) for key, value in
                    evaluate(net, data, rows, images, settings.target).items()}
        history.append({**row, "seconds": round(time.monotonic() - start, 1)})
        log(", ".join(f"{key} {value}" for key, value in history[-1].items()))
    return net, history


def weights_name(settings: TrainSettings) -> str:
    variant = ("" if settings.frame == "image" else f"_{settings.frame}") + ("_bn" if settings.batch_norm else "")
    if settings.target == "clearance":
        return f"hand_clearance_{settings.rotation}{variant}"
    return f"hand_quality_{settings.rotation}{variant}" + ("_free" if settings.model_free else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, nargs="+", default=[Path("data/hand")], help="one or more data sets")
    parser.add_argument("--rotation", default="6d", choices=("6d", "rpy"))
    parser.add_argument("--frame", default="image", choices=FRAMES, help="image and pose as the seed's, the "
                        "image resampled about the grasp, or sampled at points fixed in the hand (hand_quality_net)")
    parser.add_argument("--channels", type=int, help="the first convolution's channels (default: 48 in the hand "
                        "frame, else the seed's stage at 32)")
    parser.add_argument("--model-free", action="store_true", help="colliding poses as negatives too")
    parser.add_argument("--target", default="quality", choices=TARGETS, help="quality: the success logit; "
                        "clearance: the open hand's distance to the object")
    parser.add_argument("--epochs", type=int, default=TrainSettings.epochs)
    parser.add_argument("--schedule", default="constant", choices=SCHEDULES, help="learning rate: constant, "
                        "or cosine decay to 0 over the run")
    parser.add_argument("--symmetries", action="store_true", help="train on each example in a random one of its 8 "
                        "symmetric views (quarter turns about the vertical, mirrored or not)")
    parser.add_argument("--batch-norm", action="store_true", help="normalise the convolution stage's pooled maps "
                        "(trains the grasp frame several times faster; stalls the image frame)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("models"))
    parser.add_argument("--name", default="", help="weights file name (default hand_quality_<rotation>[_<frame>]"
                        "[_free]); the cell serves models/hand_quality.pt")
    parser.add_argument("--runs", type=Path, default=Path("runs/hand_quality"))
    args = parser.parse_args(argv)

    channels = args.channels or (HAND_CHANNELS if args.frame == "hand" else TrainSettings.channels)
    settings = TrainSettings(rotation=args.rotation, frame=args.frame, model_free=args.model_free, target=args.target,
                             epochs=args.epochs, schedule=args.schedule, symmetries=args.symmetries,
                             batch_norm=args.batch_norm, seed=args.seed, channels=channels)
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
        + (f" --target {args.target}" if args.target != "quality" else "")
        + f" --epochs {args.epochs}" + (f" --schedule {args.schedule}" if args.schedule != "constant" else "")
        + (" --symmetries" if args.symmetries else "") + (" --batch-norm" if args.batch_norm else "")
        + (f" --channels {args.channels}" if args.channels else "")
        + (f" --name {args.name}" if args.name else ""),
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
    final = history[-1]
    error = f" (mean error {final['seen_error_mm']:.1f} mm, {final['unseen_error_mm']:.1f} mm)" \
        if args.target == "clearance" else ""
    print(f"wrote {weights}: seen accuracy {final['seen_accuracy']:.3f}, unseen {final['unseen_accuracy']:.3f}{error}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
