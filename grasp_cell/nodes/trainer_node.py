"""Trainer node: retrains a learning model from the cell's attempts and publishes each weights version.

The supervisor writes every attempt to ``<folder>/experience`` (``experience_dir``); this node retrains
whenever ``retrain_every`` new attempts are there and publishes the weights to ``<folder>/snapshots``,
which the grasp node follows (``snapshots``). The new version's number goes out on ``weights_version``.
The training itself is ``grasp_cell.learn.online.train_in_background``, the same as in the simulated
learning run.
"""

from __future__ import annotations

import threading
from pathlib import Path

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from std_msgs.msg import Int32

from grasp_cell.learn.online import SNAPSHOTS_DIR, LearningSetup, train_in_background
from grasp_cell.models.snapshots import SnapshotFolder


class TrainerNode(Node):
    def __init__(self):
        super().__init__("trainer_node")
        folder = self.declare_parameter("folder", "").value
        if not folder:
            raise ValueError("trainer_node needs the 'folder' parameter (the learning run's folder)")
        self.folder = Path(folder).expanduser()
        model = self.declare_parameter("model", "planar_fcn").value
        encoder = self.declare_parameter("encoder", "pretrained").value  # suction_region only
        self.setup = LearningSetup(
            model=model,
            retrain_every=self.declare_parameter("retrain_every", LearningSetup.retrain_every).value,
            encoder=encoder if model == "suction_region" else "",
        )
        self.snapshots = SnapshotFolder(self.folder / SNAPSHOTS_DIR)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.versions = self.create_publisher(Int32, "weights_version", latched)
        self.stop = threading.Event()
        self.worker = threading.Thread(target=self._train, daemon=True)
        self.worker.start()
        self._published = -1
        self.create_timer(1.0, self.version_callback)
        self.get_logger().info(f"training '{self.setup.model}' from {self.folder}")

    def _train(self) -> None:
        try:
            train_in_background(self.folder, self.setup, self.stop)
        except Exception as error:  # report it; the cell goes on with the last weights
            self.get_logger().error(f"training stopped: {type(error).__name__}: {error}")

    def version_callback(self) -> None:
        latest = self.snapshots.latest()
        if latest is not None and latest["version"] != self._published:
            self._published = int(latest["version"])
            self.versions.publish(Int32(data=self._published))
            self.get_logger().info(f"weights version {self._published} ({latest.get('attempts', 0)} attempts)")

    def destroy_node(self):
        self.stop.set()
        self.worker.join(timeout=30)
        return super().destroy_node()


def main(args=None):
    try:
        with rclpy.init(args=args):
            node = TrainerNode()
            try:
                rclpy.spin(node)
            finally:
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass


if __name__ == "__main__":
    main()
