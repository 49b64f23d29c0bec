"""Seed 003's pixel-level grasp network (section IV): a fully convolutional net with three heads, and its loss.

For every pixel the net predicts Qp (1, H, W), the quality of a grasp there, Qθ (K, H, W), the quality of
each of the K angle classes there, and W (K, H, W), the opening per angle class as a fraction of L4. The net
returns logits; a sigmoid turns them into the [0, 1] maps (seed: sigmoid activations). Two backbones:

- ``lite``: GG-CNN2-sized (about 0.1 M parameters): strided convolutions, dilated context, transposed-conv decoder.
- ``unet``: a small U-Net (4 resolution levels, about 0.5 M parameters at base width 16).

Kept apart from ``pixel_grasp`` so that the model registry can list pixel models without importing torch.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from grasp_cell.core.jaw import ANGLE_CLASSES

BACKBONES = ("lite", "unet")
SIZE_MULTIPLE = 16  # input height and width must be multiples of this
FOCAL_GAMMA = 2.0  # seed 003 eq. 15, as recommended by the focal-loss paper
FOCAL_ALPHA = 0.95  # seed 003: weight of positive targets (negatives get 1 - alpha)
LOSS_WEIGHTS = (10.0, 10.0, 20.0)  # seed 003 eq. 16: beta_1..3 for Qp, Qθ, W
_MAX_LOGIT = 30.0  # sigmoid(±30) is 0 or 1 in float32: logits beyond add nothing but overflow risk


class PixelGraspOutput(NamedTuple):
    """Logits of the three maps, all at input resolution."""

    quality: torch.Tensor  # (B, 1, H, W) Qp
    angle: torch.Tensor  # (B, K, H, W) Qθ
    width: torch.Tensor  # (B, K, H, W) W, opening / L4


def _conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """Convolution (same padding), batch norm, ReLU."""
    padding = dilation * (kernel - 1) // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride, padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def _up(in_channels: int, out_channels: int) -> nn.Sequential:
    """Transposed convolution doubling the resolution, batch norm, ReLU."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class LiteBackbone(nn.Module):
    """GG-CNN2-class features: a large first kernel, two stride-2 stages, dilated convolutions for context
    (receptive field about 60 input pixels), then back to input resolution with transposed convolutions.
    Full-resolution layers are kept thin: on a CPU they cost the most."""

    def __init__(self, in_channels: int, width: int = 16):
        super().__init__()
        self.encoder = nn.Sequential(
            _conv(in_channels, width, 9),
            _conv(width, width, 5, stride=2),  # 1/2
            _conv(width, 2 * width, 5),
            _conv(2 * width, 2 * width, 5, stride=2),  # 1/4
            _conv(2 * width, 2 * width, 3, dilation=2),
            _conv(2 * width, 2 * width, 3, dilation=4),
        )
        self.decoder = nn.Sequential(_up(2 * width, 2 * width), _up(2 * width, width))
        self.out_channels = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class UNetBackbone(nn.Module):
    """A small U-Net: two 3x3 convolutions per level, max-pool down, transposed convolution up, skip concat."""

    def __init__(self, in_channels: int, base: int = 16, levels: int = 4):
        super().__init__()
        widths = [base * 2**level for level in range(levels)]
        self.down = nn.ModuleList()
        previous = in_channels
        for width in widths:
            self.down.append(nn.Sequential(_conv(previous, width, 3), _conv(width, width, 3)))
            previous = width
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(previous, width, 2, stride=2))
            self.merge.append(nn.Sequential(_conv(2 * width, width, 3), _conv(width, width, 3)))
            previous = width
        self.out_channels = base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, block in enumerate(self.down):
            if level > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips[:-1])):
            x = merge(torch.cat([up(x), skip], dim=1))
        return x


class PixelGraspNet(nn.Module):
    """Image (B, C, H, W), H and W multiples of 16, to the logits of Qp, Qθ and W at the same resolution."""

    def __init__(self, backbone: str, in_channels: int, angle_classes: int = ANGLE_CLASSES):
        super().__init__()
        if backbone == "lite":
            self.backbone = LiteBackbone(in_channels)
        elif backbone == "unet":
            self.backbone = UNetBackbone(in_channels)
        else:
            raise ValueError(f"unknown backbone '{backbone}'; expected one of {', '.join(BACKBONES)}")
        self.angle_classes = angle_classes
        # one 1x1 convolution for all three heads: 1 + K + K channels
        self.heads = nn.Conv2d(self.backbone.out_channels, 1 + 2 * angle_classes, 1)

    def forward(self, image: torch.Tensor) -> PixelGraspOutput:
        height, width = image.shape[-2:]
        if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
            raise ValueError(f"input is {width}x{height}; both sides must be multiples of {SIZE_MULTIPLE}")
        logits = self.heads(self.backbone(image))
        k = self.angle_classes
        return PixelGraspOutput(logits[:, :1], logits[:, 1 : 1 + k], logits[:, 1 + k :])


def parameter_count(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def binary_focal_loss(
    logits: torch.Tensor, target: torch.Tensor, gamma: float = FOCAL_GAMMA, alpha: float = FOCAL_ALPHA
) -> torch.Tensor:
    """Seed 003 eq. 15, the mean over all elements of
    -(t log p + (1 - t) log(1 - p)) |p - t|^gamma a, with p = sigmoid(logits), a = alpha where t > 0 else 1 - alpha.

    Targets may be soft (0.9 for enhanced labels, widths in [0, 1]); the log terms come from the logits, which
    stays finite where p rounds to 0 or 1.
    """
    logits = logits.clamp(-_MAX_LOGIT, _MAX_LOGIT)
    cross_entropy = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    error = torch.sigmoid(logits) - target
    modulation = error.square() if gamma == 2.0 else error.abs().pow(gamma)  # square: one op less per element
    weight = torch.where(target > 0, alpha, 1.0 - alpha)
    return (cross_entropy * modulation * weight).mean()


def grasp_map_loss(
    output: PixelGraspOutput,
    quality: torch.Tensor,
    angle: torch.Tensor,
    width: torch.Tensor,
    weights: tuple[float, float, float] = LOSS_WEIGHTS,
) -> torch.Tensor:
    """Seed 003 eq. 16: the weighted sum of the focal losses of the three maps.

    As in the seed, the width map is scored over all pixels and angle classes, with target 0 wherever no
    grasp is labelled (so W also learns to be low away from grasps).
    """
    return (
        weights[0] * binary_focal_loss(output.quality, quality)
        + weights[1] * binary_focal_loss(output.angle, angle)
        + weights[2] * binary_focal_loss(output.width, width)
    )
