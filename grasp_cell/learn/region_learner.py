"""Training seed 001's suction-region network from the cell's own attempts, and pretraining its encoder.

Each attempt becomes one example: the 168 x 168 RGB-D patch whose centre cell is the pixel the suction cup
went to, and the reward. The loss is the cross entropy at that one output cell (seed 001 eq. 3), with the
patch turned by a random multiple of 90 degrees and flipped (the seed's rotation, flip and mirror
augmentation); the cell is carried through the same turn.

The seed freezes an ImageNet ResNet-50 and trains only the U-Net decoder. ImageNet weights cannot be
fetched here, so ``encoder`` chooses what stands in for them:

- ``pretrained``: the encoder is first trained without labels on the cell's own images, as a masked
  autoencoder (patches of a captured RGB-D image are blanked and the net rebuilds them: ``pretrain``),
  then frozen, as in the seed;
- ``random``: frozen at its random initialisation (the seed's setup with nothing to load);
- ``trained``: trained with the decoder from scratch.

Deviation: the seed takes one gradient step per attempt on that attempt; here a training round replays
batches from every attempt so far (the same loss on the same examples, more data per step).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from grasp_cell.learn.experience import ExperienceRecord
from grasp_cell.learn.learner import OnlineLearner
from grasp_cell.models.base import Observation, bin_floor
from grasp_cell.models.region_net import OUTPUT, PATCH, PretextDecoder, SuctionRegionNet
from grasp_cell.models.suction_region import CELL, RGB_MEAN, RGB_SCALE, RegionInput, run_net

ENCODERS = ("pretrained", "random", "trained")
CENTRE = (OUTPUT // 2) * CELL + CELL // 2  # [px] the patch pixel at the centre of output cell 28: 85


@dataclass(frozen=True)
class RegionTrainSettings:
    encoder: str = "pretrained"
    steps_per_round: int = 40
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4  # seed 001: regularisation coefficient 1e-4


def example_of(record: ExperienceRecord, observation: Observation) -> RegionInput:
    """The attempt's 168 x 168 patch, the suction pixel at the centre of output cell (28, 28)."""
    position = np.asarray(record.grasp["position"], dtype=float)
    u, v = np.rint(observation.intrinsics.project(position[None])[0]).astype(int)
    return RegionInput.crop(observation, u - CENTRE, v - CENTRE, PATCH, PATCH, bin_floor(observation))


