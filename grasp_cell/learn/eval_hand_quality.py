"""Accuracy of a saved hand quality (or clearance) net on a data set's seen and unseen test sets.

    python -m grasp_cell.learn.eval_hand_quality --weights models/hand_quality_6d_hand_bn_sym.pt \\
        --data data/hand_held --views 8

The test sets are drawn as the trainer drew them (``split``, from the net's own settings: seed, model-free,
target), so on the data set the net was trained on they are its held-out sets. ``--views 8`` averages the
net's output over the 8 symmetric views of each example (quarter turns, mirrored or not), the ones a net
trained with ``--symmetries`` has seen.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from grasp_cell.learn.train_hand_quality import SYMMETRIES, HandGrasps, TrainSettings, evaluate, split, test_images
from grasp_cell.models.hand_quality_net import load_checkpoint, quality_net_from


def test_accuracy(weights: Path, data: HandGrasps, views: int = 1) -> dict[str, dict[str, float]]:
    """The net's ``evaluate`` figures on the seen and unseen test sets its settings draw from ``data``."""
    checkpoint = load_checkpoint(weights)
    settings = TrainSettings(**checkpoint["settings"])
    net = quality_net_from(checkpoint)
    splits, _ = split(data, settings)
    return {
        "seen": evaluate(net, data, splits.seen_test, test_images(data, splits.seen_test, True), settings.target,
                         views=views),
        "unseen": evaluate(net, data, splits.unseen_test, test_images(data, splits.unseen_test, False),
                           settings.target, views=views),
        "examples": {"seen": int(len(splits.seen_test)), "unseen": int(len(splits.unseen_test))},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--data", type=Path, nargs="+", default=[Path("data/hand")])
    parser.add_argument("--views", type=int, default=1, choices=(1, SYMMETRIES),
                        help="1: each example as given; 8: the mean over its symmetric views")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    figures = test_accuracy(args.weights, HandGrasps.load(args.data), args.views)
    print(json.dumps({"weights": str(args.weights), "views": args.views, **figures}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
