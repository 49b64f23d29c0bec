"""Seed 000's dual-resolution suction grasp network (Fig. 2-3), and its dense form for whole images.

A 128 x 128 depth patch I_p is seen twice: its central 32 x 32 pixels by the focus net, and the whole
patch reduced 4x (block mean) to 32 x 32 by the context net. Each is three 3 x 3 convolutions with ReLU,
each followed by 2 x 2 max pooling, and a last convolution over what is left (a dense layer). The two
feature vectors are concatenated and feed three heads of two dense layers each: d (sigmoid, the
confidence that the patch centre is a grasp point), v (the approach vector in camera coordinates) and
pz (the camera z of the grasp point at the patch centre, in metres).

Deviations from the seed: v and pz have linear outputs, where the seed puts a ReLU before them; a ReLU
cannot give the negative x and y components of an approach vector. Convolutions are unpadded ("valid"),
so the net over a whole image computes exactly what it computes per patch: ``dense`` evaluates every
patch whose top-left corner lies on an 8-pixel grid in one pass (the focus tower's pooling stride is 8;
the context tower runs at the 16 offsets of that grid in its 4x reduced image).

``context=False`` is the seed's single-resolution ablation (section IV-C): focus net and heads only.
"""

from __future__ import annotations

import torch
from torch import nn

PATCH = 128  # [px] I_p
FOCUS = 32  # [px] the focus net's central crop
CONTEXT_REDUCTION = 4  # the context net sees I_p reduced this many times (to 32 x 32)
STRIDE = 8  # [px] the focus tower's pooling stride: dense patches lie on this grid
FEATURES = 128  # per tower
HEAD_WIDTH = 64
PZ_START = 0.55  # [m] the pz head's initial output


class Tower(nn.Module):
    """32 x 32 x 1 -> FEATURES: three valid 3 x 3 convolutions, each with ReLU and 2 x 2 max pooling, then
    a 2 x 2 convolution over what is left (32 -> 30 -> 15 -> 13 -> 6 -> 4 -> 2 -> 1)."""

    def __init__(self, channels: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        layers: list[nn.Module] = []
        previous = 1
        for width in channels:
            layers += [nn.Conv2d(previous, width, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            previous = width
        layers += [nn.Conv2d(previous, FEATURES, 2), nn.ReLU(inplace=True)]
        self.layers = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) -> (B, FEATURES, (H - 32) // 8 + 1, (W - 32) // 8 + 1): the 32 x 32 windows at
        every 8th pixel (one 1 x 1 map for a 32 x 32 input)."""
        return self.layers(image)


def _head(inputs: int, outputs: int) -> nn.Module:
    # two dense layers as 1 x 1 convolutions, so that heads run on feature maps too
    return nn.Sequential(nn.Conv2d(inputs, HEAD_WIDTH, 1), nn.ReLU(inplace=True), nn.Conv2d(HEAD_WIDTH, outputs, 1))


class SuctionNet(nn.Module):
    """Seed 000's network; ``forward`` on patches, ``dense`` on whole images (see the module docstring)."""

    def __init__(self, context: bool = True):
        super().__init__()
        self.has_context = context
        self.focus = Tower()
        self.context = Tower() if context else None
        joined = FEATURES * (2 if context else 1)
        self.head_d, self.head_v, self.head_pz = _head(joined, 1), _head(joined, 3), _head(joined, 1)
        with torch.no_grad():  # start pz where grasps are (the camera is about 0.6 m above the bin floor), not at 0
            self.head_pz[-1].bias.fill_(PZ_START)

    def forward(self, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, 1, 128, 128) patches -> d logits (B,), v (B, 3), pz (B,) [m]."""
        if patches.shape[-2:] != (PATCH, PATCH):
            raise ValueError(f"patches must be {PATCH} x {PATCH}, got {tuple(patches.shape[-2:])}")
        start = (PATCH - FOCUS) // 2
        features = [self.focus(patches[..., start : start + FOCUS, start : start + FOCUS])]
        if self.context is not None:
            features.append(self.context(nn.functional.avg_pool2d(patches, CONTEXT_REDUCTION)))
        d, v, pz = self._heads(torch.cat(features, dim=1))
        return d[:, 0, 0, 0], v[:, :, 0, 0], pz[:, 0, 0, 0]

    def dense(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(1, 1, H, W) image -> d logits, v, pz maps (1, C, rows, cols) for the patches whose top-left
        corner is (STRIDE * row, STRIDE * col): the same numbers ``forward`` gives for those patches.
        H and W must be multiples of STRIDE, at least PATCH."""
        height, width = image.shape[-2:]
        if height % STRIDE or width % STRIDE or height < PATCH or width < PATCH:
            raise ValueError(f"image must be at least {PATCH} px and a multiple of {STRIDE}, got {height}x{width}")
        rows, cols = (height - PATCH) // STRIDE + 1, (width - PATCH) // STRIDE + 1
        start = (PATCH - FOCUS) // 2
        focus = self.focus(image[..., start : height - start, start : width - start])[..., :rows, :cols]
        features = [focus]
        if self.context is not None:
            small = nn.functional.avg_pool2d(image, CONTEXT_REDUCTION)
            step = STRIDE // CONTEXT_REDUCTION  # the patch grid's step in the reduced image
            phases = STRIDE // step  # the tower's stride (also STRIDE) covers this many grid steps
            context = focus.new_zeros((1, FEATURES, rows, cols))
            for row_phase in range(phases):
                for col_phase in range(phases):
                    shifted = small[..., row_phase * step :, col_phase * step :]
                    out = self.context(shifted)  # windows at reduced offsets phase * step + 8 * k
                    target = context[..., row_phase::phases, col_phase::phases]
                    target.copy_(out[..., : target.shape[-2], : target.shape[-1]])
            features.append(context)
        return self._heads(torch.cat(features, dim=1))

    def _heads(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.head_d(features), self.head_v(features), self.head_pz(features)


def suction_loss(
    d_logit: torch.Tensor,
    v: torch.Tensor,
    pz: torch.Tensor,
    d_true: torch.Tensor,
    v_true: torch.Tensor,
    pz_true: torch.Tensor,
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> tuple[torch.Tensor, dict[str, float]]:
    """Seed 000 eqs. 1-4, averaged over the batch: alpha J_d (cross entropy) + beta J_pz + gamma J_v, the
    regression terms masked by the label d (no targets for patches without a grasp). pz in centimetres so
    the three terms are of similar size at unit weights."""
    alpha, beta, gamma = weights
    j_d = nn.functional.binary_cross_entropy_with_logits(d_logit, d_true)
    j_pz = (0.5 * d_true * (100.0 * (pz - pz_true)) ** 2).mean()
    j_v = (0.5 * d_true * ((v - v_true) ** 2).sum(dim=1)).mean()
    total = alpha * j_d + beta * j_pz + gamma * j_v
    return total, {"d": j_d.item(), "pz": j_pz.item(), "v": j_v.item()}
