"""What every learner of a cell-trained model shares: one reward and test flag per example, the net and its
optimiser, numbered training rounds, checkpoints, the train/test split and the test metrics. The subclasses
(``planar_learner``, ``region_learner``) add their examples and their training step."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict

import numpy as np
import torch

from grasp_cell.learn.experience import ExperienceRecord


class OnlineLearner(ABC):
    def __init__(self, net: torch.nn.Module, parameters, settings, seed: int):
        """``parameters``: those the optimiser trains (Adam with the settings' ``lr`` and ``weight_decay``)."""
        self.settings = settings
        self.rng = np.random.default_rng(seed)
        self.net = net
        self.optimiser = torch.optim.Adam(parameters, lr=settings.lr, weight_decay=settings.weight_decay)
        self.rewards: list[float] = []
        self.test: list[bool] = []
        self.rounds = 0

    def __len__(self) -> int:
        return len(self.rewards)

    def _note(self, record: ExperienceRecord) -> None:
        """Keep an example's reward and side of the split (after its input was kept)."""
        self.rewards.append(float(record.reward))
        self.test.append(record.test)

    def checkpoint(self) -> dict:
        return {"state_dict": self.net.state_dict(), "optimiser": self.optimiser.state_dict(),
                "rounds": self.rounds, "settings": asdict(self.settings)}

    def restore(self, checkpoint: dict) -> None:
        self.net.load_state_dict(checkpoint["state_dict"])
        if "optimiser" in checkpoint:
            self.optimiser.load_state_dict(checkpoint["optimiser"])
        self.rounds = int(checkpoint.get("rounds", 0))

    def split(self) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the training and the test examples."""
        test = np.asarray(self.test, bool)
        return np.flatnonzero(~test), np.flatnonzero(test)

    @abstractmethod
    def test_logits(self, indices: np.ndarray) -> np.ndarray:
        """The net's logit for each example's attempted grasp, in eval mode, without augmentation."""

    def round_metrics(self, train: np.ndarray, test: np.ndarray, losses: list[float]) -> dict:
        """The finished round's numbers: examples, training success rate and loss, and ``evaluate(test)``."""
        metrics = {
            "round": self.rounds,
            "train_examples": int(train.size),
            "test_examples": int(test.size),
            "train_success": round(float(np.mean([self.rewards[i] for i in train])), 4),
            "train_loss": round(float(np.mean(losses)), 5),
        }
        metrics.update(self.evaluate(test))
        return metrics

    def evaluate(self, indices: np.ndarray) -> dict:
        """Test loss (unweighted cross entropy), accuracy and F1 at psi = 0.5 (seed 002 Fig. 6)."""
        if indices.size == 0:
            return {}
        rewards = np.asarray(self.rewards, np.float32)[indices]
        logits = torch.from_numpy(np.asarray(self.test_logits(indices), np.float32))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.from_numpy(rewards)).item()
        predicted, actual = logits.numpy() > 0.0, rewards > 0.5
        true_positive = int((predicted & actual).sum())
        precision = true_positive / max(int(predicted.sum()), 1)
        recall = true_positive / max(int(actual.sum()), 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-9)
        return {
            "test_loss": round(loss, 5),
            "test_accuracy": round(float((predicted == actual).mean()), 4),
            "test_f1": round(f1, 4),
        }
