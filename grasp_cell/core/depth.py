"""Depth images inside the core: float32 metres, NaN for missing pixels.

At the boundary 32FC1 (metres, NaN or 0 missing) and 16UC1 (millimetres, 0 missing) are accepted, and the
colour image beside them in rgb8, bgr8, rgba8 or bgra8 (decoded to RGB).
"""

from __future__ import annotations

import numpy as np

SUPPORTED_ENCODINGS = ("32FC1", "16UC1")
# colour encoding -> (bytes per pixel, the channel order giving RGB)
COLOR_ENCODINGS = {"rgb8": (3, [0, 1, 2]), "bgr8": (3, [2, 1, 0]), "rgba8": (4, [0, 1, 2]), "bgra8": (4, [2, 1, 0])}


class DepthError(ValueError):
    """A depth image the cell cannot plan on; the message says why."""


def depth_to_metres(data: np.ndarray, encoding: str) -> np.ndarray:
    """Convert a raw depth array to float32 metres with NaN for missing pixels (a new array)."""
    if encoding == "32FC1":
        depth = np.asarray(data, dtype=np.float32).copy()
    elif encoding == "16UC1":
        depth = np.asarray(data, dtype=np.uint16).astype(np.float32) * 1e-3
    else:
        raise DepthError(f"unsupported depth encoding '{encoding}'; expected one of {', '.join(SUPPORTED_ENCODINGS)}")
    depth[~np.isfinite(depth) | (depth <= 0.0)] = np.nan
    return depth


def depth_from_bytes(buffer: bytes, height: int, width: int, encoding: str, step: int, big_endian: bool = False):
    """Decode a sensor_msgs/Image payload (row stride ``step`` bytes) into float32 metres."""
    if encoding not in SUPPORTED_ENCODINGS:
        raise DepthError(f"unsupported depth encoding '{encoding}'; expected one of {', '.join(SUPPORTED_ENCODINGS)}")
    if height <= 0 or width <= 0:
        raise DepthError(f"depth image is empty ({width}x{height})")
    dtype = np.dtype(np.float32 if encoding == "32FC1" else np.uint16).newbyteorder(">" if big_endian else "<")
    row_bytes = width * dtype.itemsize
    if step < row_bytes or len(buffer) < step * height:
        raise DepthError(f"depth buffer of {len(buffer)} bytes is too short for {width}x{height} {encoding}")
    rows = np.frombuffer(buffer, dtype=np.uint8, count=step * height).reshape(height, step)[:, :row_bytes]
    return depth_to_metres(np.ascontiguousarray(rows).view(dtype).reshape(height, width), encoding)


def color_from_bytes(buffer: bytes, height: int, width: int, encoding: str, step: int) -> np.ndarray:
    """Decode a sensor_msgs/Image colour payload (row stride ``step`` bytes) into (H, W, 3) uint8 RGB."""
    if encoding not in COLOR_ENCODINGS:
        raise DepthError(f"unsupported color encoding '{encoding}'; expected one of {', '.join(COLOR_ENCODINGS)}")
    if height <= 0 or width <= 0:
        raise DepthError(f"color image is empty ({width}x{height})")
    channels, rgb = COLOR_ENCODINGS[encoding]
    row_bytes = channels * width
    if step < row_bytes or len(buffer) < step * height:
        raise DepthError(f"color buffer of {len(buffer)} bytes is too short for {width}x{height} {encoding}")
    rows = np.frombuffer(buffer, np.uint8, count=step * height).reshape(height, step)
    return np.ascontiguousarray(rows[:, :row_bytes].reshape(height, width, channels)[..., rgb])


def validate_depth(depth: np.ndarray, min_valid_fraction: float = 0.01) -> None:
    """Raise DepthError if the image is empty or has (almost) no valid pixels."""
    if depth.ndim != 2 or depth.size == 0:
        raise DepthError(f"depth must be a non-empty 2D image, got shape {depth.shape}")
    valid = np.isfinite(depth)
    fraction = float(valid.mean())
    if fraction < min_valid_fraction:
        raise DepthError(
            f"depth has {fraction:.1%} valid pixels (< {min_valid_fraction:.0%}): camera blind or occluded"
        )


def fill_missing(depth: np.ndarray) -> np.ndarray:
    """Fill NaN pixels with the nearest valid value along each row, then column (a cheap inpainting)."""
    filled = depth.copy()
    for axis in (1, 0):
        data = np.moveaxis(filled, axis, -1)
        missing = ~np.isfinite(data)
        if not missing.any():
            break
        index = np.where(~missing, np.arange(data.shape[-1]), 0)
        np.maximum.accumulate(index, axis=-1, out=index)
        forward = np.take_along_axis(data, index, axis=-1)
        data[missing] = forward[missing]
    still = ~np.isfinite(filled)
    if still.any():
        filled[still] = np.nanmax(filled) if np.isfinite(filled).any() else 0.0
    return filled
