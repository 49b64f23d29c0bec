"""The UR5 driver over ur_rtde (grasp_cell.drivers.ur_rtde_arm).

The receive and I/O sides run for real: ur_rtde's RTDEReceiveInterface and RTDEIOInterface talk over loopback to
test/rtde_server.py, a server of UR's RTDE protocol in a process of its own. RTDEControlInterface uploads a URScript
program and needs a real controller, so it is never created here: the moves go to ``StandInControl``, which takes
moveL calls and changes the served state as a controller would.
"""

import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from rtde_server import RTDEServer, bind_free_loopback

from grasp_cell.core.grasp import GripperKind
from grasp_cell.core.outcome import Outcome
from grasp_cell.core.transform import Transform, rotation_about_axis
from grasp_cell.drivers import create_arm_driver
from grasp_cell.drivers.base import DriverError, PickRequest
from grasp_cell.drivers.hand_eye import save_T_base_cam
from grasp_cell.drivers.hardware_pick import EmergencyStop, PickMotion, ProtectiveStop, Unreachable
from grasp_cell.drivers.settings import load_settings
from grasp_cell.drivers.ur_rtde_arm import (
    RECEIVED,
    DigitalSignal,
    URArm,
    URConfig,
    URMotion,
    from_ur_pose,
    open_state_interfaces,
    to_ur_pose,
)

FREQUENCY = 100.0  # [Hz] asked of the server: fast enough, light on a busy test machine
PROTECTIVE_STOP, EMERGENCY_STOP = 1 << 2, 1 << 7  # safety_status_bits
RUNNING = {"robot_mode": 7, "safety_mode": 1, "safety_status_bits": 1, "actual_digital_input_bits": 0}
T_BASE_TCP = Transform(rotation_about_axis((0.3, 1.0, 0.2), 2.5), (0.42, -0.13, 0.31))


def wait_until(condition, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.002)


def near(a, b) -> bool:
    return bool(np.allclose(a, b, atol=1e-9))


class StandInControl:
    """Stands in for RTDEControlInterface: records calls; by default moveL 'arrives' by serving the target tcp
    pose and returns once the receive interface shows it, as a controller's blocking moveL would."""

    def __init__(self, server: RTDEServer, receive):
        self.server, self.receive = server, receive
        self.moves: list[tuple[list[float], float, float]] = []
        self.calls: list[str] = []
        self.program_running = True
        self.within_limits = True
        self.on_move = self.arrive

    def arrive(self, pose) -> bool:
        self.server.set(actual_TCP_pose=pose)
        wait_until(lambda: near(self.receive.getActualTCPPose(), pose))
        return True

    def moveL(self, pose, speed, acceleration):
        self.moves.append((list(pose), speed, acceleration))
        return self.on_move(pose)

    def isPoseWithinSafetyLimits(self, pose):
        return self.within_limits

    def isProgramRunning(self):
        return self.program_running

    def reuploadScript(self):
        self.calls.append("reuploadScript")
        self.program_running = True
        return True

    def stopL(self, acceleration):
        self.calls.append("stopL")

    def stopScript(self):
        self.calls.append("stopScript")

    def disconnect(self):
        self.calls.append("disconnect")


@pytest.fixture(scope="module")
def server():
    with RTDEServer() as server:
        yield server


@pytest.fixture(scope="module")
def interfaces(server):
    """One real RTDEReceiveInterface and RTDEIOInterface for the module (each disconnect takes ur_rtde 0.5 s)."""
    receive, io = open_state_interfaces(URConfig(server.host, frequency=FREQUENCY))
    yield receive, io
    io.disconnect()
    receive.disconnect()


@pytest.fixture
def robot(server, interfaces):
    """A URMotion on the served state, idle and running at T_BASE_TCP, with the stand-in control."""
    receive, io = interfaces
    server.set(**RUNNING, actual_TCP_pose=to_ur_pose(T_BASE_TCP), actual_digital_output_bits=0)
    wait_until(lambda: receive.getRobotMode() == 7 and receive.getSafetyStatusBits() == 1
               and near(receive.getActualTCPPose(), to_ur_pose(T_BASE_TCP)))
    return URMotion(URConfig(server.host, frequency=FREQUENCY, call_timeout=1.0), StandInControl(server, receive),
                    receive, io)


