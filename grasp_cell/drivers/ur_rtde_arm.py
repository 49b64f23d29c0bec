"""A Universal Robots UR5 (CB3 or e-Series) over RTDE with ur_rtde, picking with a suction gripper on the
controller's digital I/O.

Frames: poses go to the controller as ``[x, y, z, rx, ry, rz]`` (metres, rotation vector) in the controller's
``base`` frame, and the tcp is the controller's tcp, which the driver sets from ``T_flange_tcp``. The hand-eye
calibration ``T_base_cam`` must be solved in that same ``base`` frame (ROS-Industrial's ``base_link`` is turned
180° about z from it). The grasp frame's z (the approach) is the tcp's z, pointing out of the suction cup.

Gripper: only suction is supported here: one digital output switches the vacuum, one digital input senses it.
A parallel or three-finger grasp is answered with a DRIVER_ERROR result.

ur_rtde has three interfaces: RTDEReceiveInterface (the state), RTDEIOInterface (the vacuum output) and
RTDEControlInterface (moveL; it uploads a URScript program, so it needs a real controller or URSim).

Timeouts: ur_rtde waits forever on a controller that accepts a connection and never answers. Its methods release
Python's GIL, so every call runs in a daemon thread and is given up after a timeout (a hung call cannot keep the
process from exiting). Its constructors keep the GIL while they wait, which would freeze the whole process, so
before each one the driver checks in plain Python, with socket timeouts, that the controller answers on the ports
that constructor uses (RTDE 30004; for the control interface also the dashboard 29999 and the script port 30003).
A connection the controller dropped is reconnected; one that goes silent is noticed by the controller's clock
standing still. An interface whose connection is dead is never destroyed: ur_rtde's destructors throw on a dead
socket, and a C++ exception out of a destructor aborts the process. (ur_rtde's own threads can still abort the
interpreter's teardown after the controller vanished: seen in about 1 exit in 4.)

Tested (test/test_ur_rtde_arm.py): the receive and I/O sides for real against test/rtde_server.py, a loopback
server of the RTDE protocol; the control side only with a stand-in for RTDEControlInterface; nothing against a
controller or URSim.
"""

from __future__ import annotations

import ctypes
import math
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from grasp_cell.core.grasp import GripperKind
from grasp_cell.core.transform import Transform, matrix_to_quat_xyzw, rotation_about_axis
from grasp_cell.drivers.base import DriverError
from grasp_cell.drivers.hardware_pick import (
    ArmMotion,
    EmergencyStop,
    HardwareArm,
    ProtectiveStop,
    Unreachable,
    arm_settings,
)
from grasp_cell.drivers.settings import require

RTDE_PORT, DASHBOARD_PORT, SCRIPT_PORT = 30004, 29999, 30003
RECEIVED = ("timestamp", "actual_q", "actual_TCP_pose", "actual_digital_input_bits", "actual_digital_output_bits",
            "robot_mode", "safety_mode", "safety_status_bits")  # the RTDE outputs the driver subscribes to
BANKS = {"standard": (0, 8), "configurable": (8, 8), "tool": (16, 2)}  # first bit in the *_digital_*_bits, size
ROBOT_MODE_RUNNING = 7
SAFETY_MODE_NORMAL, SAFETY_MODE_REDUCED = 1, 2
SAFETY_MODES = {1: "normal", 2: "reduced", 3: "protective stop", 4: "recovery", 5: "safeguard stop",
                6: "system emergency stop", 7: "robot emergency stop", 8: "violation", 9: "fault",
                10: "validate joint id", 11: "undefined", 12: "automatic mode safeguard stop",
                13: "three-position enabling stop"}
ROBOT_MODES = {-1: "no controller", 0: "disconnected", 1: "confirm safety", 2: "booting", 3: "power off",
               4: "power on", 5: "idle", 6: "backdrive", 7: "running", 8: "updating firmware"}
PASSED_THROUGH = {"driver", "gripper", "hand_eye", "pick_motion"}


