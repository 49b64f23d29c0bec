"""A loopback RTDE server for tests: the controller side of Universal Robots' RTDE protocol (version 2) on port
30004, serving a robot state the test sets, and applying the digital outputs clients write.

It runs in a process of its own because ur_rtde's constructors hold Python's GIL while they wait for the
controller's answers: a server thread in the test's process could never answer them.

    with RTDEServer() as server:         # on a free loopback address other than 127.0.0.1
        server.set(actual_q=[...], safety_status_bits=1 << 2)
        RTDEReceiveInterface(server.host, 50.0, [...])

Messages: 3-byte header (uint16 size including the header, uint8 type), big-endian payload.
    'V' request protocol version  uint16 version -> uint8 accepted
    'v' get URControl version     -> uint32 major, minor, bugfix, build
    'O' setup outputs             double frequency + names, comma-separated -> uint8 recipe id + types
    'I' setup inputs              names -> uint8 recipe id + types
    'S' / 'P' start / pause       -> uint8 accepted
    'U' data package              uint8 recipe id + the recipe's values (the server streams outputs after 'S')
    'M' text message              uint8 length + text, uint8 length + source, uint8 warning level
Unknown names are answered NOT_FOUND, as the controller does. The parent talks to the process in JSON lines
on its stdin/stdout.
"""

from __future__ import annotations

import errno
import json
import random
import socket
import struct
import subprocess
import sys
import threading
import time

PORT = 30004
PROTOCOL_VERSION = 2
FORMATS = {  # RTDE type -> struct format (network byte order)
    "VECTOR6D": ">6d", "VECTOR3D": ">3d", "VECTOR6INT32": ">6i", "VECTOR6UINT32": ">6I",
    "DOUBLE": ">d", "UINT64": ">Q", "UINT32": ">I", "INT32": ">i", "BOOL": ">?", "UINT8": ">B",
}
OUTPUTS = {  # controller -> client, with the types of UR's RTDE guide
    **dict.fromkeys(["target_q", "target_qd", "target_qdd", "target_current", "target_moment", "actual_q",
                     "actual_qd", "actual_current", "joint_control_output", "actual_TCP_pose", "actual_TCP_speed",
                     "actual_TCP_force", "target_TCP_pose", "target_TCP_speed", "joint_temperatures",
                     "actual_joint_voltage", "ft_raw_wrench", "payload_inertia"], "VECTOR6D"),
    **dict.fromkeys(["actual_tool_accelerometer", "payload_cog"], "VECTOR3D"),
    "joint_mode": "VECTOR6INT32",
    **dict.fromkeys(["timestamp", "actual_execution_time", "speed_scaling", "target_speed_fraction",
                     "actual_momentum", "actual_main_voltage", "actual_robot_voltage", "actual_robot_current",
                     "standard_analog_input0", "standard_analog_input1", "standard_analog_output0",
                     "standard_analog_output1", "payload"], "DOUBLE"),
    **dict.fromkeys(["actual_digital_input_bits", "actual_digital_output_bits"], "UINT64"),
    **dict.fromkeys(["robot_mode", "safety_mode"], "INT32"),
    **dict.fromkeys(["robot_status_bits", "safety_status_bits", "runtime_state", "output_bit_registers0_to_31",
                     "output_bit_registers32_to_63"], "UINT32"),
    **{f"output_int_register_{i}": "INT32" for i in range(48)},
    **{f"output_double_register_{i}": "DOUBLE" for i in range(48)},
}
INPUTS = {  # client -> controller
    **dict.fromkeys(["standard_digital_output_mask", "standard_digital_output", "configurable_digital_output_mask",
                     "configurable_digital_output", "tool_digital_output_mask", "tool_digital_output",
                     "standard_analog_output_mask", "standard_analog_output_type"], "UINT8"),
    "speed_slider_mask": "UINT32",
    **dict.fromkeys(["speed_slider_fraction", "standard_analog_output_0", "standard_analog_output_1"], "DOUBLE"),
    **{f"input_int_register_{i}": "INT32" for i in range(48)},
    **{f"input_double_register_{i}": "DOUBLE" for i in range(48)},
}
OUTPUT_BANKS = {"standard": 0, "configurable": 8, "tool": 16}  # first bit in actual_digital_output_bits
RUNNING_STATE = {  # a powered arm, idle, in normal safety mode
    "robot_mode": 7,  # ROBOT_MODE_RUNNING
    "safety_mode": 1,  # SAFETY_MODE_NORMAL
    "safety_status_bits": 1,  # bit 0: normal mode
    "runtime_state": 1,  # STOPPED (no program)
    "robot_status_bits": 0b11,  # power on, program not running
    "speed_scaling": 1.0,
    "target_speed_fraction": 1.0,
}


