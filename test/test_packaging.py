"""Packaging checks: generated interfaces, setup.py vs CMakeLists.txt, package.xml.

Fast (no ROS graph, no simulation): they guard the two install routes, pip (./cell.sh setup)
and colcon (docs/ros_install.md).
"""
import ast
import importlib.util
import re
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


# --- helpers --------------------------------------------------------------------------------

def _setup_py_assignments():
    """Top-level literal assignments of setup.py (NODE_EXECUTABLES, PACKAGE, ...)."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return values


def _setup_py_call_kwargs():
    """Literal keyword arguments of the setup(...) call."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup":
            out = {}
            for kw in node.keywords:
                try:
                    out[kw.arg] = ast.literal_eval(kw.value)
                except ValueError:
                    pass
            return out
    raise AssertionError("setup.py has no setup(...) call")


def _cmake_text():
    # drop comments so that commented-out lines do not count
    return "\n".join(line.split("#", 1)[0] for line in (ROOT / "CMakeLists.txt").read_text().splitlines())


def _cmake_list(command_regex):
    match = re.search(command_regex, _cmake_text(), re.S)
    assert match, "not found in CMakeLists.txt: %s" % command_regex
    return match.group(1).split()


# --- (a) generated interfaces ---------------------------------------------------------------

def test_interfaces_import_and_round_trip():
    from rclpy.serialization import deserialize_message, serialize_message

    from grasp_cell.action import Pick
    from grasp_cell.msg import Grasp, PickEvent
    from grasp_cell.srv import Capture, PlanGrasps

    grasp = Grasp()
    grasp.header.frame_id = "camera_depth_optical_frame"
    grasp.pose.position.z = 0.42
    grasp.pose.orientation.w = 1.0
    grasp.approach.z = 1.0
    grasp.gripper = "parallel"
    grasp.width = 0.05
    grasp.quality = 0.875
    grasp.pixel_u, grasp.pixel_v = 320, 240
    grasp.model = "test_model"
    back = deserialize_message(serialize_message(grasp), Grasp)
    assert back == grasp
    assert back.pose.position.z == pytest.approx(0.42)
    assert back.gripper == "parallel" and back.pixel_v == 240

    request = PlanGrasps.Request()
    request.depth.height, request.depth.width = 2, 3
    request.depth.encoding = "32FC1"
    request.depth.step = 3 * 4
    request.depth.data = bytes(range(24))
    request.camera_info.k = [600.0, 0.0, 1.5, 0.0, 600.0, 1.0, 0.0, 0.0, 1.0]
    request.max_grasps = 7
    back_request = deserialize_message(serialize_message(request), PlanGrasps.Request)
    assert back_request == request
    assert bytes(back_request.depth.data) == bytes(range(24))

    response = PlanGrasps.Response()
    response.grasps = [grasp, grasp]
    assert deserialize_message(serialize_message(response), PlanGrasps.Response).grasps[1] == grasp

    goal = Pick.Goal()
    goal.grasp = grasp
    goal.place.header.frame_id = "base_link"
    back_goal = deserialize_message(serialize_message(goal), Pick.Goal)
    assert back_goal == goal
    for extra in (Pick.Result(), Pick.Feedback(), PickEvent(), Capture.Request(), Capture.Response()):
        assert deserialize_message(serialize_message(extra), type(extra)) == extra


def test_generated_interfaces_extend_the_source_package():
    """grasp_cell.msg (generated) and grasp_cell.core (source) are parts of one package whose
    __init__.py is the source one, not rosidl's empty one (pip route: two folders joined by
    pkgutil.extend_path; colcon route: one merged folder)."""
    import grasp_cell
    import grasp_cell.core
    import grasp_cell.msg

    assert grasp_cell.__file__ is not None, "grasp_cell imported as a namespace package"
    assert Path(grasp_cell.__file__).read_text() == (ROOT / "grasp_cell" / "__init__.py").read_text()
    package_dirs = [Path(p).resolve() for p in grasp_cell.__path__]
    assert Path(grasp_cell.core.__file__).resolve().parent.parent in package_dirs
    assert Path(grasp_cell.msg.__file__).resolve().parent.parent in package_dirs


def test_cmake_generates_every_interface_file():
    listed = {
        f for f in _cmake_list(r"rosidl_generate_interfaces\(\s*\$\{PROJECT_NAME\}(.*?)DEPENDENCIES")
    }
    on_disk = {
        p.relative_to(ROOT).as_posix()
        for pattern in ("msg/*.msg", "srv/*.srv", "action/*.action")
        for p in ROOT.glob(pattern)
    }
    assert listed == on_disk


# --- (b) setup.py console_scripts vs CMakeLists.txt executables -------------------------------

def _setup_console_scripts():
    nodes = _setup_py_assignments()["NODE_EXECUTABLES"]
    scripts = {"grasp-cell": "grasp_cell.cli:main"}
    scripts.update({name: "grasp_cell.nodes.%s:main" % name for name in nodes})
    return scripts


def test_node_executables_agree_between_setup_py_and_cmake():
    setup_nodes = _setup_py_assignments()["NODE_EXECUTABLES"]
    cmake_nodes = _cmake_list(r"set\(\s*GRASP_CELL_NODE_EXECUTABLES(.*?)\)")
    assert sorted(setup_nodes) == sorted(cmake_nodes)
    assert len(set(setup_nodes)) == len(setup_nodes)
    assert set(setup_nodes) >= {"camera_node", "grasp_node", "motion_node", "supervisor_node", "sim_cell_node"}


def test_installed_console_scripts_match_setup_py():
    installed = {
        ep.name: ep.value
        for ep in metadata.entry_points(group="console_scripts")
        if ep.value.startswith("grasp_cell.")
    }
    if not installed:
        pytest.skip("grasp_cell is not pip-installed (colcon route: CMake installs the executables)")
    assert installed == _setup_console_scripts(), "setup.py changed since install: run ./cell.sh setup"


def test_console_script_targets_exist():
    missing = []
    for name, target in sorted(_setup_console_scripts().items()):
        module = target.split(":")[0]
        if importlib.util.find_spec(module) is None:
            missing.append("%s -> %s" % (name, module))
    assert not missing, "console_scripts point at missing modules: %s" % ", ".join(missing)


# --- (c) package.xml ------------------------------------------------------------------------

def test_package_xml_is_valid_format_3():
    from catkin_pkg.package import parse_package

    package = parse_package(str(ROOT / "package.xml"))
    package.validate()
    assert package.package_format == 3
    assert package.name == "grasp_cell" == _setup_py_assignments()["PACKAGE"]
    assert package.version == _setup_py_call_kwargs()["version"]
    assert package.get_build_type() == "ament_cmake"
    assert "rosidl_interface_packages" in [group.name for group in package.member_of_groups]
    build_deps = {d.name for d in package.buildtool_depends + package.build_depends}
    assert {"ament_cmake", "rosidl_default_generators"} <= build_deps
    exec_deps = {d.name for d in package.exec_depends}
    assert {"rclpy", "rosidl_default_runtime"} <= exec_deps
    assert (ROOT / "resource" / "grasp_cell").is_file()
