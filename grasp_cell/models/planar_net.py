"""Seed 002's grasp-success network: a small fully convolutional net over a top-down depth window.

Trained on single windows (``WINDOW`` x ``WINDOW`` cells around an attempted grasp, turned to its angle)
it gives one output per gripper opening (3); run over a whole overview image it slides that window with a
step of ``STRIDE`` cells and gives a map of grasp-success logits per opening (seed 002 III-C, Fig. 3).
No pooling (grasping needs exact positions), batch norm and dropout (at least 0.4) on the hidden layers.

Kept apart from ``planar_grasp`` so that listing the model registry does not import torch.
"""

from __future__ import annotations

import torch
from torch import nn

WINDOW = 40  # [cells] the window the net judges a grasp from (2.5 mm cells: 100 mm, the widest jaw's reach)
STRIDE = 4  # [cells] the net's total stride: positions of a dense pass lie this far apart
OPENINGS = 3  # seed 002: one output per gripper distance d
DROPOUT = 0.4  # seed 002: "dropout with a minimum rate of 0.4"


def _layer(in_channels: int, out_channels: int, kernel: int, stride: int, dropout: float) -> list[nn.Module]:
    layers = [nn.Conv2d(in_channels, out_channels, kernel, stride, bias=False), nn.BatchNorm2d(out_channels)]
    layers.append(nn.ReLU(inplace=True))
    if dropout:
        layers.append(nn.Dropout(dropout))
    return layers


class PlanarGraspNet(nn.Module):
    """Window 40 -> 18 -> 7 -> 5 -> 1 cells, then one logit per opening; valid convolutions only, so a dense
    pass over a larger image equals the window evaluated at every ``STRIDE``-th cell."""

    def __init__(self):
        super().__init__()
        c1, c2, c3, c4 = 12, 24, 24, 32
        self.layers = nn.Sequential(
            *_layer(1, c1, 5, 2, 0.0),
            *_layer(c1, c2, 5, 2, DROPOUT),
            *_layer(c2, c3, 3, 1, DROPOUT),
            *_layer(c3, c4, 5, 1, DROPOUT),
            nn.Conv2d(c4, OPENINGS, 1),
        )

    def forward(self, heights: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) normalised heights -> (B, OPENINGS, (H - WINDOW) / STRIDE + 1, ...) success logits."""
        return self.layers(heights)


def reward_weighted_loss(logits: torch.Tensor, rewards: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Seed 002 III-F: cross entropy of the reward at the measured opening, each sample weighted (class
    balance x false-positive cost x the weighted-retraining weight, see ``grasp_cell.learn.planar_training``).
    ``logits`` (B,) are those of the opening each attempt used."""
    losses = nn.functional.binary_cross_entropy_with_logits(logits, rewards, reduction="none")
    return (losses * weights).sum() / weights.sum().clamp_min(1e-9)
