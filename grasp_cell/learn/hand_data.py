"""Seed 004's grasp data for the three-finger hand (section III): one command, resumable, parallel.

    python -m grasp_cell.learn.hand_data --out data/hand --grasps-per-object 60 --workers 2

Per object of the ``hand`` set (``grasp_cell.sim.objects``): qualified poses from random slides of the
open hand, a random subset of them simulated free-floating without gravity and labelled failed, loose or
robust (``grasp_cell.sim.floating_hand``), a few poses where the open hand overlaps the object (seed
004's colliding negatives, for the model-free variant), optionally poses near and inside it kept only for
the open hand's distance to it (for a learned collision barrier), and ``IMAGES_PER_OBJECT`` top-down height images
of the object at random orientations (seed III-B); every pose is paired with one of them at random and
is stored in the object's frame, so it can be carried into that image's frame (``T_img_obj``).

Objects whose index ends in 9 (one in ten) are ``unseen``: kept out of training (seed IV-A: 90 % / 10 %).

Layout: ``meta.json`` and one shard per object, ``shard_00000.npz`` ...: ``images`` (K, P, P) float16
heights [m]; ``T_img_obj`` (K, 7)
position and quaternion x, y, z, w; ``T_obj_tcp`` (M, 7) the same for the grasp poses; ``image`` (M,) int16
the image each pose goes with; ``label`` (M,) int8 (``LABELS``); ``distance`` (M,) float32 the open hand's
distance to the object [m] at each pose (negative: overlapping; ``CLEARANCE_SEARCH`` when further; shards
from before it was stored lack it);
``object`` () int32. Shard i is made from seed (base seed, i) alone: an interrupted run resumes where it
stopped and gives the same data.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from grasp_cell.core.transform import Transform
from grasp_cell.eval.attempt_log import git_commit
from grasp_cell.learn.shards import make_shards, missing_shards, open_dataset, save_shard, shard_path
from grasp_cell.sim.floating_hand import CLEARANCE_SEARCH, FAILURE_RULES, FloatingHand, random_rotation
from grasp_cell.sim.hand import CLOSING_SPEED, HandGeometry
from grasp_cell.sim.objects import SET_SIZES, object_set

OBJECT_SET = "hand"
LABELS = ("failed", "loose", "robust", "colliding", "clearance")  # label codes 0..4; colliding: the open hand
# overlaps the object; clearance: a pose kept only for its distance to the object (not simulated)
IMAGE_PIXELS = 64  # seed 004: 128 x 128 (see docs/hand_grasps.md)
IMAGE_CELL = 0.00375  # [m] 64 px span 0.24 m: the largest object (90 mm radius) fits at any orientation
IMAGES_PER_OBJECT = 20  # seed: 1 000 per object
SLIDES_PER_OBJECT = 40
NEAR_SLIDES_PER_OBJECT = 10  # random slides for the poses just inside the object
CLEARANCE_SLIDES_PER_OBJECT = 20  # random slides for the poses kept for their distance to the object
ABOVE_SLIDES_PER_IMAGE = 2  # slides from above, per image (each image is one way the object can lie)


def is_unseen(index: int) -> bool:
    return index % 10 == 9


def pose_row(T: Transform) -> np.ndarray:
    return np.concatenate([T.translation, T.quat_xyzw]).astype(np.float32)


def pose_of(row) -> Transform:
    return Transform.from_pos_quat(row[:3], row[3:])


@dataclass(frozen=True)
class ShardCounts:
    """What one object's shard gets: how many poses of each kind, and how they are judged."""

    grasps: int = 60  # qualified poses from random slides, simulated
    colliding: int = 20  # random poses overlapping the object
    above: int = 0  # qualified poses from above (bin picking), simulated
    above_colliding: int = 0  # poses from above just inside the object
    near_colliding: int = 0  # poses from random slides just inside the object
    clearance: int = 0  # poses from random slides within CLEARANCE_SEARCH of the object, kept for their distance
    failure_rule: str = "still_moving"  # how a trial judges a failure (grasp_cell.sim.floating_hand.FAILURE_RULES)


def make_object_shard(task: tuple) -> tuple[int, dict[str, int]]:
    """Write object ``index``'s shard; returns (index, label counts)."""
    out, index, seed, counts = task
    hand = worker_hand(counts.failure_rule)
    rng = np.random.default_rng([seed, index])
    hand.set_object(object_set(OBJECT_SET)[index])
    rendered = [hand.top_down_heights(random_rotation(rng), IMAGE_PIXELS, IMAGE_CELL) for _ in range(IMAGES_PER_OBJECT)]
    qualified = hand.sample_qualified(rng, SLIDES_PER_OBJECT) if counts.grasps else []
    chosen = rng.permutation(len(qualified))[:counts.grasps]
    trials = [hand.trial(qualified[i], rng) for i in chosen]
    colliding = hand.sample_colliding(rng, counts.colliding)
    if counts.near_colliding:
        near = hand.sample_qualified(rng, NEAR_SLIDES_PER_OBJECT, colliding=True)
        colliding += [near[i] for i in rng.permutation(len(near))[:counts.near_colliding]]
    # poses paired with a random image; poses from above with the image whose floor they respect
    poses = [t.T_obj_tcp for t in trials] + colliding
    codes = [LABELS.index(t.label.value) for t in trials] + [LABELS.index("colliding")] * len(colliding)
    images = list(rng.integers(0, IMAGES_PER_OBJECT, size=len(poses)))
    for wanted, colliding_ones in ((counts.above, False), (counts.above_colliding, True)):
        if not wanted:
            continue
        found = [(pose, k) for k, (_, T_img_obj) in enumerate(rendered)
                 for pose in hand.sample_from_above(rng, T_img_obj, ABOVE_SLIDES_PER_IMAGE, colliding=colliding_ones)]
        for i in rng.permutation(len(found))[:wanted]:
            pose, k = found[i]
            poses.append(pose)
            codes.append(LABELS.index("colliding" if colliding_ones else hand.trial(pose, rng).label.value))
            images.append(k)
    if counts.clearance:
        measured = hand.sample_clearance(rng, CLEARANCE_SLIDES_PER_OBJECT)
        for i in rng.permutation(len(measured))[:counts.clearance]:
            poses.append(measured[i][0])
            codes.append(LABELS.index("clearance"))
            images.append(int(rng.integers(IMAGES_PER_OBJECT)))
    arrays = {
        "images": np.stack([heights for heights, _ in rendered]).astype(np.float16),
        "T_img_obj": np.stack([pose_row(T) for _, T in rendered]),
        "T_obj_tcp": np.stack([pose_row(T) for T in poses]) if poses else np.zeros((0, 7), np.float32),
        "image": np.array(images, dtype=np.int16),
        "label": np.array(codes, dtype=np.int8),
        "distance": np.array([hand.distance(pose, CLEARANCE_SEARCH) for pose in poses], dtype=np.float32),
        "object": np.array(index, dtype=np.int32),
    }
    save_shard(shard_path(Path(out), index), arrays)
    return index, {name: int(np.sum(arrays["label"] == code)) for code, name in enumerate(LABELS)}


