"""Supervisor node: pick until empty over the camera, grasp and motion nodes.

Each attempt: ``capture`` service -> ``plan_grasps`` service -> ``pick`` action; the record is written
to ``<log_dir>/<run>/attempts.jsonl`` and published as a PickEvent. At the end the summary (SR, PC,
failures by cause, PPH) is printed and written to ``summary.json``, and the node exits.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import rclpy
from rclpy.action import ActionClient
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from std_msgs.msg import Header

from grasp_cell.action import Pick
from grasp_cell.core.grasp import Grasp
from grasp_cell.core.outcome import Outcome
from grasp_cell.core.pick import PickResult
from grasp_cell.drivers.base import Capture as CaptureData
from grasp_cell.drivers.base import DriverError
from grasp_cell.eval.attempt_log import (
    RUN_FILE,
    SUMMARY_FILE,
    AttemptLog,
    AttemptRecord,
    git_commit,
    new_run_dir,
    read_attempts,
    write_json,
)
from grasp_cell.eval.metrics import summarize
from grasp_cell.eval.pick_loop import PickUntilEmpty, PlanningError, StopRules
from grasp_cell.learn.experience import ExperienceStore
from grasp_cell.models.base import Observation
from grasp_cell.msg import Grasp as GraspMsg
from grasp_cell.msg import PickEvent
from grasp_cell.nodes import convert
from grasp_cell.srv import Capture, PlanGrasps

EVENTS_QOS = QoSProfile(depth=1000, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def _wait(future, timeout: float):
    """Block this (worker) thread until an rclpy future is done; None on timeout."""
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    if not done.wait(timeout):
        return None
    return future.result()


class RosCell:
    """The pick loop's Cell, spoken over ROS: services for capture and planning, an action for the pick."""

    def __init__(self, node: "SupervisorNode"):
        self.node = node
        self._last_request: PlanGrasps.Request | None = None
        self.last_capture: CaptureData | None = None  # of the attempt under way
        self.last_grasp: Grasp | None = None  # the grasp it executed

    def capture(self) -> CaptureData:
        response = _wait(self.node.capture_client.call_async(Capture.Request()), self.node.capture_timeout)
        if response is None:
            raise DriverError(f"no answer from the camera within {self.node.capture_timeout:.0f} s")
        if not response.success:
            raise DriverError(response.message)
        # keep the messages: planning forwards them unchanged instead of decoding and re-encoding
        self._last_request = PlanGrasps.Request(
            depth=response.depth, color=response.color, camera_info=response.camera_info, workspace=response.workspace
        )
        self.last_grasp = None
        self.last_capture = CaptureData(
            depth=convert.from_depth_msg(response.depth),
            intrinsics=convert.from_camera_info_msg(response.camera_info),
            color=convert.from_color_msg(response.color) if self.node.experience is not None else None,
            stamp=response.depth.header.stamp.sec + 1e-9 * response.depth.header.stamp.nanosec,
            parts_in_bin=response.parts_in_bin,
            roi=convert.from_roi_msg(response.workspace),
        )
        return self.last_capture

    def plan(self, capture: CaptureData) -> list[Grasp]:
        request = self._last_request
        response = _wait(self.node.plan_client.call_async(request), self.node.plan_timeout)
        if response is None:
            raise PlanningError(f"no answer from the grasp node within {self.node.plan_timeout:.0f} s")
        if response.status in (PlanGrasps.Response.STATUS_BAD_INPUT, PlanGrasps.Response.STATUS_ERROR):
            raise PlanningError(response.message)
        self.node.last_grasp_msgs = list(response.grasps)
        return [convert.from_grasp_msg(msg) for msg in response.grasps]

    def pick(self, grasp: Grasp) -> PickResult:
        self.last_grasp = grasp
        header = Header(frame_id=self._last_request.depth.header.frame_id, stamp=self._last_request.depth.header.stamp)
        goal = Pick.Goal(grasp=convert.to_grasp_msg(grasp, header))
        timeout = self.node.pick_timeout
        goal_handle = _wait(self.node.pick_client.send_goal_async(goal), timeout)
        if goal_handle is None or not goal_handle.accepted:
            return PickResult(Outcome.DRIVER_ERROR, message="the motion node did not accept the pick")
        response = _wait(goal_handle.get_result_async(), timeout)
        if response is None:
            return PickResult(Outcome.DRIVER_ERROR, message=f"pick did not finish within {timeout:.0f} s")
        result = response.result
        try:
            outcome = Outcome(result.outcome)
        except ValueError:
            return PickResult(Outcome.DRIVER_ERROR, message=f"motion node reported unknown outcome '{result.outcome}'")
        return PickResult(
            outcome=outcome,
            phase_durations=dict(zip(result.phase_names, result.phase_durations)),
            message=result.message,
            parts_removed=result.parts_removed,
        )