# --- settings ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DigitalSignal:
    """One digital output or input of the controller, as the teach pendant's I/O tab names it."""

    kind: str = "standard"  # standard (0-7), configurable (0-7) or tool (0-1)
    index: int = 0
    active_high: bool = True  # the level that means vacuum on / vacuum sensed

    @classmethod
    def from_settings(cls, name: str, settings: dict) -> "DigitalSignal":
        unknown = set(settings) - {"kind", "index", "active_high"}
        if unknown:
            raise DriverError(f"ur5: {name}: unknown setting(s) {', '.join(sorted(unknown))}; "
                              "known: kind, index, active_high")
        signal = cls(str(settings.get("kind", "standard")), int(settings.get("index", 0)),
                     bool(settings.get("active_high", True)))
        if signal.kind not in BANKS or not 0 <= signal.index < BANKS[signal.kind][1]:
            raise DriverError(f"ur5: {name}: no {signal.kind} digital I/O {signal.index}; there are standard 0-7, "
                              "configurable 0-7 and tool 0-1")
        return signal

    @property
    def bit(self) -> int:
        """Its bit in actual_digital_input_bits / actual_digital_output_bits."""
        return BANKS[self.kind][0] + self.index

    def active_in(self, bits: int) -> bool:
        return bool(bits >> self.bit & 1) == self.active_high

    def __str__(self) -> str:
        return f"{self.kind} digital {self.index} (active {'high' if self.active_high else 'low'})"


@dataclass(frozen=True)
class URConfig:
    """The controller's address and I/O, and timeouts (the top-level keys of config/hardware/ur5.yaml)."""

    host: str
    frequency: float = 125.0  # [Hz] RTDE state updates (CB3 streams at most 125, e-Series 500)
    T_flange_tcp: Transform = field(default_factory=Transform.identity)
    vacuum_output: DigitalSignal = DigitalSignal()
    vacuum_input: DigitalSignal = DigitalSignal()
    call_timeout: float = 2.0  # [s] for one call, and beyond a move's expected duration
    connect_timeout: float = 5.0  # [s] for the controller to answer on each port

    @classmethod
    def from_settings(cls, settings: dict) -> "URConfig":
        known = {"host", "frequency", "T_flange_tcp", "vacuum_output", "vacuum_input", "call_timeout",
                 "connect_timeout"}
        unknown = set(settings) - known - PASSED_THROUGH
        if unknown:
            raise DriverError(f"ur5: unknown setting(s) {', '.join(sorted(unknown))}; "
                              f"known: {', '.join(sorted(known | PASSED_THROUGH - {'driver'}))}")
        try:
            T_flange_tcp = Transform.from_dict(settings.get("T_flange_tcp") or Transform.identity().to_dict())
        except (KeyError, TypeError, ValueError) as error:
            raise DriverError(f"ur5: T_flange_tcp needs translation and rotation_xyzw ({error})") from None
        return cls(
            host=str(require(settings, "host", "ur5")),
            frequency=float(settings.get("frequency") or cls.frequency),
            T_flange_tcp=T_flange_tcp,
            vacuum_output=DigitalSignal.from_settings("vacuum_output", settings.get("vacuum_output") or {}),
            vacuum_input=DigitalSignal.from_settings("vacuum_input", settings.get("vacuum_input") or {}),
            call_timeout=float(settings.get("call_timeout") or cls.call_timeout),
            connect_timeout=float(settings.get("connect_timeout") or cls.connect_timeout),
        )


# --- poses ---------------------------------------------------------------------------------------------------
def to_ur_pose(T: Transform) -> list[float]:
    """``[x, y, z, rx, ry, rz]``: translation [m] and rotation vector [rad], as URScript's ``p[...]``."""
    x, y, z, w = matrix_to_quat_xyzw(T.rotation)  # w >= 0: the angle is in [0, pi]
    sine = math.sqrt(x * x + y * y + z * z)
    angle = 2.0 * math.atan2(sine, w)
    rotvec = np.zeros(3) if sine < 1e-12 else np.array([x, y, z]) / sine * angle
    return [float(v) for v in (*T.translation, *rotvec)]


