"""The training data a self-supervised cell collects: one record per attempt, written durably.

A folder holds ``experience.jsonl`` (one line per attempt: key, time, reward, the grasp that was tried,
the model and weights version that proposed it, how it was selected) and ``inputs/<key>.npz`` (what the
model saw: the capture cropped to the bin's region of interest plus a margin; depth in 0.1 mm steps,
colour if there was one). The input is written first, then the line, flushed and fsync'ed: a record whose
line is on disk is whole, and a crash leaves at most an input file without a line (ignored on reading).

Nothing here depends on the simulator: the reward is what the gripper reports (the part was lifted or
not), so the same records come from a real cell. Rewards come from the attempt's outcome alone.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from grasp_cell.core.camera import CameraIntrinsics
from grasp_cell.core.grasp import Grasp
from grasp_cell.core.outcome import Outcome
from grasp_cell.eval.attempt_log import append_line, grasp_to_dict
from grasp_cell.models.base import Observation

RECORDS_FILE = "experience.jsonl"
INPUTS_DIR = "inputs"
DEPTH_STEP = 1e-4  # [m] stored depth resolution (uint16: up to 6.5 m)
TEST_FRACTION = 0.2  # seed 002: a timestamp hashing below this belongs to the test set


def is_test(timestamp: float) -> bool:
    """Seed 002's split: a hash of the attempt's timestamp mapped to [0, 1), below 0.2 is test. A record
    never changes sides as data grows, and the sizes of the two sets are not fixed in advance."""
    digest = hashlib.sha256(f"{timestamp:.6f}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < TEST_FRACTION


@dataclass(frozen=True)
class ExperienceRecord:
    key: str  # names the input file
    timestamp: float  # [s since epoch] of the capture
    reward: float  # 1.0 lifted, 0.0 not
    outcome: str  # the attempt's Outcome value
    grasp: dict  # grasp_to_dict of the grasp tried, camera frame
    model: str  # registered model name that proposed it
    version: int  # weights version of that model (-1: not a learning model)
    selection: str  # how the grasp was chosen: random, max, max5, probabilistic, uncertain, ...
    attempt: int  # the attempt's number in the learning run

    @property
    def test(self) -> bool:
        return is_test(self.timestamp)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> "ExperienceRecord":
        return cls(**json.loads(line))


class ExperienceStore:
    """Append-only attempts of a learning cell in ``folder`` (created if missing); reopening it resumes."""

    def __init__(self, folder: Path | str, margin: int = 96):
        self.folder = Path(folder)
        self.margin = margin  # [px] kept around the roi: a grasp near a wall still sees the wall (and seed
        # 001's 168 x 168 patch around a pixel at the roi's edge reaches 85 px beyond it)
        (self.folder / INPUTS_DIR).mkdir(parents=True, exist_ok=True)
        self.path = self.folder / RECORDS_FILE
        _cut_torn_line(self.path)  # so the next record starts on a line of its own
        self.records: list[ExperienceRecord] = read_records(self.folder)

    def __len__(self) -> int:
        return len(self.records)

    def add(
        self,
        observation: Observation,
        grasp: Grasp,
        outcome: Outcome,
        timestamp: float,
    ) -> ExperienceRecord:
        """Store one attempt; returns its record once input and line are on disk."""
        attempt = len(self.records) + 1
        key = f"{attempt:06d}"
        save_input(self.folder / INPUTS_DIR / f"{key}.npz", observation, self.margin)
        record = ExperienceRecord(
            key=key,
            timestamp=float(timestamp),
            reward=1.0 if outcome is Outcome.SUCCESS else 0.0,
            outcome=outcome.value,
            grasp=grasp_to_dict(grasp),
            model=grasp.model,
            version=int(grasp.model_version),
            selection=grasp.selection,
            attempt=attempt,
        )
        append_line(self.path, record.to_json(), durable=True)
        self.records.append(record)
        return record

    def load(self, record: ExperienceRecord) -> Observation:
        return load_input(input_path(self.folder, record))


class ExperienceFeed:
    """A reader of a folder that another process appends to: each call returns the records added since the
    last one, reading on from where it stopped (a trainer polls this several times a second)."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        self._offset = 0  # bytes of whole lines read so far

    def new_records(self) -> list[ExperienceRecord]:
        path = self.folder / RECORDS_FILE
        try:
            if path.stat().st_size == self._offset:
                return []
            with open(path, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        whole = data.rfind(b"\n") + 1  # a line still being written waits for the next call
        self._offset += whole
        return _parse(data[:whole].decode("utf-8").splitlines())

    def load(self, record: ExperienceRecord) -> Observation:
        return load_input(input_path(self.folder, record))


def input_path(folder: Path, record: ExperienceRecord) -> Path:
    return Path(folder) / INPUTS_DIR / f"{record.key}.npz"


def read_records(folder: Path | str) -> list[ExperienceRecord]:
    """The records of a folder, oldest first; a last line cut short by a crash is dropped."""
    path = Path(folder) / RECORDS_FILE
    if not path.exists():
        return []
    return _parse(path.read_text(encoding="utf-8").splitlines())


def _parse(lines: list[str]) -> list[ExperienceRecord]:
    records = []
    for line in lines:
        try:
            records.append(ExperienceRecord.from_json(line))
        except (json.JSONDecodeError, TypeError):
            continue  # only a torn last line can look like this: append_line writes whole lines
    return records


def _cut_torn_line(path: Path) -> None:
    """Drop a last line that a crash left without its newline."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


def save_input(path: Path, observation: Observation, margin: int) -> None:
    """The observation cropped to its roi grown by ``margin`` pixels (whole image without a roi)."""
    intrinsics = observation.intrinsics
    u_min, v_min, u_max, v_max = observation.roi or (0, 0, intrinsics.width, intrinsics.height)
    box = (max(u_min - margin, 0), max(v_min - margin, 0))
    box += (min(u_max + margin, intrinsics.width), min(v_max + margin, intrinsics.height))
    rows, cols = slice(box[1], box[3]), slice(box[0], box[2])
    depth = observation.depth[rows, cols]
    with np.errstate(invalid="ignore"):
        steps = np.where(depth > 0, np.rint(depth / DEPTH_STEP), 0)
    arrays = {
        "depth": np.clip(steps, 0, np.iinfo(np.uint16).max).astype(np.uint16),  # 0 = missing
        "box": np.array(box, np.int32),  # (u_min, v_min, u_max, v_max) of the crop in the full image
        "roi": np.array(observation.roi or (-1, -1, -1, -1), np.int32),
        "intrinsics": np.array([intrinsics.width, intrinsics.height, intrinsics.fx, intrinsics.fy,
                                intrinsics.cx, intrinsics.cy]),
    }
    if observation.color is not None:
        arrays["color"] = observation.color[rows, cols]
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def load_input(path: Path) -> Observation:
    """The stored crop as an Observation of its own: intrinsics and roi shifted to the crop."""
    with np.load(path) as data:
        width, height, fx, fy, cx, cy = data["intrinsics"]
        u0, v0, u1, v1 = (int(x) for x in data["box"])
        full = CameraIntrinsics(int(width), int(height), float(fx), float(fy), float(cx), float(cy))
        steps = data["depth"]
        depth = np.where(steps > 0, steps.astype(np.float32) * np.float32(DEPTH_STEP), np.nan).astype(np.float32)
        roi = tuple(int(x) for x in data["roi"])
        color = data["color"] if "color" in data.files else None
    roi = None if roi[0] < 0 else (roi[0] - u0, roi[1] - v0, roi[2] - u0, roi[3] - v0)
    return Observation(depth, full.cropped(u0, v0, u1 - u0, v1 - v0), color, roi)
