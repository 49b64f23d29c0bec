"""Drivers chosen by node parameters, for camera_node and motion_node run on their own."""

from __future__ import annotations

from typing import Callable, TypeVar

from rclpy.node import Node

Driver = TypeVar("Driver")


def driver_from_parameters(node: Node, create: Callable[[str, str], Driver]) -> Driver:
    """Create the driver named by the ``driver`` parameter, configured by the ``driver_config`` file."""
    name = node.declare_parameter("driver", "sim").value
    driver = create(name, node.declare_parameter("driver_config", "").value)
    node.get_logger().info(f"driver '{name}' ready")
    return driver
