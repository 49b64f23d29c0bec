"""Shared fixtures: DDS kept on loopback in a domain of this test run's own."""

import os
import random

import pytest

# before any rclpy import: discovery stays on this host, and parallel runs don't see each other
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 200)))


@pytest.fixture
def ros_node():
    """An rclpy context and node for a test that talks to nodes in other processes."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node("test_client", context=context)
    try:
        yield node
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
