"""Seed 004's mix-in CNN: a top-down height image and a 6-DOF hand pose in, a grasp-success logit out.

Convolution stage as the seed's (5x5, pool, 5x5, pool, 4x4, pool, 2x2, pool, ReLU after each convolution);
its output is flattened and the pose is mixed in before the fully connected stage (two hidden layers,
then the output). The seed's 128 x 128 image and 50 channels are scaled to 64 x 64 and ``channels`` (32)
for this CPU; the seed's softmax over two classes is one logit here (the same function).

Poses are the tcp's in the image frame (``grasp_cell.learn.hand_data``): position / POSITION_SCALE, and the
rotation in one of ``ROTATIONS``: ``rpy`` (the seed's roll, pitch, yaw in [0, 2 pi)) or ``6d`` (the first two
columns of the rotation matrix: continuous and unique, as the seed's conclusion asks of a better
representation).

Three ways to present image and pose (``FRAMES``): ``image`` is the seed's, the image as rendered and the
pose in its frame; ``grasp`` first resamples the image about the tcp, turned with the hand's closing
direction and with heights taken from the tcp's level, and gives the rotation left in that frame (the
position is then zero and left out). The same inputs, one function of the other, and differentiable in
the pose, so the optimiser works the same on both; ``grasp`` makes the net's task the same wherever and at
whatever yaw the grasp lies. ``hand`` goes the whole way: the image is sampled at a grid of points fixed in
the tcp's frame (``HAND_VOLUME``: the open hand's working volume), each giving how deep it lies under the
surface the camera saw, so the net sees the object where the palm and fingers are, at any tilt; a stage of
3 x 3 convolutions over the (x, y) grid with the depth layers as channels reads it, and the rotation left
after the yaw turn is mixed in as in ``grasp`` (which sides the camera could not see). ``batch_norm``
normalises each pooled feature map (not in the seed): with it the ``grasp`` frame learns in 3 epochs what
took 15 without; in the ``image`` frame it stalls at the pose-only level (measured, docs/hand_grasps.md).
Kept apart from the data and training code so a planner can import it alone.

The same net regresses the open hand's distance to the object instead (``target`` ``clearance``, output in
units of CLEARANCE_SCALE): a collision barrier learnt from data, for optimising without the object's model.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

ROTATIONS = {"rpy": 3, "6d": 6}  # features per rotation
FRAMES = ("image", "grasp", "hand")
TARGETS = ("quality", "clearance")  # the success logit, or the open hand's distance to the object
CLEARANCE_SCALE = 0.01  # [m] a clearance net's output unit
CLEARANCE_RANGE = (-0.03, 0.05)  # [m] the distances a clearance net learns (deeper or further: clipped)
POSITION_SCALE = 0.1  # [m] positions are divided by this
HEIGHT_SCALE = 0.1  # [m] heights are divided by this
# The ``hand`` frame's grid in the tcp frame [m]: (low, high, points) along x, y (closing) and z (approach):
# 7 mm by 6.5 mm columns over the open fingers' span, layers 10 mm apart from 10 mm behind the palm face (at
# -60 mm) to 20 mm past the open fingertips (+60 mm). Depths under the seen surface are clipped to +-DEPTH_SCALE.
HAND_VOLUME = ((-0.08, 0.08, 24), (-0.10, 0.10, 32), (-0.07, 0.08, 16))
DEPTH_SCALE = 0.02  # [m]
SEED_HIDDEN = (1000, 100)  # the fully connected stage's widths: the seed's
HAND_HIDDEN = (256, 64)  # the ``hand`` frame's: its convolutions pool to 3 x 4 cells


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


def closing_yaw_turn(rotations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """cos and sin of the yaw of the hand's closing direction (its y axis) in the image frame, and the (B, 3, 3)
    turn Rz(-yaw) that carries image-frame directions into the frame turned with it."""
    yaw = torch.atan2(rotations[:, 1, 1], rotations[:, 0, 1])
    cos, sin, zero = torch.cos(yaw), torch.sin(yaw), torch.zeros_like(yaw)
    turn = torch.stack([torch.stack([cos, sin, zero], -1), torch.stack([-sin, cos, zero], -1),
                        torch.stack([zero, zero, torch.ones_like(yaw)], -1)], dim=1)
    return cos, sin, turn


def hand_volume_points() -> torch.Tensor:
    """(Z, Y, X, 3) the ``hand`` frame's grid points [m] in the tcp frame."""
    x, y, z = (torch.linspace(low, high, count) for low, high, count in HAND_VOLUME)
    zz, yy, xx = torch.meshgrid(z, y, x, indexing="ij")
    return torch.stack([xx, yy, zz], dim=-1)


