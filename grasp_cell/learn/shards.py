"""Datasets written as numbered shards: settings checked against the folder's meta.json, each shard saved
whole or not at all, missing shards made in worker processes with a progress bar. Resuming is running
the same command again: existing shards are kept."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import warnings
import zipfile
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from tqdm import tqdm

from grasp_cell.eval.attempt_log import write_json

SHARD_NAME = re.compile(r"^shard_\d+\.npz$")


def list_shards(folder: Path, arrays: Iterable[str] = ()) -> list[Path]:
    """The complete shards in ``folder`` that hold ``arrays``, in order: files still being written (or
    broken) are left out with a warning."""
    found = []
    for path in sorted(Path(folder).iterdir()):
        if not SHARD_NAME.match(path.name):
            continue
        try:
            with zipfile.ZipFile(path) as archive:  # an .npz is a zip: a partial file has no central directory
                names = set(archive.namelist())
        except (zipfile.BadZipFile, OSError):
            warnings.warn(f"skipping incomplete shard {path}", stacklevel=2)
            continue
        if {f"{name}.npy" for name in arrays} <= names:
            found.append(path)
    return found


def shard_path(out: Path, shard: int) -> Path:
    return Path(out) / f"shard_{shard:05d}.npz"


def open_dataset(out: Path, meta: dict, fixed: Iterable[str]) -> None:
    """Create ``out`` and write ``meta.json``; refuse (ValueError) if the folder holds shards made with other
    values of the ``fixed`` settings."""
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "meta.json"
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        changed = [key for key in fixed if old.get(key) != meta.get(key)]
        if changed:
            raise ValueError(f"{out} was made with other settings ({', '.join(changed)}); use another folder")
    write_json(meta_path, meta)


def missing_shards(out: Path, count: int) -> list[int]:
    return [shard for shard in range(count) if not shard_path(out, shard).exists()]


def save_shard(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)  # a shard exists complete or not at all: that is what resuming relies on


def make_shards(make: Callable, tasks: list, workers: int) -> list:
    """``make(task)`` for every task, in ``workers`` spawned processes when more than one, with a progress
    bar; returns the results in completion order."""
    results = []
    with tqdm(total=len(tasks), unit="shard") as bar:
        if workers > 1 and len(tasks) > 1:
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for result in pool.imap_unordered(make, tasks):
                    results.append(result)
                    bar.update()
        else:
            for task in tasks:
                results.append(make(task))
                bar.update()
    return results
