"""How a learning model picks the grasp to try from its predicted success probabilities.

Seed 002 III-D: ``random`` (uniform over the grasp space; the only choice guaranteed to span it), ``max``
and ``max5`` (one of the N best, N = 1 or 5; exploitation), ``probabilistic`` (drawn with probability
proportional to the prediction: improves the grasp rate and keeps exploring) and ``uncertain`` (the
prediction nearest 0.5, where an attempt teaches most). Seed 001 eq. 4: random with a probability that
decays with the attempts made, else the best.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SELECTIONS = ("random", "max", "max5", "probabilistic", "uncertain")


def select(method: str, probability: np.ndarray, valid: np.ndarray, rng: np.random.Generator) -> int:
    """Flat index of the chosen grasp among the ``valid`` entries of ``probability`` (any shape)."""
    candidates = np.flatnonzero(valid)
    if candidates.size == 0:
        raise ValueError("no valid grasp to select from")
    psi = probability.ravel()[candidates].astype(np.float64)
    if method == "random":
        return int(rng.choice(candidates))
    if method in ("max", "max5"):
        count = 1 if method == "max" else 5
        best = np.argsort(-psi, kind="stable")[:count]
        return int(candidates[rng.choice(best)])
    if method == "probabilistic":
        total = psi.sum()
        if not total > 0:
            return int(rng.choice(candidates))
        return int(rng.choice(candidates, p=psi / total))
    if method == "uncertain":
        return int(candidates[np.argmin(np.abs(0.5 - psi))])
    raise ValueError(f"unknown selection '{method}'; expected one of {', '.join(SELECTIONS)}")


@dataclass(frozen=True)
class ExplorationSchedule:
    """Seed 002's run, shortened: the first ``random_attempts`` attempts are random (the seed's first 1 000
    of 23 000), then each attempt draws its selection with the shares the seed's run used after that
    (random 1 440, probabilistic 8 830, uncertain 1 300, max(5) 9 430 of 21 000 attempts)."""

    random_attempts: int = 300
    shares: tuple[tuple[str, float], ...] = (
        ("random", 0.07),
        ("probabilistic", 0.42),
        ("uncertain", 0.06),
        ("max5", 0.45),
    )

    def method(self, attempts: int, rng: np.random.Generator) -> str:
        """The selection for the next attempt after ``attempts`` attempts."""
        if attempts < self.random_attempts:
            return "random"
        names = [name for name, _ in self.shares]
        weights = np.array([share for _, share in self.shares], dtype=np.float64)
        return str(rng.choice(names, p=weights / weights.sum()))


def decaying_exploration(attempts: int, decay_attempts: float = 1000.0) -> float:
    """Seed 001 eq. 4: the probability of a random choice, 0.5 x 5^(-n / N_ep)."""
    return 0.5 * 5.0 ** (-attempts / decay_attempts)
