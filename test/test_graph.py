"""The node-graph description shared by the launch file and the pip launcher."""

import ast
import json
from pathlib import Path

import pytest
import yaml

from grasp_cell.graph import LAUNCH_ARGUMENTS, node_graph, package_share, parse_key_values
from grasp_cell.launcher import NODE_MODULES, node_command, write_overrides

ROOT = Path(__file__).resolve().parent.parent


def test_sim_graph_hosts_camera_and_arm_in_one_process():
    names = [spec.name for spec in node_graph({})]
    assert names == ["sim_cell_node", "grasp_node", "supervisor_node"]
    sim = node_graph({"robot": "iiwa", "parts": "7", "seed": "3"})[0]
    share = package_share()
    assert sim.parameters == {"robot": "iiwa", "gripper": "suction", "parts": 7, "seed": 3, "reflective": False,
                              "sim_config": str(share / "config" / "sim_cell.yaml")}
    hand = node_graph({"gripper": "three_finger", "model": "hand_quality"})[0]
    assert hand.parameters["sim_config"] == str(share / "config" / "sim_hand_cell.yaml")
    with pytest.raises(ValueError, match="no_such.yaml"):
        node_graph({"sim_config": "no_such.yaml"})
    assert node_graph({"reflective": "true"})[0].parameters["reflective"] is True


def test_hardware_graph_has_separate_drivers_and_rviz_is_marked(tmp_path):
    specs = node_graph({"sim": "false", "camera": "realsense", "rviz": "true", "robot_ip": "10.0.0.5"})
    assert [s.name for s in specs] == ["camera_node", "motion_node", "grasp_node", "supervisor_node", "rviz2"]
    share = package_share()
    assert specs[0].parameters == {"driver": "realsense", "driver_options": "{}",
                                   "driver_config": str(share / "config" / "hardware" / "realsense.yaml")}
    motion = specs[1].parameters
    assert motion["driver"] == "ur5" and motion["driver_config"] == str(share / "config" / "hardware" / "ur5.yaml")
    assert json.loads(motion["driver_options"]) == {"host": "10.0.0.5", "gripper": "suction"}
    bag = node_graph({"sim": "false", "camera": "bag", "bag": str(tmp_path), "robot": "iiwa"})
    assert json.loads(bag[0].parameters["driver_options"]) == {"path": str(tmp_path)}
    assert bag[1].parameters["driver_config"].endswith("config/hardware/iiwa.yaml")
    with pytest.raises(ValueError, match="no_such.yaml"):
        node_graph({"sim": "false", "camera_config": "no_such.yaml"})
    assert specs[-1].needs_ros_install and not any(s.needs_ros_install for s in specs[:-1])
    assert [s.name for s in specs if s.exit_ends_launch] == ["supervisor_node"]


@pytest.mark.parametrize(
    "overrides, message",
    [({"robots": "ur5"}, "unknown launch argument"), ({"robot": "panda"}, "not one of"), ({"parts": "x"}, "integer")],
)
def test_bad_arguments_are_rejected(overrides, message):
    with pytest.raises(ValueError, match=message):
        node_graph(overrides)


def test_learning_mode_adds_a_trainer_and_points_the_nodes_at_one_folder(tmp_path):
    specs = {s.name: s for s in node_graph({"model": "planar_fcn", "gripper": "parallel", "learn": str(tmp_path)})}
    assert list(specs) == ["sim_cell_node", "trainer_node", "grasp_node", "supervisor_node"]
    assert specs["trainer_node"].parameters == {"folder": str(tmp_path), "model": "planar_fcn"}
    assert specs["grasp_node"].parameters["snapshots"] == str(tmp_path / "snapshots")
    assert specs["grasp_node"].parameters["selection"] == "schedule"
    assert specs["supervisor_node"].parameters["experience_dir"] == str(tmp_path / "experience")
    assert node_graph({})[2].parameters["experience_dir"] == ""
    with pytest.raises(ValueError, match="learns"):
        node_graph({"learn": str(tmp_path)})  # the baseline does not learn


def test_learning_models_are_those_the_learning_code_has():
    from grasp_cell.graph import LEARNING_MODELS
    from grasp_cell.learn import online

    assert set(LEARNING_MODELS) == set(online.LEARNING_MODELS)


def test_parse_key_values():
    assert parse_key_values(["parts:=5", "model:=baseline"]) == {"parts": "5", "model": "baseline"}
    with pytest.raises(ValueError):
        parse_key_values(["parts=5"])


def test_pip_launcher_command_carries_param_files_and_typed_overrides(tmp_path):
    spec = node_graph({"parts": "12"})[0]
    command = node_command(spec, write_overrides(spec, tmp_path))
    assert command[1:3] == ["-m", NODE_MODULES["sim_cell_node"]]
    files = [command[i + 1] for i, token in enumerate(command) if token == "--params-file"]
    assert files[0].endswith("config/cell.yaml")
    overrides = yaml.safe_load(Path(files[1]).read_text())["/**"]["ros__parameters"]
    assert overrides["parts"] == 12 and overrides["robot"] == "ur5"


def test_every_graph_executable_has_a_node_module_and_a_console_script():
    tree = ast.parse((ROOT / "setup.py").read_text())
    listed = next(
        ast.literal_eval(node.value) for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "NODE_EXECUTABLES"
    )
    assert sorted(listed) == sorted(NODE_MODULES)
    for executable, module in NODE_MODULES.items():
        assert module == f"grasp_cell.nodes.{executable}"
        assert (ROOT / (module.replace(".", "/") + ".py")).exists()


def test_launch_file_uses_the_shared_graph():
    tree = ast.parse((ROOT / "launch" / "bin_pick.launch.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and node.module == "grasp_cell.graph" for alias in node.names}
    assert {"LAUNCH_ARGUMENTS", "node_graph"} <= imported


def test_cell_yaml_sections_match_node_names():
    sections = set(yaml.safe_load((ROOT / "config" / "cell.yaml").read_text()))
    assert sections <= {"camera_node", "grasp_node", "motion_node", "sim_cell_node", "supervisor_node", "trainer_node"}
    assert set(LAUNCH_ARGUMENTS) >= {"sim", "robot", "camera", "model", "parts", "rviz", "seed"}
