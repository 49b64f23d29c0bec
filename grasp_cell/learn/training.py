"""Small pieces every trainer uses: the device, atomic checkpoint files, the history file and plot setup."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import torch


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def save_atomic(data, path: Path) -> None:
    """torch.save to a temporary file, then rename: a checkpoint is whole or absent."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(data, tmp)
    tmp.replace(path)


def write_history_csv(run_dir: Path, fields: tuple[str, ...], history: list[dict]) -> None:
    with open(run_dir / "history.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(history)


def pyplot():
    """matplotlib's pyplot without a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def card_number(value, digits: int | None = None):
    """A metric for a YAML model card: None for a missing or NaN value, else a float."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value) if digits is None else round(float(value), digits)
