"""Start grasp_cell nodes as real processes for tests, and stop them cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def start_node(module: str, *ros_args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", module]
    if ros_args:
        command += ["--ros-args", *ros_args]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1")
    )


def stop_node(process: subprocess.Popen, timeout: float = 10.0) -> str:
    """SIGINT, wait, kill if needed; returns everything the process printed."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output