def default_value(rtde_type: str):
    fmt = FORMATS[rtde_type]
    count, zero = int(fmt[1:-1] or 1), 0.0 if fmt[-1] == "d" else 0
    return [zero] * count if count > 1 else zero


def pack(rtde_type: str, value) -> bytes:
    return struct.pack(FORMATS[rtde_type], *(value if isinstance(value, (list, tuple)) else [value]))


def message(kind: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">HB", 3 + len(payload), kind[0]) + payload


def text_message(text: str, source: str = "rtde_server", level: int = 0) -> bytes:
    """An 'M' message as a version-2 controller sends it (warning level 0: exception ... 3: info)."""
    text_bytes, source_bytes = text.encode(), source.encode()
    return message(b"M", bytes([len(text_bytes)]) + text_bytes + bytes([len(source_bytes)]) + source_bytes
                   + bytes([level]))


def read_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("client closed the connection")
        data += chunk
    return data


class Controller:
    """The served state and the clients' connections; every client thread shares it."""

    def __init__(self, version: tuple[int, int, int, int]):
        self.version = version
        self.lock = threading.Lock()
        self.state = {name: default_value(kind) for name, kind in OUTPUTS.items()} | RUNNING_STATE
        self.inputs: dict[str, object] = {}  # the latest value of each input a client wrote
        self.requests: list[str] = []  # every message type and recipe the clients sent, for the tests to read
        self.clients: list[socket.socket] = []
        self.silent = threading.Event()  # set: connections stay open, but no state is streamed
        self.started = time.monotonic()

    def serve(self, conn: socket.socket) -> None:
        send_lock, streaming = threading.Lock(), threading.Event()
        outputs: list[tuple[int, list[str], float]] = []  # (recipe id, names, frequency)
        inputs: dict[int, list[str]] = {}

        def send(data: bytes) -> None:
            with send_lock:
                conn.sendall(data)

        def stream() -> None:
            try:
                while streaming.is_set():
                    for recipe_id, names, _ in [] if self.silent.is_set() else outputs:
                        with self.lock:
                            self.state["timestamp"] = time.monotonic() - self.started
                            values = [pack(OUTPUTS[name], self.state[name]) for name in names]
                        send(message(b"U", bytes([recipe_id]) + b"".join(values)))
                    time.sleep(1.0 / max(frequency for _, _, frequency in outputs))
            except OSError:
                streaming.clear()

        try:
            while True:
                size, kind = struct.unpack(">HB", read_exactly(conn, 3))
                body, kind = read_exactly(conn, size - 3), chr(kind)
                if kind == "V":
                    (version,) = struct.unpack(">H", body)
                    self.log(f"V {version}")
                    send(message(b"V", bytes([version == PROTOCOL_VERSION])))
                elif kind == "v":
                    self.log("v")
                    send(message(b"v", struct.pack(">4I", *self.version)))
                elif kind == "O":
                    (frequency,) = struct.unpack(">d", body[:8])
                    names = [name for name in body[8:].decode().split(",") if name]
                    recipe_id = len(outputs) + 1
                    self.log(f"O {recipe_id} {frequency:g} {','.join(names)}")
                    outputs.append((recipe_id, names, frequency))
                    types = [OUTPUTS.get(name, "NOT_FOUND") for name in names]
                    send(message(b"O", bytes([recipe_id]) + ",".join(types).encode()))
                elif kind == "I":
                    names = [name for name in body.decode().split(",") if name]
                    recipe_id = len(inputs) + 1
                    self.log(f"I {recipe_id} {','.join(names)}")
                    inputs[recipe_id] = names
                    types = [INPUTS.get(name, "NOT_FOUND") for name in names]
                    send(message(b"I", bytes([recipe_id]) + ",".join(types).encode()))
                elif kind == "S":
                    self.log("S")
                    accepted = bool(outputs) and "NOT_FOUND" not in {OUTPUTS.get(n, "NOT_FOUND")
                                                                     for _, names, _ in outputs for n in names}
                    send(message(b"S", bytes([accepted])))
                    if accepted and not streaming.is_set():
                        streaming.set()
                        threading.Thread(target=stream, daemon=True).start()
                elif kind == "P":
                    self.log("P")
                    streaming.clear()
                    send(message(b"P", bytes([1])))
                elif kind == "U":
                    self.receive_inputs(inputs.get(body[0], []), body[1:])
                else:
                    self.log(f"? {kind}")
                    send(text_message(f"unknown message type {kind!r}", level=0))
        except (ConnectionError, OSError, struct.error):
            pass
        finally:
            streaming.clear()
            with self.lock:
                if conn in self.clients:
                    self.clients.remove(conn)
            conn.close()

    def receive_inputs(self, names: list[str], data: bytes) -> None:
        """Unpack one input data package and apply the digital outputs it sets, as the controller would."""
        values, offset = {}, 0
        for name in names:
            rtde_type = INPUTS[name]
            size = struct.calcsize(FORMATS[rtde_type])
            unpacked = struct.unpack(FORMATS[rtde_type], data[offset:offset + size])
            values[name], offset = unpacked[0] if len(unpacked) == 1 else list(unpacked), offset + size
        self.log("U " + ",".join(f"{name}={value}" for name, value in values.items()))
        with self.lock:
            self.inputs.update(values)
            for bank, first_bit in OUTPUT_BANKS.items():
                mask = values.get(f"{bank}_digital_output_mask", 0) << first_bit
                level = values.get(f"{bank}_digital_output", 0) << first_bit
                bits = self.state["actual_digital_output_bits"]
                self.state["actual_digital_output_bits"] = (bits & ~mask) | (level & mask)

    def log(self, line: str) -> None:
        with self.lock:
            self.requests.append(line)

    def command(self, request: dict) -> dict:
        """One request of the parent process: set, inputs, requests, silent or drop_clients."""
        with self.lock:
            if "set" in request:
                unknown = set(request["set"]) - set(OUTPUTS)
                if unknown:
                    return {"error": f"not RTDE outputs: {sorted(unknown)}"}
                self.state.update(request["set"])
                return {"ok": True}
            if "inputs" in request:
                return {"inputs": dict(self.inputs)}
            if "requests" in request:
                return {"requests": list(self.requests)}
            if "silent" in request:
                (self.silent.set if request["silent"] else self.silent.clear)()
                return {"ok": True}
            if "drop_clients" in request:
                for conn in self.clients:
                    conn.shutdown(socket.SHUT_RDWR)  # its serving thread closes it
                return {"ok": True}
        return {"error": f"unknown request {request}"}