def serve(server, motion: URMotion, **outputs) -> None:
    """Serve ``outputs`` and wait until the receive interface has them (the stream runs at FREQUENCY)."""
    server.set(**outputs)
    marker = outputs.get("actual_digital_input_bits")
    stamp = time.monotonic()
    wait_until(lambda: time.monotonic() - stamp > 3.0 / FREQUENCY
               and (marker is None or motion.receive.getActualDigitalInputBits() == marker))


def hand_eye_file(tmp_path):
    path = tmp_path / "hand_eye.yaml"
    save_T_base_cam(path, Transform(rotation_about_axis((1.0, 0.0, 0.0), 3.0), (0.5, 0.0, 0.8)))
    return path


def settings(host: str, tmp_path, **overrides) -> dict:
    return {"driver": "ur5", "host": host, "hand_eye": str(hand_eye_file(tmp_path)),
            "pick_motion": {"T_base_place": {"translation": [0.1, -0.45, 0.15], "rotation_xyzw": [1, 0, 0, 0]}},
            **overrides}


def unused_loopback() -> str:
    """A loopback address where nothing listens on RTDE's port."""
    listener = bind_free_loopback()
    host = listener.getsockname()[0]
    listener.close()
    return host


# --- settings and poses (nothing connects) -------------------------------------------------------------------
def test_default_settings_file():
    loaded = load_settings("config/hardware/ur5.yaml", {"host": "10.0.0.7", "gripper": "suction"})
    config = URConfig.from_settings(loaded)
    assert config.host == "10.0.0.7" and config.frequency == 125.0
    assert config.vacuum_output == DigitalSignal("standard", 0, True) == config.vacuum_input
    np.testing.assert_allclose(config.T_flange_tcp.translation, [0.0, 0.0, 0.15])
    assert PickMotion.from_settings(loaded["pick_motion"]).approach_distance == 0.10


def test_settings_are_checked_before_connecting(tmp_path):
    host = unused_loopback()  # connecting there would fail with a different message
    with pytest.raises(DriverError, match="unknown setting.*speed_scale"):
        URArm.from_settings(settings(host, tmp_path, speed_scale=0.5))
    with pytest.raises(DriverError, match="no tool digital I/O 2"):
        URArm.from_settings(settings(host, tmp_path, vacuum_output={"kind": "tool", "index": 2}))
    with pytest.raises(DriverError, match="gripper parallel is not supported.*suction"):
        URArm.from_settings(settings(host, tmp_path, gripper="parallel"))
    with pytest.raises(DriverError, match="missing_hand_eye.yaml: no such file.*grasp_cell.calibrate"):
        URArm.from_settings(settings(host, tmp_path, hand_eye=str(tmp_path / "missing_hand_eye.yaml")))
    with pytest.raises(DriverError, match="setting 'host' is missing"):
        create_arm_driver("ur5", {**settings(host, tmp_path), "host": ""})


def test_ur_pose_is_translation_and_rotation_vector():
    quarter_turn = Transform(rotation_about_axis((0.0, 0.0, 1.0), np.pi / 2), (0.1, 0.2, 0.3))
    np.testing.assert_allclose(to_ur_pose(quarter_turn), [0.1, 0.2, 0.3, 0.0, 0.0, np.pi / 2], atol=1e-12)
    for T in (Transform.identity(), T_BASE_TCP, Transform(rotation_about_axis((1.0, 0.0, 0.0), np.pi))):
        back = from_ur_pose(to_ur_pose(T))
        np.testing.assert_allclose(back.as_matrix(), T.as_matrix(), atol=1e-9)


# --- connecting ----------------------------------------------------------------------------------------------
def test_a_controller_that_never_answers_fails_within_the_connect_timeout(tmp_path):
    listener = bind_free_loopback()  # listens (the kernel accepts connections) and never answers
    try:
        started = time.monotonic()
        with pytest.raises(DriverError, match="no answer to the RTDE protocol version request within 0.5 s"):
            URArm.from_settings(settings(listener.getsockname()[0], tmp_path, connect_timeout=0.5))
        assert 0.4 < time.monotonic() - started < 1.5
    finally:
        listener.close()