def hand_volume(heights: torch.Tensor, positions: torch.Tensor, rotations: torch.Tensor, cell: float,
                points: torch.Tensor | None = None) -> torch.Tensor:
    """The ``hand`` frame's input: (B, Z, Y, X) how deep each grid point (``hand_volume_points``) of the tcp
    frame lies under the heights (B, 1, P, P) [m] of the image (grid as ``grasp_aligned``'s) for the tcp at
    (B, 3) ``positions`` and (B, 3, 3) ``rotations``, in units of DEPTH_SCALE, clipped to +-1: negative in the
    open, positive inside the object or hidden under it. Bilinear, 0 height beyond the image; differentiable
    in the pose."""
    grid = hand_volume_points() if points is None else points
    local = grid.reshape(-1, 3).to(heights.dtype)
    world = positions[:, None, :].to(heights.dtype) + local[None] @ rotations.transpose(1, 2).to(heights.dtype)
    half = 0.5 * (heights.shape[-1] - 1) * cell
    seen = nn.functional.grid_sample(heights, (world[:, None, :, :2] / half), mode="bilinear",
                                     padding_mode="zeros", align_corners=True)[:, 0, 0]
    depth = torch.clamp((seen - world[:, :, 2]) / DEPTH_SCALE, -1.0, 1.0)
    return depth.reshape(len(heights), *grid.shape[:3])


