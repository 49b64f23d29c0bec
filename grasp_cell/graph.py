"""The cell's node graph, described once: ``launch/bin_pick.launch.py`` (ROS installs) and the pip
launcher (``grasp-cell launch``) both turn this description into processes, so they cannot drift.

No ROS imports here: the description is plain data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "grasp_cell"


@dataclass(frozen=True)
class LaunchArgument:
    default: str
    description: str
    choices: tuple[str, ...] = ()


LAUNCH_ARGUMENTS: dict[str, LaunchArgument] = {
    "sim": LaunchArgument("true", "true: simulated PyBullet cell; false: hardware drivers", ("true", "false")),
    "robot": LaunchArgument("ur5", "arm", ("ur5", "iiwa", "kinova")),
    "camera": LaunchArgument(
        "realsense", "camera driver of a hardware run (the simulated cell renders its own)",
        ("realsense", "zivid", "bag"),
    ),
    "camera_config": LaunchArgument("", "camera driver YAML; empty = config/hardware/<camera>.yaml"),
    "robot_config": LaunchArgument("", "arm driver YAML; empty = config/hardware/<robot>.yaml"),
    "robot_ip": LaunchArgument("", "the UR controller's address (overrides robot_config's host)"),
    "bag": LaunchArgument("", "camera:=bag: the rosbag2 folder or file to replay (overrides camera_config's path)"),
    "model": LaunchArgument("baseline", "grasp model, by registered name"),
    "gripper": LaunchArgument(
        "suction", "gripper on the arm; the model plans for it", ("suction", "parallel", "three_finger")
    ),
    "sim_config": LaunchArgument(
        "", "simulated cell YAML, a path or a file in the package's config/; empty = config/sim_cell.yaml, "
        "config/sim_hand_cell.yaml with gripper:=three_finger"
    ),
    "parts": LaunchArgument("30", "parts dropped into the simulated bin"),
    "reflective": LaunchArgument(
        "false", "simulated camera: shiny part pixels go missing as on steel (seed 000 eq. 5)", ("true", "false")
    ),
    "seed": LaunchArgument("0", "seed of the simulated bin (one RNG for the whole cell)"),
    "max_attempts": LaunchArgument("0", "stop after this many attempts; 0 = until empty or 5 failures in a row"),
    "rviz": LaunchArgument("false", "start RViz with config/grasp_cell.rviz (needs a ROS install)", ("true", "false")),
    "log_dir": LaunchArgument("runs", "where each run's attempts.jsonl and summary.json go"),
    "params": LaunchArgument("", "node parameter YAML; empty = config/cell.yaml of the package"),
    "learn": LaunchArgument(
        "", "learning mode: folder of a learning run (attempts recorded there, a trainer node retrains, the "
        "grasp node follows its weights and explores); empty = off"
    ),
}

# models a learning cell can train: the names of grasp_cell.learn.online.LEARNING_MODELS (kept as plain data
# here so that the launch file does not import the learning code; test_graph checks that the two agree)
LEARNING_MODELS = ("planar_fcn", "suction_region")


@dataclass(frozen=True)
class NodeSpec:
    """One process: ``executable`` of ``package`` with parameter files and overrides."""

    name: str
    executable: str
    package: str = PACKAGE
    param_files: tuple[str, ...] = ()
    parameters: dict = field(default_factory=dict)
    arguments: tuple[str, ...] = ()
    needs_ros_install: bool = False  # not on PyPI (rviz2): only the ROS launch file can start it
    exit_ends_launch: bool = False  # the cell is done when this process exits


def package_share() -> Path:
    """Folder holding config/, launch/ and models/: the checkout when running from source (pip route,
    editable install), else the ament share directory of a ROS install."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "package.xml").exists():
        return checkout
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory(PACKAGE))


def resolve_arguments(overrides: dict[str, str]) -> dict[str, str]:
    """Defaults plus overrides; unknown names and values outside ``choices`` raise ValueError."""
    unknown = sorted(set(overrides) - set(LAUNCH_ARGUMENTS))
    if unknown:
        raise ValueError(f"unknown launch argument(s) {', '.join(unknown)}; known: {', '.join(LAUNCH_ARGUMENTS)}")
    args = {name: str(overrides.get(name, spec.default)) for name, spec in LAUNCH_ARGUMENTS.items()}
    for name, spec in LAUNCH_ARGUMENTS.items():
        if spec.choices and args[name] not in spec.choices:
            raise ValueError(f"{name}:={args[name]} is not one of {', '.join(spec.choices)}")
    for name in ("parts", "seed", "max_attempts"):
        if not args[name].lstrip("-").isdigit():
            raise ValueError(f"{name}:={args[name]} is not an integer")
    if args["learn"] and args["model"] not in LEARNING_MODELS:
        raise ValueError(f"learn:= needs a model that learns ({', '.join(LEARNING_MODELS)}), not '{args['model']}'")
    return args


