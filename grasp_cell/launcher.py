"""The pip route's stand-in for ``ros2 launch`` (launch and launch_ros are not on PyPI).

Starts every process of ``graph.node_graph`` as ``python -m grasp_cell.nodes.<executable>`` with the
same parameter files and overrides the launch file passes, streams their output with a name prefix,
and ends the cell when the supervisor exits (or any node dies first).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from grasp_cell.graph import NodeSpec, node_graph

NODE_MODULES = {
    "camera_node": "grasp_cell.nodes.camera_node",
    "grasp_node": "grasp_cell.nodes.grasp_node",
    "motion_node": "grasp_cell.nodes.motion_node",
    "supervisor_node": "grasp_cell.nodes.supervisor_node",
    "sim_cell_node": "grasp_cell.nodes.sim_cell_node",
    "trainer_node": "grasp_cell.nodes.trainer_node",
}


def ros_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """Keep DDS traffic on this machine unless the user chose otherwise."""
    env = dict(os.environ if base is None else base)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def node_command(spec: NodeSpec, overrides_file: Path) -> list[str]:
    command = [sys.executable, "-m", NODE_MODULES[spec.executable], *spec.arguments, "--ros-args"]
    for path in spec.param_files:
        command += ["--params-file", str(path)]
    return command + ["--params-file", str(overrides_file)]


def write_overrides(spec: NodeSpec, folder: Path) -> Path:
    """Launch-argument overrides as a parameter file (values keep their types; strings need no quoting)."""
    path = folder / f"{spec.name}.yaml"
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": spec.parameters}}), encoding="utf-8")
    return path


def _stream(process: subprocess.Popen, prefix: str, out) -> None:
    for line in process.stdout:
        out.write(line if not prefix else f"{prefix} {line}")
        out.flush()


def launch(overrides: dict[str, str], out=sys.stdout) -> int:
    """Run the cell; returns the supervisor's exit code (1 if another node died first)."""
    specs = node_graph(overrides)
    runnable = []
    for spec in specs:
        if spec.needs_ros_install:
            out.write(f"[launch] {spec.executable} needs a ROS 2 install (not on PyPI); skipped here. "
                      f"Use `ros2 launch grasp_cell bin_pick.launch.py` there.\n")
        else:
            runnable.append(spec)
    env = ros_environment()
    # Ctrl-C and a service manager's SIGTERM both stop the cell the same orderly way
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    processes: dict[str, subprocess.Popen] = {}
    threads = []
    with tempfile.TemporaryDirectory(prefix="grasp_cell_launch_") as folder:
        try:
            for spec in runnable:
                command = node_command(spec, write_overrides(spec, Path(folder)))
                process = subprocess.Popen(
                    command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                    start_new_session=True,  # our Ctrl-C handling decides when children stop
                )
                processes[spec.name] = process
                # the supervisor's lines are the report: print them as they are
                prefix = "" if spec.exit_ends_launch else f"[{spec.name}]"
                thread = threading.Thread(target=_stream, args=(process, prefix, out), daemon=True)
                thread.start()
                threads.append(thread)
            main = next(spec.name for spec in runnable if spec.exit_ends_launch)
            code = _wait_for_end(processes, main, out)
        except KeyboardInterrupt:
            out.write("[launch] interrupted: stopping the cell\n")
            code = 130
        finally:
            _stop_all(processes)
            for thread in threads:
                thread.join(timeout=2.0)
    return code


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def _wait_for_end(processes: dict[str, subprocess.Popen], main: str, out) -> int:
    while True:
        code = processes[main].poll()
        if code is not None:
            return code
        for name, process in processes.items():
            if name != main and process.poll() is not None:
                out.write(f"[launch] {name} exited with code {process.returncode} before the run ended\n")
                return 1
        time.sleep(0.1)


def _stop_all(processes: dict[str, subprocess.Popen], timeout: float = 5.0) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout
    for process in processes.values():
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
