"""Seed 004's mix-in CNN: a top-down height image and a 6-DOF hand pose in, a grasp-success logit out.

Convolution stage as the seed's (5x5, pool, 5x5, pool, 4x4, pool, 2x2, pool, ReLU after each convolution);
its output is flattened and the pose is mixed in before the fully connected stage (two hidden layers,
then the output). The seed's 128 x 128 image and 50 channels are scaled to 64 x 64 and ``channels`` (32)
for this CPU; the seed's softmax over two classes is one logit here (the same function).

Poses are the tcp's in the image frame (``grasp_cell.learn.hand_data``): position / POSITION_SCALE, and the
rotation in one of ``ROTATIONS``: ``rpy`` (the seed's roll, pitch, yaw in [0, 2 pi)) or ``6d`` (the first two
columns of the rotation matrix: continuous and unique, as the seed's conclusion asks of a better
representation). Kept apart from the data and training code so a planner can import it alone.
"""

from __future__ import annotations

import math

import torch
from torch import nn

ROTATIONS = {"rpy": 3, "6d": 6}  # features per rotation
POSITION_SCALE = 0.1  # [m] positions are divided by this
HEIGHT_SCALE = 0.1  # [m] heights are divided by this


def rotation_features(rotations: torch.Tensor, kind: str) -> torch.Tensor:
    """(B, 3, 3) rotation matrices -> (B, ROTATIONS[kind]) features; differentiable."""
    if kind == "6d":
        return torch.cat([rotations[:, :, 0], rotations[:, :, 1]], dim=1)
    if kind == "rpy":  # R = Rz(yaw) Ry(pitch) Rx(roll), angles wrapped into [0, 2 pi) as the seed fed them
        pitch = torch.asin(torch.clamp(-rotations[:, 2, 0], -1.0, 1.0))
        roll = torch.atan2(rotations[:, 2, 1], rotations[:, 2, 2])
        yaw = torch.atan2(rotations[:, 1, 0], rotations[:, 0, 0])
        return torch.remainder(torch.stack([roll, pitch, yaw], dim=1), 2.0 * math.pi)
    raise ValueError(f"unknown rotation representation '{kind}'; expected one of {', '.join(ROTATIONS)}")


def pose_features(positions: torch.Tensor, rotations: torch.Tensor, kind: str) -> torch.Tensor:
    """(B, 3) positions [m] and (B, 3, 3) rotations in the image frame -> the net's pose input."""
    return torch.cat([positions / POSITION_SCALE, rotation_features(rotations, kind)], dim=1)


class HandQualityNet(nn.Module):
    def __init__(self, rotation: str = "6d", pixels: int = 64, channels: int = 32, hidden=(1000, 100)):
        super().__init__()
        if rotation not in ROTATIONS:
            raise ValueError(f"unknown rotation representation '{rotation}'; expected one of {', '.join(ROTATIONS)}")
        self.rotation = rotation
        c = channels
        self.convolutions = nn.Sequential(
            nn.Conv2d(1, c, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(c, c, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(c, c, 4), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(c, c, 2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        with torch.no_grad():
            flat = self.convolutions(torch.zeros(1, 1, pixels, pixels)).numel()
        layers, width = [], flat + 3 + ROTATIONS[rotation]
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(inplace=True)]
            width = size
        self.head = nn.Sequential(*layers, nn.Linear(width, 1))

    def forward(self, heights: torch.Tensor, poses: torch.Tensor) -> torch.Tensor:
        """(B, 1, P, P) heights [m] and (B, 3 + ROTATIONS[rotation]) pose features -> (B,) success logits."""
        image = self.convolutions(heights / HEIGHT_SCALE).flatten(1)
        return self.head(torch.cat([image, poses], dim=1))[:, 0]