def test_nothing_listening_fails_at_once(tmp_path):
    started = time.monotonic()
    with pytest.raises(DriverError, match="connecting to .*:30004 failed.*refused"):
        URArm.from_settings(settings(unused_loopback(), tmp_path, connect_timeout=2.0))
    assert time.monotonic() - started < 1.0


def test_receive_interface_subscribes_to_what_the_driver_reads(server, interfaces):
    requests = server.requests()
    # the probe's own stream, then ur_rtde's: RTDE port 30004 only, no dashboard server or script port
    assert "O 1 10 robot_mode" in requests
    assert f"O 1 {FREQUENCY:g} {','.join(RECEIVED)}" in requests


# --- the receive side against the server ---------------------------------------------------------------------
def test_state_read_matches_what_the_controller_serves(server, robot):
    q = [0.1, -1.2, 1.4, -1.7, -1.57, 0.3]
    serve(server, robot, actual_q=q, actual_digital_input_bits=(1 << 3) | (1 << 17),
          actual_digital_output_bits=1 << 9)
    state = robot.read_state()
    np.testing.assert_allclose(state.T_base_tcp.as_matrix(), T_BASE_TCP.as_matrix(), atol=1e-9)
    np.testing.assert_allclose(state.q, q)
    assert state.digital_inputs == (1 << 3) | (1 << 17) and state.digital_outputs == 1 << 9
    assert (state.robot_mode, state.safety_mode) == (7, 1)
    assert not state.protective_stopped and not state.emergency_stopped
    robot.check(state, "idle")  # a running arm in normal mode: no fault


def test_stops_and_modes_are_classified(server, robot):
    serve(server, robot, safety_status_bits=PROTECTIVE_STOP, safety_mode=3, actual_digital_input_bits=1)
    state = robot.read_state()
    assert state.protective_stopped and not state.emergency_stopped
    with pytest.raises(ProtectiveStop, match="unlock it on the teach pendant"):
        robot.check(state, "test")

    serve(server, robot, safety_status_bits=EMERGENCY_STOP, safety_mode=7, actual_digital_input_bits=2)
    state = robot.read_state()
    assert state.emergency_stopped and not state.protective_stopped
    with pytest.raises(EmergencyStop, match="robot emergency stop"):
        robot.check(state, "test")

    serve(server, robot, safety_status_bits=1 << 4, safety_mode=5, actual_digital_input_bits=3)
    with pytest.raises(DriverError, match="safeguard stop") as error:
        robot.check(robot.read_state(), "test")
    assert not isinstance(error.value, (ProtectiveStop, EmergencyStop))

    serve(server, robot, **{**RUNNING, "robot_mode": 3})
    with pytest.raises(DriverError, match="power off"):
        robot.check(robot.read_state(), "test")


def test_holding_reads_the_vacuum_input(server, robot):
    serve(server, robot, actual_digital_input_bits=1 << 4)
    assert URMotion(URConfig(server.host, vacuum_input=DigitalSignal("standard", 4)), None, robot.receive,
                    None).holding()
    assert not robot.holding()  # standard 0
    active_low_tool = URMotion(URConfig(server.host, vacuum_input=DigitalSignal("tool", 1, active_high=False)),
                               None, robot.receive, None)
    assert active_low_tool.holding()  # tool input 1 is bit 17, low: vacuum
    serve(server, robot, actual_digital_input_bits=1 << 17)
    assert not active_low_tool.holding()


# --- the I/O side against the server -------------------------------------------------------------------------
def test_vacuum_output_is_switched_and_read_back(server, robot):
    standard_2 = URMotion(URConfig(server.host, frequency=FREQUENCY, vacuum_output=DigitalSignal("standard", 2)),
                          None, robot.receive, robot.io)
    standard_2.set_gripper(True)
    assert server.inputs()["standard_digital_output_mask"] == 1 << 2
    assert server.inputs()["standard_digital_output"] == 1 << 2
    assert robot.read_state().digital_outputs == 1 << 2
    standard_2.set_gripper(False)
    assert server.inputs()["standard_digital_output"] == 0
    assert robot.read_state().digital_outputs == 0

    tool_1_low = URMotion(URConfig(server.host, frequency=FREQUENCY, vacuum_output=DigitalSignal("tool", 1, False)),
                          None, robot.receive, robot.io)
    tool_1_low.set_gripper(False)  # released = high
    assert robot.read_state().digital_outputs == 1 << 17
    tool_1_low.set_gripper(True)
    assert server.inputs()["tool_digital_output_mask"] == 1 << 1 and server.inputs()["tool_digital_output"] == 0
    assert robot.read_state().digital_outputs == 0