def grasp_aligned(heights: torch.Tensor, positions: torch.Tensor, rotations: torch.Tensor, cell: float):
    """The ``grasp`` frame's inputs: (B, 1, P, P) heights [m] on a ``cell`` grid (rows along y, columns along
    x, centred on the image frame's origin) resampled on the same grid centred under the tcp and turned by the
    yaw of the hand's closing direction (its y axis), minus the tcp's height; and the rotations in that
    turned frame. Bilinear, 0 height beyond the image; differentiable in ``positions`` and ``rotations``."""
    pixels = heights.shape[-1]
    cos, sin, turn = closing_yaw_turn(rotations)
    steps = (torch.arange(pixels, dtype=heights.dtype) - 0.5 * (pixels - 1)) * cell
    along, across = steps[None, None, :], steps[None, :, None]  # new columns, new rows
    x = positions[:, 0, None, None] + cos[:, None, None] * along - sin[:, None, None] * across
    y = positions[:, 1, None, None] + sin[:, None, None] * along + cos[:, None, None] * across
    half = 0.5 * (pixels - 1) * cell
    grid = torch.stack([x / half, y / half], dim=-1).to(heights.dtype)
    sampled = nn.functional.grid_sample(heights, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return sampled - positions[:, 2, None, None, None].to(heights.dtype), turn @ rotations


class HandQualityNet(nn.Module):
    def __init__(self, rotation: str = "6d", pixels: int = 64, channels: int = 32, hidden=None,
                 frame: str = "image", cell: float = 0.00375, target: str = "quality", batch_norm: bool = False):
        super().__init__()
        if target not in TARGETS:
            raise ValueError(f"unknown target '{target}'; expected one of {', '.join(TARGETS)}")
        if rotation not in ROTATIONS:
            raise ValueError(f"unknown rotation representation '{rotation}'; expected one of {', '.join(ROTATIONS)}")
        if frame not in FRAMES:
            raise ValueError(f"unknown input frame '{frame}'; expected one of {', '.join(FRAMES)}")
        self.rotation, self.frame, self.cell, self.target = rotation, frame, cell, target
        if frame == "hand":  # 3 x 3, padded, over the (x, y) grid; channels doubling after the first pooling
            shapes = ((HAND_VOLUME[2][2], channels, 3), (channels, 2 * channels, 3), (2 * channels, 2 * channels, 3))
            blank = torch.zeros(1, HAND_VOLUME[2][2], HAND_VOLUME[1][2], HAND_VOLUME[0][2])
            self.register_buffer("points", hand_volume_points(), persistent=False)
        else:  # the seed's
            shapes = ((1, channels, 5), (channels, channels, 5), (channels, channels, 4), (channels, channels, 2))
            blank = torch.zeros(1, 1, pixels, pixels)
        stages = []
        for inputs, outputs, kernel in shapes:
            stages += [nn.Conv2d(inputs, outputs, kernel, padding=kernel // 2 if frame == "hand" else 0),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            if batch_norm:  # after pooling: a quarter of the memory traffic of normalising the convolution's output
                stages.append(nn.BatchNorm2d(outputs))
        self.convolutions = nn.Sequential(*stages)
        with torch.no_grad():
            flat = self.convolutions(blank).numel()
        layers, width = [], flat + ROTATIONS[rotation] + (3 if frame == "image" else 0)
        if hidden is None:
            hidden = HAND_HIDDEN if frame == "hand" else SEED_HIDDEN
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(inplace=True)]
            width = size
        self.head = nn.Sequential(*layers, nn.Linear(width, 1))

    @classmethod
    def from_settings(cls, settings: dict, pixels: int, cell: float) -> "HandQualityNet":
        """The net a trainer's settings describe (``TrainSettings`` as a dict, as a checkpoint keeps them)."""
        return cls(settings["rotation"], pixels, settings["channels"], frame=settings["frame"], cell=cell,
                   target=settings.get("target", "quality"), batch_norm=settings.get("batch_norm", False))

    def forward(self, heights: torch.Tensor, positions: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
        """(B, 1, P, P) heights [m], the tcp's (B, 3) positions [m] and (B, 3, 3) rotations in the image
        frame -> (B,) success logits (``clearance``: distances in units of CLEARANCE_SCALE)."""
        if self.frame == "hand":
            features = self.convolutions(hand_volume(heights, positions, rotations, self.cell, self.points)).flatten(1)
            turned = rotation_features(closing_yaw_turn(rotations)[2] @ rotations, self.rotation)
            return self.head(torch.cat([features, turned.to(features.dtype)], 1))[:, 0]
        if self.frame == "grasp":
            heights, rotations = grasp_aligned(heights, positions, rotations, self.cell)
            image = self.image_features(heights)
            return self.head(torch.cat([image, rotation_features(rotations, self.rotation).to(image.dtype)], 1))[:, 0]
        return self.pose_logits(self.image_features(heights), positions, rotations)

    def image_features(self, heights: torch.Tensor) -> torch.Tensor:
        """(B, 1, P, P) heights [m] -> (B, F) the convolution stage's output."""
        return self.convolutions(heights / HEIGHT_SCALE).flatten(1)

    def pose_logits(self, features: torch.Tensor, positions: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
        """Logits of poses in the ``image`` frame from ``image_features`` computed once: many poses of one image
        cost one pass of the fully connected stage each."""
        if self.frame != "image":
            raise ValueError("pose_logits needs a net whose poses are in the image frame")
        poses = pose_features(positions, rotations, self.rotation).to(features.dtype)
        return self.head(torch.cat([features, poses], dim=1))[:, 0]


def load_checkpoint(path: Path) -> dict:
    """A checkpoint written by ``grasp_cell.learn.train_hand_quality``: state_dict, settings, pixels, cell."""
    return torch.load(path, map_location="cpu", weights_only=True)


def quality_net_from(checkpoint: dict) -> HandQualityNet:
    """The net of a loaded checkpoint (``load_checkpoint``), in eval mode."""
    net = HandQualityNet.from_settings(checkpoint["settings"], checkpoint["pixels"], checkpoint["cell"])
    net.load_state_dict(checkpoint["state_dict"])
    return net.eval()


def load_quality_net(path: Path) -> HandQualityNet:
    """A net saved by ``grasp_cell.learn.train_hand_quality``, in eval mode."""
    return quality_net_from(load_checkpoint(path))


def rotation_vector_matrices(omega: torch.Tensor) -> torch.Tensor:
    """(B, 3) rotation vectors -> (B, 3, 3) matrices (Rodrigues), differentiable at omega = 0."""
    angle = torch.sqrt((omega * omega).sum(dim=1) + 1e-12)[:, None, None]
    k = omega / angle[:, :, 0]
    zero = torch.zeros_like(k[:, 0])
    cross = torch.stack([torch.stack([zero, -k[:, 2], k[:, 1]], -1), torch.stack([k[:, 2], zero, -k[:, 0]], -1),
                         torch.stack([-k[:, 1], k[:, 0], zero], -1)], dim=1)
    eye = torch.eye(3, dtype=omega.dtype).expand_as(cross)
    return eye + torch.sin(angle) * cross + (1 - torch.cos(angle)) * (cross @ cross)