def bind_free_loopback(port: int = PORT) -> socket.socket:
    """A listening socket on ``port`` of a loopback address 127.0.0.2 ... 127.0.0.254 that nothing else uses."""
    addresses = [f"127.0.0.{n}" for n in range(2, 255)]
    random.shuffle(addresses)
    for address in addresses:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind((address, port))
        except OSError as error:
            listener.close()
            if error.errno == errno.EADDRINUSE:
                continue
            raise
        listener.listen()
        return listener
    raise OSError(f"no free loopback address with port {port}")


def main() -> None:
    version = tuple(int(part) for part in (sys.argv[1] if len(sys.argv) > 1 else "3.15.7.0").split("."))
    controller = Controller(version)
    listener = bind_free_loopback()

    def accept() -> None:
        while True:
            conn, _ = listener.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with controller.lock:
                controller.clients.append(conn)
            threading.Thread(target=controller.serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    print(json.dumps({"host": listener.getsockname()[0]}), flush=True)
    for line in sys.stdin:  # the parent closing stdin ends the server
        print(json.dumps(controller.command(json.loads(line))), flush=True)


class RTDEServer:
    """The server process, seen from a test: its address, and the state it serves."""

    def __init__(self, version: str = "3.15.7.0"):
        self.process = subprocess.Popen([sys.executable, __file__, version], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, bufsize=1)
        self.host = self._reply()["host"]

    def _reply(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the RTDE test server exited (code {self.process.wait()})")
        return json.loads(line)

    def _request(self, request: dict) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        reply = self._reply()
        if "error" in reply:
            raise ValueError(reply["error"])
        return reply

    def set(self, **outputs) -> None:
        """Serve these output values from now on (names as in the RTDE guide)."""
        self._request({"set": outputs})

    def inputs(self) -> dict:
        """The latest value of every input the clients wrote."""
        return self._request({"inputs": True})["inputs"]

    def requests(self) -> list[str]:
        """What the clients asked for, one line per message ('O 1 125 actual_q,...', 'S', 'U name=value,...')."""
        return self._request({"requests": True})["requests"]

    def go_silent(self, silent: bool = True) -> None:
        """Stop (or resume) streaming the state while keeping the connections open, as a pulled cable would."""
        self._request({"silent": silent})

    def drop_clients(self) -> None:
        """Close every client connection, as a controller reboot would."""
        self._request({"drop_clients": True})

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()

    def __enter__(self) -> "RTDEServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == "__main__":
    main()
