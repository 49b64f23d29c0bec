"""Versioned weights of a model that keeps learning: a trainer publishes, a model in service follows.

A snapshot folder holds ``snapshot_<version>.pt`` files and ``latest.json`` naming the newest one with what
the trainer knew then (attempts trained on, test metrics). Each file is written whole and renamed into
place, ``latest.json`` last, so a reader sees the previous snapshot or the new one, never half of one.
A model built with a snapshot folder checks ``latest.json`` before each plan and loads a newer version
without a restart of the process (the grasp node keeps serving).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from grasp_cell.eval.attempt_log import write_json
from grasp_cell.models.base import GraspModel

LATEST_FILE = "latest.json"


def snapshot_file(version: int) -> str:
    return f"snapshot_{version:05d}.pt"


class SnapshotFolder:
    def __init__(self, folder: Path | str):
        self.folder = Path(folder)

    def publish(self, checkpoint: dict, info: dict) -> int:
        """Save ``checkpoint`` (torch-serialisable) as the next version; returns the version."""
        import torch

        self.folder.mkdir(parents=True, exist_ok=True)
        latest = self.latest()
        version = 0 if latest is None else int(latest["version"]) + 1
        name = snapshot_file(version)
        tmp = self.folder / (name + ".tmp")
        torch.save(checkpoint, tmp)
        os.replace(tmp, self.folder / name)
        write_json(self.folder / LATEST_FILE, {**info, "version": version, "file": name})
        return version

    def latest(self) -> dict | None:
        """What ``latest.json`` says (version, file, the trainer's info), or None before the first publish."""
        try:
            return json.loads((self.folder / LATEST_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def load(self, info: dict) -> dict:
        import torch

        return torch.load(self.folder / info["file"], map_location="cpu", weights_only=True)


class SnapshotWatcher:
    """Tells a model in service when a newer snapshot is there (one stat call when nothing changed)."""

    def __init__(self, folder: Path | str):
        self.snapshots = SnapshotFolder(folder)
        self._seen: tuple[int, int] | None = None  # (mtime_ns, size) of latest.json when last read
        self.info: dict | None = None

    def poll(self) -> dict | None:
        """The new snapshot's info (and ``checkpoint``) if one was published since the last poll, else None."""
        try:
            stat = os.stat(self.snapshots.folder / LATEST_FILE)
        except FileNotFoundError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._seen:
            return None
        info = self.snapshots.latest()
        self._seen = stamp
        if info is None or (self.info is not None and info["version"] == self.info["version"]):
            return None
        self.info = info
        return {**info, "checkpoint": self.snapshots.load(info)}


class LearningGraspModel(GraspModel):
    """A grasp model whose torch ``net`` is trained by the cell: it loads a checkpoint, or follows a snapshot
    folder (``snapshots``), knows its weights ``version`` and how many attempts they were trained on, and
    counts its plans since (an exploration schedule runs on ``attempts_seen``)."""

    def _init_weights(self, net, checkpoint: dict | None, snapshots: Path | str | None) -> None:
        import torch

        self._torch = torch
        self.net = net
        self.version = -1  # weights version (-1: not from a snapshot folder)
        self.trained_attempts = 0  # attempts the weights were trained on
        self.plans_since_load = 0
        self.watcher = SnapshotWatcher(snapshots) if snapshots is not None else None
        if checkpoint is not None:
            self._load(checkpoint)
        self.net.eval()

    @classmethod
    def from_file(cls, path: Path | str, **options) -> "LearningGraspModel":
        import torch

        return cls(torch.load(Path(path), map_location="cpu", weights_only=True), **options)

    @property
    def attempts_seen(self) -> int:
        """Attempts behind the current weights plus the plans made with them."""
        return self.trained_attempts + self.plans_since_load

    def _load(self, checkpoint: dict, info: dict | None = None) -> None:
        self.net.load_state_dict(checkpoint["state_dict"])
        self.net.eval()
        info = info or {}
        self.version = int(info.get("version", -1))
        self.trained_attempts = int(info.get("attempts", checkpoint.get("attempts", 0)))
        self.plans_since_load = 0

    def refresh(self) -> bool:
        """Load the snapshot folder's newest weights if they changed; True when new weights were loaded."""
        if self.watcher is None:
            return False
        update = self.watcher.poll()
        if update is None:
            return False
        self._load(update.pop("checkpoint"), update)
        return True
