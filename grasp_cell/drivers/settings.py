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
