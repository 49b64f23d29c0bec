"""Driver settings: a YAML file under config/hardware/ with launch-time options laid over it."""

from __future__ import annotations

from pathlib import Path

import yaml

from grasp_cell.drivers.base import DriverError


def load_settings(path: str | Path | None, options: dict | None = None) -> dict:
    """The mapping in ``path`` (none: empty) updated with ``options`` (values that are not empty)."""
    settings: dict = {}
    if path:
        path = Path(path).expanduser()
        if not path.exists():
            raise DriverError(f"driver settings {path}: no such file")
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise DriverError(f"driver settings {path}: expected a mapping at the top level")
        settings.update(loaded)
    settings.update({key: value for key, value in (options or {}).items() if value not in ("", None)})
    return settings


def require(settings: dict, key: str, driver: str):
    """``settings[key]``, or a DriverError naming the driver and the missing key."""
    if key not in settings or settings[key] in ("", None):
        raise DriverError(f"{driver}: setting '{key}' is missing (set it in the driver's YAML or as a launch option)")
    return settings[key]


def flag(value, name: str, driver: str) -> bool:
    """A YAML boolean, or "true" / "false" as a launch option arrives; DriverError for anything else."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise DriverError(f"{driver}: {name} must be true or false, got {value!r}")
    return text == "true"


def roi_setting(settings: dict, driver: str, width: int | None = None, height: int | None = None):
    """The ``roi`` setting, the bin's pixel box ``[u_min, v_min, u_max, v_max]`` (max exclusive), as a tuple;
    empty or absent: None (plan on the whole image). Checked against the image size where it is known."""
    roi = settings.get("roi") or None
    if roi is None:
        return None
    try:
        roi = tuple(int(x) for x in roi)
    except (TypeError, ValueError):
        roi = ()
    ordered = len(roi) == 4 and 0 <= roi[0] < roi[2] and 0 <= roi[1] < roi[3]
    inside = ordered and (width is None or roi[2] <= width) and (height is None or roi[3] <= height)
    if not inside:
        size = f" inside the {width}x{height} image" if width is not None and height is not None else ""
        raise DriverError(f"{driver}: roi must be [u_min, v_min, u_max, v_max]{size} or empty, got {settings['roi']!r}")
    return roi


def package_path(path: str | Path) -> Path:
    """A relative path from the current folder if it is there, else from the package's (config/ lives there)."""
    from grasp_cell.graph import package_share

    path = Path(path).expanduser()
    return path if path.is_absolute() or path.exists() else package_share() / path