class SupervisorNode(Node):
    def __init__(self):
        super().__init__("supervisor_node")
        self.model_name = self.declare_parameter("model", "baseline").value
        self.log_dir = Path(self.declare_parameter("log_dir", "runs").value).expanduser()
        self.run_name = self.declare_parameter("run_name", "").value or f"sim_{self.model_name}"
        self.rules = StopRules(
            max_attempts=self.declare_parameter("max_attempts", 0).value,
            max_consecutive_failures=self.declare_parameter("max_consecutive_failures", 5).value,
        )
        self.server_timeout = self.declare_parameter("server_timeout", 60.0).value
        self.capture_timeout = self.declare_parameter("capture_timeout", 10.0).value
        self.plan_timeout = self.declare_parameter("plan_timeout", 10.0).value
        self.pick_timeout = self.declare_parameter("pick_timeout", 60.0).value
        self.run_config = self.declare_parameter("run_config", "").value  # JSON of the launch arguments
        # after the run, stay up this long so late joiners of the transient-local pick_events get the whole run
        self.linger = self.declare_parameter("linger", 2.0).value  # [s]

        self.capture_client = self.create_client(Capture, "capture")
        self.plan_client = self.create_client(PlanGrasps, "plan_grasps")
        self.pick_client = ActionClient(self, Pick, "pick")
        # transient local: a recorder or test that joins late still gets the run's events
        self.events = self.create_publisher(PickEvent, "pick_events", EVENTS_QOS)
        self.last_grasp_msgs: list[GraspMsg] = []
        self.loop: PickUntilEmpty | None = None
        self.cell: RosCell | None = None
        # learning mode: every attempt with a grasp also becomes a training example there
        experience_dir = self.declare_parameter("experience_dir", "").value
        self.experience = ExperienceStore(Path(experience_dir).expanduser()) if experience_dir else None

    def wait_for_servers(self) -> bool:
        deadline = time.monotonic() + self.server_timeout
        pending = {"capture": self.capture_client.wait_for_service, "plan_grasps": self.plan_client.wait_for_service}
        pending["pick"] = self.pick_client.wait_for_server
        for name, wait in pending.items():
            if not wait(timeout_sec=max(deadline - time.monotonic(), 0.1)):
                self.get_logger().error(f"'{name}' is not available after {self.server_timeout:.0f} s")
                return False
        return True

    def run(self) -> int:
        """Pick until empty; returns a process exit code."""
        if not self.wait_for_servers():
            return 2
        run_dir = new_run_dir(self.log_dir, self.run_name)
        write_json(
            run_dir / RUN_FILE,
            {
                "model": self.model_name,
                "stop_rules": vars(self.rules),
                "launch_arguments": self.run_config,
                "git_commit": git_commit(),
                "started_at": time.time(),
            },
        )
        print(f"[supervisor] logging attempts to {run_dir}", flush=True)
        with AttemptLog(run_dir) as log:
            self.cell = RosCell(self)
            self.loop = PickUntilEmpty(self.cell, log, self.rules, self.model_name, on_attempt=self.report)
            stop_reason = self.loop.run()
        summary = summarize(read_attempts(run_dir), stop_reason)
        write_json(run_dir / SUMMARY_FILE, summary.to_dict())
        print("[supervisor] run finished\n" + summary.format(), flush=True)
        time.sleep(self.linger)
        return 0

    def record_experience(self, record: AttemptRecord) -> None:
        """Learning mode: the attempt's input, grasp and reward into the experience folder. A driver error
        says nothing about the grasp and is not a lesson; a failed write is reported, the run goes on."""
        cell = self.cell
        if self.experience is None or cell is None or cell.last_grasp is None or cell.last_capture is None:
            return
        if record.outcome in (Outcome.DRIVER_ERROR, Outcome.NO_GRASP):
            return
        capture = cell.last_capture
        try:
            observation = Observation(capture.depth, capture.intrinsics, capture.color, capture.roi)
            self.experience.add(observation, cell.last_grasp, record.outcome, capture.stamp or record.started_at)
        except (OSError, ValueError) as error:
            self.get_logger().error(f"attempt {record.attempt} not recorded for learning: {error}")

    def report(self, record: AttemptRecord) -> None:
        self.record_experience(record)
        phases = " ".join(f"{name} {value:.2f}s" for name, value in record.phase_durations.items())
        parts = f"parts {record.parts_before}->{record.parts_after}" if record.parts_before >= 0 else ""
        outcome = record.outcome.value
        print(f"[attempt {record.attempt:3d}] {outcome:<12} {parts}  {phases}  {record.message}", flush=True)
        event = PickEvent(
            header=Header(stamp=convert.to_time_msg(record.started_at)),
            attempt=record.attempt,
            outcome=record.outcome.value,
            message=record.message,
            model=record.model,
            parts_before=record.parts_before,
            parts_after=record.parts_after,
            phase_names=list(record.phase_durations),
            phase_durations=[float(v) for v in record.phase_durations.values()],
        )
        if record.grasp is not None and self.last_grasp_msgs:
            event.grasp = self.last_grasp_msgs[0]
        if self.context.ok():  # after Ctrl-C the log still gets the record; ROS is gone
            self.events.publish(event)


def main(args=None):
    exit_code = 0
    try:
        with rclpy.init(args=args):
            node = SupervisorNode()
            executor = MultiThreadedExecutor()
            executor.add_node(node)
            spinner = threading.Thread(target=executor.spin, daemon=True)
            spinner.start()
            try:
                exit_code = node.run()
            finally:
                if node.loop is not None:
                    node.loop.stop()
                # stop and join the spinner before rclpy shuts down, or its thread dies inside C++ at exit
                executor.shutdown()
                spinner.join(timeout=5.0)
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    raise SystemExit(exit_code)


if __name__ == "__main__":
    main()
