"""Seed 001's suction-region network: ResNet features of an RGB stream and a depth stream, fused by a U-Net
decoder into a map of suction success, one output per 3 x 3 input pixels (56 x 56 for a 168 x 168 patch).

As in the seed, a 168 x 168 patch is resized to 224 x 224 and both streams go through the same encoder
(the depth stream as three equal channels); the decoder sees both streams' features at strides 16, 8 and 4
and returns logits at stride 4 of the resized input, that is 3 pixels of the original. The seed's encoder
is an ImageNet ResNet-50, frozen. ImageNet weights cannot be fetched here and ResNet-50 would take seconds
per plan on this CPU, so the encoder is a small ResNet (basic residual blocks, 16-64 channels) that is
either frozen after pretraining on the cell's own unlabelled images (``grasp_cell.learn.region_learner``,
``pretrain``), frozen at random initialisation, or trained with the decoder.

Fully convolutional: the same net runs on a whole bin image at once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PATCH = 168  # seed 001: input patches of 168 x 168 pixels
RESIZED = 224  # ... resized to the ResNet's 224 x 224
OUTPUT = 56  # ... and a 56 x 56 success map: one output per 3 x 3 pixels of the patch
SCALE = RESIZED / PATCH  # 4 / 3
OUTPUT_STRIDE = 4  # in resized pixels


class BasicBlock(nn.Module):
    """ResNet's basic block: two 3 x 3 convolutions with batch norm and an identity (or 1 x 1) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x), inplace=True)


class ResNetEncoder(nn.Module):
    """Stem (stride 2) and three stages of basic blocks: features at strides 4, 8 and 16."""

    widths = (16, 24, 48, 64)

    def __init__(self):
        super().__init__()
        stem, c4, c8, c16 = self.widths
        self.stem = nn.Sequential(nn.Conv2d(3, stem, 3, 2, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True))
        self.stage4 = BasicBlock(stem, c4, 2)
        self.stage8 = BasicBlock(c4, c8, 2)
        self.stage16 = BasicBlock(c8, c16, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f4 = self.stage4(self.stem(x))
        f8 = self.stage8(f4)
        return f4, f8, self.stage16(f8)


def _fuse(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)
    )


class SuctionRegionNet(nn.Module):
    """Two streams through one encoder, a U-Net decoder (parameter-free 2x upsampling, as the seed's
    "Upsample" boxes), one success logit per output cell."""

    def __init__(self):
        super().__init__()
        self.encoder = ResNetEncoder()
        _, c4, c8, c16 = ResNetEncoder.widths
        self.fuse16 = _fuse(2 * c16, 64)
        self.fuse8 = _fuse(64 + 2 * c8, 48)
        self.fuse4 = _fuse(48 + 2 * c4, 32)
        self.head = nn.Conv2d(32, 1, 1)

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """rgb (B, 3, H, W) and depth (B, 1, H, W), H and W multiples of 16 (resized pixels) -> logits
        (B, H / 4, W / 4)."""
        rgb_features = self.encoder(rgb)
        depth_features = self.encoder(depth.expand(-1, 3, -1, -1))  # the seed feeds depth as 3 equal channels
        f4, f8, f16 = (torch.cat(pair, dim=1) for pair in zip(rgb_features, depth_features))
        x = self.fuse16(f16)
        x = self.fuse8(torch.cat([F.interpolate(x, size=f8.shape[-2:], mode="nearest"), f8], dim=1))
        x = self.fuse4(torch.cat([F.interpolate(x, size=f4.shape[-2:], mode="nearest"), f4], dim=1))
        return self.head(x)[:, 0]

    def decoder_parameters(self):
        return [p for name, p in self.named_parameters() if not name.startswith("encoder.")]


class PretextDecoder(nn.Module):
    """For pretraining the encoder without labels: rebuilds the RGB image and the depth from the features of
    a copy with patches blanked out (a masked autoencoder's task; no grasp labels, no simulator state)."""

    def __init__(self):
        super().__init__()
        _, c4, c8, c16 = ResNetEncoder.widths
        self.up16 = _fuse(c16, 48)
        self.up8 = _fuse(48 + c8, 32)
        self.up4 = _fuse(32 + c4, 24)
        self.out = nn.Conv2d(24, 3, 1)

    def forward(self, features: tuple[torch.Tensor, torch.Tensor, torch.Tensor], size) -> torch.Tensor:
        f4, f8, f16 = features
        x = self.up16(f16)
        x = self.up8(torch.cat([F.interpolate(x, size=f8.shape[-2:], mode="nearest"), f8], dim=1))
        x = self.up4(torch.cat([F.interpolate(x, size=f4.shape[-2:], mode="nearest"), f4], dim=1))
        return F.interpolate(self.out(x), size=size, mode="bilinear", align_corners=False)
