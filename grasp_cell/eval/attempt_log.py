"""Raw per-attempt records, one JSON line each, written durably; metrics are computed afterwards.

A run directory holds ``run.json`` (configuration, seed, git commit), ``attempts.jsonl`` (one line per
attempt, flushed and fsync'ed before the next attempt starts) and ``summary.json`` (derived).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from grasp_cell.core.grasp import Grasp
from grasp_cell.core.outcome import Outcome

ATTEMPTS_FILE = "attempts.jsonl"
RUN_FILE = "run.json"
SUMMARY_FILE = "summary.json"


def grasp_to_dict(grasp: Grasp) -> dict:
    return {
        "position": [round(float(x), 6) for x in grasp.position],
        "quat_xyzw": [round(float(x), 6) for x in grasp.T_cam_grasp.quat_xyzw],
        "approach": [round(float(x), 6) for x in grasp.approach],
        "gripper": grasp.gripper.value,
        "width": round(float(grasp.width), 6),
        "quality": round(float(grasp.quality), 6),
        "pixel": [int(grasp.pixel[0]), int(grasp.pixel[1])],
        "model": grasp.model,
        "model_version": int(grasp.model_version),
        "selection": grasp.selection,
    }


@dataclass
class AttemptRecord:
    """One attempt as it happened. ``parts_*`` are -1 where the cell cannot count parts."""

    attempt: int
    outcome: Outcome
    message: str = ""
    model: str = ""
    grasp: dict | None = None
    parts_before: int = -1
    parts_after: int = -1
    parts_removed: int = 0
    phase_durations: dict[str, float] = field(default_factory=dict)
    started_at: float = 0.0  # [s since epoch]
    duration: float = 0.0  # [s] wall time of the whole attempt

    def to_json(self) -> str:
        data = asdict(self)
        data["outcome"] = self.outcome.value
        data["phase_durations"] = {k: round(v, 6) for k, v in self.phase_durations.items()}
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> "AttemptRecord":
        data = json.loads(line)
        data["outcome"] = Outcome(data["outcome"])
        return cls(**data)


class AttemptLog:
    """Appends attempt records to ``<run_dir>/attempts.jsonl``, each one on disk before ``append`` returns."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / ATTEMPTS_FILE
        self._file = open(self.path, "a", encoding="utf-8")

    def append(self, record: AttemptRecord) -> None:
        self._file.write(record.to_json() + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "AttemptLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_attempts(run_dir: Path) -> list[AttemptRecord]:
    path = Path(run_dir) / ATTEMPTS_FILE
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as lines:
        return [AttemptRecord.from_json(line) for line in lines if line.strip()]


def new_run_dir(root: Path, description: str) -> Path:
    """``<root>/<YYYY-mm-dd_HH-MM-SS>_<description>``, made unique if two runs start in the same second."""
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    run_dir = Path(root) / f"{stamp}_{description}"
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = Path(root) / f"{stamp}_{description}_{suffix}"
    run_dir.mkdir(parents=True)
    return run_dir


def git_commit() -> str:
    """The checkout's commit, or "" outside a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def record_in_model_card(name: str, section: str, data: dict, cards_dir: Path | None = None) -> Path | None:
    """Set ``section`` of model ``name``'s card (``<name>.yaml`` beside its weights) to ``data``; returns the
    card, or None when the model has none (the non-learned models)."""
    import yaml

    from grasp_cell.models.base import models_dir

    card_path = Path(cards_dir or models_dir()) / f"{name}.yaml"
    if not card_path.exists():
        return None
    card = yaml.safe_load(card_path.read_text(encoding="utf-8"))
    card[section] = data
    card_path.write_text(yaml.safe_dump(card, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return card_path


def append_line(path: Path, line: str, durable: bool = False) -> None:
    """Append one line with a single write to an O_APPEND file, so worker processes never interleave;
    ``durable``: on disk (fsync) before returning."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, data: dict) -> None:
    """Write atomically so a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
