"""How repeatable a hand data set's labels are: the accuracy any predictor of the label from the pose can reach.

    python -m grasp_cell.learn.hand_label_noise --data data/hand_held --per-object 4 --workers 2

For ``--per-object`` robust or failed poses of every object, the lab's trial is run again at the same pose
and at ``--perturbations`` poses nudged by up to each of ``SCALES`` (a random direction and axis; 1 mm and
1 degree, 3 mm and 3 degrees: about an arm's and a camera's error), judged by the rule the set was labelled
with. What is compared is held (robust or loose) against failed, the split the quality net learns: a
robust pose that shakes loose on a rerun differs only in its shakes. Agreement at the same pose says
whether the lab is deterministic; agreement under the nudges says how sharp the label is as a function of
the pose, which bounds the accuracy of any net that sees the pose to that precision.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from grasp_cell.core.transform import Transform, rotation_about_axis
from grasp_cell.learn.hand_data import LABELS, OBJECT_SET, failure_rule_of, pose_of, worker_hand
from grasp_cell.learn.shards import list_shards, make_shards
from grasp_cell.sim.floating_hand import GraspLabel, random_direction
from grasp_cell.sim.objects import object_set

SCALES = {"1mm_1deg": (0.001, math.radians(1.0)), "3mm_3deg": (0.003, math.radians(3.0))}
JUDGED = ("robust", "failed")  # the stored labels rerun (loose and colliding poses are not in the quality net's split)


def nudged(T_obj_tcp: Transform, shift: float, turn: float, rng: np.random.Generator) -> Transform:
    """``T_obj_tcp`` moved up to ``shift`` [m] along a random direction and turned up to ``turn`` [rad] about a
    random axis through the tcp."""
    rotation = T_obj_tcp.rotation @ rotation_about_axis(random_direction(rng), turn * rng.uniform(-1.0, 1.0))
    return Transform(rotation, T_obj_tcp.translation + random_direction(rng) * shift * rng.uniform(0.0, 1.0))


def rerun_object(task: tuple) -> list[dict]:
    """Rerun ``per_object`` of one shard's robust or failed poses: one record per pose."""
    path, failure_rule, per_object, perturbations, seed = task
    shard = np.load(path)
    index = int(shard["object"])
    rng = np.random.default_rng([seed, index])
    spec = object_set(OBJECT_SET)[index]
    hand = worker_hand(failure_rule)
    hand.set_object(spec)
    rows = np.flatnonzero(np.isin(shard["label"], [LABELS.index(name) for name in JUDGED]))
    records = []
    for row in rng.permutation(rows)[:per_object]:
        T_obj_tcp = pose_of(shard["T_obj_tcp"][row])
        record = {"object": index, "family": spec.name.rsplit("_", 1)[-1], "stored": LABELS[shard["label"][row]],
                  "same_pose": [hand.trial(T_obj_tcp, rng).label.value]}
        for scale, (shift, turn) in SCALES.items():
            record[scale] = [hand.trial(nudged(T_obj_tcp, shift, turn, rng), rng).label.value
                             for _ in range(perturbations)]
        records.append(record)
    return records


def held(label: str) -> bool:
    return label != GraspLabel.FAILED.value


def summary(records: list[dict]) -> dict:
    """Shares of reruns whose held-or-failed outcome agrees with the stored label: overall, per scale, per family."""
    def agreement(rows, key):
        outcomes = [held(label) == held(r["stored"]) for r in rows for label in r[key]]
        return round(float(np.mean(outcomes)), 4) if outcomes else float("nan")

    families = defaultdict(list)
    for record in records:
        families[record["family"]].append(record)
    return {
        "poses": len(records),
        "held_share": round(float(np.mean([held(r["stored"]) for r in records])), 4) if records else float("nan"),
        "same_pose": agreement(records, "same_pose"),
        **{scale: agreement(records, scale) for scale in SCALES},
        "families_1mm_1deg": {family: {"poses": len(rows), "agree": agreement(rows, "1mm_1deg")}
                              for family, rows in sorted(families.items())},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/hand_held"))
    parser.add_argument("--per-object", type=int, default=4, help="robust or failed poses rerun per object")
    parser.add_argument("--perturbations", type=int, default=2, help="nudged reruns per pose and scale")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the records and summary here (JSON)")
    args = parser.parse_args(argv)

    paths = list_shards(args.data, ("images", "label"))
    if not paths:
        parser.error(f"{args.data}: no hand grasp shards; make them with grasp_cell.learn.hand_data")
    rule = failure_rule_of(args.data)
    print(f"{args.data}: rerunning {args.per_object} poses of {len(paths)} objects ({rule} rule), "
          f"{args.perturbations} nudges per scale, {args.workers} workers")
    start = time.monotonic()
    tasks = [(str(path), rule, args.per_object, args.perturbations, args.seed) for path in paths]
    records = sorted((r for batch in make_shards(rerun_object, tasks, args.workers) for r in batch),
                     key=lambda r: r["object"])
    result = {"data": str(args.data), "failure_rule": rule, "seed": args.seed, **summary(records),
              "minutes": round((time.monotonic() - start) / 60, 1)}
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps({**result, "records": records}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
