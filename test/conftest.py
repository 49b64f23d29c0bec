"""Shared fixtures: DDS kept on loopback in a domain of this test run's own."""

import os
import random

import pytest

# before any rclpy import: discovery stays on this host, and parallel runs don't see each other
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 101)))  # ROS docs: 0-101


class RosClient:
    """A node in a context of its own, with the executor that spins it."""

    def __init__(self, node, executor):
        self.node = node
        self.executor = executor

    def wait_for(self, future, timeout: float):
        """Spin until ``future`` is done; returns its result, or None on timeout."""
        self.executor.spin_until_future_complete(future, timeout_sec=timeout)
        return future.result() if future.done() else None


@pytest.fixture
def ros_client():
    """An rclpy context, node and executor for a test that talks to nodes in other processes."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor

    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node("test_client", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        yield RosClient(node, executor)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
