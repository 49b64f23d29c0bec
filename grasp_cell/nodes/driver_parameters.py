"""Drivers chosen by node parameters, and the ``main`` of camera_node and motion_node run on their own."""

from __future__ import annotations

import json
from typing import Callable, TypeVar

import rclpy
from rclpy.executors import Executor, ExternalShutdownException
from rclpy.node import Node

from grasp_cell.drivers.base import DriverError
from grasp_cell.drivers.settings import load_settings

Driver = TypeVar("Driver")


def driver_from_parameters(node: Node, create: Callable[[str, dict], Driver]) -> Driver:
    """Create the driver named by the ``driver`` parameter, configured by the ``driver_config`` file with the
    ``driver_options`` (a JSON object, as the launch graph writes it) laid over it."""
    name = node.declare_parameter("driver", "sim").value
    config = node.declare_parameter("driver_config", "").value
    try:
        options = json.loads(node.declare_parameter("driver_options", "{}").value or "{}")
    except json.JSONDecodeError as error:
        raise DriverError(f"driver_options is not a JSON object: {error}") from None
    driver = create(name, load_settings(config, options))
    node.get_logger().info(f"driver '{name}' ready")
    return driver


def spin_driver_node(make_node: Callable[[], Node], make_executor: Callable[[], Executor] | None = None, args=None):
    """``main`` of a node that owns a driver: a driver that cannot start exits with its reason, not a
    traceback, and the driver is closed however spinning ends."""
    try:
        with rclpy.init(args=args):
            try:
                node = make_node()
            except DriverError as error:
                raise SystemExit(f"{getattr(make_node, '__name__', 'node')}: {error}") from None
            try:
                rclpy.spin(node, executor=make_executor() if make_executor else None)
            finally:
                node.driver.close()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