def augment(rgb: np.ndarray, heights: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """A random quarter turn and flip of both streams, and the output cell the centre pixel lands in."""
    turns, flip = int(rng.integers(4)), bool(rng.integers(2))
    row = col = CENTRE
    for _ in range(turns):  # np.rot90 takes pixel (r, c) to (n - 1 - c, r)
        row, col = PATCH - 1 - col, row
    rgb, heights = np.rot90(rgb, turns, axes=(1, 2)), np.rot90(heights, turns, axes=(1, 2))
    if flip:
        rgb, heights, col = rgb[:, :, ::-1], heights[:, :, ::-1], PATCH - 1 - col
    return np.ascontiguousarray(rgb), np.ascontiguousarray(heights), row // CELL, col // CELL


class RegionLearner(OnlineLearner):
    """Patches in memory (colour as uint8, heights as float16), and training rounds on them."""

    name = "suction_region"

    def __init__(self, settings: RegionTrainSettings = RegionTrainSettings(), seed: int = 0,
                 encoder_state: dict | None = None):
        if settings.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder '{settings.encoder}'; expected one of {', '.join(ENCODERS)}")
        if settings.encoder == "pretrained" and encoder_state is None:
            raise ValueError("the pretrained encoder needs its weights (learn.online run --encoder pretrained)")
        torch.manual_seed(seed)
        net = SuctionRegionNet()
        if encoder_state is not None:
            net.encoder.load_state_dict(encoder_state)
        self.frozen = settings.encoder != "trained"
        if self.frozen:
            net.encoder.requires_grad_(False)  # no gradients computed through it: a round costs a third
        super().__init__(net, net.decoder_parameters() if self.frozen else net.parameters(), settings, seed)
        self.rgb: list[np.ndarray] = []
        self.heights: list[np.ndarray] = []

    def add(self, record: ExperienceRecord, observation: Observation) -> None:
        patch = example_of(record, observation)
        colour = (patch.rgb * RGB_SCALE + RGB_MEAN) * 255.0  # back to the camera's uint8 to keep memory small
        self.rgb.append(np.clip(colour, 0, 255).round().astype(np.uint8))
        self.heights.append(patch.heights.astype(np.float16))
        self._note(record)

    def _batch(self, indices, augmented: bool):
        inputs, cells = [], []
        for i in indices:
            rgb = (self.rgb[i].astype(np.float32) / 255.0 - RGB_MEAN) / RGB_SCALE
            heights = self.heights[i].astype(np.float32)
            if augmented:
                rgb, heights, row, col = augment(rgb, heights, self.rng)
            else:
                row = col = CENTRE // CELL
            inputs.append(RegionInput(rgb, heights))
            cells.append((row, col))
        return inputs, cells

    def _cell_logits(self, inputs, cells) -> torch.Tensor:
        logits = run_net(self.net, inputs)
        rows = torch.as_tensor([c[0] for c in cells])
        cols = torch.as_tensor([c[1] for c in cells])
        return logits[torch.arange(len(cells)), rows, cols]

    def train_round(self) -> dict:
        train, held = self.split()
        if train.size == 0:
            return {"round": self.rounds, "train_examples": 0, "test_examples": int(held.size)}
        rewards = np.asarray(self.rewards, np.float32)
        self.net.train()
        if self.frozen:
            self.net.encoder.eval()  # frozen: batch statistics stay those it was given
        losses = []
        for _ in range(self.settings.steps_per_round):
            pick = train[self.rng.integers(0, train.size, size=min(self.settings.batch_size, train.size))]
            inputs, cells = self._batch(pick, augmented=True)
            logits = self._cell_logits(inputs, cells)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.from_numpy(rewards[pick]))
            self.optimiser.zero_grad()
            loss.backward()
            self.optimiser.step()
            losses.append(loss.item())
        self.rounds += 1
        return self.round_metrics(train, held, losses)

    def test_logits(self, indices: np.ndarray) -> np.ndarray:
        self.net.eval()
        with torch.inference_mode():
            return torch.cat([self._cell_logits(*self._batch(indices[i : i + 32], augmented=False))
                              for i in range(0, indices.size, 32)]).numpy()


# --- pretraining the encoder without labels ----------------------------------------------------------------
def pretrain_encoder(observations: list[Observation], steps: int, seed: int = 0, batch_size: int = 8,
                     mask_fraction: float = 0.4, log=None) -> tuple[dict, list[float]]:
    """A masked autoencoder on random 168 x 168 patches of the cell's own RGB-D images: blank
    ``mask_fraction`` of the 24 x 24 blocks of one stream, rebuild that stream from the encoder's features.
    No grasp labels and no simulator state are used. Returns the encoder's state and the loss curve."""
    import torch.nn.functional as F

    from grasp_cell.models.region_net import SCALE

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    net = SuctionRegionNet()
    decoder = PretextDecoder()
    optimiser = torch.optim.Adam([*net.encoder.parameters(), *decoder.parameters()], lr=1e-3)
    floors = [bin_floor(o) for o in observations]
    size = (round(PATCH * SCALE),) * 2
    losses = []
    for step in range(steps):
        images = []
        for _ in range(batch_size):
            index = int(rng.integers(len(observations)))
            observation = observations[index]
            u_min, v_min, u_max, v_max = observation.roi
            u = int(rng.integers(u_min, u_max)) - PATCH // 2
            v = int(rng.integers(v_min, v_max)) - PATCH // 2
            patch = RegionInput.crop(observation, u, v, PATCH, PATCH, floors[index])
            images.append(patch.rgb if rng.random() < 0.5 else np.repeat(patch.heights, 3, axis=0))
        target = F.interpolate(torch.from_numpy(np.stack(images)), size=size, mode="bilinear", align_corners=False)
        blocks = torch.from_numpy(rng.random((batch_size, 1, 7, 7)) < mask_fraction).float()
        keep = 1.0 - F.interpolate(blocks, size=size, mode="nearest")
        rebuilt = decoder(net.encoder(target * keep), size)
        loss = ((rebuilt - target) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        if log is not None and (step + 1) % 50 == 0:
            log(f"pretrain step {step + 1}/{steps}: loss {np.mean(losses[-50:]):.4f}")
    return net.encoder.state_dict(), losses