# --- moves: the stand-in control with the real receive side --------------------------------------------------
def test_move_sends_the_pose_in_the_base_frame_and_returns_when_there(robot):
    T_target = Transform(rotation_about_axis((0.0, 1.0, 0.0), 3.0), (0.5, 0.1, 0.2))
    robot.move_linear(T_target, 0.25, 0.5)
    (pose, speed, acceleration), = robot.control.moves
    np.testing.assert_allclose(pose, to_ur_pose(T_target))
    assert (speed, acceleration) == (0.25, 0.5)
    np.testing.assert_allclose(robot.read_state().T_base_tcp.translation, T_target.translation)


def test_protective_stop_during_a_move_raises_protective_stop(server, robot):
    def stopped_by_contact(pose) -> bool:
        server.set(safety_status_bits=PROTECTIVE_STOP, safety_mode=3)
        return False

    robot.control.on_move = stopped_by_contact
    with pytest.raises(ProtectiveStop):
        robot.move_linear(T_BASE_TCP * Transform(translation=(0.0, 0.0, 0.05)), 0.05, 0.5)
    # still stopped: the next move is refused before it is sent
    with pytest.raises(ProtectiveStop):
        robot.move_linear(T_BASE_TCP, 0.05, 0.5)
    assert len(robot.control.moves) == 1


def test_emergency_stop_during_a_move_raises_emergency_stop(server, robot):
    def emergency(pose) -> bool:
        server.set(safety_status_bits=EMERGENCY_STOP | PROTECTIVE_STOP, safety_mode=7)
        return False

    robot.control.on_move = emergency
    with pytest.raises(EmergencyStop):
        robot.move_linear(T_BASE_TCP * Transform(translation=(0.0, 0.0, 0.05)), 0.05, 0.5)


def test_pose_outside_the_limits_is_unreachable_and_not_sent(robot):
    robot.control.within_limits = False
    with pytest.raises(Unreachable, match="no joint solution"):
        robot.move_linear(Transform(translation=(2.0, 0.0, 0.5)), 0.25, 0.5)
    assert robot.control.moves == []


def test_failed_move_without_a_stop_says_the_control_script_stopped(robot):
    def script_ended(pose) -> bool:
        robot.control.program_running = False
        return False

    robot.control.on_move = script_ended
    with pytest.raises(DriverError, match="control script stopped") as error:
        robot.move_linear(T_BASE_TCP * Transform(translation=(0.0, 0.0, 0.05)), 0.05, 0.5)
    assert not isinstance(error.value, (ProtectiveStop, Unreachable))


def test_control_script_is_uploaded_again_when_it_is_not_running(robot):
    robot.control.program_running = False  # as after a protective stop was unlocked
    robot.move_linear(T_BASE_TCP * Transform(translation=(0.0, 0.0, 0.02)), 0.05, 0.5)
    assert robot.control.calls == ["reuploadScript"] and len(robot.control.moves) == 1


def test_a_hung_move_is_given_up_and_the_arm_stopped(robot):
    release = threading.Event()
    robot.control.on_move = lambda pose: release.wait(10.0)
    started = time.monotonic()
    try:
        with pytest.raises(DriverError, match="no answer within"):
            robot.move_linear(T_BASE_TCP * Transform(translation=(0.0, 0.0, 0.01)), 0.25, 0.5)
    finally:
        release.set()
    # expected duration 0.01 / 0.25 + 0.25 / 0.5 = 0.54 s, plus call_timeout 1 s
    assert 1.4 < time.monotonic() - started < 2.5
    assert robot.control.calls == ["stopL"]