def from_ur_pose(pose) -> Transform:
    pose = np.asarray(pose, dtype=float).reshape(6)
    angle = float(np.linalg.norm(pose[3:]))
    rotation = np.eye(3) if angle < 1e-12 else rotation_about_axis(pose[3:] / angle, angle)
    return Transform(rotation, pose[:3])


# --- guarded calls -------------------------------------------------------------------------------------------
def call_with_timeout(function: Callable, timeout: float, what: str):
    """``function()`` in a daemon thread: its value, or a DriverError when it raises or takes over ``timeout`` [s]."""
    outcome: dict = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["value"] = function()
        except Exception as error:  # ur_rtde raises RuntimeError and std::exception translations
            outcome["error"] = error
        finally:
            done.set()

    threading.Thread(target=run, name=what, daemon=True).start()
    if not done.wait(timeout):
        raise DriverError(f"{what}: no answer within {timeout:.1f} s")
    if "error" in outcome:
        error = outcome["error"]
        if isinstance(error, DriverError):
            raise error
        raise DriverError(f"{what}: {error}") from error
    return outcome.get("value")


def _read_exactly(conn: socket.socket, size: int, deadline: float) -> bytes:
    data = b""
    while len(data) < size:
        conn.settimeout(max(deadline - time.monotonic(), 1e-3))
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the controller closed the connection")
        data += chunk
    return data


def _rtde_exchange(conn: socket.socket, kind: bytes, payload: bytes | None, deadline: float) -> bytes:
    """Send one RTDE message (unless ``payload`` is None) and return the payload of the next reply of ``kind``."""
    if payload is not None:
        conn.sendall(struct.pack(">HB", 3 + len(payload), kind[0]) + payload)
    while True:
        size, reply = struct.unpack(">HB", _read_exactly(conn, 3, deadline))
        body = _read_exactly(conn, size - 3, deadline)
        if bytes([reply]) == kind:
            return body
        # anything else ('M' text messages, data packages of an earlier request) is not the answer yet


def probe_rtde(host: str, timeout: float) -> tuple[int, int, int, int]:
    """The controller's version once its RTDE server has answered a handshake and streamed one state, as
    RTDEReceiveInterface's constructor will wait for; a DriverError names the step that got no answer."""
    deadline = time.monotonic() + timeout
    step = f"connecting to {host}:{RTDE_PORT}"
    try:
        with socket.create_connection((host, RTDE_PORT), timeout=timeout) as conn:
            step = "the RTDE protocol version request"
            if _rtde_exchange(conn, b"V", struct.pack(">H", 2), deadline)[:1] != b"\x01":
                raise DriverError(f"{host}: the controller refuses RTDE protocol version 2 (needs software 3.3+)")
            step = "the controller version request"
            version = struct.unpack(">4I", _rtde_exchange(conn, b"v", b"", deadline)[:16])
            step = "the request to stream robot_mode"
            _rtde_exchange(conn, b"O", struct.pack(">d", 10.0) + b"robot_mode", deadline)
            if _rtde_exchange(conn, b"S", b"", deadline)[:1] != b"\x01":
                raise DriverError(f"{host}: the controller refuses to stream its state over RTDE")
            step = "the first state package"
            _rtde_exchange(conn, b"U", None, deadline)
            return version
    except (socket.timeout, TimeoutError):
        raise DriverError(f"{host}: no answer to {step} within {timeout:.1f} s: is it a booted UR controller "
                          "(robot_ip / host)?") from None
    except OSError as error:
        raise DriverError(f"{host}: {step} failed ({error}): check the address (robot_ip / host) and the "
                          "network") from None


