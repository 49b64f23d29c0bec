"""pip / setuptools packaging of grasp_cell.

The pinned environment is requirements.txt; ./cell.sh setup installs it, builds the interfaces
(msg/ srv/ action/) with CMake into the venv and then installs this package editable.
On a ROS 2 install, colcon builds the package from CMakeLists.txt instead (docs/ros_install.md).
"""
import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "grasp_cell"

# Node executables; CMakeLists.txt (GRASP_CELL_NODE_EXECUTABLES) installs the same list under
# lib/grasp_cell for `ros2 run` / `ros2 launch`. test/test_packaging.py checks that both agree.
NODE_EXECUTABLES = [
    "camera_node",
    "grasp_node",
    "motion_node",
    "supervisor_node",
    "sim_cell_node",
    "trainer_node",
]


def _data_files():
    """Files installed into share/grasp_cell, the way ament_python packages do it."""
    here = os.path.dirname(os.path.abspath(__file__))
    files = [
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
    ]
    for top in ("launch", "config", "models"):
        by_dir = {}
        for path in sorted(glob(os.path.join(top, "**", "*"), recursive=True)):
            if os.path.isfile(os.path.join(here, path)) and "__pycache__" not in path:
                by_dir.setdefault(os.path.dirname(path), []).append(path)
        for rel_dir, paths in sorted(by_dir.items()):
            files.append((os.path.join("share", PACKAGE, rel_dir), paths))
    return files


setup(
    name=PACKAGE,
    version="0.1.0",
    description="ROS 2 bin-picking cell with learned grasp models from depth images",
    maintainer="grasp_cell maintainers",
    maintainer_email="maintainers@grasp-cell.dev",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=[PACKAGE, PACKAGE + ".*"]),
    package_data={PACKAGE: ["sim/assets/*", "sim/assets/**/*"]},
    data_files=_data_files(),
    install_requires=["numpy", "pyyaml", "pybullet", "scipy"],
    zip_safe=False,
    entry_points={
        "console_scripts": [
            "grasp-cell = grasp_cell.cli:main",
        ]
        + ["%s = grasp_cell.nodes.%s:main" % (name, name) for name in NODE_EXECUTABLES],
    },
)