# --- the whole pick ------------------------------------------------------------------------------------------
def test_pick_over_rtde_with_the_vacuum_sensed(server, robot):
    motion = PickMotion(Transform(rotation_about_axis((1.0, 0.0, 0.0), np.pi), (0.1, -0.45, 0.15)),
                        grip_time=0.0, release_time=0.0)
    arm = URArm(robot, motion, Transform.identity())
    serve(server, robot, actual_digital_input_bits=1)  # the vacuum switch reports a part
    T_base_grasp = Transform(rotation_about_axis((1.0, 0.0, 0.0), np.pi), (0.45, 0.05, 0.08))
    phases = []
    result = arm.pick(PickRequest(T_base_grasp, GripperKind.SUCTION), phases.append)

    assert result.outcome is Outcome.SUCCESS, result.message
    assert phases == ["approach", "grip", "lift", "place"]
    assert len(robot.control.moves) == 6
    np.testing.assert_allclose(robot.control.moves[1][0], to_ur_pose(T_base_grasp))
    switched = [line for line in server.requests() if "standard_digital_output_mask=1," in line]
    assert switched[-2:] == ["U input_int_register_23=13,standard_digital_output_mask=1,standard_digital_output=1",
                             "U input_int_register_23=13,standard_digital_output_mask=1,standard_digital_output=0"]


def test_finger_grasps_are_refused_without_moving(robot):
    arm = URArm(robot, PickMotion(Transform.identity()), Transform.identity())
    result = arm.pick(PickRequest(T_BASE_TCP, GripperKind.PARALLEL, width=0.04))
    assert result.outcome is Outcome.DRIVER_ERROR and "only a suction gripper" in result.message
    assert robot.control.moves == []


# --- lost connections ---------------------------------------------------------------------------------------
def test_a_dropped_connection_is_reconnected_on_both_sides():
    with RTDEServer() as server:
        receive, io = open_state_interfaces(URConfig(server.host, frequency=FREQUENCY))
        motion = URMotion(URConfig(server.host, frequency=FREQUENCY, call_timeout=0.5), None, receive, io)
        try:
            server.set(**RUNNING, actual_q=[0.5] * 6)
            server.drop_clients()  # as a controller reboot would
            wait_until(lambda: not receive.isConnected())
            np.testing.assert_allclose(motion.read_state().q, [0.5] * 6)
            # the first write goes into the dead I/O socket without an error; the read-back catches it
            motion.set_gripper(True)
            assert motion.read_state().digital_outputs == 1
            assert server.requests().count("I 1 input_int_register_23") == 2  # the I/O interface connected again
        finally:
            motion.close()


def test_a_silent_connection_is_reported_not_read_as_a_frozen_state(server, interfaces):
    motion = URMotion(URConfig(server.host, frequency=FREQUENCY, call_timeout=0.3), None, *interfaces)
    motion.read_state()
    server.go_silent()
    try:
        deadline = time.monotonic() + 3.0
        with pytest.raises(DriverError, match=r"no new state from the controller for 0\.3 s"):
            while time.monotonic() < deadline:
                motion.read_state()
                time.sleep(0.02)
    finally:
        server.go_silent(False)


UNCLOSABLE_SCRIPT = """
import os
import sys
sys.path.insert(0, "test")
from rtde_server import RTDEServer
from grasp_cell.drivers.ur_rtde_arm import URConfig, URMotion, _UNCLOSABLE, open_state_interfaces

server = RTDEServer()
config = URConfig(server.host, frequency=100.0, call_timeout=0.5, connect_timeout=0.5)
motion = URMotion(config, None, *open_state_interfaces(config))
server.close()  # the controller is gone for good: the I/O socket is dead and cannot be revived
motion.close()
print("unclosable:", sorted(type(interface).__name__ for interface in _UNCLOSABLE), flush=True)
# (ur_rtde's own threads may still abort the interpreter's teardown, about 1 run in 4: not what is tested here)
os._exit(0)
"""


def test_closing_after_the_controller_is_gone_returns_without_aborting():
    # ur_rtde's destructor of a dead RTDEIOInterface throws out of C++ and aborts: run it where that can't hurt
    done = subprocess.run([sys.executable, "-c", UNCLOSABLE_SCRIPT], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "RTDEIOInterface" in done.stdout  # kept alive on purpose (the receive side may have closed itself)
