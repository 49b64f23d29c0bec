"""Training seed 002's grasp-success FCN from the cell's own attempts (seed 002 III-C, III-E, III-F).

Each attempt becomes one example: the overview window around the grasp, turned to its angle (the affine
transform R_a T_xy of seed III-C, cut by the model's own ``Overview.windows``), the opening it used and
its reward. Only the output of that opening is trained: cross entropy of the reward, with three weights:

- class balance: positives and negatives weigh half the loss each (seed: an average reward of 0.5 is
  preferred, or the net overfits to the success rate of the moment);
- false positives cost ``negative_cost`` times more than false negatives (seed: a false positive is a
  real failed grasp, a false negative a missed chance among many);
- weighted retraining (seed III-E): before each round the current net predicts every training example
  and example i gets w_i = N (1 - |r_i - psi_i|) / sum_j (1 - |r_j - psi_j|), so an attempt whose outcome
  the net finds implausible (a part that moved, a measurement error) counts less. The first round has
  w_i = 1.

Augmentation: the window turned by 180 degrees is the same grasp (the jaw is symmetric), and the window
mirrored across the closing line is the mirrored grasp; each draw takes one of the four at random.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from grasp_cell.learn.experience import ExperienceRecord
from grasp_cell.learn.learner import OnlineLearner
from grasp_cell.models.base import Observation
from grasp_cell.models.planar_grasp import OPENINGS, Overview
from grasp_cell.models.planar_net import WINDOW, PlanarGraspNet, reward_weighted_loss


@dataclass(frozen=True)
class PlanarTrainSettings:
    steps_per_round: int = 400
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    negative_cost: float = 1.5  # a false positive costs this many false negatives
    weighted_retraining: bool = True


def example_of(record: ExperienceRecord, observation: Observation) -> tuple[np.ndarray, int]:
    """The (WINDOW, WINDOW) height window of an attempt and the index of the opening it used."""
    overview = Overview.from_observation(observation)
    closing = np.asarray(_rotation_column(record.grasp["quat_xyzw"]))
    theta = float(np.arctan2(-closing[1], closing[0]) % np.pi)
    x, y = record.grasp["position"][:2]
    window = overview.windows(np.array([[x, y]]), np.array([theta]), WINDOW)[0, 0].numpy()
    opening = int(np.argmin(np.abs(np.asarray(OPENINGS) - record.grasp["width"])))
    return window, opening


def _rotation_column(quat_xyzw) -> np.ndarray:
    """The grasp frame's x axis (the closing direction) from its quaternion."""
    x, y, z, w = quat_xyzw
    return np.array([1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y + w * z), 2.0 * (x * z - w * y)])


class PlanarLearner(OnlineLearner):
    """Height windows in memory, and training rounds on them."""

    name = "planar_fcn"

    def __init__(self, settings: PlanarTrainSettings = PlanarTrainSettings(), seed: int = 0):
        torch.manual_seed(seed)
        net = PlanarGraspNet()
        super().__init__(net, net.parameters(), settings, seed)
        self.windows: list[np.ndarray] = []
        self.openings: list[int] = []

    def add(self, record: ExperienceRecord, observation: Observation) -> None:
        window, opening = example_of(record, observation)
        self.windows.append(window.astype(np.float32))
        self.openings.append(opening)
        self._note(record)

    def test_logits(self, indices: np.ndarray) -> np.ndarray:
        """The net's logit at each example's opening, in eval mode."""
        self.net.eval()
        out = []
        with torch.inference_mode():
            for start in range(0, indices.size, 512):
                chunk = indices[start : start + 512]
                images = torch.from_numpy(np.stack([self.windows[i] for i in chunk]))[:, None]
                logits = self.net(images)[:, :, 0, 0]
                out.append(logits[torch.arange(len(chunk)), torch.as_tensor([self.openings[i] for i in chunk])])
        return torch.cat(out).numpy() if out else np.zeros(0, np.float32)

    def train_round(self) -> dict:
        """One round of ``steps_per_round`` steps on the training examples; returns the round's metrics."""
        settings = self.settings
        train, test = self.split()
        if train.size == 0:
            return {"round": self.rounds, "train_examples": 0, "test_examples": int(test.size)}
        rewards = np.asarray(self.rewards, np.float32)
        # weighted retraining: the weights come from the net as it stands before this round
        if settings.weighted_retraining and self.rounds > 0:
            psi = 1.0 / (1.0 + np.exp(-self.test_logits(train)))
            plausibility = 1.0 - np.abs(rewards[train] - psi)
            retrain = train.size * plausibility / max(plausibility.sum(), 1e-9)
        else:
            retrain = np.ones(train.size)
        success = float(rewards[train].mean())
        balance = np.where(rewards[train] > 0.5, 0.5 / max(success, 1e-3), 0.5 / max(1.0 - success, 1e-3))
        cost = np.where(rewards[train] > 0.5, 1.0, settings.negative_cost)
        weights = (retrain * balance * cost).astype(np.float32)

        self.net.train()
        losses = []
        for _ in range(settings.steps_per_round):
            pick = self.rng.integers(0, train.size, size=min(settings.batch_size, train.size))
            batch = np.stack([_augmented(self.windows[train[i]], self.rng) for i in pick])
            images = torch.from_numpy(batch)[:, None]
            logits = self.net(images)[:, :, 0, 0]
            chosen = logits[torch.arange(len(pick)), torch.as_tensor([self.openings[train[i]] for i in pick])]
            loss = reward_weighted_loss(chosen, torch.from_numpy(rewards[train[pick]]), torch.from_numpy(weights[pick]))
            self.optimiser.zero_grad()
            loss.backward()
            self.optimiser.step()
            losses.append(loss.item())
        self.rounds += 1
        return self.round_metrics(train, test, losses)


def _augmented(window: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The window, turned by 180 degrees (the same grasp) and/or mirrored across the closing line."""
    if rng.random() < 0.5:
        window = window[::-1, ::-1]
    if rng.random() < 0.5:
        window = window[::-1, :]
    return np.ascontiguousarray(window)
