"""The simulated cell in one process: the camera node and the motion node on ONE PyBullet world.

Camera and arm must act on the same physics (DESIGN.md), so this process composes both nodes around
a shared ``SimWorld``, drops the configured bin of parts, and spins them on one executor.
"""

from __future__ import annotations

from pathlib import Path

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node

from grasp_cell.drivers.sim_arm import SimArm
from grasp_cell.drivers.sim_camera import SimCamera
from grasp_cell.graph import package_share
from grasp_cell.nodes.camera_node import CameraNode
from grasp_cell.nodes.motion_node import MotionNode
from grasp_cell.sim.config import CellConfig
from grasp_cell.sim.world import SimWorld


def load_cell_config(node: Node) -> tuple[CellConfig, int]:
    """The sim YAML with the launch arguments (robot, gripper, parts, seed, reflective) laid over it."""
    path = node.declare_parameter("sim_config", "").value or str(package_share() / "config" / "sim_cell.yaml")
    config = CellConfig.from_yaml(Path(path))
    robot = node.declare_parameter("robot", config.robot.name).value
    gripper = node.declare_parameter("gripper", config.robot.gripper.value).value
    seed = node.declare_parameter("seed", config.seed).value
    parts = node.declare_parameter("parts", config.parts.count).value
    reflective = node.declare_parameter("reflective", config.camera.noise.missing).value
    return config.with_cell(robot, gripper, seed).with_reflective_parts(bool(reflective)), parts


def main(args=None):
    try:
        with rclpy.init(args=args):
            cell_node = Node("sim_cell_node")
            config, parts = load_cell_config(cell_node)
            world = SimWorld(config)  # one generator, from config.seed
            arm = SimArm(world)
            world.reset(parts)
            camera = CameraNode(SimCamera(world))
            motion = MotionNode(arm)
            cell_node.get_logger().info(
                f"simulated cell ready: {config.robot.name} with {config.robot.gripper.value} gripper, "
                f"{world.parts_in_bin()} parts in the bin (seed {config.seed})"
            )
            executor = MultiThreadedExecutor()
            for node in (cell_node, camera, motion):
                executor.add_node(node)
            try:
                executor.spin()
            finally:
                world.close()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass


if __name__ == "__main__":
    main()
