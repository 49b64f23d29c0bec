"""Style gate: ruff (pyflakes, pycodestyle, import order) over the package, tests and launch file."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.linter
def test_ruff_check():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "grasp_cell", "test", "launch", "setup.py"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_core_layers_never_import_rclpy():
    for layer in ("core", "models", "sim", "learn", "eval"):
        for path in (ROOT / "grasp_cell" / layer).rglob("*.py"):
            source = path.read_text()
            assert "import rclpy" not in source and "from rclpy" not in source, path
