"""The hand-eye calibration file: the camera's optical frame in the arm's base frame.

    # config/hand_eye.yaml
    T_base_cam:
      translation: [x, y, z]          # [m]
      rotation_xyzw: [x, y, z, w]
    solved_by: ...                    # how it was found (grasp_cell.calibrate writes this)

Arm drivers read it (setting ``hand_eye``) so the motion node can map grasps from the camera into the base.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from grasp_cell.core.transform import Transform
from grasp_cell.drivers.base import DriverError


def load_T_base_cam(path: str | Path) -> Transform:
    path = Path(path).expanduser()
    if not path.exists():
        raise DriverError(f"hand-eye calibration {path}: no such file (solve it with python -m grasp_cell.calibrate)")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    try:
        return Transform.from_dict(data["T_base_cam"])
    except (KeyError, TypeError, ValueError) as error:
        raise DriverError(f"hand-eye calibration {path}: expected T_base_cam with translation and "
                          f"rotation_xyzw ({error})") from None


def save_T_base_cam(path: str | Path, T_base_cam: Transform, **notes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"T_base_cam": T_base_cam.to_dict(), **notes}, sort_keys=False), encoding="utf-8")