def failure_rule_of(folder: Path) -> str:
    """The failure rule a data set was labelled with (sets from before the rule was a setting: the seed's)."""
    meta = Path(folder) / "meta.json"
    return json.loads(meta.read_text()).get("failure_rule", "still_moving") if meta.exists() else "still_moving"


_HAND: FloatingHand | None = None


def worker_hand(failure_rule: str) -> FloatingHand:
    """This process's grasp lab (one PyBullet client per worker, kept between tasks)."""
    global _HAND
    if _HAND is None or _HAND.failure_rule != failure_rule:
        _HAND = FloatingHand(failure_rule=failure_rule)
    return _HAND


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("data/hand"))
    parser.add_argument("--objects", type=int, default=SET_SIZES[OBJECT_SET], help="the first N of the set")
    parser.add_argument("--grasps-per-object", type=int, default=60, help="qualified poses simulated per object")
    parser.add_argument("--colliding-per-object", type=int, default=20)
    parser.add_argument("--above-per-object", type=int, default=0, help="qualified poses from above (the object "
                        "resting on a floor, as in a bin), simulated per object")
    parser.add_argument("--above-colliding-per-object", type=int, default=0)
    parser.add_argument("--near-colliding-per-object", type=int, default=0, help="poses just inside the object "
                        "from random slides (for the model-free variant)")
    parser.add_argument("--clearance-per-object", type=int, default=0, help="poses near and inside the object kept "
                        "for their distance to it (for a learned collision barrier), not simulated")
    parser.add_argument("--failure-rule", default="still_moving", choices=FAILURE_RULES, help="still_moving: the "
                        "seed's (knocked away); not_held: the cell's (two fingers touch it after closing)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    meta = {
        "object_set": OBJECT_SET,
        "seed": args.seed,
        "grasps_per_object": args.grasps_per_object,
        "colliding_per_object": args.colliding_per_object,
        "above_per_object": args.above_per_object,
        "above_colliding_per_object": args.above_colliding_per_object,
        "above_slides_per_image": ABOVE_SLIDES_PER_IMAGE,
        "near_colliding_per_object": args.near_colliding_per_object,
        "near_slides_per_object": NEAR_SLIDES_PER_OBJECT,
        "clearance_per_object": args.clearance_per_object,
        "clearance_slides_per_object": CLEARANCE_SLIDES_PER_OBJECT,
        "clearance_search": CLEARANCE_SEARCH,
        "slides_per_object": SLIDES_PER_OBJECT,
        "images_per_object": IMAGES_PER_OBJECT,
        "image_pixels": IMAGE_PIXELS,
        "image_cell": IMAGE_CELL,
        "labels": list(LABELS),
        "hand": asdict(HandGeometry()),
        "closing_speed": CLOSING_SPEED,
        "failure_rule": args.failure_rule,
        "git_commit": git_commit(),
    }
    fixed = ("object_set", "seed", "grasps_per_object", "colliding_per_object", "above_per_object",
             "above_colliding_per_object", "above_slides_per_image", "near_colliding_per_object",
             "near_slides_per_object", "clearance_per_object", "clearance_slides_per_object", "clearance_search",
             "slides_per_object", "images_per_object", "image_pixels", "image_cell", "hand", "closing_speed",
             "failure_rule")
    try:
        open_dataset(args.out, meta, fixed)
    except ValueError as error:
        parser.error(str(error))
    todo = missing_shards(args.out, min(args.objects, SET_SIZES[OBJECT_SET]))
    print(f"{args.out}: making {len(todo)} object shards with {args.workers} workers")
    counts = ShardCounts(args.grasps_per_object, args.colliding_per_object, args.above_per_object,
                         args.above_colliding_per_object, args.near_colliding_per_object, args.clearance_per_object,
                         args.failure_rule)
    tasks = [(str(args.out), i, args.seed, counts) for i in todo]
    start = time.monotonic()
    results = make_shards(make_object_shard, tasks, args.workers)
    totals = {name: sum(counts[name] for _, counts in results) for name in LABELS}
    elapsed = time.monotonic() - start
    if results:
        print(f"made {len(results)} objects in {elapsed:.0f} s ({elapsed / len(results):.1f} s each): "
              + ", ".join(f"{count} {name}" for name, count in totals.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