def probe_control_ports(host: str, timeout: float) -> None:
    """The dashboard server greets and the script port accepts, as RTDEControlInterface's constructor expects."""
    try:
        with socket.create_connection((host, DASHBOARD_PORT), timeout=timeout) as conn:
            conn.settimeout(timeout)
            if not conn.recv(256):
                raise DriverError(f"{host}: the dashboard server (port {DASHBOARD_PORT}) closed the connection")
        socket.create_connection((host, SCRIPT_PORT), timeout=timeout).close()
    except (socket.timeout, TimeoutError):
        raise DriverError(f"{host}: no answer from the dashboard server or script port within {timeout:.1f} s"
                          ) from None
    except OSError as error:
        raise DriverError(f"{host}: dashboard server or script port: {error}") from None


def _construct(what: str, factory: Callable):
    """A ur_rtde interface; only call this after a probe (its constructor keeps the GIL while it waits)."""
    try:
        return factory()
    except Exception as error:  # ur_rtde's C++ exceptions arrive as RuntimeError and friends
        raise DriverError(f"{what}: {error}") from error


def open_state_interfaces(config: URConfig):
    """RTDEReceiveInterface (``RECEIVED`` at ``config.frequency``) and RTDEIOInterface; both use RTDE port 30004
    only (no dashboard server, no script program)."""
    import rtde_io
    import rtde_receive

    version = probe_rtde(config.host, config.connect_timeout)
    if version[0] < 5 and config.frequency > 125:
        raise DriverError(f"ur5: frequency {config.frequency:g} Hz: a CB3 controller (software "
                          f"{'.'.join(map(str, version))}) streams at most 125 Hz")
    receive = _construct(f"{config.host}: RTDEReceiveInterface", lambda: rtde_receive.RTDEReceiveInterface(
        config.host, config.frequency, list(RECEIVED)))
    try:
        io = _construct(f"{config.host}: RTDEIOInterface", lambda: rtde_io.RTDEIOInterface(config.host))
    except DriverError:
        _disconnect(receive, config)
        raise
    return receive, io


def _disconnect(interface, config: URConfig) -> None:
    """Disconnect, reconnecting first where the connection died: ur_rtde's destructors disconnect again, and on a
    dead socket that throws a C++ exception out of a destructor, which aborts the whole process."""
    def call(what: str, timeout: float) -> None:
        call_with_timeout(getattr(interface, what), timeout, f"{config.host}: {type(interface).__name__}.{what}")

    try:
        call("disconnect", config.call_timeout)
        return
    except DriverError:
        pass  # a dead socket (the controller dropped us): make it a live one, then close that
    try:
        call("reconnect", config.connect_timeout)
        call("disconnect", config.call_timeout)
    except DriverError:
        # never destroyed, so its destructor never runs: an extra reference the interpreter's exit cannot drop
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(interface))
        _UNCLOSABLE.append(interface)


_UNCLOSABLE: list = []  # ur_rtde interfaces whose connection could be neither closed nor revived


# --- motion --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class URState:
    """One read of the controller's state over RTDE."""

    timestamp: float  # [s] the controller's clock: unchanged means no new state arrived
    T_base_tcp: Transform  # the controller's tcp in its base frame
    q: np.ndarray  # (6,) joint positions [rad], base to wrist 3
    digital_inputs: int  # actual_digital_input_bits: standard 0-7, configurable 8-15, tool 16-17
    digital_outputs: int  # actual_digital_output_bits, the same layout
    robot_mode: int  # ROBOT_MODES
    safety_mode: int  # SAFETY_MODES
    protective_stopped: bool
    emergency_stopped: bool


