"""ros2 launch grasp_cell bin_pick.launch.py [sim:=true robot:=ur5 model:=baseline parts:=30 ...]

The processes come from grasp_cell.graph.node_graph, the same description the pip launcher
(`grasp-cell launch`) uses, so both routes start the same cell.
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from grasp_cell.graph import LAUNCH_ARGUMENTS, node_graph
from launch import LaunchDescription


def _nodes(context):
    overrides = {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_ARGUMENTS}
    actions = []
    for spec in node_graph(overrides):
        actions.append(
            Node(
                package=spec.package,
                executable=spec.executable,
                output="screen",
                parameters=[*spec.param_files, spec.parameters] if spec.package == "grasp_cell" else [],
                arguments=list(spec.arguments),
                on_exit=Shutdown() if spec.exit_ends_launch else None,
            )
        )
    return actions


def generate_launch_description():
    arguments = [
        DeclareLaunchArgument(
            name, default_value=spec.default, description=spec.description, choices=list(spec.choices) or None
        )
        for name, spec in LAUNCH_ARGUMENTS.items()
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])