def sim_config_path(value: str, gripper: str, share: Path) -> str:
    """The simulated cell's YAML: ``value`` as a path if it exists, else a file of the package's config/; the
    default is the one for ``gripper`` (the three-finger hand's cell has a larger bin and its own objects)."""
    if not value:
        value = "sim_hand_cell.yaml" if gripper == "three_finger" else "sim_cell.yaml"
    path = Path(value).expanduser()
    if path.exists():
        return str(path.resolve())
    if (share / "config" / value).exists():
        return str(share / "config" / value)
    raise ValueError(f"sim_config:={value}: no such file here or in {share / 'config'}")


def driver_parameters(driver: str, config: str, share: Path, options: dict[str, str]) -> dict:
    """A hardware driver node's parameters: the driver, its YAML (default ``config/hardware/<driver>.yaml``)
    and the launch options laid over it (empty ones left out)."""
    if config:
        path = Path(config).expanduser()
        config = str(path.resolve()) if path.exists() else str(share / "config" / "hardware" / config)
    else:
        config = str(share / "config" / "hardware" / f"{driver}.yaml")
    if not Path(config).exists():
        raise ValueError(f"driver settings {config}: no such file")
    options = {key: value for key, value in options.items() if value}
    return {"driver": driver, "driver_config": config, "driver_options": json.dumps(options, sort_keys=True)}


def node_graph(overrides: dict[str, str]) -> list[NodeSpec]:
    """The processes of the cell for these launch arguments."""
    args = resolve_arguments(overrides)
    share = package_share()
    params = (args["params"] or str(share / "config" / "cell.yaml"),)
    sim = args["sim"] == "true"
    nodes = []
    if sim:
        # camera and arm must act on one physics world: one process hosts both nodes
        nodes.append(
            NodeSpec(
                "sim_cell_node",
                "sim_cell_node",
                param_files=params,
                parameters={
                    "robot": args["robot"],
                    "gripper": args["gripper"],
                    "parts": int(args["parts"]),
                    "seed": int(args["seed"]),
                    "reflective": args["reflective"] == "true",
                    "sim_config": sim_config_path(args["sim_config"], args["gripper"], share),
                },
            )
        )
    else:
        nodes.append(NodeSpec("camera_node", "camera_node", param_files=params, parameters=driver_parameters(
            args["camera"], args["camera_config"], share, {"path": args["bag"]})))
        nodes.append(NodeSpec("motion_node", "motion_node", param_files=params, parameters=driver_parameters(
            args["robot"], args["robot_config"], share, {"host": args["robot_ip"], "gripper": args["gripper"]})))
    learn = Path(args["learn"]).expanduser() if args["learn"] else None
    grasp_parameters = {"model": args["model"], "gripper": args["gripper"]}
    if learn is not None:
        grasp_parameters.update(snapshots=str(learn / "snapshots"), selection="schedule")
        nodes.append(
            NodeSpec("trainer_node", "trainer_node", param_files=params,
                     parameters={"folder": str(learn), "model": args["model"]})
        )
    nodes.append(NodeSpec("grasp_node", "grasp_node", param_files=params, parameters=grasp_parameters))
    nodes.append(
        NodeSpec(
            "supervisor_node",
            "supervisor_node",
            param_files=params,
            parameters={
                "model": args["model"],
                "max_attempts": int(args["max_attempts"]),
                "log_dir": args["log_dir"],
                "run_name": f"{'sim' if sim else 'hw'}_{args['robot']}_{args['model']}_seed{args['seed']}",
                "run_config": json.dumps(args, sort_keys=True),
                "experience_dir": str(learn / "experience") if learn is not None else "",
            },
            exit_ends_launch=True,
        )
    )
    if args["rviz"] == "true":
        nodes.append(
            NodeSpec(
                "rviz2",
                "rviz2",
                package="rviz2",
                arguments=("-d", str(share / "config" / "grasp_cell.rviz")),
                needs_ros_install=True,
            )
        )
    return nodes


def parse_key_values(tokens: list[str]) -> dict[str, str]:
    """``["parts:=5", "seed:=3"]`` -> ``{"parts": "5", "seed": "3"}``, as ros2 launch takes them."""
    pairs = {}
    for token in tokens:
        name, sep, value = token.partition(":=")
        if not sep or not name:
            raise ValueError(f"expected name:=value, got '{token}'")
        pairs[name] = value
    return pairs