class URMotion(ArmMotion):
    """``ArmMotion`` over ur_rtde's three interfaces: moveL in the controller's base frame, the vacuum on digital
    I/O, and the safety state checked after every move."""

    def __init__(self, config: URConfig, control, receive, io):
        self.config = config
        self.control, self.receive, self.io = control, receive, io
        self._latest: tuple[float, float] | None = None  # (controller timestamp, monotonic time first seen)

    @classmethod
    def connect(cls, config: URConfig) -> "URMotion":
        import rtde_control

        receive, io = open_state_interfaces(config)
        try:
            probe_control_ports(config.host, config.connect_timeout)
            control = _construct(f"{config.host}: RTDEControlInterface (is the robot in remote control?)",
                                 lambda: rtde_control.RTDEControlInterface(config.host, config.frequency))
        except DriverError:
            _disconnect(io, config)
            _disconnect(receive, config)
            raise
        motion = cls(config, control, receive, io)
        try:
            if not motion._call("setTcp", lambda: control.setTcp(to_ur_pose(config.T_flange_tcp))):
                raise DriverError(f"{config.host}: the controller refused setTcp({to_ur_pose(config.T_flange_tcp)})")
        except DriverError:
            motion.close()
            raise
        return motion

    def _call(self, what: str, function: Callable, timeout: float | None = None):
        return call_with_timeout(function, timeout or self.config.call_timeout, f"{self.config.host}: {what}")

    # --- state -----------------------------------------------------------------------------------------------
    def read_state(self) -> URState:
        """The latest state; reconnects once if the RTDE connection was lost, and raises when the controller's
        clock has not moved for ``call_timeout`` (a connection that went silent without closing)."""
        receive, host = self.receive, self.config.host
        if not self._call("RTDE receive isConnected", receive.isConnected):
            self._call("RTDE receive reconnect", receive.reconnect, self.config.connect_timeout)
            if not self._call("RTDE receive isConnected", receive.isConnected):
                raise DriverError(f"{host}: lost the RTDE connection, and reconnecting failed")

        def read() -> URState:
            return URState(
                timestamp=float(receive.getTimestamp()),
                T_base_tcp=from_ur_pose(receive.getActualTCPPose()),
                q=np.asarray(receive.getActualQ(), dtype=float),
                digital_inputs=int(receive.getActualDigitalInputBits()),
                digital_outputs=int(receive.getActualDigitalOutputBits()),
                robot_mode=int(receive.getRobotMode()),
                safety_mode=int(receive.getSafetyMode()),
                protective_stopped=bool(receive.isProtectiveStopped()),
                emergency_stopped=bool(receive.isEmergencyStopped()),
            )

        state, now = self._call("read the robot state", read), time.monotonic()
        if self._latest is None or state.timestamp != self._latest[0]:
            self._latest = (state.timestamp, now)
        elif now - self._latest[1] > self.config.call_timeout:
            raise DriverError(f"{host}: no new state from the controller for {now - self._latest[1]:.1f} s "
                              "(network cable? controller hung?)")
        return state

    def check(self, state: URState, doing: str) -> None:
        """Raise the kind of fault ``state`` shows, if any: the arm cannot move in it."""
        mode = SAFETY_MODES.get(state.safety_mode, f"safety mode {state.safety_mode}")
        if state.emergency_stopped:
            raise EmergencyStop(f"{doing}: {mode}: release the emergency stop, then unlock on the teach pendant")
        if state.protective_stopped:
            raise ProtectiveStop(f"{doing}: protective stop (contact, force limit or safety plane): unlock it on "
                                 "the teach pendant")
        if state.safety_mode not in (SAFETY_MODE_NORMAL, SAFETY_MODE_REDUCED):
            raise DriverError(f"{doing}: the controller is in {mode}")
        if state.robot_mode != ROBOT_MODE_RUNNING:
            raise DriverError(f"{doing}: robot mode is {ROBOT_MODES.get(state.robot_mode, state.robot_mode)}: power "
                              "the arm on and release the brakes")

    # --- ArmMotion -------------------------------------------------------------------------------------------
    def move_linear(self, T_base_tcp: Transform, speed: float, acceleration: float) -> None:
        pose = to_ur_pose(T_base_tcp)
        doing = "moveL to p[" + ", ".join(f"{v:.4f}" for v in pose) + "]"
        start = self.read_state()
        self.check(start, doing)
        self._ensure_program_running(doing)
        if not self._call("isPoseWithinSafetyLimits", lambda: self.control.isPoseWithinSafetyLimits(pose)):
            raise Unreachable(f"{doing}: the controller finds no joint solution within its limits, or the pose "
                              "breaks a safety plane or tool orientation limit")
        distance = float(np.linalg.norm(T_base_tcp.translation - start.T_base_tcp.translation))
        expected = distance / speed + speed / acceleration  # [s] cruise plus ramps
        try:
            arrived = self._call(doing, lambda: self.control.moveL(pose, speed, acceleration),
                                 expected + self.config.call_timeout)
        except DriverError:
            self._stop()
            raise
        if not arrived:
            time.sleep(2.0 / self.config.frequency)  # let the state stream catch up with what stopped the move
        self.check(self.read_state(), doing)
        if not arrived:
            running = self._call("isProgramRunning", self.control.isProgramRunning)
            raise DriverError(f"{doing}: moveL returned False" + (
                "" if running else "; the ur_rtde control script stopped (see the log on the teach pendant)"))

    def set_gripper(self, gripping: bool) -> None:
        """Switch the vacuum output and wait until the controller reports it switched. A write on a connection
        the controller dropped is lost without an error, so when it does not show, reconnect and write again."""
        signal = self.config.vacuum_output
        doing = f"vacuum {'on' if gripping else 'off'} ({signal})"
        for attempt in range(2):
            if attempt:
                self._call("RTDE I/O reconnect", self.io.reconnect, self.config.connect_timeout)
            self._write_output(signal, gripping == signal.active_high, doing)
            deadline = time.monotonic() + self.config.call_timeout
            while time.monotonic() < deadline:
                if signal.active_in(self.read_state().digital_outputs) == gripping:
                    return
                time.sleep(0.5 / self.config.frequency)
        raise DriverError(f"{self.config.host}: {doing}: the output still reads the old level, also after "
                          "reconnecting (is it driven by a program or a safety function, or the tool voltage off?)")

    def _write_output(self, signal: DigitalSignal, level: bool, doing: str) -> None:
        setter = {"standard": self.io.setStandardDigitalOut, "configurable": self.io.setConfigurableDigitalOut,
                  "tool": self.io.setToolDigitalOut}[signal.kind]
        if not self._call(doing, lambda: setter(signal.index, level)):
            raise DriverError(f"{self.config.host}: {doing}: the I/O interface refused the command")

    def holding(self) -> bool:
        return self.config.vacuum_input.active_in(self.read_state().digital_inputs)

    def _ensure_program_running(self, doing: str) -> None:
        """After a protective stop is unlocked the control script has ended: upload it again."""
        if self._call("isProgramRunning", self.control.isProgramRunning):
            return
        self._call("reuploadScript", self.control.reuploadScript, self.config.connect_timeout)
        if not self._call("isProgramRunning", self.control.isProgramRunning):
            raise DriverError(f"{doing}: the ur_rtde control script does not run on the controller (remote "
                              "control enabled? another program running?)")

    def _stop(self) -> None:
        """Decelerate a move that did not return in time; a hung interface can only be reported."""
        try:
            self._call("stopL", lambda: self.control.stopL(2.0))
        except DriverError:
            pass  # the caller raises the move's own error

    def close(self) -> None:
        if self.control is not None:
            try:
                self._call("stopScript", self.control.stopScript)
            except DriverError:
                pass  # disconnect below anyway
        for interface in (self.control, self.io, self.receive):
            if interface is not None:
                _disconnect(interface, self.config)
        self.control = self.io = self.receive = None


# --- driver --------------------------------------------------------------------------------------------------
class URArm(HardwareArm):
    """A UR arm with a suction gripper on its digital I/O; ``T_base_cam`` is the camera in the controller's
    ``base`` frame (the calibration must use that frame)."""

    gripper_note = "the ur5 driver has only a suction gripper on digital I/O"

    @classmethod
    def from_settings(cls, settings: dict) -> "URArm":
        """Settings checked and the hand-eye file read before anything connects."""
        config = URConfig.from_settings(settings)
        gripper, T_base_cam, pick_motion = arm_settings(settings, "ur5")
        if gripper is not GripperKind.SUCTION:
            raise DriverError(f"ur5: gripper {gripper.value} is not supported: this driver drives only a suction "
                              "gripper through the controller's digital I/O")
        return cls(URMotion.connect(config), pick_motion, T_base_cam, gripper)
